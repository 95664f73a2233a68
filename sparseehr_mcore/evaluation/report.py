"""The evaluation's outputs: `report.json` (every figure; the same bytes for the same inputs and
flags), `report.md` (the tables people read), `timing.json` (wall times, which vary) and the
plots (`plots.py`)."""

from __future__ import annotations

import math
from pathlib import Path

from sparseehr_mcore.data.manifest import write_json_atomic
from sparseehr_mcore.evaluation.plots import write_plots

HEADLINE_KS = (10, 20)


def _clean(value):
    """JSON-safe: int keys to strings happen in json; NaN/inf become None."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_report(report: dict, output: Path, *, seconds: dict[str, float], patients: int) -> dict:
    """Write every output; returns the report as written (JSON types: string keys, no NaN)."""
    report = _clean(report)
    plots = write_plots(report, output)
    report["plots"] = plots
    write_json_atomic(output / "report.json", report)
    rates = {name: value for name, value in seconds.items()}
    rates["patients_per_second"] = patients / seconds["total"] if seconds.get("total") else None
    write_json_atomic(output / "timing.json", _clean(rates))
    (output / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(table: dict, k) -> str:
    ci = (table.get("recall_ci") or {}).get(str(k))
    return f" ({_fmt(ci[0])}-{_fmt(ci[1])})" if ci and ci[0] is not None else ""


def summary_rows(report: dict, level: str = "category") -> list[tuple[str, float | None, float | None]]:
    """(method, R@10, R@20) at `level`, the lines of the main job's summary table."""
    methods = report["levels"][level]["methods"]
    return [(name, table["recall"].get("10"), table["recall"].get("20")) for name, table in methods.items()]


def render_markdown(report: dict) -> str:
    cohort, data, checkpoint, tokenizer = report["cohort"], report["data"], report["checkpoint"], report["tokenizer"]
    ks = report["settings"]["ks"]
    lines = [
        "# Zero-shot next-visit diagnosis prediction",
        "",
        f"- checkpoint: `{checkpoint['path']}` ({checkpoint['kind']}"
        + (f", iteration {checkpoint['iteration']}" if checkpoint.get("iteration") is not None else "") + ")",
        f"- data: `{data['path']}` (source {data['source']}, splits {', '.join(data['splits'])}), "
        f"harmonisation fingerprint `{data['harmonisation_fingerprint'][:16]}`",
        f"- tokenizer: {tokenizer['name']}, {tokenizer['vocab_size']} tokens, {tokenizer['diagnosis_candidates']} "
        f"diagnosis candidates in {tokenizer['categories']} ICD-10 categories; the model was trained with bundle "
        f"order **{tokenizer['bundle_order_trained']}**",
        f"- visits: {data['visit_index']}; {cohort['visits_scored']} visits of {cohort['patients_with_scored_visits']} "
        f"patients scored (of {cohort['patients']}); not scored: "
        + ", ".join(f"{k} {v}" for k, v in cohort["not_scored"].items()),
        f"- targets: {cohort['known_diagnosis_targets']} known diagnosis codes, {cohort['unknown_diagnosis_targets']} "
        f"outside the vocabulary (`[UNK:DX]`, {100 * cohort['unknown_share']:.1f}% of all); "
        f"{cohort['contexts_truncated']} contexts truncated to fit the model",
        "",
        "Recall@K = mean over visits of |top-K ∩ Y| / |Y| (Y: the visit's known diagnosis codes); "
        "in brackets the 95% bootstrap interval over patients. See docs/evaluation.md for every variant.",
        "",
    ]
    for level, title in (("category", "ICD-10 3-character categories"), ("token", "the tokens' own level")):
        methods = report["levels"][level]["methods"]
        lines += [f"## Recall@K at {title}", "",
                  "| method | " + " | ".join(f"R@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
        for name, table in methods.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(table["recall"].get(str(k))) for k in ks) + " |")
        lines += ["", "| method | " + " | ".join(f"R@{k} (95% CI)" for k in HEADLINE_KS)
                  + " | " + " | ".join(f"R@{k} unknown counted" for k in HEADLINE_KS)
                  + " | " + " | ".join(f"pooled R@{k}" for k in HEADLINE_KS)
                  + " | " + " | ".join(f"GRAM Acc@{k}" for k in HEADLINE_KS) + " |",
                  "|---|" + "---|" * (4 * len(HEADLINE_KS))]
        for name, table in methods.items():
            cells = [_fmt(table["recall"].get(str(k))) + _ci(table, k) for k in HEADLINE_KS]
            cells += [_fmt(table["recall_with_unknown"].get(str(k))) for k in HEADLINE_KS]
            cells += [_fmt(table["pooled"].get(str(k))) for k in HEADLINE_KS]
            cells += [_fmt(table["accuracy_gram"].get(str(k))) for k in HEADLINE_KS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        parts = report["levels"][level]["breakdowns"]
        lines += ["", f"Breakdowns at {title} (R@10 / R@20; targets). Rare: training count below "
                  f"{report['levels'][level]['rare_below_training_count']:g}; new: not in the patient's earlier "
                  "visits.", "",
                  "| method | rare | common | new | repeated |", "|---|---|---|---|---|"]
        for name, part in parts.items():
            cells = [f"{_fmt(part[s]['recall'].get('10'))} / {_fmt(part[s]['recall'].get('20'))} ({part[s]['targets']})"
                     for s in ("rare", "common", "new", "repeated")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        chapters = sorted({c for part in parts.values() for c in part["chapters"]})
        lines += ["", f"By ICD-10 chapter at {title} (R@20; targets):", "",
                  "| chapter | targets | " + " | ".join(parts) + " |", "|---|---|" + "---|" * len(parts)]
        for chapter in chapters:
            any_part = next(iter(parts.values()))["chapters"].get(chapter, {"targets": 0})
            lines.append(f"| {chapter} | {any_part['targets']} | "
                         + " | ".join(_fmt(p["chapters"].get(chapter, {}).get("recall", {}).get("20")) for p in parts.values())
                         + " |")
        lines.append("")
    endpoint = report["endpoint"]
    lines += [f"## Binary endpoint: {endpoint['name']} ({endpoint['codes']}) in the next visit", "",
              f"{endpoint['positive_visits']} of {cohort['visits_scored']} visits positive; "
              f"{endpoint['candidates_in_vocabulary']} of its codes are candidates in the vocabulary. "
              "k_cls chosen on the validation half of the patients by balanced accuracy, reported on the test half.", "",
              "| method | k_cls | accuracy | precision | recall | F1 | balanced accuracy |", "|---|---|---|---|---|---|---|"]
    notes = set()
    for name, result in endpoint["methods"].items():
        test = result.get("test_at_chosen") or {}
        lines.append(f"| {name} | {_fmt(result['chosen_k_cls'])} | " + " | ".join(
            _fmt(test.get(m)) for m in ("accuracy", "precision", "recall", "f1", "balanced_accuracy")) + " |")
        if result.get("note"):
            notes.add(result["note"])
    lines += [""] + sorted(notes) if notes else []
    rollouts = report.get("rollouts") or {}
    if rollouts:
        lines += ["", "## Roll-outs", "", "| protocol | roll-outs | mean steps | hit the token cap | ended the record | "
                  "max Megatron-Core vs HF probability difference |", "|---|---|---|---|---|---|"]
        for protocol, stats in rollouts.items():
            mean = stats["steps"] / stats["rollouts"] if stats["rollouts"] else 0
            difference = stats["max_abs_engine_difference"]
            lines.append(f"| {protocol} | {stats['rollouts']} | {mean:.1f} | {stats['hit_cap']} | {stats['ended_record']} | "
                         + (f"{difference:.2e}" if difference is not None else "- (one engine)") + " |")
    routing = report.get("routing")
    if routing:
        lines += ["", f"## Routing ({routing['patients']} patients; layers 0-based)", "",
                  f"Mean expert util. std over MoE layers: {_fmt(routing['mean_expert_util_std'])}", "",
                  "| layer | expert shares | util std | each expert's most enriched token types (lift) |", "|---|---|---|---|"]
        for layer, values in routing["layers"].items():
            shares = ", ".join(f"{s:.2f}" for s in values["expert_shares"])
            enriched = "; ".join(
                f"E{e}: " + ", ".join(f"{t['type']} ({t['lift']:.1f})" for t in expert["most_enriched_types"][:2])
                for e, expert in enumerate(values["experts"]))
            lines.append(f"| {layer} | {shares} | {values['expert_util_std']:.3f} | {enriched} |")
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"
