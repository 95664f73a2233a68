"""Shared pieces of the Hugging Face export tests: a synthetic EHR vocabulary, a saved tiny checkpoint,
our own greedy roll-out, and byte-level folder comparison."""

from __future__ import annotations

from pathlib import Path

import torch
from script_loading import load_script

from sparseehr_mcore.tokenization.base import SPECIALS, Vocabulary

# A vocabulary shaped like ours (specials first, then typed codes); 250 tokens pad to 256 rows.
TOKEN_TYPES = ("DX", "RX", "LAB", "PX")


def synthetic_vocabulary(size: int = 250) -> Vocabulary:
    terms = [f"{TOKEN_TYPES[i % len(TOKEN_TYPES)]}:{i:04d}" for i in range(size - len(SPECIALS))]
    return Vocabulary(list(SPECIALS) + terms)


def perturb_norms(model: torch.nn.Module, *, seed: int = 7) -> None:
    """Norm weights start at 1.0; random ones make a swapped or dropped norm visible in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.2 * torch.randn(param.shape, generator=generator))


def greedy_rollout(model, prompt: torch.Tensor, *, new_tokens: int, eod: int) -> torch.Tensor:
    """Our greedy decoding: full forward each step, argmax over all (padded) logits as HF does, stop at EOD."""
    sequence = prompt.clone()
    with torch.no_grad():
        for _ in range(new_tokens):
            positions = torch.arange(sequence.numel())[None]
            logits = model(sequence[None], positions, None)[0, -1]
            next_id = int(logits.argmax())
            sequence = torch.cat([sequence, torch.tensor([next_id])])
            if next_id == eod:
                break
    return sequence


def folder_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def load_tool_main(tool: str):
    """`main` of tools/<tool>.py (tools/ is not a package), to call as a function."""
    return load_script(f"tools/{tool}.py").main


def load_convert_main():
    return load_tool_main("convert_checkpoint")


def mimic_patients(shared_data: Path, out: Path, *, count: int | None, max_length: int) -> tuple[Path, list[torch.Tensor]]:
    """Preprocess the MIMIC-IV demo with tools/preprocess_ehr.py; (tokenizer dir, the first `count`
    training patients' ids, every one for None)."""
    from sparseehr_mcore.data.indexed import open_dataset

    preprocess = load_tool_main("preprocess_ehr")
    argv = ["--source", "mimic-iv", "--input", str(shared_data / "mimic-iv-demo-2.2-dev" / "hosp"),
            "--output-dir", str(out), "--gem-dir", str(shared_data / "cms-gems-2018")]  # fmt: skip
    assert preprocess(argv) in (0, None)
    dataset = open_dataset(out / "train")
    patients = [torch.as_tensor(dataset[i][:max_length].astype("int64")) for i in range(len(dataset) if count is None else count)]
    return out / "tokenizer", patients
