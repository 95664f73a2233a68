#!/usr/bin/env python
"""How close are the Hugging Face export's logits to the Megatron-Core forward? Measured, not claimed.

The checkpoint is exported with `export_to_hf`; its Megatron-Core model (local spec, one process)
and the export loaded by `transformers`' `AutoModelForCausalLM` (in a process of its own, which
never imports Megatron-Core or the CPU compat layer) run the same patients: the `--patients`
longest of one split of a preprocessed dataset, each cut to the model's sequence length. Reported:
the largest absolute logit difference over every position and vocabulary row, its median over
patients, the largest logit magnitude (for scale) and the share of positions where both models
put the same token first.

    python benchmarks/hf_parity.py --checkpoint outputs/quickstart/run --data outputs/quickstart/eval-data \
        [--split test] [--patients 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="Megatron-Core checkpoint (run root or iter_* dir)")
    parser.add_argument("--data", type=Path, required=True,
                        help="output folder of tools/preprocess_ehr.py tokenized with the checkpoint's vocabulary")
    parser.add_argument("--split", default=None, help="split to read (default: the first the manifest lists)")
    parser.add_argument("--patients", type=int, default=64, help="how many patients, longest first (default: 64)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here (default: print only)")
    parser.add_argument("--hf-side", nargs=2, metavar=("HF_DIR", "TOKENS_PT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def hf_logits(hf_dir: str, tokens_file: str) -> None:
    """The export's fp32 logits of every patient in `tokens_file`, saved beside it (run in its own process)."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    patients = torch.load(tokens_file)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = [model(input_ids=patient[None]).logits[0] for patient in patients]  # each [S, padded V]
    torch.save(logits, tokens_file + ".logits")


def longest_patients(data: Path, split: str | None, count: int, seq_length: int) -> tuple[str, list[torch.Tensor]]:
    from sparseehr_mcore.data.indexed import open_dataset
    from sparseehr_mcore.data.manifest import dataset_prefixes

    prefixes = dataset_prefixes(data)
    split = split or next(iter(prefixes))
    dataset = open_dataset(Path(prefixes[split]))
    order = sorted(range(len(dataset)), key=lambda i: (-len(dataset[i]), i))[:count]
    return split, [torch.as_tensor(dataset[i][:seq_length].astype("int64")) for i in order]


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.hf_side:
        hf_logits(*args.hf_side)
        return
    from sparseehr_mcore.export.hf_qwen2_moe import export_to_hf, load_mcore_model

    torch.set_num_threads(1)
    metadata, model = load_mcore_model(args.checkpoint)
    model.eval()
    split, patients = longest_patients(args.data, args.split, args.patients, metadata.model.seq_length)
    with tempfile.TemporaryDirectory() as scratch:
        hf_dir, tokens_file = Path(scratch) / "hf", str(Path(scratch) / "tokens.pt")
        export_to_hf(args.checkpoint, hf_dir)
        torch.save(patients, tokens_file)
        subprocess.run([sys.executable, __file__, "--checkpoint", str(args.checkpoint), "--data", str(args.data),
                        "--hf-side", str(hf_dir), tokens_file], check=True)
        theirs = torch.load(tokens_file + ".logits")
    worst, agree, positions, largest = [], 0, 0, 0.0
    with torch.no_grad():
        for patient, theirs_SV in zip(patients, theirs):
            ours_SV = model(patient[None], torch.arange(patient.numel())[None], None)[0]
            worst.append((ours_SV - theirs_SV).abs().max().item())
            agree += int((ours_SV.argmax(-1) == theirs_SV.argmax(-1)).sum())
            positions += patient.numel()
            largest = max(largest, ours_SV.abs().max().item())
    lengths = sorted(p.numel() for p in patients)
    figures = {
        "checkpoint": str(args.checkpoint), "iteration": metadata.iteration, "model": metadata.model.name,
        "seq_length": metadata.model.seq_length, "data": str(args.data), "split": split, "patients": len(patients),
        "lengths": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]}, "positions": positions,
        "max_abs_logit_difference": max(worst), "median_patient_max_abs_difference": sorted(worst)[len(worst) // 2],
        "max_abs_logit": largest, "argmax_agreement": agree / positions,
    }  # fmt: skip
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
