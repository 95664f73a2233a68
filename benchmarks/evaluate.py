#!/usr/bin/env python
"""Roll-out throughput of the evaluation with and without the KV cache, side by side in one run.

The evaluation rolls every visit out with `transformers`' `generate` on the model's Hugging Face
form (protocols A and B, `sparseehr_mcore.evaluation.rollout`). This script times that very path
on a model of a preset (random weights: speed does not depend on them) over synthetic patients
whose contexts are `--context` tokens long, once with the cache and once recomputing the whole
context at every step. The contenders alternate round by round; each round's ratio is taken and
the median of the ratios (with its interquartile range) is the result. Both contenders decode
greedily, so they generate the same tokens (checked).

    python benchmarks/evaluate.py [--preset small] [--context 512] [--new-tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

from sparseehr_mcore.config import PRESETS, ModelConfig
from sparseehr_mcore.evaluation.codes import CodeSpace
from sparseehr_mcore.evaluation.rollout import GrammarIds, roll_out
from sparseehr_mcore.export.hf_config import hf_config_dict
from sparseehr_mcore.tokenization.base import SPECIALS

GOAL = 5.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model preset (default: small)")
    parser.add_argument("--context", type=int, default=512, help="context tokens per patient (default: 512)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens each roll-out generates (default: 32)")
    parser.add_argument("--patients", type=int, default=8, help="patients per round, one batched generate (default: 8)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per contender (default: 3)")
    parser.add_argument("--vocab", type=int, default=2000, help="vocabulary size (default: 2000)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return parser.parse_args(argv)


def vocabulary(size: int) -> list[str]:
    """Specials, a demographics token, then diagnosis and procedure tokens."""
    codes = size - len(SPECIALS) - 2
    return [*SPECIALS, "[UNK:DX]", "SEX:F"] + [f"DX:C{i:04d}" if i % 4 else f"PX:P{i:04d}" for i in range(codes)]


def patients(tokens: list[str], *, count: int, length: int, seed: int = 0) -> list[np.ndarray]:
    """Contexts of `length` ids: demographics, then bundles of 2-8 distinct codes, ending with `[BEGIN]`."""
    rng = np.random.default_rng(seed)
    begin, end = tokens.index("[BEGIN]"), tokens.index("[END]")
    first_code = tokens.index("SEX:F") + 1
    contexts = []
    for _ in range(count):
        ids = [tokens.index("SEX:F")]
        while len(ids) < length:
            ids += [begin, *rng.choice(np.arange(first_code, len(tokens)), rng.integers(2, 9), replace=False), end]
        ids = ids[: length - 1] + [begin]
        contexts.append(np.array(ids, dtype=np.int64))
    return contexts


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokens = vocabulary(args.vocab)
    config = ModelConfig.from_preset(args.preset, vocab_size=len(tokens), seq_length=args.context + args.new_tokens)
    special = {"pad": 0, "eod": 1, "bundle_begin": 2, "bundle_end": 3}
    torch.manual_seed(0)
    model = Qwen2MoeForCausalLM(Qwen2MoeConfig(**hf_config_dict(config, special_ids=special))).to(device).eval()
    codes = CodeSpace.from_tokens(tokens)
    grammar = GrammarIds.build(codes, tokens, special, config.padded_vocab_size)
    contexts = patients(tokens, count=args.patients, length=args.context)
    # quota > new tokens: every roll-out runs to the cap, so both contenders do the same work.
    kwargs = dict(quotas=[args.new_tokens + 1] * len(contexts), grammar=grammar, max_new_tokens=args.new_tokens,
                  device=device)

    def timed(use_cache: bool):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        outs = roll_out(model, contexts, use_cache=use_cache, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started, outs

    print(f"{args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {len(contexts)} patients "
          f"x {args.context}-token contexts, {args.new_tokens} generated tokens each, {device}, "
          f"{torch.get_num_threads()} threads")
    timed(True)  # warm-up
    cached_times, uncached_times, ratios = [], [], []
    for round_ in range(args.rounds):
        with_cache, cached = timed(True)
        without_cache, uncached = timed(False)
        if not all(np.array_equal(a.tokens, b.tokens) for a, b in zip(cached, uncached)):
            raise SystemExit("the cached and uncached roll-outs generated different tokens")
        cached_times.append(with_cache)
        uncached_times.append(without_cache)
        ratios.append(without_cache / with_cache)
        print(f"round {round_ + 1}: with cache {with_cache:.2f} s, without {without_cache:.2f} s, "
              f"ratio {ratios[-1]:.2f}")
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    print(f"patients/s with the KV cache:    {len(contexts) / statistics.median(cached_times):8.2f}")
    print(f"patients/s without the KV cache: {len(contexts) / statistics.median(uncached_times):8.2f}")
    print(f"speed-up from the KV cache: {statistics.median(ratios):.2f}x (IQR {quartiles[0]:.2f}-{quartiles[2]:.2f}); "
          f"goal >= {GOAL:.0f}x: {'met' if statistics.median(ratios) >= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
