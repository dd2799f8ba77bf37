"""Our MultiLoReFT numbers beside the paper's (Table 1 and Table 7), as one format-neutral table."""

from __future__ import annotations

import json

from mmpipe.evaluate.reference import PAPER_MULTILOREFT, PAPER_RANKS
from mmpipe.evaluate.report import ReportData
from mmpipe.evaluate.tables import Cell, Table, format_mean_std

COMPONENTS = ("z_s", "z_m1", "z_m2")


def _within(ours: tuple[float, float | None], paper: tuple[float, float]) -> str:
    """'≈' when our mean lies within the paper's mean ± std (or 0.01 when its std is 0)."""
    mean, _ = ours
    return "≈" if abs(mean - paper[0]) <= max(paper[1], 0.01) else ""


def paper_comparison_table(data: ReportData, dataset: str, method: str = "multiloreft") -> Table | None:
    """Rows: each component and Δ per paper label; columns: ours, the paper's, agreement."""
    keys = [key for key in PAPER_MULTILOREFT if key[0] == dataset]
    if not keys:
        return None
    ours = {(r["label"], r["metric"], r["component"]): (r["mean"], r["std"]) for r in data.summary
            if r["method"] == method and r["dataset"] == dataset}
    deltas = {(r["label"], r["metric"]): (r["mean"], r["std"]) for r in data.deltas
              if r["method"] == method and r["dataset"] == dataset}
    rows: list[list[Cell]] = []
    rule_before = set()
    for _, label, metric in keys:
        rule_before.add(len(rows))
        paper = PAPER_MULTILOREFT[(dataset, label, metric)]
        for component in (*COMPONENTS, "delta"):
            value = deltas.get((label, metric)) if component == "delta" else ours.get((label, metric, component))
            name = "Δ" if component == "delta" else component
            ours_text = format_mean_std(*value) if value else "—"
            agree = _within(value, paper[component]) if value else ""
            rows.append([Cell(f"{label} ({metric})"), Cell(name), Cell(ours_text),
                         Cell(format_mean_std(*paper[component])), Cell(agree)])
    ranks = {}
    for run in data.runs:
        if run["variant"] == method and run["dataset"] == dataset and run.get("ranks"):
            for component, value in json.loads(run["ranks"]).items():
                ranks.setdefault(component, []).append(value["final"])
    if dataset in PAPER_RANKS and ranks:
        rule_before.add(len(rows))
        for component, (initial, mean, std) in PAPER_RANKS[dataset].items():
            values = ranks.get(component, [])
            ours_mean = sum(values) / len(values) if values else None
            ours_std = (sum((v - ours_mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 \
                if len(values) > 1 else None
            ours_text = f"{initial} → {format_mean_std(ours_mean, ours_std, 2)}" if values else "—"
            agree = _within((ours_mean, ours_std), (mean, std)) if values else ""
            rows.append([Cell("rank"), Cell(component), Cell(ours_text), Cell(f"{initial} → {mean:.2f} ± {std:.2f}"),
                         Cell(agree)])
    seeds = len({r["seed"] for r in data.runs if r["variant"] == method and r["dataset"] == dataset})
    return Table(
        key=f"paper-{dataset}",
        title=f"{method} on {dataset}: ours vs the paper (Tables 1 and 7)",
        caption="Mean ± std over seeds; ≈ marks our mean within the paper's mean ± std (± 0.01 when its std is 0).",
        columns=["label", "component", f"ours ({seeds} seeds)", "paper", ""],
        rows=rows,
        rule_before=frozenset(rule_before - {0}),
        notes=sorted({f"{p['metric']}: {p['protocol']}" for p in data.protocols
                      if p["method"] == method and p["dataset"] == dataset}),
    )
