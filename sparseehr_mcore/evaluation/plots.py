"""PNG plots of an evaluation report: Recall@K curves (model vs baselines), breakdowns, the endpoint
sweep and routing heatmaps. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: dict, output: Path) -> list[str]:
    """Write every plot the report has data for; returns their file names."""
    plt = _pyplot()
    written = [_recall_curves(plt, report, output), _breakdowns(plt, report, output), _endpoint(plt, report, output)]
    if report.get("routing"):
        written.append(_routing(plt, report["routing"], output))
    return [name for name in written if name]


def _recall_curves(plt, report: dict, output: Path) -> str:
    levels = report["levels"]
    figure, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 4.2), squeeze=False)
    for axis, (level, values) in zip(axes[0], levels.items()):
        for method, table in values["methods"].items():
            ks = [int(k) for k, v in table["recall"].items() if v is not None]
            if not ks:
                continue
            recall = [table["recall"][str(k)] for k in ks]
            (line,) = axis.plot(ks, recall, marker="o", label=method)
            ci = table.get("recall_ci") or {}
            if all(ci.get(str(k)) and ci[str(k)][0] is not None for k in ks):
                axis.fill_between(ks, [ci[str(k)][0] for k in ks], [ci[str(k)][1] for k in ks],
                                  color=line.get_color(), alpha=0.15)
        axis.set_xscale("log")
        ks_all = [int(k) for k in next(iter(values["methods"].values()))["recall"]]
        axis.set_xticks(ks_all, [str(k) for k in ks_all])
        axis.set_xlabel("K")
        axis.set_ylabel("Recall@K (mean over visits)")
        axis.set_ylim(0, 1)
        axis.set_title(f"{level} level")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "recall_at_k.png", dpi=120)
    plt.close(figure)
    return "recall_at_k.png"


def _breakdowns(plt, report: dict, output: Path) -> str:
    parts = report["levels"]["category"]["breakdowns"]
    subsets = ("rare", "common", "new", "repeated")
    methods = list(parts)
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(methods), 1)
    for n, method in enumerate(methods):
        values = [parts[method][s]["recall"].get("20") or 0.0 for s in subsets]
        axis.bar(np.arange(len(subsets)) + n * width, values, width, label=method)
    axis.set_xticks(np.arange(len(subsets)) + width * (len(methods) - 1) / 2, subsets)
    axis.set_ylabel("R@20 (category level)")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    axis.set_title("Recall@20 by target kind")
    figure.tight_layout()
    figure.savefig(output / "breakdowns.png", dpi=120)
    plt.close(figure)
    return "breakdowns.png"


def _endpoint(plt, report: dict, output: Path) -> str:
    endpoint = report["endpoint"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, half in zip(axes, ("validation", "test")):
        for method, result in endpoint["methods"].items():
            sweep = result["sweep"][half]
            ks = [int(k) for k in sweep]
            axis.plot(ks, [sweep[str(k)]["balanced_accuracy"] or np.nan for k in ks], marker="o", label=method)
        axis.set_xscale("log")
        axis.set_xlabel("k_cls")
        axis.set_ylabel("balanced accuracy")
        axis.set_ylim(0, 1)
        axis.set_title(f"{endpoint['name']} ({endpoint['codes']}), {half} half")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output / "endpoint_sweep.png", dpi=120)
    plt.close(figure)
    return "endpoint_sweep.png"


def _routing(plt, routing: dict, output: Path) -> str:
    layers = routing["layers"]
    types = [t for t in routing["types"] if any(t in v["counts_by_type"] for v in layers.values())]
    columns = min(4, len(layers))
    rows = -(-len(layers) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 0.28 * len(types) * rows + 1.5), squeeze=False)
    for axis in axes.flat[len(layers):]:
        axis.axis("off")
    image = None
    for index, (axis, (layer, values)) in enumerate(zip(axes.flat, layers.items())):
        experts = len(values["expert_shares"])
        table = np.array([values["counts_by_type"].get(t, [0] * experts) for t in types], dtype=np.float64)
        # Each type's tokens over the experts (rows sum to 1): where does a kind of token go?
        table = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
        image = axis.imshow(table, aspect="auto", vmin=0, vmax=1, cmap="viridis")
        axis.set_title(f"layer {layer} (util std {values['expert_util_std']:.3f})", fontsize=9)
        axis.set_xticks(range(experts), [f"E{e}" for e in range(experts)], fontsize=8)
        axis.set_yticks(range(len(types)), types if index % columns == 0 else [], fontsize=7)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.6, label="share of the type's tokens")
    figure.savefig(output / "routing_heatmap.png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "routing_heatmap.png"
