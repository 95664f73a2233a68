"""`tools/model_stats.py`: parameter and FLOP accounting of a preset or config file, from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from sparseehr_mcore.config import PRESETS, ConfigError, ModelConfig
from sparseehr_mcore.model.accounting import count_parameters, flops_per_token

# The paper's appendix Table 4: dense prefix D -> (total, active per token), in millions.
PAPER_TABLE_4 = {0: (942, 530), 2: (875, 500), 4: (807, 470), 8: (672, 415)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model_stats.py",
        description="Total parameters, active parameters per token and FLOPs per token of a SparseEHR model, "
        "computed from its config (no model is built).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), default="paper", help="model preset (default: paper)")
    source.add_argument("--config", metavar="FILE.yaml", help="a ModelConfig YAML file instead of a preset")
    parser.add_argument(
        "--dense-prefix", type=int, metavar="D", help="override the number of leading dense layers (D)"
    )
    parser.add_argument("--seq-length", type=int, help="sequence length for attention FLOPs (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def model_stats(model: ModelConfig, *, seq_length: int | None = None) -> dict:
    """Counts and FLOPs of `model`, with the paper's figures beside them where the paper has them."""
    stats = {"model": model.name, "dense_prefix_layers": model.dense_prefix_layers}
    stats["parameters"] = count_parameters(model).as_dict()
    stats["flops_per_token"] = flops_per_token(model, seq_length=seq_length)
    if model.name == "paper" and model.dense_prefix_layers in PAPER_TABLE_4:
        total_m, active_m = PAPER_TABLE_4[model.dense_prefix_layers]
        stats["paper"] = {"total": total_m * 10**6, "active": active_m * 10**6}
    return stats


def _format_table(stats: dict) -> str:
    params, flops = stats["parameters"], stats["flops_per_token"]
    paper = stats.get("paper", {})

    def row(label: str, ours: int, theirs: int | None = None) -> str:
        line = f"{label:<32}{ours / 1e6:>12,.1f}M"
        if theirs:
            line += f"{theirs / 1e6:>10,.0f}M{100 * (ours - theirs) / theirs:>+9.1f}%"
        return line

    lines = [
        f"model {stats['model']!r}, dense prefix D={stats['dense_prefix_layers']}",
        f"{'':<32}{'ours':>13}" + (f"{'paper':>11}{'diff':>10}" if paper else ""),
        row("total parameters", params["total"], paper.get("total")),
        row("active parameters per token", params["active"], paper.get("active")),
        row("  active, non-embedding", params["active_non_embedding"]),
        row("  embedding (padded vocab)", params["embedding"]),
        row("  one MoE layer, total", params["moe_layer_total"]),
        row("  one MoE layer, active", params["moe_layer_active"]),
        f"{'forward GFLOPs per token':<32}{flops['forward'] / 1e9:>12,.3f}  (seq {flops['seq_length']})",
        f"{'training GFLOPs per token':<32}{flops['training'] / 1e9:>12,.3f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {} if args.dense_prefix is None else {"dense_prefix_layers": args.dense_prefix}
    try:
        if args.config:
            model = ModelConfig.from_yaml(args.config).replace(**overrides)
        else:
            model = ModelConfig.from_preset(args.preset, **overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stats = model_stats(model, seq_length=args.seq_length)
    print(json.dumps(stats, indent=2) if args.json else _format_table(stats))
    return 0
