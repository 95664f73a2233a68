"""Export to Hugging Face proven end to end (issue 5): a tiny model built through Megatron-Core is
saved, exported with tools/convert_checkpoint.py, loaded with `AutoModelForCausalLM` in a separate
process (see hf_reference_worker.py) and compared with the Megatron-Core forward; then HF ->
Megatron-Core -> HF must reproduce the folder byte for byte."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from sparseehr_mcore.checkpointing.layout import TOKENIZER_DIR, CheckpointMetadata
from sparseehr_mcore.checkpointing.weights import save_weights
from sparseehr_mcore.config import ParallelConfig
from sparseehr_mcore.tokenization.base import Vocabulary
from hf_export_helpers import folder_bytes, greedy_rollout, load_convert_main, mimic_patients, perturb_norms, synthetic_vocabulary
from launch import run_worker

convert = load_convert_main()

NEW_TOKENS = 12
SYNTHETIC_PATIENTS = 16
# fp32 logits differ only by the order of floating-point operations. Measured here (CPU, torch
# 2.13): 3.6e-7 on the 16 synthetic patients and on the MIMIC-IV demo's 24 training patients alike
# (up to 64 positions each); the bound leaves a margin of 5.6x for other CPUs' kernels. The main job's
# trained model differs by up to 5.7e-6 on 64 patients of 193-256 positions (larger logits, longer
# sequences; benchmarks/hf_parity.py, docs/export.md).
LOGIT_BOUND = 2e-6


@pytest.fixture(scope="module", params=["synthetic", "mimic-iv-demo"])
def exported(request, tmp_path_factory, single_process_world):
    """A tiny model with a shared expert, saved with its tokenizer and exported through the CLI.

    "synthetic": a synthetic typed-code vocabulary and random ids (runs everywhere);
    "mimic-iv-demo": patients tokenized by tools/preprocess_ehr.py from ../shared/data (skipped
    where absent), the model's vocabulary being the tokenizer's.
    """
    from sparseehr_mcore.config import ModelConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.builder import build_model

    root = tmp_path_factory.mktemp(f"hf_export_{request.param}")
    checkpoint = root / "ckpt"
    seq_length = 64
    if request.param == "synthetic":
        vocabulary = synthetic_vocabulary(250)
        (checkpoint / TOKENIZER_DIR).mkdir(parents=True)
        vocabulary.save(checkpoint / TOKENIZER_DIR / "vocab.json")
        ids = torch.randint(0, len(vocabulary), (SYNTHETIC_PATIENTS, seq_length), generator=torch.Generator().manual_seed(0))
        patients = list(ids)
    else:
        shared_data = request.getfixturevalue("shared_data")
        tokenizer_dir, patients = mimic_patients(shared_data, root / "data", count=None, max_length=seq_length)
        shutil.copytree(tokenizer_dir, checkpoint / TOKENIZER_DIR)
        vocabulary = Vocabulary.load(tokenizer_dir / "vocab.json")
    # A non-default RoPE base, so that a base lost in conversion shows in the logits.
    config = ModelConfig.from_preset("tiny", vocab_size=len(vocabulary), seq_length=seq_length, rotary_base=50000.0)
    seed_everything(1234)
    model = build_model(config, ParallelConfig())
    perturb_norms(model)
    save_weights(model, checkpoint, metadata=CheckpointMetadata(model=config, parallel=ParallelConfig(), iteration=3, kind="weights"))
    assert convert(["--to", "hf", "--input", str(checkpoint), "--output", str(root / "hf")]) == 0
    return SimpleNamespace(config=config, model=model.eval(), checkpoint=checkpoint, hf_dir=root / "hf",
                           vocabulary=vocabulary, patients=patients)  # fmt: skip


def test_logits_and_greedy_generation_match(exported, tmp_path):
    config, model, vocabulary = exported.config, exported.model, exported.vocabulary
    prompts = [patient[:8] for patient in exported.patients]
    torch.save({"patients": exported.patients, "prompts": prompts, "new_tokens": NEW_TOKENS}, tmp_path / "inputs.pt")
    result = run_worker(
        "hf_reference_worker.py",
        ["--hf", str(exported.hf_dir), "--inputs", str(tmp_path / "inputs.pt"), "--out", str(tmp_path / "out.pt")],
    )
    assert result.returncode == 0, result.stderr[-4000:]
    reference = torch.load(tmp_path / "out.pt")
    assert reference["class"] == "Qwen2MoeForCausalLM"
    assert all(not keys for keys in reference["loading_info"].values()), reference["loading_info"]

    max_abs, disagreements = 0.0, 0
    for patient, theirs_SV in zip(exported.patients, reference["logits"]):
        with torch.no_grad():
            ours_SV = model(patient[None], torch.arange(patient.numel())[None], None)[0]  # [S, padded V]
        assert ours_SV.shape == theirs_SV.shape == (patient.numel(), config.padded_vocab_size)
        max_abs = max(max_abs, (ours_SV - theirs_SV).abs().max().item())
        disagreements += int((ours_SV.argmax(-1) != theirs_SV.argmax(-1)).sum())
    print(f"max abs logit difference over {len(exported.patients)} patients: {max_abs:.3e}")
    assert max_abs < LOGIT_BOUND
    assert disagreements == 0  # the same token first at every position of every patient

    eod = vocabulary.ids["[EOD]"]
    for prompt, generated in zip(prompts, reference["generated"]):
        ours_sequence = greedy_rollout(model, prompt, new_tokens=NEW_TOKENS, eod=eod)
        assert generated.numel() > prompt.numel()
        assert torch.equal(ours_sequence, generated), (ours_sequence.tolist(), generated.tolist())


def test_folder_contents_and_tokenizer_round_trip(exported):
    from transformers import AutoTokenizer

    config, hf_dir, vocabulary = exported.config, exported.hf_dir, exported.vocabulary
    hf_config = json.loads((hf_dir / "config.json").read_text())
    assert hf_config["architectures"] == ["Qwen2MoeForCausalLM"]
    assert hf_config["mlp_only_layers"] == list(range(config.dense_prefix_layers))
    assert hf_config["decoder_sparse_step"] == 1 and hf_config["norm_topk_prob"] is False
    assert hf_config["vocab_size"] == config.padded_vocab_size
    assert hf_config["rope_theta"] == hf_config["rope_parameters"]["rope_theta"] == config.rotary_base
    generation = json.loads((hf_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == vocabulary.ids["[EOD]"] and generation["pad_token_id"] == vocabulary.ids["[PAD]"]
    assert "tiny" in (hf_dir / "README.md").read_text()

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    assert tokenizer.convert_tokens_to_ids(vocabulary.tokens) == list(range(len(vocabulary)))
    assert tokenizer.convert_ids_to_tokens(list(range(len(vocabulary)))) == vocabulary.tokens
    text = " ".join(vocabulary.tokens)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == list(range(len(vocabulary)))
    assert tokenizer.decode(ids) == text
    assert tokenizer("NOT-IN-VOCAB", add_special_tokens=False)["input_ids"] == [vocabulary.ids["[UNK]"]]
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (vocabulary.ids["[PAD]"], vocabulary.ids["[EOD]"])


def test_hf_to_mcore_to_hf_is_bitwise_identical(exported, tmp_path):
    hf_dir = exported.hf_dir
    assert convert(["--to", "mcore", "--input", str(hf_dir), "--output", str(tmp_path / "ckpt"), "--iteration", "3"]) == 0
    assert convert(["--to", "hf", "--input", str(tmp_path / "ckpt"), "--output", str(tmp_path / "hf")]) == 0
    original, again = folder_bytes(hf_dir), folder_bytes(tmp_path / "hf")
    assert sorted(original) == sorted(again)
    different = [name for name in original if original[name] != again[name]]
    assert not different, different


def test_bad_inputs_fail_with_a_message(exported, tmp_path, capsys):
    checkpoint, hf_dir = exported.checkpoint, exported.hf_dir
    assert convert(["--to", "hf", "--input", str(tmp_path / "absent"), "--output", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # Wrong model type in config.json.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert convert(["--to", "mcore", "--input", str(foreign), "--output", str(tmp_path / "y")]) == 2
    assert "model_type 'llama'" in capsys.readouterr().err


def test_output_folders_are_checked_before_any_work(exported, tmp_path, capsys):
    """Issue 13, item 3: unwritable or foreign output folders are refused in one line; --overwrite
    and reruns replace the folder whole (the same bytes as a fresh export, nothing stale)."""
    checkpoint, hf_dir = exported.checkpoint, exported.hf_dir

    def refused(*argv: str) -> str:
        assert convert(list(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    (tmp_path / "file").write_text("in the way")
    for direction, source in (("hf", checkpoint), ("mcore", hf_dir)):
        assert "cannot create it" in refused("--to", direction, "--input", str(source), "--output", str(tmp_path / "file" / "out"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not the tool's")
    for direction, source in (("hf", checkpoint), ("mcore", hf_dir)):
        assert "did not write (notes.txt)" in refused("--to", direction, "--input", str(source), "--output", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert convert(["--to", "hf", "--input", str(checkpoint), "--output", str(out), "--overwrite"]) == 0
    assert folder_bytes(out) == folder_bytes(hf_dir)
    (out / "model-00002-of-00002.safetensors").write_bytes(b"a stale shard of an earlier export")
    assert convert(["--to", "hf", "--input", str(checkpoint), "--output", str(out)]) == 0  # its own: replaced
    assert folder_bytes(out) == folder_bytes(hf_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]  # no staging folder left


def test_bad_weights_fail_with_the_key_names(exported, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    tensors = load_file(exported.hf_dir / "model.safetensors")
    for case, changed, message in (
        ("leftover", {**tensors, "model.layers.0.mlp.extra.weight": torch.zeros(2)}, "model.layers.0.mlp.extra.weight"),
        ("shape", {**tensors, "model.layers.0.mlp.down_proj.weight": torch.zeros(3, 3)}, "model.layers.0.mlp.down_proj.weight"),
    ):
        folder = tmp_path / case
        shutil.copytree(exported.hf_dir, folder)
        save_file(changed, str(folder / "model.safetensors"), metadata={"format": "pt"})
        assert convert(["--to", "mcore", "--input", str(folder), "--output", str(tmp_path / f"{case}_ckpt")]) == 2
        assert message in capsys.readouterr().err


def test_model_saved_by_transformers_imports_and_exports_unchanged(single_process_world, tmp_path):
    """The reverse direction on weights we did not write: a Qwen2-MoE initialised and saved by
    transformers itself (random non-zero shared-expert gates and q/k/v biases, untied head)."""
    from safetensors.torch import load_file
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    from sparseehr_mcore.config import ModelConfig
    from sparseehr_mcore.export.hf_config import hf_config_dict
    from sparseehr_mcore.export.safetensors_io import read_shards

    config = ModelConfig.from_preset("tiny", shared_expert_gate=True, qkv_bias=True, tie_embeddings=False)
    torch.manual_seed(0)
    native = Qwen2MoeForCausalLM(Qwen2MoeConfig(**hf_config_dict(config)))
    with torch.no_grad():  # transformers initialises biases and norms to constants; make them distinct
        for name, param in native.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.copy_(torch.randn_like(param))
    native.save_pretrained(tmp_path / "native")
    assert convert(["--to", "mcore", "--input", str(tmp_path / "native"), "--output", str(tmp_path / "ckpt")]) == 0
    assert convert(["--to", "hf", "--no-tokenizer", "--input", str(tmp_path / "ckpt"), "--output", str(tmp_path / "hf")]) == 0
    original, exported = load_file(tmp_path / "native" / "model.safetensors"), read_shards(tmp_path / "hf")
    assert sorted(original) == sorted(exported)
    assert [name for name in original if not torch.equal(original[name], exported[name])] == []
