"""`mmpipe reproduce survey`: the fusion survey's three proposed experiments as one table each, on
Simulation I, ``simseq`` and the affect datasets the store holds. The survey proposes the protocol
and reports no numbers, so the tables are ours only. The workflow that fits, probes and stresses
the runs is `mmpipe.pipeline.reproduce_survey`; every number here is a row of the results DB, mean
± std (sample std) over the runs of the seeds asked for.

What is compared (the survey's "factorised representations against monolithic fusion"):

- methods: the factorised ones (MultiLoReFT, DRIM-U, APOLLO), contrastive alignment, and monolithic
  fusion (early, late, cross-attention, multiplicative interactions), every one on the same
  inputs: the dataset's first two modalities (``m1, m2``; ``text, audio`` for simseq and the affect
  datasets), sequences mean-pooled. MultiLoReFT is always fitted: the baselines are sized by its
  run of the same seed (paper §5.1). The sequence models, expensive and with tables of their own,
  only when asked (``--method s3`` / ``dlf``): S3 on the same two modalities (their sequences where
  the dataset has them), DLF on all three sequences where the dataset has them and a continuous
  task label (it regresses one); a method that does not apply to a dataset is named in one line;
- the task label: the dataset's ``joint`` label, the one the supervised baselines are trained on
  (Simulation I ``y_cond``; simseq, which has several, ``sentiment`` as in the S3/DLF tables; the
  affect datasets' sentiment / humour / sarcasm), scored by its headline metric
  (`evaluate/metrics.headline`: accuracy, or MSE for a continuous label).

Tables:

1. **Missing modalities** (survey: "remove 0 %, 20 %, 40 % and 60 % of inputs from different
   modalities during evaluation"): `mmpipe stress`'s protocol (`pipeline/stress.py`) for each
   modality at ``RATES``, the probes fitted once on the clean train split; rows method × component
   (``fused`` and, for the factorised methods, the shared ``z_s``) × removed modality; the same
   removed rows (seed ``STRESS_SEED``) for every method and seed, so the methods are compared on
   one corruption. "Remove" is
   read as the input being absent and fed as zeros (``zero``, the MultiBench/MMSA convention and
   the same rule for every method: none has a missing-input rule of its own); ``mean`` (the train
   mean) is the other fill offered.
2. **Retrieval** (contrastive alignment judged by retrieval): R@1/5/10 and median rank in both
   directions on test, for the methods that declare pairs (`AdapterMethod.retrieval_pairs`), from
   the retrieval rows `mmpipe probe` writes.
3. **Early vs late vs intermediate fusion**: the ``fused`` component's probe of the task label,
   one row per method, with its parameter count (the survey weighs accuracy against cost).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from mmpipe.adapters.components import FUSED, SHARED
from mmpipe.adapters.registry import METHODS
from mmpipe.evaluate import retrieval
from mmpipe.evaluate.delta import JOINT_OWNER, mean_std
from mmpipe.evaluate.metrics import display, headline, higher_is_better
from mmpipe.evaluate.reproduce import TableSpec
from mmpipe.evaluate.reproduce_papers import DLF_INPUTS, SIMSEQ, SIMSEQ_S3_TARGET
from mmpipe.evaluate.tables import Cell, Table, format_mean_std
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import Manifest
from mmpipe.store.results import fetch, reading
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

KEY = "survey"
AFFECT = ("mosi", "mosei", "urfunny", "mustard")
DATASETS = ("sim1", SIMSEQ, *AFFECT)
SIZE_SOURCE = "multiloreft"  # sizes the baselines (paper §5.1): always fitted, first
# method → the survey's fusion stage; the order of every table's rows
FUSION = {
    "multiloreft": "factorised", "drimu": "factorised", "apollo": "factorised",
    "contrastive": "aligned (late)",
    "early-fusion": "early", "late-fusion": "late",
    "cross-attention": "intermediate", "mult-interactions": "intermediate",
    "s3": "intermediate (experts)", "dlf": "factorised",
}
ON_REQUEST = ("s3", "dlf")  # expensive sequence models with tables of their own: only when --method names them
ALL_MODALITIES = {"dlf": DLF_INPUTS}  # methods that take every modality (in this order); the rest the first two
OWN_LABEL = ("dlf",)  # picks the sentiment-scaled label itself (dlf.regression_target): no target set
RATES = (0.0, 0.2, 0.4, 0.6)  # the survey's removal rates
MODES = ("zero", "mean")
MODE_TEXT = {"zero": "zeros (absent input)", "mean": "the train split's mean of that modality"}
STRESS_SEED = 0  # chooses the removed rows (not the run's seed)
COMPONENTS = (FUSED, SHARED)  # the components of interest, where a method has them
TASK_LABELS = {SIMSEQ: SIMSEQ_S3_TARGET}  # datasets with several joint labels: the one the survey tables score
NO_PAPER = "The survey proposes this protocol and reports no numbers: ours only."
DIGITS = 3


@dataclass(frozen=True)
class SurveySpec:
    """What one `reproduce survey` shows: the methods (in `FUSION` order), the corruption mode, the
    datasets; ``table`` is the fit spec of `pipeline/reproduce.fit_table` for all datasets."""

    methods: tuple[str, ...]
    mode: str
    table: TableSpec

    def for_dataset(self, manifest: Manifest) -> tuple[list[TableSpec], list[str]]:
        """The fits on one dataset, one spec per input set (the dataset's first two modalities;
        DLF's three where it has them and a continuous task label), and a line per method that
        does not apply. On simseq the supervised methods (config field ``target``) are trained
        on its task label."""
        modalities = tuple(m.name for m in manifest.modalities)
        label = TASK_LABELS.get(manifest.dataset)
        kind = manifest.label(task_label(manifest)[0]).kind
        groups: dict[tuple[str, ...], list] = {}
        left_out = []
        for method in self.methods:
            inputs = ALL_MODALITIES.get(method, modalities[:2])
            if not set(inputs) <= set(modalities) or (method in OWN_LABEL and kind != "continuous"):
                needs = " and a continuous task label" if method in OWN_LABEL else ""
                left_out.append(f"survey: {method} does not apply to {manifest.dataset} (it takes {', '.join(inputs)}"
                                f"{needs}; {manifest.dataset} has {', '.join(modalities)} and a {kind} task label)")
                continue
            changes = (("target", label),) if label and _has_field(method, "target") and method not in OWN_LABEL else ()
            groups.setdefault(tuple(inputs), []).append((method, changes))
        specs = [dataclasses.replace(self.table, datasets=(manifest.dataset,), fits=tuple(fits), inputs=inputs)
                 for inputs, fits in groups.items()]
        return specs, left_out


def _has_field(method: str, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(METHODS.get(method).Config)}


def survey_spec(methods: Sequence[str] | None = None, mode: str | None = None) -> SurveySpec:
    """The survey's setup: ``methods`` (default: every method of `FUSION` but `ON_REQUEST`;
    MultiLoReFT is always fitted), ``mode`` (default ``zero``); refused in one line before any work."""
    mode = MODES[0] if mode is None else mode
    if mode not in MODES:
        raise UserError(f"unknown --mode {mode!r} for reproduce survey; valid: {', '.join(MODES)}")
    unknown = [m for m in methods or () if m not in FUSION]
    if unknown:
        raise UserError(f"--method {unknown[0]!r} is not a method of reproduce survey; valid: {', '.join(FUSION)}")
    chosen = tuple(m for m in FUSION if (m in methods if methods else m not in ON_REQUEST) or m == SIZE_SOURCE)
    table = TableSpec(KEY, "The fusion survey's Experiments 1–3", DATASETS, tuple((m, ()) for m in chosen),
                      COMPONENTS, inputs=(), seeds=3, simulation_n=None)
    return SurveySpec(chosen, mode, table)


def task_label(manifest: Manifest) -> tuple[str, str]:
    """(label, headline metric) the survey scores on this dataset: its ``joint`` label."""
    wanted = TASK_LABELS.get(manifest.dataset)
    joint = [s for s in manifest.labels if (s.name == wanted if wanted else s.owner == JOINT_OWNER)]
    if len(joint) != 1:
        found = ", ".join(s.name for s in joint) or "none"
        raise UserError(f"reproduce survey: {manifest.dataset} needs exactly one joint label (found: {found})")
    return joint[0].name, headline(joint[0].kind)


def components_of(run: RunEntry) -> list[str]:
    """The components of interest the run has (``fused``; ``z_s`` for the factorised methods)."""
    return [c for c in COMPONENTS if c in run.component_names()]


# -- the tables, from the results DB ---------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One dataset's part of the survey: its runs (every method × seed) and task label."""

    dataset: str
    runs: tuple[RunEntry, ...]
    label: str
    metric: str

    def of(self, method: str) -> list[RunEntry]:
        return [r for r in self.runs if r.method == method]


def _cell(values: Sequence[float]) -> Cell:
    """Mean ± sample std over the runs' values; a dash when there is none."""
    if not values:
        return Cell("—")
    found = mean_std(values)
    return Cell(format_mean_std(found.mean, found.std, DIGITS))


def _rows(store: Store, sql: str, runs: Sequence[RunEntry], *params: object) -> list[dict]:
    """Rows of ``sql``, whose first parameter is the runs' ids."""
    if not store.results_db.exists():
        return []
    with reading(store.results_db) as conn:
        return fetch(conn, sql, [[r.run_id for r in runs], *params])


def _seeds_note(settings: Sequence[Setting]) -> str:
    seeds = sorted({r.record.seed for s in settings for r in s.runs})
    return f"Mean ± std over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), one run each."


def _label_notes(settings: Sequence[Setting]) -> list[str]:
    return [f"{s.dataset}: task label {s.label}, {display(s.metric)} "
            f"({'higher' if higher_is_better(s.metric) else 'lower'} is better)" for s in settings]


def missing_table(store: Store, spec: SurveySpec, settings: Sequence[Setting]) -> Table:
    """Experiment 1: score against the removed fraction, per method × component × removed modality."""
    runs = [r for s in settings for r in s.runs]
    found = _rows(store, "SELECT run_id, modality, rate, component, label, metric, value FROM stress WHERE "
                         "list_contains(?, run_id) AND mode = ? AND noise_std IS NULL AND corruption_seed = ?",
                  runs, spec.mode, STRESS_SEED)
    values: dict[tuple, list[float]] = defaultdict(list)
    for row in found:
        values[(row["run_id"], row["modality"], row["rate"], row["component"], row["label"], row["metric"])] \
            .append(row["value"])
    rows, rules = [], set()
    for setting in settings:
        for method in spec.methods:
            method_runs = setting.of(method)
            if not method_runs:
                continue
            rules.add(len(rows))
            for component in components_of(method_runs[0]):
                for modality in method_runs[0].record.inputs:
                    cells = [_cell([v for r in method_runs for v in values[(r.run_id, modality, rate, component,
                                                                            setting.label, setting.metric)]])
                             for rate in RATES]
                    rows.append([Cell(setting.dataset), Cell(method), Cell(component), Cell(modality), *cells])
    notes = [_seeds_note(settings), *_label_notes(settings),
             f"Protocol (mmpipe stress): the probes are fitted once on the clean train split (selected on val); "
             f"at rate r a seeded (seed {STRESS_SEED}), nested r·n (rounded, halves up) of the n test rows get the removed "
             f"modality as {MODE_TEXT[spec.mode]}; the same test rows and labels at every rate, so rate 0 is the "
             "clean probe score."]
    return Table("survey-missing", "Survey Experiment 1: missing modalities",
                 "Test score of the clean-train probe of the task label as a growing share of one modality's test "
                 "inputs is removed: factorised representations against monolithic fusion. " + NO_PAPER,
                 ["Dataset", "Method", "Component", "Removed", *(f"{100 * r:g} %" for r in RATES)], rows,
                 rule_before=frozenset(rules - {0}), notes=notes)



def retrieval_table(store: Store, spec: SurveySpec, settings: Sequence[Setting]) -> Table:
    """Experiment 2: cross-modal retrieval of the methods that declare pairs, both directions."""
    runs = [r for s in settings for r in s.runs]
    found = _rows(store, "SELECT run_id, query_modality, target_modality, query_component, target_component, "
                         "metric, value, n_candidates, protocol FROM retrieval WHERE list_contains(?, run_id)", runs)
    values: dict[tuple, list[float]] = defaultdict(list)
    candidates: dict[tuple, set[int]] = defaultdict(set)
    protocols = sorted({row["protocol"] for row in found})
    for row in found:
        direction = (row["query_modality"], row["target_modality"], row["query_component"], row["target_component"])
        values[(row["run_id"], *direction, row["metric"])].append(row["value"])
        candidates[(row["run_id"], *direction)].add(row["n_candidates"])
    rows, rules, unprobed = [], set(), []
    for setting in settings:
        for method in spec.methods:
            method_runs = setting.of(method)
            pairs = {p for r in method_runs for p in retrieval.declared_pairs(r.record)}
            if not pairs:
                continue
            rules.add(len(rows))
            for pair in sorted(pairs, key=lambda p: (p.modalities, p.components)):
                (a, b), (ca, cb) = pair.modalities, pair.components
                for direction in ((a, b, ca, cb), (b, a, cb, ca)):
                    n = sorted({c for r in method_runs for c in candidates[(r.run_id, *direction)]})
                    if not n:
                        unprobed += [r.run_id for r in method_runs]
                    cells = [_cell([v for r in method_runs for v in values[(r.run_id, *direction, metric)]])
                             for metric in retrieval.METRIC_NAMES]
                    rows.append([Cell(setting.dataset), Cell(method),
                                 Cell(direction[2]), Cell(direction[3]), Cell(", ".join(map(str, n)) or "—"),
                                 *cells])
    notes = [_seeds_note(settings), *protocols,
             "Chance: R@k = k/N, median rank ≈ N/2 (N candidates: the valid test rows)."]
    if unprobed:
        notes.append(f"No retrieval rows for {len(set(unprobed))} run(s) probed before retrieval was scored: "
                     "`mmpipe probe RUN` adds them.")
    return Table("survey-retrieval", "Survey Experiment 2: cross-modal retrieval",
                 "Zero-shot retrieval of each test row's partner (the same sample) in the other modality's "
                 "embedding, by cosine similarity, for the methods that embed both modalities in one space. "
                 + NO_PAPER,
                 ["Dataset", "Method", "Query", "Target", "N", *(display(m) for m in retrieval.METRIC_NAMES)], rows,
                 rule_before=frozenset(rules - {0}), notes=notes)


def fusion_table(store: Store, spec: SurveySpec, settings: Sequence[Setting]) -> Table:
    """Experiment 3: the fused component's probe of the task label, one row per method."""
    runs = [r for s in settings for r in s.runs]
    found = _rows(store, "SELECT run_id, component, label, metric, value, protocol FROM probes "
                         "WHERE list_contains(?, run_id)", runs)
    values = {(row["run_id"], row["component"], row["label"], row["metric"]): row["value"] for row in found}
    protocols = {}
    for row in (r for r in found if r["component"] == FUSED):
        protocols.setdefault((row["label"], row["metric"]), set()).add(row["protocol"])
    rows, rules = [], set()
    for setting in settings:
        rules.add(len(rows))
        for method in spec.methods:
            method_runs = setting.of(method)
            if not method_runs:
                continue
            scores = [values[key] for r in method_runs
                      if (key := (r.run_id, FUSED, setting.label, setting.metric)) in values]
            params = [r.record.n_params for r in method_runs if r.record.n_params is not None]
            rows.append([Cell(setting.dataset), Cell(method), Cell(FUSION[method]),
                         Cell(f"{setting.label} ({display(setting.metric)})"), _cell(scores),
                         Cell(f"{round(sum(params) / len(params)):,}" if params else "—")])
    notes = [_seeds_note(settings), *_label_notes(settings),
             *(f"{s.dataset}: {p}" for s in settings for p in sorted(protocols.get((s.label, s.metric), ())))]
    return Table("survey-fusion", "Survey Experiment 3: early vs late vs intermediate fusion",
                 "Test score of a probe of the task label on each method's fused representation (fitted on train, "
                 "selected on val), with the method's parameter count. " + NO_PAPER,
                 ["Dataset", "Method", "Fusion", "Label", "Fused", "Params"], rows,
                 rule_before=frozenset(rules - {0}), notes=notes)


def survey_tables(store: Store, spec: SurveySpec, settings: Sequence[Setting]) -> list[Table]:
    return [missing_table(store, spec, settings), retrieval_table(store, spec, settings),
            fusion_table(store, spec, settings)]
