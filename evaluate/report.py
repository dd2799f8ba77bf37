"""Paper-style tables from the results DB (MultiLoReFT paper: Tables 1–2, 3a, 5–6 and 7).

- **decoupling** (Tables 1/2): rows method × component (z_s, z_m1, z_m2) plus a Δ row per method;
  one column per label owned by ``shared``, ``m1`` or ``m2``, grouped by dataset; accuracy for
  categorical labels, MSE for continuous ones. The component that *should* carry the label is
  underlined; the best Δ of each column is bold.
- **fusion** (Table 3a): the ``fused`` component of each method on each ``joint`` label; best bold.
- **modalities** (Table 3b): each modality's own representation on each ``joint`` label — the
  frozen input h_i (the ``inputs`` method), contrastive's c_i and MultiLoReFT's Φ_i — so
  fine-tuning is compared with the pretrained embedding it started from; best per modality bold.
- **ranks** (Table 7): initial rank → converged rank, mean ± std over seeds, from ``runs.ranks``.
- **ablations** (Tables 5/6): the decoupling layout for a method and its ablation variants.

Every table's notes name the split protocol and probe that produced its numbers, and the seeds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmpipe.evaluate.delta import COMPONENT_OF_OWNER, higher_is_better, mean_std
from mmpipe.evaluate.tables import Cell, HeaderGroup, Table, format_mean_std
from mmpipe.store.errors import UserError
from mmpipe.store.results import fetch, reading

DECOUPLING_COMPONENTS = ("z_s", "z_m1", "z_m2")
METRIC_OF_KIND = {"categorical": "accuracy", "continuous": "mse"}
METRIC_SHORT = {"accuracy": "Acc", "mse": "MSE"}
PAPER_METHOD = "multiloreft"  # listed first, as in the paper
TABLE_KINDS = ("decoupling", "fusion", "modalities", "ranks", "ablations")
# Table 3b's representations of one modality: pretrained h_i, contrastive c_i, MultiLoReFT Φ_i
MODALITY_OF_COMPONENT = {"h1": "m1", "c1": "m1", "phi1": "m1", "h2": "m2", "c2": "m2", "phi2": "m2"}


@dataclass(frozen=True)
class ReportFilters:
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # a method name matches all its variants
    labels: tuple[str, ...] = ()
    data_versions: tuple[str, ...] = ()  # manifest versions (prefixes); needed when a dataset has several


@dataclass(frozen=True)
class ReportData:
    summary: list[dict[str, Any]]  # probe_summary rows
    deltas: list[dict[str, Any]]  # delta_summary rows
    labels: list[dict[str, Any]]  # dataset, label, kind, owner
    runs: list[dict[str, Any]]  # runs rows (variant, method, dataset, seed, ranks ...)
    protocols: list[dict[str, Any]]  # distinct (method, dataset, metric, protocol)


def load_report_data(db_path: Path, filters: ReportFilters = ReportFilters()) -> ReportData:
    """Read everything the tables need, read-only; unknown filter values list the valid ones."""
    with reading(db_path) as conn:
        runs = fetch(conn, "SELECT * FROM runs ORDER BY variant, dataset, seed")
        labels = fetch(conn, "SELECT * FROM labels ORDER BY dataset, label")
        summary = fetch(conn, "SELECT * FROM probe_summary ORDER BY method, dataset, label, component")
        deltas = fetch(conn, "SELECT * FROM delta_summary ORDER BY method, dataset, label")
        protocols = fetch(conn, "SELECT DISTINCT r.variant AS method, r.dataset, p.metric, p.protocol "
                                "FROM probes p JOIN runs r USING (run_id) ORDER BY ALL")
    _check(filters.datasets, sorted({r["dataset"] for r in runs}), "dataset")
    _check(filters.methods, sorted({r["method"] for r in runs} | {r["variant"] for r in runs}), "method")
    _check(filters.labels, sorted({r["label"] for r in labels}), "label")

    def keep(row: dict[str, Any], method_key: str = "method") -> bool:
        method = row.get(method_key)
        version = row.get("data_version") or ""
        return ((not filters.datasets or row.get("dataset") in filters.datasets)
                and (not filters.data_versions or version.startswith(filters.data_versions))
                and (not filters.methods or method in filters.methods
                     or any(method.startswith((f"{m} (", f"{m} [")) for m in filters.methods))
                and (not filters.labels or "label" not in row or row["label"] in filters.labels))

    versions: dict[tuple[str, str], set[str]] = {}
    for row in runs:
        if keep(row, "variant"):
            versions.setdefault((row["variant"], row["dataset"]), set()).add(row["data_version"] or "")
    for (variant, dataset), found in sorted(versions.items()):
        if len(found) > 1:
            raise UserError(f"{variant} on {dataset} has results on {len(found)} data versions "
                            f"({', '.join(sorted(v[:12] for v in found))}); choose one with --data-version")
    return ReportData(summary=[r for r in summary if keep(r)], deltas=[r for r in deltas if keep(r)],
                      labels=[r for r in labels if (not filters.datasets or r["dataset"] in filters.datasets)
                              and (not filters.labels or r["label"] in filters.labels)],
                      runs=[r for r in runs if keep(r, "variant")],
                      protocols=[r for r in protocols if keep(r)])


def _check(wanted: Sequence[str], valid: list[str], what: str) -> None:
    unknown = [w for w in wanted if w not in valid]
    if unknown:
        raise UserError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(valid) or 'none (probe runs first)'}")


def _method_order(variants: set[str]) -> list[str]:
    return sorted(variants, key=lambda v: (not v.startswith(PAPER_METHOD), v.lower()))


def _is_ablation(variant: str) -> bool:
    return " (" in variant.split(" [")[0]


def _label_columns(data: ReportData, owners: Sequence[str]) -> list[dict[str, Any]]:
    """Label columns in dataset order, each with its metric, e.g. {dataset, label, kind, owner, metric}."""
    present = {(r["dataset"], r["label"]) for r in data.summary}
    columns = [{**r, "metric": METRIC_OF_KIND[r["kind"]]} for r in data.labels
               if r["owner"] in owners and (r["dataset"], r["label"]) in present]
    order = {"shared": 0, "m1": 1, "m2": 2, "joint": 3}
    return sorted(columns, key=lambda c: (c["dataset"], order[c["owner"]], c["label"]))


def _header(column: dict[str, Any]) -> str:
    arrow = "↑" if higher_is_better(column["metric"]) else "↓"
    return f"{column['label']} ({METRIC_SHORT[column['metric']]}) {arrow}"


def _groups(columns: list[dict[str, Any]], lead: int) -> list[HeaderGroup]:
    groups = [HeaderGroup("", lead)]
    for column in columns:
        if groups[-1].text == column["dataset"] and len(groups) > 1:
            groups[-1] = HeaderGroup(column["dataset"], groups[-1].span + 1)
        else:
            groups.append(HeaderGroup(column["dataset"], 1))
    return groups


def _best(values: list[float | None], metric: str) -> set[int]:
    """Indices of the best value (ties at the printed precision are all best)."""
    rounded = {i: round(v, 3) for i, v in enumerate(values) if v is not None}
    if not rounded:
        return set()
    target = (max if higher_is_better(metric) else min)(rounded.values())
    return {i for i, v in rounded.items() if v == target}


def _notes(data: ReportData, variants: Sequence[str], columns: list[dict[str, Any]]) -> list[str]:
    wanted = {(c["dataset"], c["metric"]) for c in columns}
    by_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in data.protocols:
        if row["method"] in variants and (row["dataset"], row["metric"]) in wanted:
            by_key[(row["dataset"], row["metric"])].add(row["protocol"])
    notes = [f"Protocol, {dataset} {METRIC_SHORT.get(metric, metric)}: {'; or '.join(sorted(protocols))}"
             for (dataset, metric), protocols in sorted(by_key.items())]
    seeds = defaultdict(set)
    for run in data.runs:
        if run["variant"] in variants:
            seeds[run["variant"]].add(run["seed"])
    if seeds:
        notes.append("Mean ± std over seeds (sample std); seeds per method: "
                     + ", ".join(f"{v} {len(seeds[v])}" for v in variants if v in seeds) + ".")
    return notes


def decoupling_table(data: ReportData, variants: Sequence[str] | None = None, *, key: str = "decoupling",
                     title: str = "Decoupling of shared and modality-specific information") -> Table | None:
    """Tables 1/2 of the paper: rows method × component + Δ, columns the labels of each dataset."""
    columns = _label_columns(data, ("shared", "m1", "m2"))
    cell_of = {(r["method"], r["dataset"], r["component"], r["label"], r["metric"]): r for r in data.summary}
    delta_of = {(r["method"], r["dataset"], r["label"], r["metric"]): r for r in data.deltas}
    if variants is None:
        variants = _method_order({r["method"] for r in data.summary
                                  if r["component"] in DECOUPLING_COMPONENTS and not _is_ablation(r["method"])})
    variants = [v for v in variants if any(k[0] == v and k[2] in DECOUPLING_COMPONENTS for k in cell_of)]
    if not columns or not variants:
        return None
    rows: list[list[Cell]] = []
    rule_before = set()
    delta_rows: list[tuple[int, list[float | None]]] = []
    for variant in variants:
        rule_before.add(len(rows))
        for index, component in enumerate(DECOUPLING_COMPONENTS):
            row = [Cell(variant if index == 0 else ""), Cell(component)]
            for column in columns:
                found = cell_of.get((variant, column["dataset"], component, column["label"], column["metric"]))
                text = format_mean_std(found["mean"], found["std"]) if found else "—"
                row.append(Cell(text, underline=bool(found) and COMPONENT_OF_OWNER[column["owner"]] == component))
            rows.append(row)
        found = [delta_of.get((variant, c["dataset"], c["label"], c["metric"])) for c in columns]
        delta_rows.append((len(rows), [f["mean"] if f else None for f in found]))
        rows.append([Cell(""), Cell("Δ")] + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in found])
    for j in range(len(columns)):
        for best in _best([values[j] for _, values in delta_rows], "accuracy"):  # Δ: larger is better
            index = delta_rows[best][0]
            rows[index][2 + j] = Cell(rows[index][2 + j].text, bold=True)
    caption = ("Predictability of each representation component for each label (accuracy for categorical, "
               "MSE for continuous labels). Underlined: the component that should carry the label. "
               "Δ: decoupling gap (larger is better), computed per seed; bold: best Δ per label.")
    return Table(key, title, caption, ["Model", "Rep."] + [_header(c) for c in columns], rows,
                 _groups(columns, 2), frozenset(rule_before), _notes(data, variants, columns))


def fusion_table(data: ReportData) -> Table | None:
    """Table 3a: each method's ``fused`` component predicting each ``joint`` label; best bold."""
    columns = _label_columns(data, ("joint",))
    cell_of = {(r["method"], r["dataset"], r["label"], r["metric"]): r for r in data.summary if r["component"] == "fused"}
    variants = _method_order({k[0] for k in cell_of if not _is_ablation(k[0])})
    if not columns or not variants:
        return None
    found = [[cell_of.get((v, c["dataset"], c["label"], c["metric"])) for c in columns] for v in variants]
    rows = [[Cell(v)] + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in line]
            for v, line in zip(variants, found, strict=True)]
    for j, column in enumerate(columns):
        for best in _best([line[j]["mean"] if line[j] else None for line in found], column["metric"]):
            rows[best][1 + j] = Cell(rows[best][1 + j].text, bold=True)
    caption = "Fused representation of each method predicting the joint label(s); bold: best per column."
    return Table("fusion", "Fusion", caption, ["Method"] + [_header(c) for c in columns], rows,
                 _groups(columns, 1), frozenset(), _notes(data, variants, columns))


def modalities_table(data: ReportData) -> Table | None:
    """Table 3b: per modality, h_i, c_i and Φ_i predicting each ``joint`` label; best bold per modality."""
    columns = _label_columns(data, ("joint",))
    cell_of = {(r["method"], r["component"], r["dataset"], r["label"], r["metric"]): r for r in data.summary
               if r["component"] in MODALITY_OF_COMPONENT and not _is_ablation(r["method"])}
    pairs = sorted({k[:2] for k in cell_of}, key=lambda p: (
        MODALITY_OF_COMPONENT[p[1]], p[0] != "inputs", not p[0].startswith(PAPER_METHOD), p[0].lower(), p[1]))
    if not columns or not pairs:
        return None
    rows, rule_before = [], set()
    for modality in ("m1", "m2"):
        block = [p for p in pairs if MODALITY_OF_COMPONENT[p[1]] == modality]
        if not block:
            continue
        rule_before.add(len(rows))
        found = [[cell_of.get((v, comp, c["dataset"], c["label"], c["metric"])) for c in columns] for v, comp in block]
        lines = [[Cell(modality if i == 0 else ""), Cell(f"{comp} ({v})")]
                 + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in line]
                 for i, ((v, comp), line) in enumerate(zip(block, found, strict=True))]
        for j, column in enumerate(columns):
            for best in _best([line[j]["mean"] if line[j] else None for line in found], column["metric"]):
                lines[best][2 + j] = Cell(lines[best][2 + j].text, bold=True)
        rows += lines
    variants = sorted({p[0] for p in pairs})
    caption = ("Each modality's representation predicting the joint label(s): the frozen input h, the "
               "contrastive projection c and MultiLoReFT's fine-tuned Φ; bold: best per modality and column.")
    return Table("modalities", "Modality representations", caption,
                 ["Modality", "Representation"] + [_header(c) for c in columns], rows,
                 _groups(columns, 2), frozenset(rule_before), _notes(data, variants, columns))


def ranks_table(data: ReportData) -> Table | None:
    """Table 7: initial → converged rank (mean ± std over seeds) per component and dataset."""
    ranks: dict[tuple[str, str, str], list[dict[str, int]]] = defaultdict(list)
    for run in data.runs:
        if run["ranks"] and not _is_ablation(run["variant"]):
            for component, value in json.loads(run["ranks"]).items():
                ranks[(run["variant"], component, run["dataset"])].append(value)
    if not ranks:
        return None
    datasets = sorted({k[2] for k in ranks})
    variants = _method_order({k[0] for k in ranks})
    rows, rule_before = [], set()
    for variant in variants:
        rule_before.add(len(rows))
        components = sorted({k[1] for k in ranks if k[0] == variant},
                            key=lambda c: (c not in DECOUPLING_COMPONENTS, DECOUPLING_COMPONENTS.index(c)
                                           if c in DECOUPLING_COMPONENTS else 0, c))
        for index, component in enumerate(components):
            row = [Cell(variant if index == 0 else ""), Cell(component)]
            for dataset in datasets:
                values = ranks.get((variant, component, dataset))
                if not values:
                    row.append(Cell("—"))
                    continue
                initial = sorted({v["initial"] for v in values})
                final = mean_std([float(v["final"]) for v in values])
                start = str(initial[0]) if len(initial) == 1 else f"{initial[0]}–{initial[-1]}"
                row.append(Cell(f"{start} → {format_mean_std(final.mean, final.std, 2)}"))
            rows.append(row)
    seeds = defaultdict(set)
    for run in data.runs:
        if run["variant"] in variants and run["ranks"]:
            seeds[(run["variant"], run["dataset"])].add(run["seed"])
    notes = ["Seeds: " + ", ".join(f"{v} on {d}: {len(s)}" for (v, d), s in sorted(seeds.items())) + "."]
    caption = "Learned subspace ranks: initial rank → converged rank, mean ± std over seeds."
    return Table("ranks", "Learned ranks", caption, ["Method", "Component"] + datasets, rows,
                 [], frozenset(rule_before), notes)


def ablation_tables(data: ReportData) -> list[Table]:
    """Tables 5/6: for each method with ablation variants, the full model beside each ablation."""
    variants = {r["method"] for r in data.summary}
    tables = []
    for base in _method_order({v.split(" (")[0] for v in variants if _is_ablation(v)}):
        ablated = sorted(v for v in variants if v.startswith(f"{base} ("))
        table = decoupling_table(data, ([base] if base in variants else []) + ablated, key=f"ablation-{base}",
                                 title=f"Ablations of {base}")
        if table is not None:
            tables.append(table)
    return tables


def build_report(data: ReportData, kinds: Sequence[str] = TABLE_KINDS) -> list[Table]:
    """All requested tables that have data, in paper order."""
    unknown = [k for k in kinds if k not in TABLE_KINDS]
    if unknown:
        raise UserError(f"unknown table {unknown[0]!r}; valid: {', '.join(TABLE_KINDS)}")
    tables: list[Table] = []
    for kind in kinds:
        if kind == "decoupling":
            tables += [t for t in [decoupling_table(data)] if t]
        elif kind == "fusion":
            tables += [t for t in [fusion_table(data)] if t]
        elif kind == "modalities":
            tables += [t for t in [modalities_table(data)] if t]
        elif kind == "ranks":
            tables += [t for t in [ranks_table(data)] if t]
        else:
            tables += ablation_tables(data)
    return tables
