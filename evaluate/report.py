"""Paper-style tables from the results DB (MultiLoReFT paper: Tables 1–2, 3a, 5–6 and 7).

- **decoupling** (Tables 1/2): rows method × component (z_s, then z_k for each modality k of the
  method's runs) plus a Δ row per method; one column per label owned by ``shared`` or by a
  modality, grouped by dataset; each label reported by its kind's headline metric (accuracy for
  categorical, MSE for continuous labels). The component that *should* carry the label is
  underlined; the best Δ of each column is bold.
- **fusion** (Table 3a): the ``fused`` component of each method on each ``joint`` label; best bold.
- **modalities** (Table 3b): each modality's own representation on each ``joint`` label — the
  frozen input h_k (the ``inputs`` method), contrastive's c_k and MultiLoReFT's Φ_k (phi_k) — so
  fine-tuning is compared with the pretrained embedding it started from; best per modality bold.
- **msa** (DLF paper, Table 1): multimodal sentiment analysis; one row per method, and per label
  scored with the MSA metrics (a label declared ``sentiment``) one column group with Acc-7, Acc-5,
  Acc-2 and F1 in both binarisations (has0, non0), Corr and MAE, in the DLF paper's column order,
  of the component that should carry the label (``fused`` for a joint label, as MOSI's sentiment
  is); best per column bold.
- **ranks** (Table 7): initial rank → converged rank, mean ± std over seeds, from ``runs.ranks``.
- **ablations** (Tables 5/6): the decoupling layout for a method and its ablation variants.
- **stress** (the fusion survey's missing-modality protocol, `pipeline/stress.py`): one table per
  dataset, corrupted modality and corruption; rows method × component, for each label (its
  headline metric) one column per rate: the score of the clean-fitted probes when that fraction of
  the test rows had the modality corrupted. A row that stays level does not depend on the modality.
- **retrieval** (the survey's contrastive alignment judged by retrieval, `evaluate/retrieval.py`): one
  table per dataset and pair of modalities a ↔ b; rows method × the pair of components it declares
  to share one space (a's component, b's component), columns R@1, R@5, R@10 and the median rank for
  a → b and for b → a (zero-shot on the test rows, nothing fitted); best per column bold, the chance
  level in the notes.

A table row is a *setup* (`evaluate/views.py`), named by its variant (`evaluate/results.py`); when
one variant has runs on several input sets of the same data, each is its own row, named with its
features (``late-fusion <video=r3d18, audio=wavlm>``). Label owners and kinds come from the
``labels`` table (the manifests), metric names and directions from `evaluate/metrics.py`,
component names from `adapters/components.py`. Every table's notes name the split protocol and
probe that produced its numbers, and the seeds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmpipe.adapters.components import FUSED, per_modality
from mmpipe.evaluate import metrics, retrieval
from mmpipe.evaluate.corruption import corruption_name
from mmpipe.evaluate.delta import JOINT_OWNER, SHARED_OWNER, decoupling_components, mean_std, owner_component
from mmpipe.evaluate.tables import Cell, HeaderGroup, Table, format_mean_std
from mmpipe.evaluate.views import use_current_views
from mmpipe.store.errors import UserError
from mmpipe.store.results import fetch, reading

PAPER_METHOD = "multiloreft"  # listed first, as in the paper
FROZEN_INPUTS = "inputs"  # the method whose components are the frozen inputs h_k (listed first in Table 3b)
MODALITY_PREFIXES = ("h", "c", "phi")  # Table 3b: frozen input h_k, contrastive c_k, MultiLoReFT Φ_k
TABLE_KINDS = ("decoupling", "fusion", "modalities", "msa", "ranks", "ablations", "stress", "retrieval")


@dataclass(frozen=True)
class ReportFilters:
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # a method name matches all its variants; a variant name matches itself
    labels: tuple[str, ...] = ()
    data_versions: tuple[str, ...] = ()  # manifest versions (prefixes); needed when a dataset has several
    variants: tuple[str, ...] = ()  # exactly these variants (display names)


@dataclass(frozen=True)
class Setup:
    """What a table row stands for: one method, ablation and settings (the variant)."""

    method: str
    ablation: str | None
    settings: str  # JSON
    modalities: tuple[str, ...]  # of its runs, in the order first seen


@dataclass(frozen=True)
class ReportData:
    """Rows of the results DB, each with ``name``: the table row it belongs to."""

    summary: list[dict[str, Any]]  # probe_summary rows
    deltas: list[dict[str, Any]]  # delta_summary rows
    labels: list[dict[str, Any]]  # dataset, label, kind, owner
    runs: list[dict[str, Any]]  # runs rows (variant, method, ablation, dataset, seed, ranks ...)
    protocols: list[dict[str, Any]]  # distinct (setup, metric, protocol)
    setups: dict[str, Setup]  # row name -> its setup
    stress: list[dict[str, Any]] = field(default_factory=list)  # stress_summary rows
    retrieval: list[dict[str, Any]] = field(default_factory=list)  # retrieval_summary rows

    def setup(self, name: str) -> Setup:
        return self.setups[name]


SETUP_KEY = ("variant", "dataset", "data_version", "inputs")


def load_report_data(db_path: Path, filters: ReportFilters = ReportFilters()) -> ReportData:
    """Read everything the tables need; unknown filter values list the valid ones."""
    with reading(db_path, prepare=use_current_views) as conn:
        runs = fetch(conn, "SELECT * FROM runs ORDER BY variant, dataset, seed, run_id")
        labels = fetch(conn, "SELECT * FROM labels ORDER BY dataset, label")
        summary = fetch(conn, "SELECT * FROM probe_summary ORDER BY variant, dataset, label, component")
        deltas = fetch(conn, "SELECT * FROM delta_summary ORDER BY variant, dataset, label")
        protocols = fetch(conn, "SELECT DISTINCT r.variant, r.method, r.dataset, r.data_version, r.inputs, "
                                "p.metric, p.protocol FROM probes p JOIN runs r USING (run_id) ORDER BY ALL")
        stress = fetch(conn, "SELECT * FROM stress_summary ORDER BY variant, dataset, modality, mode, noise_std, "
                             "corruption_seed, label, component, rate")
        retrieval = fetch(conn, "SELECT * FROM retrieval_summary ORDER BY variant, dataset, query_component, "
                                "target_component, metric")
    _check(filters.datasets, sorted({r["dataset"] for r in runs}), "dataset")
    _check(filters.methods, sorted({r["method"] for r in runs} | {r["variant"] for r in runs}), "method")
    _check(filters.variants, sorted({r["variant"] for r in runs}), "variant")
    _check(filters.labels, sorted({r["label"] for r in labels}), "label")
    stored_versions = sorted({r["data_version"] or "" for r in runs} - {""})
    for prefix in filters.data_versions:
        if not any(v.startswith(prefix) for v in stored_versions):
            raise UserError(f"no results on a data version starting {prefix!r}; versions with results: "
                            f"{', '.join(v[:12] for v in stored_versions) or 'none (probe runs first)'}")

    def keep(row: dict[str, Any]) -> bool:
        version = row.get("data_version") or ""
        return ((not filters.datasets or row["dataset"] in filters.datasets)
                and (not filters.data_versions or version.startswith(filters.data_versions))
                and (not filters.methods or row["method"] in filters.methods or row["variant"] in filters.methods)
                and (not filters.variants or row["variant"] in filters.variants)
                and (not filters.labels or "label" not in row or row["label"] in filters.labels))

    runs = [r for r in runs if keep(r)]
    versions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in runs:
        versions[(row["variant"], row["dataset"])].add(row["data_version"] or "")
    for (variant, dataset), found in sorted(versions.items()):
        if len(found) > 1:
            raise UserError(f"{variant} on {dataset} has results on {len(found)} data versions "
                            f"({', '.join(sorted(v[:12] for v in found))}); choose one with --data-version")
    names, setups = _names(runs)

    def named(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "name": names[tuple(r[k] for k in SETUP_KEY)]} for r in rows
                if keep(r) and tuple(r[k] for k in SETUP_KEY) in names]

    return ReportData(summary=named(summary), deltas=named(deltas),
                      labels=[r for r in labels if (not filters.datasets or r["dataset"] in filters.datasets)
                              and (not filters.labels or r["label"] in filters.labels)],
                      runs=named(runs), protocols=named(protocols), setups=setups, stress=named(stress),
                      retrieval=named(retrieval))


def _names(runs: list[dict[str, Any]]) -> tuple[dict[tuple, str], dict[str, Setup]]:
    """Each setup's row name: its variant, plus its features when the variant has runs on several
    input sets of one dataset version (so they are never averaged, nor one hidden behind another)."""
    inputs_of: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for run in runs:
        found = inputs_of[(run["variant"], run["dataset"], run["data_version"])]
        if run["inputs"] not in found:
            found.append(run["inputs"])
    names: dict[tuple, str] = {}
    modalities: dict[str, list[str]] = defaultdict(list)
    first: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = tuple(run[k] for k in SETUP_KEY)
        inputs = json.loads(run["inputs"])
        name = run["variant"]
        if len(inputs_of[(run["variant"], run["dataset"], run["data_version"])]) > 1:
            name += " <" + ", ".join(f"{m}={_feature(entry, run['dataset'], m)}" for m, entry in inputs.items()) + ">"
        names[key] = name
        first.setdefault(name, run)
        modalities[name] += [m for m in inputs if m not in modalities[name]]
    setups = {name: Setup(run["method"], run["ablation"], run["settings"], tuple(modalities[name]))
              for name, run in first.items()}
    return names, setups


def _feature(entry: str, dataset: str, modality: str) -> str:
    """The feature part of an entry name ``<dataset>.<modality>.<feature>``."""
    prefix = f"{dataset}.{modality}."
    return entry[len(prefix):] if entry.startswith(prefix) else entry


def _check(wanted: Sequence[str], valid: list[str], what: str) -> None:
    unknown = [w for w in wanted if w not in valid]
    if unknown:
        raise UserError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(valid) or 'none (probe runs first)'}")


def _method_order(data: ReportData, names: set[str]) -> list[str]:
    return sorted(names, key=lambda n: (data.setup(n).method != PAPER_METHOD, n.lower()))


def _is_ablation(data: ReportData, name: str) -> bool:
    return data.setup(name).ablation is not None


def _owner_order(data: ReportData) -> dict[tuple[str, str], int]:
    """(dataset, owner) → position: shared first, then the modalities in the order the runs list
    them, then any other modality owner, then joint."""
    order: dict[tuple[str, str], int] = {}
    for run in data.runs:
        for modality in json.loads(run["inputs"]):
            order.setdefault((run["dataset"], modality), len(order) + 1)
    return order


def _label_columns(data: ReportData, owners: str) -> list[dict[str, Any]]:
    """Label columns in dataset order, each with its metric, e.g. {dataset, label, kind, owner, metric};
    ``owners`` is "decoupled" (shared and modality labels) or "joint"."""
    present = {(r["dataset"], r["label"]) for r in data.summary}
    wanted = (lambda owner: owner == JOINT_OWNER) if owners == "joint" else (lambda owner: owner != JOINT_OWNER)
    columns = [{**r, "metric": metrics.headline(r["kind"])} for r in data.labels
               if wanted(r["owner"]) and (r["dataset"], r["label"]) in present]
    position = _owner_order(data)
    last = len(position) + 1

    def rank(column: dict[str, Any]) -> int:
        if column["owner"] == SHARED_OWNER:
            return 0
        if column["owner"] == JOINT_OWNER:
            return last + 1
        return position.get((column["dataset"], column["owner"]), last)

    return sorted(columns, key=lambda c: (c["dataset"], rank(c), c["owner"], c["label"]))


def _header(column: dict[str, Any]) -> str:
    metric = metrics.metric(column["metric"])
    return f"{column['label']} ({metric.display}) {metric.arrow}"


def _groups(columns: list[dict[str, Any]], lead: int) -> list[HeaderGroup]:
    groups = [HeaderGroup("", lead)]
    for column in columns:
        if groups[-1].text == column["dataset"] and len(groups) > 1:
            groups[-1] = HeaderGroup(column["dataset"], groups[-1].span + 1)
        else:
            groups.append(HeaderGroup(column["dataset"], 1))
    return groups


def _bold_best_rows(names: list[str], found: list[list[Any]], columns: list[dict[str, Any]]) -> list[list[Cell]]:
    """One row per method name, mean ± std per column (— where missing); the best of each column bold."""
    rows = [[Cell(n)] + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in line]
            for n, line in zip(names, found, strict=True)]
    for j, column in enumerate(columns):
        for best in _best([line[j]["mean"] if line[j] else None for line in found],
                          metrics.higher_is_better(column["metric"])):
            rows[best][1 + j] = Cell(rows[best][1 + j].text, bold=True)
    return rows


def _best(values: list[float | None], higher_is_better: bool) -> set[int]:
    """Indices of the best value (ties at the printed precision are all best)."""
    rounded = {i: round(v, 3) for i, v in enumerate(values) if v is not None}
    if not rounded:
        return set()
    target = (max if higher_is_better else min)(rounded.values())
    return {i for i, v in rounded.items() if v == target}


def _notes(data: ReportData, names: Sequence[str], columns: list[dict[str, Any]]) -> list[str]:
    wanted = {(c["dataset"], c["metric"]) for c in columns}
    by_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in data.protocols:
        if row["name"] in names and (row["dataset"], row["metric"]) in wanted:
            by_key[(row["dataset"], row["metric"])].add(row["protocol"])
    notes = [f"Protocol, {dataset} {metrics.display(metric)}: {'; or '.join(sorted(protocols))}"
             for (dataset, metric), protocols in sorted(by_key.items())]
    seeds = defaultdict(set)
    for run in data.runs:
        if run["name"] in names:
            seeds[run["name"]].add(run["seed"])
    if seeds:
        notes.append("Mean ± std over seeds (sample std); seeds per method: "
                     + ", ".join(f"{n} {len(seeds[n])}" for n in names if n in seeds) + ".")
    return notes


def decoupling_table(data: ReportData, names: Sequence[str] | None = None, *, key: str = "decoupling",
                     title: str = "Decoupling of shared and modality-specific information") -> Table | None:
    """Tables 1/2 of the paper: rows method × component + Δ, columns the labels of each dataset."""
    columns = _label_columns(data, "decoupled")
    cell_of = {(r["name"], r["dataset"], r["component"], r["label"], r["metric"]): r for r in data.summary}
    delta_of = {(r["name"], r["dataset"], r["label"], r["metric"]): r for r in data.deltas}

    def components(name: str) -> tuple[str, ...]:
        return decoupling_components(data.setup(name).modalities)

    if names is None:
        names = _method_order(data, {r["name"] for r in data.summary
                                     if r["component"] in components(r["name"]) and not _is_ablation(data, r["name"])})
    names = [n for n in names if any(k[0] == n and k[2] in components(n) for k in cell_of)]
    if not columns or not names:
        return None
    rows: list[list[Cell]] = []
    rule_before = set()
    delta_rows: list[tuple[int, list[float | None]]] = []
    for name in names:
        rule_before.add(len(rows))
        for index, component in enumerate(components(name)):
            row = [Cell(name if index == 0 else ""), Cell(component)]
            for column in columns:
                found = cell_of.get((name, column["dataset"], component, column["label"], column["metric"]))
                text = format_mean_std(found["mean"], found["std"]) if found else "—"
                row.append(Cell(text, underline=bool(found) and owner_component(column["owner"]) == component))
            rows.append(row)
        found = [delta_of.get((name, c["dataset"], c["label"], c["metric"])) for c in columns]
        delta_rows.append((len(rows), [f["mean"] if f else None for f in found]))
        rows.append([Cell(""), Cell("Δ")] + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in found])
    for j in range(len(columns)):
        for best in _best([values[j] for _, values in delta_rows], higher_is_better=True):  # Δ: larger is better
            index = delta_rows[best][0]
            rows[index][2 + j] = Cell(rows[index][2 + j].text, bold=True)
    caption = ("Predictability of each representation component for each label (accuracy for categorical, "
               "MSE for continuous labels). Underlined: the component that should carry the label. "
               "Δ: decoupling gap (larger is better), computed per seed; bold: best Δ per label.")
    return Table(key, title, caption, ["Model", "Rep."] + [_header(c) for c in columns], rows,
                 _groups(columns, 2), frozenset(rule_before), _notes(data, names, columns))


def fusion_table(data: ReportData) -> Table | None:
    """Table 3a: each method's ``fused`` component predicting each ``joint`` label; best bold."""
    columns = _label_columns(data, "joint")
    cell_of = {(r["name"], r["dataset"], r["label"], r["metric"]): r for r in data.summary if r["component"] == FUSED}
    names = _method_order(data, {k[0] for k in cell_of if not _is_ablation(data, k[0])})
    if not columns or not names:
        return None
    found = [[cell_of.get((n, c["dataset"], c["label"], c["metric"])) for c in columns] for n in names]
    rows = _bold_best_rows(names, found, columns)
    caption = "Fused representation of each method predicting the joint label(s); bold: best per column."
    return Table("fusion", "Fusion", caption, ["Method"] + [_header(c) for c in columns], rows,
                 _groups(columns, 1), frozenset(), _notes(data, names, columns))


def modalities_table(data: ReportData) -> Table | None:
    """Table 3b: per modality k, h_k, c_k and Φ_k predicting each ``joint`` label; best bold per modality."""
    columns = _label_columns(data, "joint")
    modality_of: dict[tuple[str, str], str] = {}  # (name, component) -> modality
    for name, setup in data.setups.items():
        if not _is_ablation(data, name):
            for modality in setup.modalities:
                for prefix in MODALITY_PREFIXES:
                    modality_of[(name, per_modality(prefix, modality))] = modality
    cell_of = {(r["name"], r["component"], r["dataset"], r["label"], r["metric"]): r for r in data.summary
               if (r["name"], r["component"]) in modality_of}
    order = list(dict.fromkeys(m for setup in data.setups.values() for m in setup.modalities))
    pairs = sorted({k[:2] for k in cell_of}, key=lambda p: (
        order.index(modality_of[p]), data.setup(p[0]).method != FROZEN_INPUTS,
        data.setup(p[0]).method != PAPER_METHOD, p[0].lower(), p[1]))
    if not columns or not pairs:
        return None
    rows, rule_before = [], set()
    for modality in order:
        block = [p for p in pairs if modality_of[p] == modality]
        if not block:
            continue
        rule_before.add(len(rows))
        found = [[cell_of.get((n, comp, c["dataset"], c["label"], c["metric"])) for c in columns] for n, comp in block]
        lines = [[Cell(modality if i == 0 else ""), Cell(f"{comp} ({n})")]
                 + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in line]
                 for i, ((n, comp), line) in enumerate(zip(block, found, strict=True))]
        for j, column in enumerate(columns):
            for best in _best([line[j]["mean"] if line[j] else None for line in found],
                              metrics.higher_is_better(column["metric"])):
                lines[best][2 + j] = Cell(lines[best][2 + j].text, bold=True)
        rows += lines
    names = sorted({p[0] for p in pairs})
    caption = ("Each modality's representation predicting the joint label(s): the frozen input h, the "
               "contrastive projection c and MultiLoReFT's fine-tuned Φ; bold: best per modality and column.")
    return Table("modalities", "Modality representations", caption,
                 ["Modality", "Representation"] + [_header(c) for c in columns], rows,
                 _groups(columns, 2), frozenset(rule_before), _notes(data, names, columns))


def _msa_component(owner: str) -> str:
    """The component an MSA label is read from: the one that should carry it, ``fused`` for a joint label."""
    return owner_component(owner) or FUSED


def msa_table(data: ReportData) -> Table | None:
    """The DLF paper's Table 1: rows method, per MSA-scored label the columns Acc-7, Acc-5, Acc-2
    has0/non0, F1 has0/non0, Corr, MAE; best per column bold."""
    msa = set(metrics.MSA)
    owner_of = {(r["dataset"], r["label"]): r["owner"] for r in data.labels}
    scored = sorted({(r["dataset"], r["label"]) for r in data.summary if r["metric"] in msa
                     and (r["dataset"], r["label"]) in owner_of
                     and r["component"] == _msa_component(owner_of[(r["dataset"], r["label"])])})
    cell_of = {(r["name"], r["dataset"], r["label"], r["metric"]): r for r in data.summary
               if (r["dataset"], r["label"]) in scored and r["metric"] in msa
               and r["component"] == _msa_component(owner_of[(r["dataset"], r["label"])])}
    names = _method_order(data, {k[0] for k in cell_of if not _is_ablation(data, k[0])})
    if not scored or not names:
        return None
    per_dataset = defaultdict(int)
    for dataset, _ in scored:
        per_dataset[dataset] += 1
    columns = [{"dataset": d, "label": lab, "metric": m} for d, lab in scored for m in metrics.MSA]
    groups = [HeaderGroup("", 1)] + [HeaderGroup(d if per_dataset[d] == 1 else f"{d}: {lab}", len(metrics.MSA))
                                     for d, lab in scored]
    found = [[cell_of.get((n, c["dataset"], c["label"], c["metric"])) for c in columns] for n in names]
    rows = _bold_best_rows(names, found, columns)
    headers = [f"{metrics.display(c['metric'])} {metrics.metric(c['metric']).arrow}" for c in columns]
    caption = ("Multimodal sentiment analysis in the layout of the DLF paper's Table 1 (fractions, not percent). "
               "has0: a zero label counts as positive; non0: rows whose label is 0 are left out (the DLF "
               "paper's Acc-2 and F1); F1 weighted by class support; bold: best per column.")
    return Table("msa", "Multimodal sentiment analysis", caption, ["Method"] + headers, rows, groups,
                 frozenset(), _msa_notes(data, names, scored, owner_of))


def _msa_notes(data: ReportData, names: Sequence[str], scored: list[tuple[str, str]],
               owner_of: dict[tuple[str, str], str]) -> list[str]:
    """Which component each label is read from, each protocol with the metrics it produced, the seeds."""
    notes = [f"{dataset} {label}: the {_msa_component(owner_of[(dataset, label)])} component "
             f"(owner {owner_of[(dataset, label)]})" for dataset, label in scored]
    datasets = {d for d, _ in scored}
    by_protocol: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in data.protocols:
        if row["name"] in names and row["dataset"] in datasets and row["metric"] in metrics.MSA:
            by_protocol[(row["dataset"], row["protocol"])].add(row["metric"])
    for (dataset, protocol), found in sorted(by_protocol.items()):
        shown = ", ".join(metrics.display(m) for m in metrics.MSA if m in found)
        notes.append(f"Protocol, {dataset} {shown}: {protocol}")
    notes.append("Each metric's exact rule: `mmpipe query \"SELECT metric, rule FROM metrics\"`.")
    seeds = defaultdict(set)
    for run in data.runs:
        if run["name"] in names and run["dataset"] in datasets:
            seeds[run["name"]].add(run["seed"])
    notes.append("Mean ± std over seeds (sample std); seeds per method: "
                 + ", ".join(f"{n} {len(seeds[n])}" for n in names if n in seeds) + ".")
    return notes


def ranks_table(data: ReportData) -> Table | None:
    """Table 7: initial → converged rank (mean ± std over seeds) per component and dataset."""
    ranks: dict[tuple[str, str, str], list[dict[str, int]]] = defaultdict(list)
    for run in data.runs:
        if run["ranks"] and not _is_ablation(data, run["name"]):
            for component, value in json.loads(run["ranks"]).items():
                ranks[(run["name"], component, run["dataset"])].append(value)
    if not ranks:
        return None
    datasets = sorted({k[2] for k in ranks})
    names = _method_order(data, {k[0] for k in ranks})
    rows, rule_before = [], set()
    for name in names:
        rule_before.add(len(rows))
        first = decoupling_components(data.setup(name).modalities)
        components = sorted({k[1] for k in ranks if k[0] == name},
                            key=lambda c: (c not in first, first.index(c) if c in first else 0, c))
        for index, component in enumerate(components):
            row = [Cell(name if index == 0 else ""), Cell(component)]
            for dataset in datasets:
                values = ranks.get((name, component, dataset))
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
        if run["name"] in names and run["ranks"]:
            seeds[(run["name"], run["dataset"])].add(run["seed"])
    notes = ["Seeds: " + ", ".join(f"{n} on {d}: {len(s)}" for (n, d), s in sorted(seeds.items())) + "."]
    caption = "Learned subspace ranks: initial rank → converged rank, mean ± std over seeds."
    return Table("ranks", "Learned ranks", caption, ["Method", "Component"] + datasets, rows,
                 [], frozenset(rule_before), notes)


def ablation_tables(data: ReportData) -> list[Table]:
    """Tables 5/6: for each method with ablation variants, the full model (with the same settings)
    beside each ablation."""
    names = {r["name"] for r in data.summary}
    tables = []
    for method in sorted({data.setup(n).method for n in names if _is_ablation(data, n)},
                         key=lambda m: (m != PAPER_METHOD, m.lower())):
        ablated = sorted(n for n in names if data.setup(n).method == method and _is_ablation(data, n))
        settings = {data.setup(n).settings for n in ablated}
        full = sorted(n for n in names if data.setup(n).method == method and not _is_ablation(data, n)
                      and data.setup(n).settings in settings)
        table = decoupling_table(data, full + ablated, key=f"ablation-{method}", title=f"Ablations of {method}")
        if table is not None:
            tables.append(table)
    return tables


def stress_tables(data: ReportData) -> list[Table]:
    """The stress test: per (dataset, modality, corruption) a table of rows method × component and,
    per label, its headline metric at each rate."""
    kinds = {(r["dataset"], r["label"]): r["kind"] for r in data.labels}
    blocks: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in data.stress:
        kind = kinds.get((row["dataset"], row["label"]))
        if kind is not None and row["metric"] == metrics.headline(kind):
            blocks[(row["dataset"], row["modality"], corruption_name(row))].append(row)
    tables = []
    for (dataset, modality, corruption), rows in sorted(blocks.items()):
        labels = sorted({(r["label"], r["metric"]) for r in rows})
        rates = sorted({r["rate"] for r in rows})
        cell_of = {(r["name"], r["component"], r["label"], r["rate"]): r for r in rows}
        names = _method_order(data, {r["name"] for r in rows})
        lines, rule_before = [], set()
        for name in names:
            rule_before.add(len(lines))
            components = sorted({r["component"] for r in rows if r["name"] == name})
            for index, component in enumerate(components):
                line = [Cell(name if index == 0 else ""), Cell(component)]
                for label, _ in labels:
                    for rate in rates:
                        found = cell_of.get((name, component, label, rate))
                        line.append(Cell(format_mean_std(found["mean"], found["std"]) if found else "—"))
                lines.append(line)
        headers = ["Method", "Rep."] + [f"{rate:g}" for _ in labels for rate in rates]
        groups = [HeaderGroup("", 2)] + [HeaderGroup(f"{label} ({metrics.display(metric)}) "
                                                     f"{metrics.metric(metric).arrow}", len(rates))
                                         for label, metric in labels]
        protocols = sorted({r["protocol"] for r in rows})
        seeds = {r["name"]: r["n_seeds"] for r in rows}
        notes = [f"Protocol: {p}" for p in protocols]
        notes.append("Mean ± std over run seeds (sample std); seeds per method: "
                     + ", ".join(f"{n} {seeds[n]}" for n in names) + ".")
        caption = (f"Score of the probes fitted on the clean train split when a fraction (column) of the {dataset} "
                   f"test rows had {modality} corrupted ({corruption}); the test rows and labels are the same "
                   "in every column, and rate 0 is the clean score.")
        key = _file_key(f"stress-{dataset}-{modality}-{corruption}")
        tables.append(Table(key, f"Stress: {dataset}, {modality} {corruption}", caption, headers, lines, groups,
                            frozenset(rule_before), notes))
    return tables


def retrieval_tables(data: ReportData) -> list[Table]:
    """Cross-modal retrieval: per (dataset, modalities a ↔ b) a table of rows method × declared pair
    and, for a → b and b → a, R@1, R@5, R@10 and the median rank."""
    order: dict[tuple[str, str], int] = {}  # (dataset, modality) → first position among the runs' inputs
    for run in data.runs:
        for modality in json.loads(run["inputs"]):
            order.setdefault((run["dataset"], modality), len(order))
    blocks: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in data.retrieval:
        a, b = sorted((row["query_modality"], row["target_modality"]),
                      key=lambda m: (order.get((row["dataset"], m), len(order)), m))
        blocks[(row["dataset"], a, b)].append(row)
    names = retrieval.METRIC_NAMES
    tables = []
    for (dataset, a, b), rows in sorted(blocks.items()):
        cell_of = {(r["name"], r["query_component"], r["target_component"], r["metric"]): r for r in rows}
        pairs = {(r["name"], *((r["query_component"], r["target_component"]) if r["query_modality"] == a
                                else (r["target_component"], r["query_component"]))) for r in rows}
        position = {n: i for i, n in enumerate(_method_order(data, {p[0] for p in pairs}))}
        lines_of = sorted(pairs, key=lambda p: (position[p[0]], p[1], p[2]))  # (name, component of a, of b)
        found = [[cell_of.get((name, query, target, metric)) for query, target in ((of_a, of_b), (of_b, of_a))
                  for metric in names] for name, of_a, of_b in lines_of]
        lines = [[Cell(name if index == 0 or lines_of[index - 1][0] != name else ""), Cell(of_a), Cell(of_b)]
                 + [Cell(format_mean_std(f["mean"], f["std"]) if f else "—") for f in line]
                 for index, ((name, of_a, of_b), line) in enumerate(zip(lines_of, found, strict=True))]
        rule_before = frozenset(i for i in range(len(lines_of)) if i == 0 or lines_of[i - 1][0] != lines_of[i][0])
        for j, metric in enumerate(names * 2):
            for best in _best([line[j]["mean"] if line[j] else None for line in found],
                              metrics.higher_is_better(metric)):
                lines[best][3 + j] = Cell(lines[best][3 + j].text, bold=True)
        headers = ["Method", f"Rep. {a}", f"Rep. {b}"] + [f"{metrics.display(m)} {metrics.metric(m).arrow}"
                                                         for m in names] * 2
        groups = [HeaderGroup("", 3), HeaderGroup(f"{a} → {b}", len(names)), HeaderGroup(f"{b} → {a}", len(names))]
        seeds = {r["name"]: r["n_seeds"] for r in rows}
        notes = [f"Protocol: {p}" for p in sorted({r["protocol"] for r in rows})]
        notes.append("Candidates n (the valid test rows): " + ", ".join(map(str, sorted({r["n_candidates"] for r in rows})))
                     + "; chance: " + ", ".join(f"R@{k} = {k}/n" for k in retrieval.RECALL_KS)
                     + ", median rank ≈ (n + 1)/2.")
        notes.append("Mean ± std over run seeds (sample std); seeds per method: "
                     + ", ".join(f"{n} {seeds[n]}" for n in position) + ".")
        caption = (f"Zero-shot cross-modal retrieval on the {dataset} test rows between {a} and {b}: each query's "
                   "partner is the same sample in the other modality, ranked among all test rows by cosine "
                   "similarity of the pair's components; bold: best per column.")
        tables.append(Table(_file_key(f"retrieval-{dataset}-{a}-{b}"), f"Retrieval: {dataset}, {a} ↔ {b}", caption,
                            headers, lines, groups, rule_before, notes))
    return tables


def _file_key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


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
        elif kind == "msa":
            tables += [t for t in [msa_table(data)] if t]
        elif kind == "ranks":
            tables += [t for t in [ranks_table(data)] if t]
        elif kind == "stress":
            tables += stress_tables(data)
        elif kind == "ablations":
            tables += ablation_tables(data)
        elif kind == "retrieval":
            tables += retrieval_tables(data)
    return tables
