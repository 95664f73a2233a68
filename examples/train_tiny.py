#!/usr/bin/env python
"""A first look on any CPU: build the tiny hybrid SparseEHR model through Megatron-Core and train it
for a few steps on one fixed batch of synthetic typed-token timelines, printing the loss as it falls.

The full pretraining entry point (indexed datasets, parallelism, checkpoints) is
`examples/pretrain_sparseehr.py`; this script only shows that the model builds, routes and learns.
"""

from __future__ import annotations

import argparse
import time

import torch

from sparseehr_mcore.config import PRESETS, ModelConfig, ParallelConfig
from sparseehr_mcore.distributed import initialize_distributed, shutdown_distributed
from sparseehr_mcore.model.accounting import count_parameters
from sparseehr_mcore.model.builder import build_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny", help="model preset (default: tiny)")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps (default: 30)")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per step (default: 4)")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default: 3e-3)")
    parser.add_argument("--seed", type=int, default=1234, help="random seed (default: 1234)")
    return parser


def synthetic_timelines(vocab_size: int, seq_length: int, batch_size: int, seed: int) -> torch.Tensor:
    """Token ids shaped like timelines: a 3-token demographics prefix, then bundles of 2-6 codes
    between begin (1) and end (2) delimiters, codes drawn from a small per-patient repertoire."""
    generator = torch.Generator().manual_seed(seed)
    first_code = 8
    rows = []
    for _ in range(batch_size):
        repertoire = torch.randint(first_code, vocab_size, (12,), generator=generator)
        row = torch.randint(3, first_code, (3,), generator=generator).tolist()
        while len(row) < seq_length + 1:
            size = int(torch.randint(2, 7, (1,), generator=generator))
            picks = repertoire[torch.randint(0, len(repertoire), (size,), generator=generator)]
            row += [1, *sorted(set(picks.tolist())), 2]
        rows.append(row[: seq_length + 1])
    return torch.tensor(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_config = ModelConfig.from_preset(args.preset)
    parallel = ParallelConfig()
    initialize_distributed(parallel, model=model_config, seed=args.seed)
    model = build_model(model_config, parallel)
    counts = count_parameters(model_config)
    print(
        f"{model_config.name}: {model_config.num_layers} layers (first {model_config.dense_prefix_layers} dense), "
        f"{counts.total:,} parameters, {counts.active:,} active per token"
    )
    timelines = synthetic_timelines(model_config.vocab_size, model_config.seq_length, args.batch_size, args.seed)
    tokens, labels = timelines[:, :-1], timelines[:, 1:]
    positions = torch.arange(model_config.seq_length).expand(args.batch_size, -1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = model(tokens, positions, None, labels=labels).float().mean()
        loss.backward()
        optimizer.step()
        if step == 1 or step % 5 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.perf_counter() - start:.1f}s)")
    shutdown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
