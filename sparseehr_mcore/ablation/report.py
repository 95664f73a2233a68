"""The ablation's outputs: `ablation.json` (everything measured), `ablation.md` (a table shaped like
the paper's appendix Table 4, with ratio columns against the baseline D) and `ablation.png`.

Every function here reads the JSON-ready dict of `runner.run_ablation`, so the table and the plot can
be made again from a saved `ablation.json` alone (`write_report(json.load(...), out_dir)`).
"""

from __future__ import annotations

import json
from pathlib import Path

# The paper's appendix Table 4 (1B scale, its own hardware): D -> (total, active/token, val PPL,
# time/step s, peak mem. GB, expert util. std). For orientation beside ours, never for comparison of
# absolute figures.
PAPER_TABLE_4 = {
    0: ("942M", "530M", 28.42, 1.889, 25.7, 0.148),
    2: ("875M", "500M", 28.17, 1.794, 27.5, 0.134),
    4: ("807M", "470M", 28.68, 1.682, 25.3, 0.120),
    8: ("672M", "415M", 27.88, 1.442, 21.4, 0.128),
}
PAPER_NUM_LAYERS = 16
COLUMNS = ("D", "Total params", "Active/token", "Val PPL", "Time/step", "Peak mem.", "Expert util. std")


def format_count(count: int) -> str:
    """Parameters as the paper writes them: 942M, 1.23B, 61.3K."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.{1 if scale < 1e9 else 2}f}{suffix}"
    return str(count)


def format_seconds(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def format_bytes(count: int | None) -> str:
    if count is None:
        return "n/m"  # not measured: see the method line
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table_rows(result: dict) -> list[list[str]]:
    """The table's cells, one row per variant in the order run."""
    rows = []
    for row in result["variants"]:
        ratio = row["step_time_ratio"]
        memory = row["memory"] or {}
        util = row["expert_util_std"]
        rows.append(
            [
                str(row["dense_prefix_layers"]),
                format_count(row["total_params"]),
                format_count(row["active_params"]),
                f"{row['valid_ppl']:.2f}",
                format_seconds(row["step_time_s"]),
                format_bytes(memory.get("peak_bytes")),
                "n/a (no MoE layer)" if util is None else f"{util:.3f}",
                f"{row['active_ratio']:.3f}",
                f"{ratio['median']:.3f} ({ratio['q1']:.3f}-{ratio['q3']:.3f})",
                _ratio(row["peak_mem_ratio"]),
            ]
        )
    return rows


def markdown_table(result: dict) -> str:
    """`ablation.md`: how it was measured, the table, and the paper's rows for orientation."""
    config, model, env = result["config"], result["model"], result["environment"]
    baseline = result["baseline"]
    first = result["variants"][0]
    rounds = first["step_time_ratio"]["rounds"]
    batch = config["global_batch_size"] or config["micro_batch_size"]
    header = [*COLUMNS, f"Active vs D={baseline}", f"Time/step vs D={baseline} (IQR)", f"Peak mem. vs D={baseline}"]
    lines = [
        "# Dense-prefix ablation",
        "",
        f"Model `{model['name']}`: {model['num_layers']} layers, hidden {model['hidden_size']}, {model['num_experts']} experts "
        f"top-{model['router_topk']}" + (" + shared expert" if model["shared_expert_ffn_hidden_size"] else "")
        + f", vocabulary {model['vocab_size']}, sequence {model['seq_length']}. Data: `{config['data_dir']}`.",
        f"{config['steps']} optimizer steps per variant of {batch} sequences, the same batches for every D, lr {config['lr']}; "
        f"{env['precision']} on {env['device']}, torch {env['torch']}, megatron-core {env['megatron_core']}, "
        f"{env['transformer_impl']} layers, {env['date']}.",
        "",
        f"- Time/step: median over {rounds} timed rounds; each round runs one step of every variant (order rotated), "
        f"so ratios are medians of per-round ratios, with their interquartile range.",
        f"- Peak mem.: {result['memory_method']}, on step {config['untimed_steps']} (what the variant needs on its own; "
        "excludes the CUDA context, Python heap and allocator slack).",
        "- Val PPL: exp of the mean loss per target token over "
        f"{config['eval_iters']} global batches of the valid split, after training.",
        "- Expert util. std: mean over MoE layers of the standard deviation of the per-expert token shares, "
        f"over the last {result['utilisation_steps']} training steps.",
        "- Total and active parameters: `sparseehr_mcore/model/accounting.py` (active counts the embedding, as the paper does).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---:|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in table_rows(result)),
        "",
        "The paper's Table 4 (1B scale, 2048 tokens, its hardware; for orientation, not for absolute comparison):",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---:|" * len(COLUMNS),
        *(
            f"| {d} | {total} | {active} | {ppl:.2f} | {time:.3f} s | {mem:.1f} GB | {std:.3f} |"
            for d, (total, active, ppl, time, mem, std) in PAPER_TABLE_4.items()
        ),
        "",
    ]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """`ablation.png`: parameters, the ratios against the baseline, val PPL and expert balance vs D."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = result["variants"]
    baseline = result["baseline"]
    ds = [row["dense_prefix_layers"] for row in rows]
    figure, axes = plt.subplots(2, 2, figsize=(10, 7.5), constrained_layout=True)
    params = axes[0][0]
    params.plot(ds, [row["total_params"] / 1e6 for row in rows], "o-", label="total")
    params.plot(ds, [row["active_params"] / 1e6 for row in rows], "s-", label="active per token")
    params.set(title="Parameters", ylabel="millions")
    params.legend()
    ratios = axes[0][1]
    medians = [row["step_time_ratio"]["median"] for row in rows]
    below = [m - row["step_time_ratio"]["q1"] for m, row in zip(medians, rows)]
    above = [row["step_time_ratio"]["q3"] - m for m, row in zip(medians, rows)]
    ratios.errorbar(ds, medians, yerr=[below, above], fmt="o-", capsize=4, label="time/step (median, IQR)")
    ratios.plot(ds, [row["active_ratio"] for row in rows], "s--", label="active params")
    if all(row["peak_mem_ratio"] is not None for row in rows):
        ratios.plot(ds, [row["peak_mem_ratio"] for row in rows], "^:", label="peak memory")
    # The paper's ratios only beside a model of the paper's depth: its D=8 is half the stack.
    if result["model"]["num_layers"] == PAPER_NUM_LAYERS and baseline in PAPER_TABLE_4 and all(d in PAPER_TABLE_4 for d in ds):
        paper = [PAPER_TABLE_4[d][3] / PAPER_TABLE_4[baseline][3] for d in ds]
        ratios.plot(ds, paper, "x", color="grey", label="paper time/step")
    ratios.axhline(1.0, color="black", linewidth=0.5)
    ratios.set(title=f"Ratio to D={baseline}")
    ratios.legend(fontsize="small")
    ppl = axes[1][0]
    ppl.plot(ds, [row["valid_ppl"] for row in rows], "o-")
    ppl.set(title="Validation perplexity", xlabel="dense prefix D")
    util = axes[1][1]
    moe = [(row["dense_prefix_layers"], row["expert_util_std"]) for row in rows if row["expert_util_std"] is not None]
    if moe:
        util.plot(*zip(*moe), "o-")
    util.set(title="Expert utilisation std (lower is more balanced)", xlabel="dense prefix D")
    for axis in (params, ratios, ppl, util):
        axis.set_xticks(ds)
        axis.grid(alpha=0.3)
    figure.suptitle(f"Dense-prefix ablation: {result['model']['name']} on {result['environment']['device']}")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(result: dict, output_dir: str | Path) -> dict[str, Path]:
    """Write ablation.json, ablation.md and ablation.png into `output_dir`; returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / f"ablation.{name}" for name in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown_table(result), encoding="utf-8")
    plot(result, paths["png"])
    return paths
