"""`mmpipe reproduce survey`'s workflow (what it shows: `evaluate/reproduce_survey.py`): per dataset,
fit every method × seed on the dataset's first two modalities (`pipeline/reproduce.fit_table`,
reusing published runs), probe the runs that have no probe rows (every component × label, and
retrieval, as `mmpipe probe` does), then stress each run's components of interest for each of its
modalities with `mmpipe stress`'s workflow (`pipeline/stress.py`), for the dataset's task label.
Rate 0 gives `mmpipe probe`'s score of the same probe (for a continuous label up to floating-point
rounding, ~1e-16 relative: the probe solves the ridge of every continuous label of a component at
once, the stress that of the task label alone).

A stress already stored is not redone: a run whose stress rows of this corruption (modality, mode,
seed, the survey's rates) already hold every (component of interest, task label) is skipped. When
rows of that corruption exist but lack them (a narrower `mmpipe stress` before), the new stress
scores the union of the components and of the labels stored and those the survey needs (and the
k-shot probes stored), since a stress replaces the rows of its corruption at its rates: nothing
stored is lost.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from mmpipe.adapters.registry import METHODS
from mmpipe.evaluate import reproduce_survey as survey
from mmpipe.evaluate.metrics import k_shot_name
from mmpipe.evaluate.metrics import metric as metric_of
from mmpipe.evaluate.probes import ProbeConfig
from mmpipe.evaluate.reproduce import TableSpec, probe_missing
from mmpipe.evaluate.results import save_stress
from mmpipe.pipeline.reproduce import fit_table
from mmpipe.pipeline.stress import StressConfig, stress_run
from mmpipe.store.results import fetch, reading
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

Progress = Callable[[str], None]
K_SHOT = re.compile(metric_of(k_shot_name(1)).pattern)  # the k-shot accuracies' names; group k


@dataclass(frozen=True)
class SurveyOutcome:
    settings: tuple[survey.Setting, ...]
    left_out: tuple[str, ...]  # one line per (method, dataset) that does not apply
    probed: int  # runs newly probed
    stressed: int  # (run, modality) stresses newly scored


def run_survey(store: Store, spec: survey.SurveySpec, seeds: list[int], versions: dict[str, str],
               max_epochs: int | None = None, progress: Progress | None = None, jobs: int = 1,
               overrides: list[str] | None = None) -> SurveyOutcome:
    """Fit, probe and stress everything the survey's tables need on the datasets of ``versions``
    (dataset → manifest version), in the survey's dataset order."""
    say = progress or (lambda message: None)
    settings, left_out, probed, stressed = [], [], 0, 0
    for dataset in [d for d in spec.table.datasets if d in versions]:
        manifest = store.manifest(dataset, versions[dataset])
        label, metric = survey.task_label(manifest)
        tables, lines = spec.for_dataset(manifest)
        left_out += lines
        runs = [run for table in tables for run in fit_table(store, table, seeds, {dataset: versions[dataset]},
                                                             max_epochs, progress=say, jobs=jobs,
                                                             overrides=_taken(table, overrides or []))]
        probed += probe_missing(store, runs, progress=say)
        for index, run in enumerate(runs, 1):
            for modality in run.record.inputs:
                say(f"survey: stressing [{index}/{len(runs)}] {run.run_id}: {modality} {spec.mode}")
                stressed += _stress(store, run, modality, spec.mode, label)
        settings.append(survey.Setting(dataset, tuple(runs), label, metric))
    return SurveyOutcome(tuple(settings), tuple(left_out), probed, stressed)


def _taken(table: TableSpec, overrides: list[str]) -> list[str]:
    """The ``--set`` items some method of ``table`` has a field for (all were checked against the
    survey's methods; a method left out on this dataset takes none here)."""
    fields = {f.name for method, _ in table.fits for f in dataclasses.fields(METHODS.get(method).Config)}
    return [item for item in overrides if item.partition("=")[0].strip() in fields]


def _stress(store: Store, run: RunEntry, modality: str, mode: str, label: str) -> int:
    """Stress one run's modality unless its rows are stored (module docstring); 1 if it was scored."""
    config = StressConfig(modality, survey.RATES, mode, None, survey.STRESS_SEED)
    wanted = {(c, label) for c in survey.components_of(run)}
    stored = _stored(store, config, run.run_id)
    scored = {rate: {(row["component"], row["label"]) for row in stored if row["rate"] == rate}
              for rate in survey.RATES}
    if all(wanted <= scored[rate] for rate in survey.RATES):
        return 0
    kept = set().union(*scored.values()) | wanted
    k_shot = tuple(sorted({int(m["k"]) for row in stored if (m := K_SHOT.fullmatch(row["metric"]))}))
    outcome = stress_run(store, run, config, ProbeConfig(k_shot=k_shot), sorted({lab for _, lab in kept}),
                         sorted({c for c, _ in kept}))
    save_stress(store, run, config.key(run.run_id), outcome.rows)
    return 1


def _stored(store: Store, config: StressConfig, run_id: str) -> list[dict]:
    """The run's stress rows of this corruption at the survey's rates."""
    if not store.results_db.exists():
        return []
    with reading(store.results_db) as conn:
        return fetch(conn, "SELECT rate, component, label, metric FROM stress WHERE run_id = ? AND modality = ? "
                           "AND mode = ? AND noise_std IS NULL AND corruption_seed = ? AND list_contains(?, rate)",
                     [run_id, config.modality, config.mode, config.seed, list(config.rates)])
