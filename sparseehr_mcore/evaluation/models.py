"""Open the model an evaluation scores: a Megatron-Core checkpoint (any TP/PP/EP layout) or a
Hugging Face export folder, with the tokenizer it was trained with.

Roll-outs always run on the Hugging Face form of the model, through `transformers`' `generate`
and its KV cache: Megatron-Core 0.16's inference engines allocate on CUDA, so on CPU the export is
the library path that caches keys and values (DESIGN 13). For a Megatron-Core checkpoint that form
is its exact export (written to a temporary folder by the project's exporter and read back with
`from_pretrained`), and the checkpoint's own Megatron-Core `GPTModel` is loaded as well: protocol
B's teacher-forced forward runs on it, so the two engines are checked against each other on every
Megatron-Core evaluation (`docs/evaluation.md`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.evaluation.config import EvaluationInputError

HF_TOKENIZER_DIR = "sparseehr_tokenizer"  # where an HF export keeps our tokenizer (export.hf_qwen2_moe)


@dataclass
class ScoredModel:
    """The model under evaluation.

    Attributes:
        kind: "mcore" (a Megatron-Core checkpoint) or "hf" (a Hugging Face folder).
        path: the checkpoint directory (for mcore the resolved iter_* directory).
        model_config: its architecture.
        hf_model: the `Qwen2MoeForCausalLM` that rolls out (eval mode, on `device`).
        megatron_model: the Megatron-Core `GPTModel` (mcore only), for teacher-forced scoring.
        tokenizer_dir: the saved SparseEHR tokenizer the model was trained with.
        iteration: the training iteration of a Megatron-Core checkpoint (None for an HF folder).
        device: where both run.
    """

    kind: str
    path: Path
    model_config: ModelConfig
    hf_model: torch.nn.Module
    megatron_model: torch.nn.Module | None
    tokenizer_dir: Path
    iteration: int | None
    device: torch.device

    @property
    def max_positions(self) -> int:
        return self.model_config.seq_length

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "iteration": self.iteration,
                "model": self.model_config.name, "padded_vocab_size": self.model_config.padded_vocab_size,
                "dense_prefix_layers": self.model_config.dense_prefix_layers,
                "num_experts": self.model_config.num_experts, "router_topk": self.model_config.router_topk}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EvaluationInputError("--device cuda: CUDA is not available on this machine")
    return torch.device(name)


@dataclass(frozen=True)
class ModelLocation:
    """What a checkpoint is, found without loading its weights."""

    kind: str
    path: Path
    model_config: ModelConfig
    tokenizer_dir: Path
    iteration: int | None


def locate_model(path: str | Path) -> ModelLocation:
    """A Hugging Face folder (has config.json) or a Megatron-Core checkpoint, with its tokenizer.

    Raises:
        EvaluationInputError: nothing loadable at `path`, or no tokenizer beside it.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationInputError(f"--checkpoint {path} does not exist")
    if (path / "config.json").is_file():
        return _locate_hf(path)
    return _locate_mcore(path)


def _locate_hf(folder: Path) -> ModelLocation:
    from sparseehr_mcore.export.hf_config import model_config_from_hf
    from sparseehr_mcore.export.kinds import ConversionError

    try:
        model_config = model_config_from_hf(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    except (ConversionError, KeyError, json.JSONDecodeError) as err:
        raise EvaluationInputError(f"--checkpoint {folder}: not a SparseEHR Hugging Face export ({err})") from None
    tokenizer_dir = folder / HF_TOKENIZER_DIR
    if not (tokenizer_dir / "vocab.json").is_file():
        raise EvaluationInputError(
            f"--checkpoint {folder}: no {HF_TOKENIZER_DIR}/ (the SparseEHR tokenizer an export carries); "
            "export with tools/convert_checkpoint.py --to hf"
        )
    return ModelLocation(kind="hf", path=folder, model_config=model_config, tokenizer_dir=tokenizer_dir, iteration=None)


def _locate_mcore(path: Path) -> ModelLocation:
    from sparseehr_mcore.checkpointing.layout import TOKENIZER_DIR, read_metadata, resolve_checkpoint
    from sparseehr_mcore.config import ConfigError

    try:
        directory = resolve_checkpoint(path)
        metadata = read_metadata(directory)
    except (FileNotFoundError, ConfigError) as err:
        raise EvaluationInputError(f"--checkpoint {path}: {err}") from None
    tokenizer_dir = directory / TOKENIZER_DIR
    if not (tokenizer_dir / "vocab.json").is_file():
        raise EvaluationInputError(f"--checkpoint {directory}: no {TOKENIZER_DIR}/ beside the weights")
    return ModelLocation(kind="mcore", path=directory, model_config=metadata.model, tokenizer_dir=tokenizer_dir,
                         iteration=metadata.iteration)


def _load_hf(folder: Path, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load would bury the evaluation's own progress
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return model.to(device).eval()


def load_model(location: ModelLocation, *, device: torch.device) -> ScoredModel:
    """The model `location` names, on `device`.

    Raises:
        EvaluationInputError: the weights cannot be read into the architecture.
    """
    from sparseehr_mcore.export.kinds import ConversionError

    megatron_model = None
    try:
        if location.kind == "hf":
            hf_model = _load_hf(location.path, device)
        else:
            from sparseehr_mcore.export.hf_qwen2_moe import ExportOptions, export_to_hf, load_mcore_model

            with tempfile.TemporaryDirectory(prefix="sparseehr-eval-hf-") as scratch:
                export_to_hf(location.path, Path(scratch) / "hf", options=ExportOptions(tokenizer_dir=location.tokenizer_dir))
                hf_model = _load_hf(Path(scratch) / "hf", device)
            _, megatron_model = load_mcore_model(location.path)
            megatron_model = megatron_model.to(device).eval()
    except (ConversionError, RuntimeError, OSError) as err:
        raise EvaluationInputError(f"--checkpoint {location.path}: {err}") from None
    return ScoredModel(kind=location.kind, path=location.path, model_config=location.model_config, hf_model=hf_model,
                       megatron_model=megatron_model, tokenizer_dir=location.tokenizer_dir,
                       iteration=location.iteration, device=device)


def megatron_logits(model: torch.nn.Module, sequences: list[np.ndarray], *, device: torch.device) -> list[np.ndarray]:
    """Per sequence, the Megatron-Core model's logits at every position ([length, padded vocab]),
    from one right-padded batch (causal attention: padding after a sequence cannot reach it)."""
    length = max(len(s) for s in sequences)
    tokens = torch.zeros((len(sequences), length), dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.from_numpy(np.asarray(sequence, dtype=np.int64))
    positions = torch.arange(length, dtype=torch.int64)[None].expand(len(sequences), -1)
    with torch.no_grad():
        logits = model(tokens.to(device), positions.to(device), None)
    logits = logits.float().cpu().numpy()
    return [logits[row, : len(sequence)] for row, sequence in enumerate(sequences)]
