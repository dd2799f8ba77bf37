"""The stress test: how a fitted run's representation degrades when one modality is missing or
corrupted in part of the test set (the fusion survey's protocol: remove 0 %, 20 %, 40 %, 60 % of
one modality's inputs at evaluation time and compare factorised with monolithic fusion).

For one run, one modality m and increasing rates r (`evaluate/corruption.py` states each rule):

1. the run's model is rebuilt from its checkpoint and its inputs are loaded as the fit loaded
   them (the same feature entries, checked by fingerprint; pooled as the run records);
2. the probes are fitted on the run's stored, clean components, exactly as `mmpipe probe` fits
   them (train rows, selected on val; `evaluate/probes.fit_run`), once;
3. per rate, the seeded, nested choice of ⌊r·n + ½⌋ of the n valid test rows gets modality m
   corrupted (the method's own missing-input rule for ``drop``; else zeros, the train mean or
   added Gaussian noise), ``transform(inputs, lengths)`` is re-run on every row in manifest order
   (as the fit ran it, so a method whose output for a row depends on its batch-mates sees the
   corrupted rows where it would), and the test rows take the new components; train and val rows
   keep their stored ones;
4. the same fitted probes score the test rows (`evaluate/probes.score_run`): the same rows and
   the same labels at every rate, so the curve over rates measures the corruption only. At rate 0
   no row is corrupted and the scores are `mmpipe probe`'s.

**Why the probes are not refitted on corrupted data.** The question is how the representation
degrades for a fixed downstream model — the one a user fitted on clean data and deploys. Refitting
a probe on corrupted components would measure a different thing: how well a new model can be
trained on degraded representations, which hides a representation whose geometry moved (a probe
refitted on shifted features adapts to the shift). Corruption touches test rows only; train and
val stay clean, so nothing fitted or selected ever sees a corrupted row.

Before anything is scored, the rebuilt model must reproduce the run's stored components from the
clean inputs (within ``REPRODUCE_TOLERANCE`` of their scale): a checkpoint that does not is
refused rather than compared with components it did not produce. A rate that corrupts no row
scores the stored components themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import torch

from mmpipe.adapters.checkpoint import load_model
from mmpipe.adapters.data import MultimodalFeatures, load_features
from mmpipe.adapters.registry import METHODS
from mmpipe.evaluate import corruption
from mmpipe.evaluate.probes import ProbeConfig, check_probe_data, fit_run, score_run
from mmpipe.store.errors import UserError
from mmpipe.store.ranges import POSITIVE, SEED, SHARE, Checked, Length
from mmpipe.store.results import StressKey, StressRow
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

REPRODUCE_TOLERANCE = 1e-3  # max |rebuilt − stored| ≤ tolerance · (1 + max |stored|), per component


@dataclass(frozen=True)
class StressConfig(Checked):
    """One corruption: modality, rates (increasing, in [0, 1)), mode, noise std (noise only), seed."""

    modality: str
    rates: Annotated[tuple[float, ...], SHARE, Length(1, corruption.MAX_RATES)]
    mode: Literal["drop", "zero", "mean", "noise"] = "zero"
    noise_std: Annotated[float | None, POSITIVE] = None
    seed: Annotated[int, SEED] = 0

    def check(self) -> None:
        corruption.check_rates(self.rates)
        if self.mode == "noise" and self.noise_std is None:
            raise UserError("--mode noise needs --noise-std S (the noise's standard deviation)")
        if self.mode != "noise" and self.noise_std is not None:
            raise UserError(f"--noise-std applies to --mode noise only, not --mode {self.mode}")

    def key(self, run_id: str) -> StressKey:
        return StressKey(run_id, self.modality, self.mode, self.noise_std, self.seed, self.rates)


@dataclass
class StressOutcome:
    rows: list[StressRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what was not scored (each line once)
    corrupted: dict[float, int] = field(default_factory=dict)  # rate -> rows corrupted
    n_candidates: int = 0  # valid test rows


def resolve_runs(store: Store, run_or_method: str, dataset: str | None, modality: str) -> list[RunEntry]:
    """A run id (or unique prefix); or a method name: every run of that method on ``dataset`` that
    took ``modality`` as an input."""
    if run_or_method in METHODS.names():
        if dataset is None:
            raise UserError(f"{run_or_method} is a method: name the dataset of its runs with --dataset")
        runs = [r for r in store.runs(run_or_method) if r.record.dataset == dataset]
        if not runs:
            raise UserError(f"the store holds no {run_or_method} run on {dataset}; fit one with "
                            f"`mmpipe fit {run_or_method} --dataset {dataset}`")
        taking = [r for r in runs if modality in r.record.inputs]
        if not taking:
            seen = sorted({m for r in runs for m in r.record.inputs})
            raise UserError(f"no {run_or_method} run on {dataset} took --modality {modality} as an input "
                            f"(their inputs: {', '.join(seen)})")
        return taking
    run = store.run(run_or_method)
    if dataset is not None and run.record.dataset != dataset:
        raise UserError(f"--dataset {dataset}: run {run.run_id} was fitted on {run.record.dataset}")
    return [run]


def check_run(store: Store, run: RunEntry, config: StressConfig, probe_config: ProbeConfig = ProbeConfig(),
              labels: Sequence[str] | None = None, components: Sequence[str] | None = None) -> None:
    """Refuse (one line, before any work) a stress the run cannot take: a modality it was not
    fitted on, ``drop`` for a method without its own missing-input rule, an unknown label or
    component, data its probes cannot be scored on."""
    record = run.record
    if config.modality not in record.inputs:
        raise UserError(f"run {run.run_id} was fitted on {', '.join(record.inputs)}; --modality {config.modality} "
                        "is not one of its inputs")
    if config.mode == "drop" and not issubclass(METHODS.get(run.method), corruption.HandlesMissing):
        raise UserError(f"{run.method} has no missing-input rule of its own, so --mode drop cannot apply; "
                        "use --mode zero, mean or noise")
    unknown = [c for c in components or () if c not in run.component_names()]
    if unknown:
        raise UserError(f"run {run.run_id} has no component {unknown[0]!r}; valid: {', '.join(run.component_names())}")
    manifest = store.manifest(record.dataset, record.manifest_version)
    for name in labels or ():
        manifest.label(name)
    check_probe_data(manifest, probe_config, labels, run.run_id)


def run_features(store: Store, run: RunEntry) -> MultimodalFeatures:
    """The inputs the run was fitted on: its feature entries (checked by fingerprint), pooled as it records."""
    record = run.record
    poolings = set(record.pooling.values())
    if len(poolings) > 1:
        raise UserError(f"run {run.run_id} pooled its inputs in several ways ({', '.join(sorted(poolings))}); "
                        "the stress test loads them one way")
    features = {m: name.rsplit(".", 1)[-1] for m, name in record.inputs.items()}
    data = load_features(store, record.dataset, features, record.manifest_version,
                         next(iter(poolings)) if poolings else None)
    for item in data.inputs:
        if item.entry.fingerprint != record.input_fingerprints.get(item.modality):
            raise UserError(f"run {run.run_id} was fitted on another {item.entry.name} entry than the one stored now; "
                            "the stress test needs the features the run saw")
    if not np.array_equal(data.valid.numpy(), run.valid()):
        raise UserError(f"run {run.run_id}'s valid rows differ from those of its stored features")
    return data


def stress_run(store: Store, run: RunEntry, config: StressConfig, probe_config: ProbeConfig = ProbeConfig(),
               labels: Sequence[str] | None = None, components: Sequence[str] | None = None) -> StressOutcome:
    """Score the run's clean-fitted probes on its test rows at every rate of ``config`` (module docstring)."""
    check_run(store, run, config, probe_config, labels, components)
    data = run_features(store, run)
    probes = fit_run(store, run, probe_config, labels, components)
    split = probes.manifest.table["split"].to_numpy()
    candidates = np.flatnonzero(run.valid() & (split == "test"))
    versions = corrupted_versions(load_model(run).cpu(), data, probes.components, config, candidates, run.run_id)
    protocol = corruption.describe(config.mode, config.modality, config.noise_std, config.seed)
    outcome = StressOutcome(n_candidates=len(candidates))
    for rate, (count, arrays) in versions.items():
        outcome.corrupted[rate] = count
        scored = score_run(probes, arrays)
        outcome.skipped += [line for line in scored.skipped if line not in outcome.skipped]
        outcome.rows += [StressRow(run.run_id, config.modality, config.mode, config.noise_std, config.seed, rate,
                                   count, r.component, r.label, r.metric, r.value, f"{r.protocol}; {protocol}",
                                   r.n_train, r.n_test) for r in scored.rows]
    return outcome


def corrupted_versions(model: torch.nn.Module, data: MultimodalFeatures, clean: Mapping[str, np.ndarray],
                       config: StressConfig, candidates: np.ndarray, run_id: str = "the run"
                       ) -> dict[float, tuple[int, dict[str, np.ndarray]]]:
    """rate → (rows corrupted, the components with modality m corrupted in those rows).

    ``clean`` holds the stored components (N, r) the model produced; ``candidates`` the rows that
    may be corrupted (the valid test rows). At a rate that corrupts no row the components are
    ``clean`` itself. Otherwise the model's transform runs on every row, in manifest order as the
    fit ran it, with the corrupted rows in place, and each candidate row takes its new
    components (the other rows keep ``clean``): a method whose transform depends on a row's
    batch-mates (S3 keeps the top ρ of a batch's (token, expert) pairs) sees the corrupted rows
    in the batches it would. The model must first reproduce ``clean`` from the clean inputs."""
    order = corruption.row_order(candidates, config.seed)  # (n,) π
    counts = {rate: corruption.corrupted_count(rate, len(order)) for rate in config.rates}
    most = torch.from_numpy(order[:max(counts.values())])  # the rows corrupted at the largest rate, π order
    if not len(most):
        return {rate: (0, dict(clean)) for rate in config.rates}
    _check_reproduces(model, data, clean, run_id)
    m = config.modality
    lengths = data.lengths
    filled = _filled(data, config, most)  # (k, D) or (k, T, D): m in the corrupted rows, π order
    versions = {}
    for rate, count in counts.items():
        if count == 0:
            versions[rate] = (0, dict(clean))
            continue
        rows = most[:count]  # a prefix of π: nested across rates
        x = data.values[m].clone()
        x[rows] = filled[:count]
        inputs = {**data.values, m: x}
        if config.mode == "drop":
            missing = torch.zeros(len(x), dtype=torch.bool)
            missing[rows] = True
            out = model.transform_missing(inputs, lengths, {m: missing})
        else:
            out = model.transform(inputs, lengths)
        arrays = {}
        for name, stored in clean.items():
            array = stored.copy()
            array[candidates] = out[name].detach().cpu().float().numpy()[candidates]
            arrays[name] = array
        versions[rate] = (count, arrays)
    return versions


def _filled(data: MultimodalFeatures, config: StressConfig, rows: torch.Tensor) -> torch.Tensor:
    """Modality m of ``rows`` (k,) as the mode fills it (zeros for ``drop``: a rule that reads an
    absent row anyway gains nothing)."""
    m = config.modality
    values = data.values[m]
    lengths = None if data.lengths is None else data.lengths.get(m)
    picked, picked_lengths = values[rows], None if lengths is None else lengths[rows]
    if config.mode == "drop":
        return corruption.zero_fill(picked)
    mean = corruption.train_mean(values, lengths, data.split_index["train"]) if config.mode == "mean" else None
    noise = corruption.noise_draw(tuple(picked.shape), config.noise_std, config.seed) \
        if config.mode == "noise" else None
    return corruption.fill(config.mode, picked, picked_lengths, mean, noise)


def _check_reproduces(model: torch.nn.Module, data: MultimodalFeatures, stored: Mapping[str, np.ndarray],
                      run_id: str) -> None:
    """The rebuilt model gives the stored components of the valid rows from the clean inputs, or
    the run is refused."""
    rebuilt = model.transform(data.values, data.lengths)
    valid = data.valid.numpy()
    for name, values in stored.items():
        expected = values[valid]
        got = rebuilt[name].detach().cpu().float().numpy()[valid]
        gap = float(np.abs(got - expected).max()) if len(expected) else 0.0
        if not gap <= REPRODUCE_TOLERANCE * (1 + float(np.abs(expected).max(initial=0.0))):
            raise UserError(f"{run_id}: the model rebuilt from its checkpoint gives component {name} "
                            f"{gap:.3g} away from the stored one on the clean inputs; it cannot be stress-tested")
