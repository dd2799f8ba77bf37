"""Linear probes on representation components (MultiLoReFT paper §5.1, Tables 1–2 and 4).

Protocol, for every (component, label) of a run:

- rows whose component is not valid, or whose label is missing (NaN), are skipped;
- features are standardised with the **train** mean and std (one standardisation per component,
  reused by every label);
- categorical label → multinomial logistic regression; for each C in ``c_grid`` a model is fitted
  on train and scored on val; the best val accuracy picks C (ties: the smaller C, i.e. the simpler
  model). Metrics on test: ``accuracy`` (plus ``f1`` for a label declared ``binary``) and
  ``silhouette`` (of the standardised test features grouped by the test labels, on at most
  ``silhouette_max`` rows);
- continuous label → ridge regression, alpha chosen on val MSE from ``alpha_grid``; every alpha
  and every continuous label is solved at once from one SVD of the component's train matrix:
  w(α) = V diag(s / (s² + α)) Uᵀ (y − ȳ). Metric on test: ``mse`` in the label's own units (plus,
  for a label declared ``sentiment``, the MSA metrics of the same predictions: ``acc7``, ``acc5``,
  ``acc2_has0``, ``acc2_non0``, ``f1_has0``, ``f1_non0``, ``corr``, ``mae``; and a logistic
  regression of the label binarised as y >= 0, selected like a categorical probe: ``accuracy_ge0``,
  the protocol of FactorCL and S3);
- k-shot (optional, categorical only): the same, fitted on k train examples per class (seeded),
  metric ``accuracy_<k>shot``.

Which metrics a label gets is `metrics.label_metrics` of its kind and declared scale
(``LabelSpec.scale`` in the manifest); the model, and how it is selected, are the same for all of
them. Every metric is a name of the metrics registry (`evaluate/metrics.py`), whose docstrings state
each rule exactly; :func:`score` computes through it. A metric undefined on the test rows (e.g. a
correlation with a constant prediction) writes no row and is named among the skipped.

A method's own prediction of a label (a component its run declares, `adapters/predictions.py`,
e.g. DLF's regression output) is not probed: its test rows are scored as they are with that label's
metrics, under a protocol that says so (`score_own_prediction`).

Only :func:`score` ever sees test labels: fitting and selection go through
:func:`fit_categorical` / :func:`fit_continuous`, which take train and val data and return a
model that predicts from test *features*. A run's probes are fitted once (:func:`fit_probes`,
:func:`fit_run`), which also fixes the test rows each one scores, then scored
(:func:`score_probes`, :func:`score_run`): on the components they were fitted on (`mmpipe probe`),
or on another version of the same test rows (the stress test, `pipeline/stress.py`, scores the
probes fitted on the clean train split on test rows whose inputs were corrupted). Splits come from the manifest (group-disjoint where the
dataset has groups), and every row records that protocol.

`probe_run` also scores cross-modal retrieval for every component pair the run's method declares to
embed two modalities in one space (`evaluate/retrieval.py`: zero-shot on the valid test rows, nothing
fitted), into ``ProbeOutcome.retrieval``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from mmpipe.adapters.predictions import OwnPrediction
from mmpipe.evaluate import metrics
from mmpipe.evaluate.retrieval import run_retrieval
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import SPLITS, LabelSpec, Manifest
from mmpipe.store.ranges import (
    MAX_ROWS,
    MIN_SPLIT_ROWS,
    POSITIVE,
    SEED,
    Checked,
    Length,
    between,
    check_split_rows,
)
from mmpipe.store.results import ProbeRow, RetrievalRow
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry


@dataclass(frozen=True)
class ProbeConfig(Checked):
    c_grid: Annotated[tuple[float, ...], POSITIVE, Length(1, None)] = (0.01, 0.1, 1.0, 10.0, 100.0)
    alpha_grid: Annotated[tuple[float, ...], POSITIVE, Length(1, None)] = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
    max_iter: Annotated[int, between(1, 1_000_000)] = 500
    silhouette_max: Annotated[int, between(MIN_SPLIT_ROWS, MAX_ROWS)] = 2000
    k_shot: Annotated[tuple[int, ...], between(1, MAX_ROWS)] = ()  # at most the smallest class of train
    seed: Annotated[int, SEED] = 0

    def describe(self, kind: str, k: int | None = None) -> str:
        if kind == "categorical":
            shots = f", {k}-shot per class" if k else ""
            return (f"logistic regression on train-standardised features{shots}, "
                    f"C∈{{{', '.join(f'{c:g}' for c in self.c_grid)}}} by val accuracy, scored on test")
        return (f"ridge regression on train-standardised features, "
                f"α∈{{{', '.join(f'{a:g}' for a in self.alpha_grid)}}} by val MSE, scored on test")


# -- fitting and selection: train + val only -------------------------------------------------------
@dataclass(frozen=True)
class Standardiser:
    mean: np.ndarray  # (r,)
    scale: np.ndarray  # (r,)

    @classmethod
    def fit(cls, x_train: np.ndarray) -> Standardiser:
        scale = x_train.std(axis=0)
        return cls(x_train.mean(axis=0), np.where(scale > 1e-12, scale, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


@dataclass(frozen=True)
class CategoricalProbe:
    model: LogisticRegression
    c: float
    val_accuracy: float

    def predict(self, x_test: np.ndarray) -> np.ndarray:
        return self.model.predict(x_test)


def fit_categorical(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                    c_grid: Sequence[float], max_iter: int = 500) -> CategoricalProbe:
    """Fit one logistic regression per C on train; keep the one with the best val accuracy.

    Raises ValueError if train holds fewer than two classes.
    """
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise ValueError(f"only one class ({classes[0]!r}) in train")
    best: CategoricalProbe | None = None
    model = None
    for c in sorted(c_grid):
        # warm start along the C path: each fit starts from the previous (more regularised) one
        model = LogisticRegression(C=c, max_iter=max_iter, warm_start=True) if model is None else model
        model.set_params(C=c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, y_train)
        accuracy = float((model.predict(x_val) == y_val).mean()) if len(y_val) else float("nan")
        if best is None or accuracy > best.val_accuracy:
            best = CategoricalProbe(_copy_model(model), c, accuracy)
    assert best is not None
    return best


def _copy_model(model: LogisticRegression) -> LogisticRegression:
    clone = LogisticRegression(**model.get_params())
    for attribute in ("coef_", "intercept_", "classes_", "n_iter_", "n_features_in_"):
        setattr(clone, attribute, np.copy(getattr(model, attribute)))
    return clone


@dataclass(frozen=True)
class ContinuousProbes:
    """Ridge models for several continuous labels of one component: weights (r, L), bias (L,)."""

    weights: np.ndarray  # (r, L)
    bias: np.ndarray  # (L,)
    alphas: np.ndarray  # (L,) chosen per label

    def predict(self, x_test: np.ndarray) -> np.ndarray:  # (n, L)
        return x_test @ self.weights + self.bias


def fit_continuous(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                   alpha_grid: Sequence[float]) -> ContinuousProbes:
    """Ridge for every label column of ``y_train`` (n, L) and every alpha from one SVD.

    ``y_train`` / ``y_val`` may hold NaN where a label is missing; those rows are left out of that
    label's fit and selection (its own SVD).
    """
    n_labels = y_train.shape[1]
    weights = np.zeros((x_train.shape[1], n_labels))
    bias = np.zeros(n_labels)
    alphas = np.zeros(n_labels)
    complete = ~np.isnan(y_train).any(axis=1)
    # labels observed on the same train rows share one SVD; others get their own
    for columns, rows in _row_groups(y_train, complete):
        w, b, a = _ridge_path(x_train[rows], y_train[rows][:, columns], x_val, y_val[:, columns], alpha_grid)
        weights[:, columns], bias[columns], alphas[columns] = w, b, a
    return ContinuousProbes(weights, bias, alphas)


def _row_groups(y: np.ndarray, complete: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    full = [j for j in range(y.shape[1]) if not np.isnan(y[:, j]).any()]
    groups = [(np.array(full), complete)] if full else []
    groups += [(np.array([j]), ~np.isnan(y[:, j])) for j in range(y.shape[1]) if j not in full]
    return groups


def _ridge_path(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                alpha_grid: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)  # (n, k), (k,), (k, r)
    uty = u.T @ (y - y_mean)  # (k, L)
    alpha = np.asarray(sorted(alpha_grid), dtype=np.float64)
    shrink = s[None, :] / (s[None, :] ** 2 + alpha[:, None])  # (A, k)
    w_path = np.einsum("rk,ak,kl->arl", vt.T, shrink, uty)  # (A, r, L)
    b_path = y_mean[None, :] - np.einsum("r,arl->al", x_mean, w_path)  # (A, L)
    pred = np.einsum("nr,arl->anl", x_val, w_path) + b_path[:, None, :]  # (A, n_val, L)
    err = (pred - y_val[None]) ** 2
    observed = ~np.isnan(y_val)[None]
    mse = np.where(observed, err, 0.0).sum(axis=1) / np.maximum(observed.sum(axis=1), 1)  # (A, L)
    best = len(alpha) - 1 - mse[::-1].argmin(axis=0)  # ties: the strongest regularisation
    columns = np.arange(y.shape[1])
    return w_path[best, :, columns].T, b_path[best, columns], alpha[best]


# -- scoring: the only place that sees test labels --------------------------------------------------
def score(metric: str, y_test: np.ndarray, prediction: np.ndarray) -> float | None:
    """The registered ``metric`` of a prediction on the test rows (None where it is undefined)."""
    return metrics.metric(metric).compute(y_test, prediction)


def silhouette(x_test: np.ndarray, y_test: np.ndarray, max_rows: int, seed: int) -> float | None:
    """The registered silhouette of the test features grouped by the test labels (None if undefined)."""
    return metrics.metric(metrics.SILHOUETTE).compute(x_test, y_test, max_rows, seed)


# -- orchestration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelData:
    """One label in manifest row order, split into train/val/test index arrays (valid rows only)."""

    spec: LabelSpec
    values: np.ndarray  # (N,) categorical codes (int) or float
    observed: np.ndarray  # (N,) bool: label present
    classes: tuple = ()


@dataclass
class ProbeOutcome:
    rows: list[ProbeRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per (component, label) not probed
    retrieval: list[RetrievalRow] = field(default_factory=list)  # `probe_run`'s zero-shot retrieval scores


def label_data(manifest: Manifest, names: Sequence[str] | None = None) -> list[LabelData]:
    """Labels as arrays; categorical values become integer codes (NaN/None = not observed)."""
    specs = [manifest.label(n) for n in names] if names is not None else list(manifest.labels)
    out = []
    for spec in specs:
        column = manifest.table[spec.name]
        observed = ~pd.isna(column).to_numpy()
        if spec.kind == "categorical":
            codes, classes = pd.factorize(column, sort=True)
            out.append(LabelData(spec, codes.astype(np.int64), observed & (codes >= 0), tuple(classes)))
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
            out.append(LabelData(spec, values, observed & np.isfinite(values)))
    return out


@dataclass(frozen=True)
class LabelProbe:
    """One fitted probe of a (component, label): ``model`` was fitted on train and selected on val;
    it predicts from the standardised features of the rows ``given`` (N,) bool, and of those the
    ``scored`` ones (n_given,) bool are scored against ``data``'s test labels."""

    data: LabelData
    model: CategoricalProbe | ContinuousProbes
    column: int | None  # the label's column of a continuous model
    given: np.ndarray  # (N,) bool
    scored: np.ndarray  # (n_given,) bool
    metrics: tuple[str, ...]
    protocol: str
    n_train: int
    silhouette: bool  # also the silhouette of the scored test features by label

    def predict(self, z_given: np.ndarray) -> np.ndarray:  # (n_given, r) → (n_given,)
        prediction = self.model.predict(z_given)
        return prediction if self.column is None else prediction[:, self.column]


@dataclass(frozen=True)
class FittedComponent:
    """A component's probes, fitted on its train rows (selected on val), and the test rows they
    score: fixed here, from the component they were fitted on, so any later version of the
    component's test rows (`score_probes`) is scored on exactly these rows."""

    name: str
    standardise: Standardiser  # train statistics
    test: np.ndarray  # (N,) bool: valid, finite test rows
    probes: tuple[LabelProbe, ...]


def fit_probes(components: Mapping[str, np.ndarray], valid: np.ndarray, manifest: Manifest,
               labels: Sequence[LabelData], config: ProbeConfig) -> tuple[list[FittedComponent], list[str]]:
    """Every component × label probe of one run, fitted on train and selected on val (no test row
    reaches a fit); and one line per (component, label) that cannot be probed. Components are
    (N, r) in manifest order."""
    split = manifest.table["split"].to_numpy()
    fitted, skipped = [], []
    for name, array in components.items():
        x = np.asarray(array, dtype=np.float64)
        usable = np.asarray(valid, dtype=bool) & np.isfinite(x).all(axis=1)
        train, val, test = (usable & (split == s) for s in ("train", "val", "test"))
        if not train.any():
            skipped.append(f"{name}: no valid train rows; nothing probed")
            continue
        standardise = Standardiser.fit(x[train])
        z = standardise(x)  # (N, r), train statistics only
        probes = _fit_categorical(z, name, train, val, test, [d for d in labels if d.spec.kind == "categorical"],
                                  manifest, config, skipped)
        probes += _fit_continuous(z, name, train, val, test, [d for d in labels if d.spec.kind == "continuous"],
                                  manifest, config, skipped)
        probes += _fit_binarised(z, name, train, val, test, [d for d in labels if d.spec.kind == "continuous"
                                                              and d.spec.scale in metrics.BINARISED_AT],
                                 manifest, config, skipped)
        fitted.append(FittedComponent(name, standardise, test, tuple(probes)))
    return fitted, skipped


def score_probes(fitted: Sequence[FittedComponent], components: Mapping[str, np.ndarray], manifest: Manifest,
                 config: ProbeConfig, run_id: str, outcome: ProbeOutcome) -> None:
    """Score fitted probes on ``components``' test rows (the rows fixed when they were fitted),
    standardised with the train statistics of the fit. A test row that is not finite here is
    refused: leaving it out would change the test set."""
    for component in fitted:
        x = np.asarray(components[component.name], dtype=np.float64)
        bad = int((~np.isfinite(x[component.test])).any(axis=1).sum())
        if bad:
            raise UserError(f"{run_id}: component {component.name} is NaN or infinite in {bad} test rows; "
                            "the test set cannot be scored as it was fitted")
        z = component.standardise(x)  # (N, r)
        for probe in component.probes:
            given = z[probe.given]
            prediction = probe.predict(given)[probe.scored]
            y_test = probe.data.values[probe.given][probe.scored]
            for name in probe.metrics:
                _add_score(outcome, run_id, component.name, probe.data.spec.name, name, y_test, prediction,
                           probe.protocol, probe.n_train, len(y_test))
            if probe.silhouette:
                sil = silhouette(given[probe.scored], y_test, config.silhouette_max, config.seed)
                if sil is not None:
                    outcome.rows.append(ProbeRow(run_id, component.name, probe.data.spec.name, metrics.SILHOUETTE,
                                                 sil, f"{manifest.split_protocol}; silhouette of train-standardised "
                                                 f"test features by label", probe.n_train, len(y_test)))


def probe_components(components: dict[str, np.ndarray], valid: np.ndarray, manifest: Manifest,
                     labels: Sequence[LabelData], config: ProbeConfig, run_id: str) -> ProbeOutcome:
    """Every component × every label of one run: fitted (`fit_probes`), then scored on the same
    components' test rows (`score_probes`). Components are (N, r) in manifest order."""
    fitted, skipped = fit_probes(components, valid, manifest, labels, config)
    outcome = ProbeOutcome(skipped=skipped)
    score_probes(fitted, components, manifest, config, run_id, outcome)
    return outcome


def _protocol(manifest: Manifest, config: ProbeConfig, kind: str, k: int | None = None) -> str:
    split = manifest.split_protocol or "manifest train/val/test split"
    return f"{split}; {config.describe(kind, k)}"


def _fit_categorical(z, component, train, val, test, labels, manifest, config, skipped) -> list[LabelProbe]:
    probes = []
    for data in labels:
        tr, va, te = (m & data.observed for m in (train, val, test))
        y = data.values
        for k in [None, *config.k_shot]:
            rows_tr = tr if k is None else _k_shot_rows(y, tr, k, config.seed)
            metric = metrics.ACCURACY if k is None else metrics.k_shot_name(k)
            present = np.unique(y[rows_tr])
            if len(present) < 2:
                problem = f"only one class ({data.classes[present[0]]!r}) in train" if len(present) \
                    else "no labelled train rows"
                skipped.append(f"{component} × {data.spec.name} ({metric}): {problem}; not probed")
                continue
            probe = fit_categorical(z[rows_tr], y[rows_tr], z[va], y[va], config.c_grid, config.max_iter)
            if not te.any():
                skipped.append(f"{component} × {data.spec.name}: no labelled test rows; not scored")
                break
            names = [metric] if k is not None else metrics.label_metrics(data.spec.kind, data.spec.scale)
            probes.append(LabelProbe(data, probe, None, te, np.ones(int(te.sum()), bool), tuple(names),
                                     _protocol(manifest, config, "categorical", k), int(rows_tr.sum()), k is None))
    return probes


def _k_shot_rows(y: np.ndarray, train: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k train rows per class, drawn with a fixed seed (all rows of a class with fewer than k)."""
    rng = np.random.default_rng(seed)
    keep = np.zeros_like(train)
    for cls in np.unique(y[train]):
        index = np.flatnonzero(train & (y == cls))
        keep[rng.choice(index, min(k, len(index)), replace=False)] = True
    return keep


def _fit_continuous(z, component, train, val, test, labels, manifest, config, skipped) -> list[LabelProbe]:
    if not labels:
        return []
    y = np.stack([np.where(d.observed, d.values, np.nan) for d in labels], axis=1)  # (N, L)
    fit_labels = [j for j, d in enumerate(labels) if (train & d.observed).sum() >= 2]
    for j, d in enumerate(labels):
        if j not in fit_labels:
            skipped.append(f"{component} × {d.spec.name}: fewer than 2 labelled train rows; not probed")
    if not fit_labels:
        return []
    y_fit = y[:, fit_labels]
    model = fit_continuous(z[train], y_fit[train], z[val], y_fit[val], config.alpha_grid)
    protocol = _protocol(manifest, config, "continuous")
    probes = []
    for column, j in enumerate(fit_labels):
        data = labels[j]
        te = data.observed[test]
        if not te.any():
            skipped.append(f"{component} × {data.spec.name}: no labelled test rows; not scored")
            continue
        probes.append(LabelProbe(data, model, column, test, te,
                                 tuple(metrics.label_metrics(data.spec.kind, data.spec.scale)), protocol,
                                 int((train & data.observed).sum()), False))
    return probes


def binarised(data: LabelData, threshold: float) -> LabelData:
    """A continuous label as two classes, 0: y < threshold and 1: y >= threshold (observed rows)."""
    values = np.where(data.observed, data.values >= threshold, False).astype(np.int64)  # (N,)
    return LabelData(data.spec, values, data.observed, (f"y<{threshold:g}", f"y>={threshold:g}"))


def _fit_binarised(z, component, train, val, test, labels, manifest, config, skipped) -> list[LabelProbe]:
    """The classifier probe of a continuous label's binarised value (`metrics.BINARISED_AT`)."""
    probes = []
    for data in labels:
        threshold, metric = metrics.BINARISED_AT[data.spec.scale]
        classes = binarised(data, threshold)
        tr, va, te = (m & data.observed for m in (train, val, test))
        if len(np.unique(classes.values[tr])) < 2 or not te.any():
            skipped.append(f"{component} × {data.spec.name} ({metric}): one class or no labelled test rows "
                           f"at y >= {threshold:g}; not probed")
            continue
        probe = fit_categorical(z[tr], classes.values[tr], z[va], classes.values[va], config.c_grid, config.max_iter)
        protocol = f"{_protocol(manifest, config, 'categorical')}; the label binarised as y >= {threshold:g}"
        probes.append(LabelProbe(classes, probe, None, te, np.ones(int(te.sum()), bool), (metric,), protocol,
                                 int(tr.sum()), False))
    return probes


def _add_score(outcome: ProbeOutcome, run_id: str, component: str, label: str, metric: str, y_test: np.ndarray,
               prediction: np.ndarray, protocol: str, n_train: int, n_test: int) -> None:
    """Score one metric of a prediction on the test rows: a row, or a skipped line where it is undefined."""
    value = score(metric, y_test, prediction)
    if value is None:
        outcome.skipped.append(f"{component} × {label} ({metric}): undefined on the {n_test} test rows; not scored")
        return
    outcome.rows.append(ProbeRow(run_id, component, label, metric, value, protocol, n_train, n_test))


def check_probe_data(manifest: Manifest, config: ProbeConfig, labels: Sequence[str] | None, run_id: str) -> None:
    """Refuse (one line, before anything is probed) data no probe can be scored on: a split of
    fewer than `MIN_SPLIT_ROWS` rows, or a k-shot k above the train rows of a class of a probed
    categorical label (fewer examples than asked would silently be a different k)."""
    counts = manifest.table["split"].value_counts()
    check_split_rows({s: int(counts.get(s, 0)) for s in SPLITS}, f"probe {run_id} ({manifest.dataset})",
                     "probes need more rows there")
    if not config.k_shot:
        return
    k = max(config.k_shot)
    train = (manifest.table["split"] == "train").to_numpy()
    for data in label_data(manifest, labels):
        if data.spec.kind != "categorical":
            continue
        rows = data.values[train & data.observed]
        if not len(rows):
            continue  # no labelled train rows: that label is skipped and named while probing
        present, sizes = np.unique(rows, return_counts=True)
        if sizes.min() < k:
            smallest = data.classes[present[sizes.argmin()]]
            raise UserError(f"k_shot {k}: class {smallest!r} of {data.spec.name} has {sizes.min()} train rows in "
                            f"{manifest.dataset}; use k <= {sizes.min()}, or leave {data.spec.name} out with --label")


@dataclass(frozen=True)
class OwnPredictionTest:
    """How a method's own prediction of a label is scored: the valid, labelled test rows where its
    stored prediction is finite (fixed here, like a probe's test rows); nothing is fitted."""

    own: OwnPrediction
    data: LabelData
    test: np.ndarray  # (N,) bool
    n_train: int
    protocol: str

    @classmethod
    def of(cls, prediction: np.ndarray, valid: np.ndarray, manifest: Manifest, own: OwnPrediction) -> OwnPredictionTest:
        data = label_data(manifest, [own.label])[0]
        x = _own_column(prediction, len(valid))
        split = manifest.table["split"].to_numpy()
        usable = np.asarray(valid, dtype=bool) & data.observed & np.isfinite(x)
        protocol = (f"{manifest.split_protocol or 'manifest train/val/test split'}; the method's own prediction "
                    f"({own.how}), scored on test as it is")
        return cls(own, data, usable & (split == "test"), int((usable & (split == "train")).sum()), protocol)


def _own_column(prediction: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(prediction, dtype=np.float64).reshape(n, -1)[:, 0]  # (N,)


def score_own_prediction(outcome: ProbeOutcome, prediction: np.ndarray, scoring: OwnPredictionTest,
                         run_id: str) -> None:
    """Score a method's own prediction (``prediction`` (N, 1), manifest row order) on the rows of
    ``scoring`` with the label's metrics."""
    own, data, test = scoring.own, scoring.data, scoring.test
    if not test.any():
        outcome.skipped.append(f"{own.component} × {own.label}: no labelled test rows; not scored")
        return
    x = _own_column(prediction, len(test))
    if not np.isfinite(x[test]).all():
        raise UserError(f"{run_id}: {own.component} is NaN or infinite in test rows; the test set cannot be "
                        "scored as it was")
    for name in metrics.label_metrics(data.spec.kind, data.spec.scale):
        _add_score(outcome, run_id, own.component, own.label, name, data.values[test], x[test], scoring.protocol,
                   scoring.n_train, int(test.sum()))


@dataclass(frozen=True)
class RunProbes:
    """A run's probes, fitted on its stored components (train rows, selected on val), ready to
    score those components or any other version of their test rows (`score_run`)."""

    run_id: str
    manifest: Manifest
    config: ProbeConfig
    components: dict[str, np.ndarray]  # as stored, (N, r) each, the own prediction included
    valid: np.ndarray  # (N,) bool: the run's valid rows
    fitted: list[FittedComponent]
    skipped: list[str]  # what cannot be probed, whichever test rows are scored
    own: OwnPredictionTest | None


def fit_run(store: Store, run: RunEntry, config: ProbeConfig = ProbeConfig(),
            labels: Sequence[str] | None = None, components: Sequence[str] | None = None) -> RunProbes:
    """Fit the probes of one stored run against the labels of the manifest it was trained on."""
    record = run.record
    dataset = record.dataset
    manifest = store.manifest(dataset, record.manifest_version)
    check_probe_data(manifest, config, labels, run.run_id)
    arrays = {k: v.numpy() for k, v in run.components(list(components) if components else None).items()}
    valid = run.valid()
    if len(valid) != len(manifest):
        raise UserError(f"run {run.run_id} has {len(valid)} rows but manifest {dataset} has {len(manifest)}")
    own = OwnPrediction.of(record.history)
    probed = {k: v for k, v in arrays.items() if own is None or k != own.component}
    fitted, skipped = fit_probes(probed, valid, manifest, label_data(manifest, labels), config)
    scoring = None
    if own is not None and own.component in arrays and (labels is None or own.label in labels):
        scoring = OwnPredictionTest.of(arrays[own.component], valid, manifest, own)
    return RunProbes(run.run_id, manifest, config, arrays, np.asarray(valid, dtype=bool), fitted, skipped, scoring)


def score_run(probes: RunProbes, components: Mapping[str, np.ndarray] | None = None) -> ProbeOutcome:
    """Score a run's fitted probes on ``components`` (default: the stored ones they were fitted on)."""
    components = probes.components if components is None else components
    outcome = ProbeOutcome(skipped=list(probes.skipped))
    score_probes(probes.fitted, components, probes.manifest, probes.config, probes.run_id, outcome)
    if probes.own is not None:
        score_own_prediction(outcome, components[probes.own.own.component], probes.own, probes.run_id)
    return outcome


def probe_run(store: Store, run: RunEntry, config: ProbeConfig = ProbeConfig(),
              labels: Sequence[str] | None = None, components: Sequence[str] | None = None) -> ProbeOutcome:
    """Probe one stored run against the labels of the manifest it was trained on, and score the
    cross-modal retrieval of its declared pairs among ``components`` (all by default)."""
    probes = fit_run(store, run, config, labels, components)
    outcome = score_run(probes)
    found = run_retrieval(run.record, run.run_id, probes.components, probes.valid, probes.manifest)
    outcome.retrieval, outcome.skipped = found.rows, outcome.skipped + found.skipped
    return outcome


def probe_runs(store: Store, runs: Sequence[RunEntry], config: ProbeConfig = ProbeConfig(),
               labels: Sequence[str] | None = None, components: Sequence[str] | None = None,
               on_done: Callable[[RunEntry, ProbeOutcome], None] | None = None) -> dict[str, ProbeOutcome]:
    """Probe several runs in this process, one after another (no per-probe start-up)."""
    outcomes = {}
    for run in runs:
        outcome = probe_run(store, run, config, labels, components)
        outcomes[run.run_id] = outcome
        if on_done is not None:
            on_done(run, outcome)
    return outcomes
