"""Our MultiLoReFT numbers beside the paper's (Table 1 and Table 7), as one format-neutral table.

The paper's numbers come from `evaluate/reference.py` (``PAPER_VALUES``, ``PAPER_RANKS``), and
so does the rule for marking ours as within the paper's ± std (``within``).
"""

from __future__ import annotations

import json

from mmpipe.evaluate.delta import mean_std
from mmpipe.evaluate.reference import DELTA, PAPER_RANKS, paper_row, paper_values, within
from mmpipe.evaluate.report import ReportData
from mmpipe.evaluate.tables import Cell, Table, format_mean_std


def paper_comparison_table(data: ReportData, dataset: str, name: str = "multiloreft") -> Table | None:
    """Rows: each component and Δ per paper label; columns: ours, the paper's, agreement.

    ``name`` is our table row (a variant, e.g. ``multiloreft [projection_weight_decay=0.01]``);
    it is compared with the paper's row of the same method and ablation."""
    if name not in data.setups:
        return None
    setup = data.setup(name)
    papers = [p for p in paper_values("table1") if p.dataset == dataset and p.row == paper_row(setup.method,
                                                                                                setup.ablation)]
    if not papers:
        return None
    ours = {(r["label"], r["metric"], r["component"]): (r["mean"], r["std"]) for r in data.summary
            if r["name"] == name and r["dataset"] == dataset}
    ours.update({(r["label"], r["metric"], DELTA): (r["mean"], r["std"]) for r in data.deltas
                 if r["name"] == name and r["dataset"] == dataset})
    rows: list[list[Cell]] = []
    rule_before = set()
    columns = list(dict.fromkeys((p.label, p.metric) for p in papers))
    for label, metric in columns:
        rule_before.add(len(rows))
        for paper in (p for p in papers if (p.label, p.metric) == (label, metric)):
            value = ours.get((label, metric, paper.component))
            agree = "≈" if value and within(value[0], paper.mean, paper.std) else ""
            rows.append([Cell(f"{label} ({metric})"), Cell("Δ" if paper.component == DELTA else paper.component),
                         Cell(format_mean_std(*value) if value else "—"),
                         Cell(format_mean_std(paper.mean, paper.std)), Cell(agree)])
    ranks: dict[str, list[float]] = {}
    for run in data.runs:
        if run["name"] == name and run["dataset"] == dataset and run.get("ranks"):
            for component, value in json.loads(run["ranks"]).items():
                ranks.setdefault(component, []).append(float(value["final"]))
    if dataset in PAPER_RANKS and ranks:
        rule_before.add(len(rows))
        for component, (initial, mean, std) in PAPER_RANKS[dataset].items():
            values = ranks.get(component, [])
            summary = mean_std(values) if values else None
            ours_text = f"{initial} → {format_mean_std(summary.mean, summary.std, 2)}" if summary else "—"
            agree = "≈" if summary and within(summary.mean, mean, std) else ""
            rows.append([Cell("rank"), Cell(component), Cell(ours_text), Cell(f"{initial} → {mean:.2f} ± {std:.2f}"),
                         Cell(agree)])
    seeds = len({r["seed"] for r in data.runs if r["name"] == name and r["dataset"] == dataset})
    return Table(
        key=f"paper-{dataset}",
        title=f"{name} on {dataset}: ours vs the paper (Tables 1 and 7)",
        caption="Mean ± std over seeds; ≈ marks our mean within the paper's mean ± std "
                "(± 0.0005 when its std is printed as 0).",
        columns=["label", "component", f"ours ({seeds} seeds)", "paper", ""],
        rows=rows,
        rule_before=frozenset(rule_before - {0}),
        notes=sorted({f"{p['metric']}: {p['protocol']}" for p in data.protocols
                      if p["name"] == name and p["dataset"] == dataset}),
    )
