"""What one of the MultiLoReFT paper's tables on Simulation I/II needs and shows, and our numbers
laid beside the paper's (`evaluate/reference.py`). The workflow that fits the runs is
`mmpipe.pipeline.reproduce`.

Each table is a spec: the datasets, the (method, config changes) fits per dataset, the inputs
they take and any per-dataset changes, and which rows / components / label columns it shows. The
S3 and DLF papers' tables are specs of the same kind (`evaluate/reproduce_papers.py`). A run with
probe rows in the results DB is not re-probed.

Marks, ours against the paper's mean ± std: ``within`` by the one rule of
`evaluate/reference.py` (|ours − paper| ≤ max(std, 0.0005); numbers are printed to three
decimals), else ``better`` / ``worse`` in the metric's direction (Δ: larger is better); in a
component that should not carry the label (its owner read from the manifest's labels in the
results DB), ``leaks more`` / ``leaks less``; ranks are ``higher`` / ``lower``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmpipe.adapters.components import FUSED, shared_part, specific
from mmpipe.evaluate.delta import (
    JOINT_OWNER,
    carries,
    decoupling_components,
    delta,
    mean_std,
    owner_component,
)
from mmpipe.evaluate.metrics import higher_is_better
from mmpipe.evaluate.probes import ProbeConfig, probe_run
from mmpipe.evaluate.reference import DELTA, RANK, PaperValue, paper_values, within
from mmpipe.evaluate.results import paper_row_of, save_probes
from mmpipe.evaluate.tables import Cell, HeaderGroup, Table, format_mean_std
from mmpipe.store.errors import UserError
from mmpipe.store.results import fetch, reading
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

SIM_MODALITIES = ("m1", "m2")  # the modalities of Simulation I and II, the datasets of these tables
DECOUPLING = decoupling_components(SIM_MODALITIES)  # z_s, z_m1, z_m2
SPLIT4 = (*(shared_part(m) for m in SIM_MODALITIES), *(specific(m) for m in SIM_MODALITIES))  # z_s_m1 ... z_m2
Progress = Callable[[str], None]


Changes = tuple[tuple[str, Any], ...]  # config field → value, in order


@dataclass(frozen=True)
class TableSpec:
    key: str
    title: str
    datasets: tuple[str, ...]  # simulations are simulated; other datasets must be in the store
    fits: tuple[tuple[str, Changes], ...]  # (method, config changes), in fit order
    components: tuple[str, ...]  # rows per variant ("rank" for Table 7)
    with_delta: bool = False
    extra_rows: tuple[str, ...] = ()  # variants shown without a paper value
    # report tables (evaluate/report.py) over the same runs, printed after it; the paper has no numbers for them
    companions: tuple[str, ...] = ()
    inputs: tuple[str, ...] = SIM_MODALITIES  # the modalities every fit takes, in the method's order
    dataset_changes: tuple[tuple[str, Changes], ...] = ()  # (dataset, config changes) before the fit's own
    seeds: int = 4  # the paper's seed count: the default of --seeds
    simulation_n: int | None = 10_000  # rows per simulation unless --n; None: the simulation's default

    def changes_for(self, dataset: str) -> Changes:
        return dict(self.dataset_changes).get(dataset, ())


ABLATIONS6 = (("use_orth", False), ("use_indep", False), ("use_mi", False), ("weighting", "fixed"))
SPECS: dict[str, TableSpec] = {s.key: s for s in (
    TableSpec("table1", "Table 1: decoupling on Simulation I/II", ("sim1", "sim2"),
              (("multiloreft", ()), ("drimu", ()), ("apollo", ())), DECOUPLING, with_delta=True),
    TableSpec("table3a", "Table 3a: fused representations, Simulation I joint label", ("sim1",),
              (("multiloreft", ()), ("apollo", ()), ("drimu", ()), ("late-fusion", ()), ("cross-attention", ()),
               ("contrastive", ()), ("mult-interactions", ()), ("inputs", ())), (FUSED,), extra_rows=("inputs",),
              companions=("modalities",)),  # Table 3b is a figure: h_i vs c_i vs Φ_i, ours only
    TableSpec("table4", "Table 4: baselines sized to the input dimensionality", ("sim1", "sim2"),
              (("apollo", (("size", "input"),)), ("drimu", (("size", "input"),))), SPLIT4),
    TableSpec("table5", "Table 5: pruning and staging ablations", ("sim1", "sim2"),
              (("multiloreft", ()), ("multiloreft", (("prune", False),)), ("multiloreft", (("staged", False),))),
              DECOUPLING),
    TableSpec("table6", "Table 6: loss-term ablations", ("sim1", "sim2"),
              (("multiloreft", ()), *(("multiloreft", (change,)) for change in ABLATIONS6)), DECOUPLING,
              with_delta=True),
    TableSpec("table7", "Table 7: ranks learned by MultiLoReFT", ("sim1", "sim2"), (("multiloreft", ()),), (RANK,)),
)}


def spec_of(name: str) -> TableSpec:
    if name not in SPECS:
        raise UserError(f"unknown table {name!r}; valid: {', '.join(SPECS)}")
    return SPECS[name]


Scope = Callable[[RunEntry], tuple[list[str] | None, list[str] | None]]  # run → (labels, components); None: all


def probe_missing(store: Store, runs: list[RunEntry], progress: Progress | None = None,
                  scope: Scope | None = None) -> int:
    """Probe the runs that have no probe rows yet: every component × label, or what ``scope``
    names for the run; returns how many runs were probed."""
    done: set[str] = set()
    if store.results_db.exists():
        with reading(store.results_db) as conn:
            done = {r["run_id"] for r in fetch(conn, "SELECT DISTINCT run_id FROM probes")}
    todo = [run for run in runs if run.run_id not in done]
    for index, run in enumerate(todo, 1):
        if progress is not None:
            progress(f"probing [{index}/{len(todo)}] {run.run_id}")
        labels, components = scope(run) if scope is not None else (None, None)
        save_probes(store, run, probe_run(store, run, ProbeConfig(), labels, components))
    return len(todo)


@dataclass(frozen=True)
class Ours:
    mean: float
    std: float | None
    n: int


@dataclass(frozen=True)
class OurValues(Mapping):
    """(dataset, paper row, component, label, metric) → our mean ± std over seeds, with what the
    marks need to know about the labels and runs behind them."""

    by_key: dict[tuple[str, str, str, str, str], Ours]
    owners: dict[tuple[str, str], str]  # (dataset, label) → owner, from the manifests (labels table)
    modalities: dict[str, tuple[str, ...]]  # dataset → the modalities of its runs

    def __getitem__(self, key: tuple[str, str, str, str, str]) -> Ours:
        return self.by_key[key]

    def __iter__(self) -> Iterator[tuple[str, str, str, str, str]]:
        return iter(self.by_key)

    def __len__(self) -> int:
        return len(self.by_key)


def our_values(store: Store, runs: list[RunEntry]) -> OurValues:
    """(dataset, paper row, component, label, metric) → mean ± std over seeds of exactly ``runs``;
    component "delta" per seed first (`evaluate/delta.py`); "rank" from the run records."""
    ids = [r.run_id for r in runs]
    with reading(store.results_db) as conn:
        rows = fetch(conn, "SELECT run_id, component, label, metric, value FROM probes WHERE list_contains(?, run_id)",
                     [ids])
        owners = {(r["dataset"], r["label"]): r["owner"] for r in fetch(conn, "SELECT * FROM labels")}
    by_run = {r.run_id: r for r in runs}
    values: dict[tuple, list[float]] = defaultdict(list)
    scores: dict[tuple, dict[str, float]] = defaultdict(dict)  # (run, label, metric) → component → value
    for row in rows:
        record = by_run[row["run_id"]].record
        values[(record.dataset, paper_row_of(record), row["component"], row["label"], row["metric"])].append(row["value"])
        scores[(row["run_id"], row["label"], row["metric"])][row["component"]] = row["value"]
    for (run_id, label, metric), by_component in scores.items():
        record = by_run[run_id].record
        owner = owners.get((record.dataset, label))
        if owner is not None:
            value = delta(owner, metric, by_component, record.modalities)
            if value is not None:
                values[(record.dataset, paper_row_of(record), DELTA, label, metric)].append(value)
    modalities: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        record = run.record
        modalities[record.dataset] += [m for m in record.modalities if m not in modalities[record.dataset]]
        for component, rank in (record.ranks or {}).items():
            values[(record.dataset, paper_row_of(record), component, RANK, RANK)].append(rank["final"])
    out = {}
    for key, series in values.items():
        summary = mean_std([float(v) for v in series])
        out[key] = Ours(summary.mean, summary.std, summary.n)
    return OurValues(out, owners, {d: tuple(m) for d, m in modalities.items()})


def mark(ours: float, paper: PaperValue, owner: str | None = None, modalities: Sequence[str] = SIM_MODALITIES) -> str:
    """within / better / worse (higher / lower for ranks), see the module docstring. A component
    that should *not* carry the label (``owner``, from the manifest; None: unknown, no such mark)
    is marked ``leaks more`` / ``leaks less`` instead: scoring better there means more leakage,
    not a better method."""
    if within(ours, paper.mean, paper.std):
        return "within"
    if paper.metric == RANK:
        return "higher" if ours > paper.mean else "lower"
    larger_is_better = paper.component == DELTA or higher_is_better(paper.metric)
    improved = (ours > paper.mean) == larger_is_better
    if owner is not None and not carries(paper.component, owner, modalities):
        return "leaks more" if improved else "leaks less"
    return "better" if improved else "worse"


def _columns(papers: list[PaperValue]) -> list[tuple[str, str, str]]:
    seen: dict[tuple[str, str, str], None] = {}
    for p in papers:
        seen.setdefault((p.dataset, p.label, p.metric), None)
    return list(seen)


def comparison_table(spec: TableSpec, ours: OurValues) -> Table:
    """Rows variant × component (+ Δ); two columns per label: ours [mark] and the paper's."""
    papers = paper_values(spec.key)
    paper_of = {(p.dataset, p.row, p.component, p.label, p.metric): p for p in papers}
    columns = _columns(papers)
    variants = list(dict.fromkeys([p.row for p in papers] + list(spec.extra_rows)))
    components = list(spec.components) + ([DELTA] if spec.with_delta else [])
    if spec.key == "table7":
        components = list(DECOUPLING)
    rows, rule_before = [], set()
    for variant in variants:
        rule_before.add(len(rows))
        for index, component in enumerate(components):
            row = [Cell(variant if index == 0 else ""), Cell("Δ" if component == DELTA else component)]
            for dataset, label, metric in columns:
                found = ours.get((dataset, variant, component, label, metric))
                paper = paper_of.get((dataset, variant, component, label, metric))
                digits = 2 if metric == RANK else 3
                text = "—" if found is None else format_mean_std(found.mean, found.std, digits)
                if found is not None and paper is not None:
                    modalities = ours.modalities.get(dataset, SIM_MODALITIES)
                    text += f" [{mark(found.mean, paper, ours.owners.get((dataset, label)), modalities)}]"
                row += [Cell(text), Cell("—" if paper is None else format_mean_std(paper.mean, paper.std, digits))]
            rows.append(row)
    headers, groups = ["Model", "Rep."], [HeaderGroup("", 2)]
    for dataset, label, metric in columns:
        headers += ["ours", "paper"]
        groups.append(HeaderGroup(f"{dataset} {label} ({metric})", 2))
    seeds = sorted({v.n for v in ours.values()})
    notes = [f"Ours: mean ± std over {', '.join(map(str, seeds))} seed(s); paper: as printed in the paper. "
             "[within]: inside the paper's ± std (or 0.0005); [better]/[worse] in the metric's direction "
             "(Δ: larger is better); [leaks more]/[leaks less] in a component that should not carry the label."]
    caption = "Our reproduction beside the paper's numbers."
    return Table(spec.key, spec.title, caption, headers, rows, groups, frozenset(rule_before), notes)


def pattern_lines(spec: TableSpec, ours: OurValues) -> list[str]:
    """Per label: which methods carry it best in the component that owns it, and which method has
    the largest Δ — ours and the paper's (the paper's claims in §5.1)."""
    if spec.key not in ("table1", "table5", "table6"):
        return []
    papers = paper_values(spec.key)
    variants = list(dict.fromkeys(p.row for p in papers))
    lines = []
    for dataset, label, metric in _columns(papers):
        right = owner_component(ours.owners.get((dataset, label), JOINT_OWNER))
        if right is None:
            continue
        decoupled = decoupling_components(ours.modalities.get(dataset, SIM_MODALITIES))
        mine = {(v, c): o.mean for (d, v, c, la, m), o in ours.items() if (d, la, m) == (dataset, label, metric)}
        theirs = {(p.row, p.component): p.mean for p in papers if (p.dataset, p.label, p.metric)
                  == (dataset, label, metric)}
        ours_ok = [v for v in variants if _meets(mine, v, right, decoupled, higher_is_better(metric))]
        paper_ok = [v for v in variants if _meets(theirs, v, right, decoupled, higher_is_better(metric))]
        line = (f"{dataset} {label}: right component ({right}) best — ours: {', '.join(ours_ok) or 'none'}; "
                f"paper: {', '.join(paper_ok) or 'none'}")
        if spec.with_delta:
            ours_delta = {v: mine[(v, DELTA)] for v in variants if (v, DELTA) in mine}
            paper_delta = {v: theirs[(v, DELTA)] for v in variants if (v, DELTA) in theirs}
            if ours_delta and paper_delta:
                line += (f". Largest Δ — ours: {max(ours_delta, key=ours_delta.get)}; "
                         f"paper: {max(paper_delta, key=paper_delta.get)}")
        lines.append(line)
    return lines


def _meets(values: dict[tuple[str, str], float], variant: str, right: str, decoupled: Sequence[str],
           higher: bool) -> bool:
    """The owning component scores best among ``decoupled`` (ties at three decimals count)."""
    scores = [values.get((variant, c)) for c in decoupled]
    if any(v is None for v in scores):
        return False
    best = max(scores) if higher else min(scores)
    return round(values[(variant, right)], 3) == round(best, 3)
