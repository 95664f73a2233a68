"""Megatron-Core checkpoint <-> Hugging Face `Qwen2MoeForCausalLM` folder, both directions.

Reading a checkpoint needs no particular layout: one process builds the whole model (TP=PP=EP=1)
and Megatron-Core's dist_checkpointing reshards whatever TP/PP/EP layout it was saved under.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import GenerationConfig, Qwen2MoeConfig

from sparseehr_mcore.checkpointing.layout import (
    METADATA_FILE,
    TOKENIZER_DIR,
    CheckpointMetadata,
    read_metadata,
    resolve_checkpoint,
)
from sparseehr_mcore.checkpointing.weights import load_weights, save_weights
from sparseehr_mcore.config import ModelConfig, ParallelConfig
from sparseehr_mcore.export.hf_config import hf_config_dict, model_config_from_hf
from sparseehr_mcore.export.hf_tokenizer import (
    SpecialTokens,
    build_hf_tokenizer,
    save_hf_tokenizer,
    vocab_from_saved_tokenizer,
)
from sparseehr_mcore.export.kinds import ConversionError
from sparseehr_mcore.export.mapping import IGNORED_MCORE_SUFFIXES, hf_names_of, hf_to_mcore, mcore_to_hf
from sparseehr_mcore.export.model_card import render_model_card
from sparseehr_mcore.export.safetensors_io import DEFAULT_SHARD_BYTES, read_shards, write_shards
from sparseehr_mcore.outputs import OutputKind, check_output_dir, staged_output

# Our own tokenizer travels inside the HF folder so that HF -> Megatron-Core restores it exactly.
SPARSEEHR_TOKENIZER_DIR = "sparseehr_tokenizer"
# What each direction writes into --output (anything else there is refused unless overwrite).
HF_OUTPUTS = OutputKind(flag="--output", own=(
    "config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "README.md", SPARSEEHR_TOKENIZER_DIR,
))  # fmt: skip
MCORE_OUTPUTS = OutputKind(flag="--output", own=(METADATA_FILE, TOKENIZER_DIR, "*.distcp", ".metadata", "common.pt", "metadata.json"))


@dataclass(kw_only=True)
class ExportOptions:
    """What goes into the Hugging Face folder besides the weights."""

    tokenizer_dir: Path | None = None  # a saved SparseEHR tokenizer; None: the checkpoint's tokenizer/
    require_tokenizer: bool = True  # False: export weights without a tokenizer when none is found
    specials: SpecialTokens = field(default_factory=SpecialTokens)
    data_description: str | None = None
    metrics: dict[str, float] | None = None
    max_shard_bytes: int = DEFAULT_SHARD_BYTES
    overwrite: bool = False  # replace an output folder holding files the export does not write


def _one_process_model(model: ModelConfig) -> torch.nn.Module:
    """The whole model on this process (a gloo world of one; reseeds Megatron-Core's RNGs)."""
    from sparseehr_mcore.distributed import initialize_distributed
    from sparseehr_mcore.model.builder import build_model

    # The local spec's names are what `hf_to_mcore` writes; its sharded keys equal TE's, so
    # checkpoints written here load into TE models as well.
    local = model.replace(transformer_impl="local")
    initialize_distributed(ParallelConfig(), model=local)
    return build_model(local, ParallelConfig())


def load_mcore_model(path: str | Path) -> tuple[CheckpointMetadata, torch.nn.Module]:
    """The metadata and the whole model (one process, local spec) of a checkpoint (ROOT or iter_* dir)."""
    directory = resolve_checkpoint(path)
    metadata = read_metadata(directory)
    model = _one_process_model(metadata.model)
    load_weights(model, directory)
    return metadata, model


def read_mcore_checkpoint(path: str | Path) -> tuple[CheckpointMetadata, dict[str, torch.Tensor]]:
    """The metadata and the full, unsharded model state of a checkpoint (ROOT or iter_* dir)."""
    metadata, model = load_mcore_model(path)
    state = {name: value for name, value in model.state_dict().items() if not name.endswith(IGNORED_MCORE_SUFFIXES)}
    return metadata, state


def _special_ids(vocab: dict[str, int] | None, specials: SpecialTokens) -> dict[str, int]:
    if vocab is None:
        return {}
    roles = {"pad": specials.pad, "eod": specials.eos, "bos": specials.bos}
    return {role: vocab[token] for role, token in roles.items() if token is not None and token in vocab}


def _add_legacy_rope_theta(config_path: Path, rotary_base: float) -> None:
    # transformers 5 keeps RoPE's base only inside `rope_parameters`; transformers 4 reads the
    # top-level `rope_theta` and would silently fall back to 10000 without it.
    values = json.loads(config_path.read_text(encoding="utf-8"))
    values["rope_theta"] = float(rotary_base)
    config_path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_to_hf(checkpoint: str | Path, output: str | Path, *, options: ExportOptions | None = None) -> Path:
    """Write a Hugging Face Qwen2-MoE folder for a Megatron-Core checkpoint.

    Args:
        checkpoint: a run root or one iter_* directory.
        output: the folder to write: absent, or holding an earlier export only (unless
            `options.overwrite`); it is replaced whole once the new export is complete.
        options: tokenizer, model card and sharding options.

    Returns:
        The output folder.

    Raises:
        ConversionError: the model or tokenizer cannot be expressed as Qwen2-MoE, or keys do not map.
        FileNotFoundError: no complete checkpoint at `checkpoint`.
        OutputError: `output` cannot be written, or holds other files and `options.overwrite` is off.
    """
    options = options or ExportOptions()
    check_output_dir(output, kind=HF_OUTPUTS, overwrite=options.overwrite)
    metadata, state = read_mcore_checkpoint(checkpoint)
    model = metadata.model
    tokenizer_dir = options.tokenizer_dir or resolve_checkpoint(checkpoint) / TOKENIZER_DIR
    vocab = vocab_from_saved_tokenizer(tokenizer_dir) if (tokenizer_dir / "vocab.json").is_file() else None
    if vocab is None and options.require_tokenizer:
        raise ConversionError(f"no saved tokenizer at {tokenizer_dir}: pass a tokenizer folder or allow none")
    if vocab is not None and len(vocab) != model.vocab_size:
        raise ConversionError(f"tokenizer has {len(vocab)} tokens, the model's vocab_size is {model.vocab_size}")

    tensors = mcore_to_hf(state, model)
    with staged_output(output) as staging:
        _write_hf_folder(staging, tensors=tensors, model=model, vocab=vocab, tokenizer_dir=tokenizer_dir,
                         iteration=metadata.iteration, options=options)
    return Path(output)


def _write_hf_folder(output: Path, *, tensors, model: ModelConfig, vocab, tokenizer_dir: Path, iteration: int,
                     options: ExportOptions) -> None:
    special_ids = _special_ids(vocab, options.specials)
    hf_config = Qwen2MoeConfig(**hf_config_dict(model, special_ids=special_ids))
    hf_config.save_pretrained(str(output))
    _add_legacy_rope_theta(output / "config.json", model.rotary_base)
    GenerationConfig(
        eos_token_id=special_ids.get("eod"), pad_token_id=special_ids.get("pad"), bos_token_id=special_ids.get("bos")
    ).save_pretrained(str(output))
    write_shards(tensors, output, max_shard_bytes=options.max_shard_bytes)
    if vocab is not None:
        save_hf_tokenizer(build_hf_tokenizer(vocab, specials=options.specials), output)
        shutil.copytree(tokenizer_dir, output / SPARSEEHR_TOKENIZER_DIR)
    card = render_model_card(model, iteration=iteration, data_description=options.data_description, metrics=options.metrics)
    (output / "README.md").write_text(card, encoding="utf-8")


def read_hf_folder(
    directory: str | Path, *, shared_expert_gate: bool | None = None
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The ModelConfig and the Megatron-Core (local-spec) tensors of a Qwen2-MoE folder."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ConversionError(f"{directory} is not a Hugging Face model folder (no config.json)")
    values = json.loads(config_path.read_text(encoding="utf-8"))
    model = model_config_from_hf(values, shared_expert_gate=shared_expert_gate)
    return model, hf_to_mcore(read_shards(directory), model)


def import_from_hf(
    directory: str | Path, output: str | Path, *, shared_expert_gate: bool | None = None, iteration: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a Megatron-Core weights checkpoint (TP=PP=EP=1; loads under any layout) from a HF folder.

    Args:
        directory: a Qwen2-MoE folder of the shape `export_to_hf` writes.
        output: the checkpoint directory to write: absent, or holding an earlier import only
            (unless `overwrite`); it is replaced whole once the new checkpoint is complete.
        shared_expert_gate: override the config's choice of a gated shared expert.
        iteration: recorded in the checkpoint metadata.
        overwrite: replace an output folder holding files the import does not write.

    Raises:
        ConversionError: config, keys, shapes or values do not fit our model.
        OutputError: `output` cannot be written, or holds other files and `overwrite` is off.
    """
    check_output_dir(output, kind=MCORE_OUTPUTS, overwrite=overwrite)
    model_config, state = read_hf_folder(directory, shared_expert_gate=shared_expert_gate)
    model = _one_process_model(model_config)
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith(IGNORED_MCORE_SUFFIXES)}
    hf_names = hf_names_of(model_config)
    mismatched = [
        f"{name} (from {', '.join(hf_names[name])}): converted {tuple(state[name].shape)}, "
        f"model {tuple(expected[name].shape)}"
        for name in sorted(set(state) & set(expected))
        if state[name].shape != expected[name].shape
    ]
    if mismatched or set(state) != set(expected):
        raise ConversionError(
            "Hugging Face weights do not fit the model: "
            f"shape mismatches {mismatched}, missing {sorted(set(expected) - set(state))}, "
            f"unexpected {sorted(set(state) - set(expected))}"
        )
    with torch.no_grad():
        for name, tensor in state.items():
            expected[name].copy_(tensor)
    # The tokenizer goes in first: the metadata file, written last by save_weights, marks the
    # checkpoint complete.
    saved_tokenizer = Path(directory) / SPARSEEHR_TOKENIZER_DIR
    with staged_output(output) as staging:
        if saved_tokenizer.is_dir():
            shutil.copytree(saved_tokenizer, staging / TOKENIZER_DIR)
        save_weights(
            model,
            staging,
            metadata=CheckpointMetadata(
                model=model_config, parallel=ParallelConfig(), iteration=iteration, kind="weights", world_size=1
            ),
        )
    return Path(output)
