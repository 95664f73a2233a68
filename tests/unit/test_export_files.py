"""Pieces of the Hugging Face folder: deterministic safetensors shards, config mapping, tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from script_loading import load_script

from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.export.hf_config import hf_config_dict, model_config_from_hf
from sparseehr_mcore.export.hf_tokenizer import SpecialTokens, build_hf_tokenizer, save_hf_tokenizer
from sparseehr_mcore.export.kinds import ConversionError
from sparseehr_mcore.export.safetensors_io import INDEX_FILE, read_shards, write_shards


def test_shards_are_deterministic_and_read_back(tmp_path):
    generator = torch.Generator().manual_seed(0)
    tensors = {f"model.layers.{i}.w": torch.randn(16, 16, generator=generator) for i in range(5)}
    (tmp_path / "a").mkdir()
    first = write_shards(tensors, tmp_path / "a", max_shard_bytes=2048)
    (tmp_path / "b").mkdir()
    # Same tensors, inserted in another order: same files, same bytes.
    second = write_shards(dict(reversed(list(tensors.items()))), tmp_path / "b", max_shard_bytes=2048)
    assert first == second and len(first) == 3  # 1 KiB per tensor: 2 + 2 + 1
    for name in [*first, INDEX_FILE]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    index = json.loads((tmp_path / "a" / INDEX_FILE).read_text())
    assert index["weight_map"]["model.layers.4.w"] == first[2]
    back = read_shards(tmp_path / "a")
    assert sorted(back) == sorted(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)


def test_hf_config_round_trips_and_rejects_foreign_patterns():
    config = ModelConfig.from_preset("tiny", vocab_size=250, shared_expert_gate=True)
    values = dict(hf_config_dict(config), model_type="qwen2_moe")
    assert values["vocab_size"] == 256 and values["mlp_only_layers"] == [0, 1] and values["norm_topk_prob"] is False
    assert model_config_from_hf(values) == config
    assert model_config_from_hf(values, shared_expert_gate=False).shared_expert_gate is False
    foreign = {k: v for k, v in values.items() if k != "sparseehr_model_config"}
    derived = model_config_from_hf(foreign)
    assert derived.padded_vocab_size == 256 and derived.dense_prefix_layers == 2 and derived.num_query_groups == 2
    with pytest.raises(ConversionError, match="dense prefix"):
        model_config_from_hf({**values, "mlp_only_layers": [1]})
    with pytest.raises(ConversionError, match="model_type 'llama'"):
        model_config_from_hf({**values, "model_type": "llama"})
    with pytest.raises(ConversionError, match="disagrees"):
        model_config_from_hf({**values, "num_experts": 8})
    with pytest.raises(ConversionError, match="shared expert"):
        hf_config_dict(config.replace(shared_expert_ffn_hidden_size=0, shared_expert_gate=False))


def test_tokenizer_round_trips_ids_and_strings(tmp_path):
    from transformers import AutoTokenizer

    tokens = ["[PAD]", "[EOD]", "[BEGIN]", "[END]", "[UNK]", "[UNK:DX]", "DX:I10", "RX:0012-34", "AGE:40-44"]
    vocab = {token: index for index, token in enumerate(tokens)}
    save_hf_tokenizer(build_hf_tokenizer(vocab, specials=SpecialTokens()), tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "AGE:40-44 [BEGIN] DX:I10 RX:0012-34 [END] [EOD]"
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert ids == [8, 2, 6, 7, 3, 1]
    assert loaded.decode(ids) == text
    assert (loaded.pad_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 4)
    with pytest.raises(ConversionError, match="not in the vocabulary"):
        build_hf_tokenizer(vocab, specials=SpecialTokens(eos="[END_OF_DAY]"))
    with pytest.raises(ConversionError, match="0..n-1"):
        build_hf_tokenizer({"[PAD]": 0, "[UNK]": 2}, specials=SpecialTokens(eos=None))


def test_model_card_states_architecture_data_and_metrics():
    from sparseehr_mcore.export.model_card import render_model_card

    config = ModelConfig.from_preset("tiny")
    card = render_model_card(config, iteration=20, data_description="MIMIC-IV demo, 25 patients", metrics={"valid_loss": 2.5})
    assert "iteration 20" in card and "4 routed experts" in card and "top-1" in card
    assert "MIMIC-IV demo, 25 patients" in card and "| valid_loss | 2.5 |" in card
    assert "None given at export." in render_model_card(config, iteration=0)


def test_cli_help_documents_every_flag(capsys):
    module = load_script("tools/convert_checkpoint.py")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--to", "--input", "--output", "--tokenizer", "--no-tokenizer", "--data-description", "--metrics",
                 "--max-shard-gb", "--shared-expert-gate", "--no-shared-expert-gate", "--iteration"):  # fmt: skip
        assert flag in text
