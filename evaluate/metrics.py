"""The metrics registry: every score a probe writes is one of these names.

A metric is a registered name with its direction (is a higher value better?), a short display
name for table headers, and the exact rule, which is the docstring of the function that computes
it. The probes compute through it, Δ and the report orient and label their numbers by it, and the
results DB's views read the same directions (``evaluate/views.py`` turns the registry into the
``metrics`` view), so a new metric is one registered function here.

A *family* of metrics shares one rule and one direction under a name pattern: the k-shot
accuracies ``accuracy_<k>shot`` (:func:`k_shot_name`). :func:`metric` resolves a concrete name
(``accuracy_5shot``) to its family; an unknown name raises an error that lists the valid ones.

Which metrics a label gets is :func:`label_metrics`: by its kind, and by the scale its manifest
declares (``LabelSpec.scale``, `store/manifest.py`). A categorical label: ``accuracy``; one declared
``binary``: also ``f1`` (support-weighted). A continuous label: ``mse``; one declared ``sentiment``
(an MSA sentiment score on [−3, 3], CMU-MOSI/MOSEI): also the MSA metrics as MMSA's regression
``MetricsTop`` computes them (``mae``, ``corr``, ``acc7``, ``acc5``, ``acc2_has0``, ``f1_has0``,
``acc2_non0``, ``f1_non0``). The binarisation that produced a two-class number is part of its
metric name (``_has0``: zero counts as positive; ``_non0``: rows whose label is zero are dropped),
so the two conventions can never be mixed in one column.

Cross-modal retrieval (`evaluate/retrieval.py`, which states the formula and computes it) scores no
label: recall at k, the family ``recall_at_<k>`` (R@1, R@5, R@10), and ``median_rank``, registered
here from retrieval's own functions so their directions have one source.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from mmpipe.evaluate import retrieval
from mmpipe.store.errors import UnknownNameError
from mmpipe.store.registry import Registry


@dataclass(frozen=True)
class Metric:
    """One metric (or a family of them, when ``pattern`` has a group: e.g. the k of k-shot)."""

    name: str  # "accuracy", or for a family its template, "accuracy_<k>shot"
    display: str  # table header: "Acc", "MSE"; a family's names its pattern's groups, "Acc {k}-shot"
    higher_is_better: bool
    rule: str  # the docstring of ``compute``: exactly what the number is
    compute: Callable[..., float | None]
    pattern: str  # a regular expression matching exactly the names of this metric (RE2-compatible)

    @property
    def template(self) -> str:
        """The display name with each group of a family's pattern written ``<k>``."""
        return self.display.format(**{g: f"<{g}>" for g in re.compile(self.pattern).groupindex})

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def sign(self) -> float:
        """+1 when higher is better, −1 otherwise: ``sign * value`` is larger-is-better."""
        return 1.0 if self.higher_is_better else -1.0


METRICS: Registry[Metric] = Registry("metric")


def registered(name: str, display: str, *, higher_is_better: bool,
               pattern: str | None = None) -> Callable[[Callable[..., float | None]], Callable[..., float | None]]:
    """Decorator: register ``compute`` as metric ``name``; its docstring is the metric's rule."""

    def add(compute: Callable[..., float | None]) -> Callable[..., float | None]:
        rule = inspect.getdoc(compute)
        if not rule:
            raise ValueError(f"metric {name!r}: its function needs a docstring stating the exact rule")
        METRICS.register(name)(Metric(name, display, higher_is_better, " ".join(rule.split()), compute,
                                      pattern or re.escape(name)))
        return compute

    return add


def metric(name: str) -> Metric:
    """The metric called ``name``: a registered name, or a member of a registered family (then
    with its concrete name and display, e.g. ``accuracy_5shot`` → "Acc 5-shot")."""
    if name in METRICS:
        return METRICS.get(name)
    for family in (METRICS.get(n) for n in METRICS.names()):
        match = re.fullmatch(family.pattern, name)
        if match:
            return replace(family, name=name, display=family.display.format(**match.groupdict()))
    raise UnknownNameError(f"unknown metric {name!r}; valid: {', '.join(METRICS.names())}")


def higher_is_better(name: str) -> bool:
    return metric(name).higher_is_better


def display(name: str) -> str:
    return metric(name).display


# -- the metrics the probes produce ---------------------------------------------------------------
ACCURACY = "accuracy"
F1 = "f1"
MSE = "mse"
SILHOUETTE = "silhouette"
MAE, CORR, ACC7, ACC5 = "mae", "corr", "acc7", "acc5"
ACC2_HAS0, F1_HAS0, ACC2_NON0, F1_NON0 = "acc2_has0", "f1_has0", "acc2_non0", "f1_non0"
# the MSA metrics, in the column order of the DLF paper's Table 1 (Acc-7, Acc-5, Acc-2, F1, Corr, MAE),
# each two-class metric in both binarisations (DLF's own Acc-2 / F1 are the non0 ones)
MSA = (ACC7, ACC5, ACC2_HAS0, ACC2_NON0, F1_HAS0, F1_NON0, CORR, MAE)
# a continuous label declared ``sentiment`` also gets a classifier probe of its binarised value (y >= 0)
ACCURACY_GE0 = "accuracy_ge0"
BINARISED_AT = {"sentiment": (0.0, ACCURACY_GE0)}  # declared scale → (threshold, metric of the classifier probe)
# the headline metric of a label of each kind (the one its table column shows)
HEADLINE = {"categorical": ACCURACY, "continuous": MSE}
# the metrics of a label by (kind, declared scale); "" = no scale declared. The probe fits one model
# per label (C by val accuracy, α by val MSE) and scores its test predictions with each of these.
LABEL_METRICS = {
    ("categorical", ""): (ACCURACY,),
    ("categorical", "binary"): (ACCURACY, F1),
    ("continuous", ""): (MSE,),
    ("continuous", "sentiment"): (MSE, *MSA),
}


def headline(kind: str) -> str:
    """The metric a label of this kind (categorical / continuous) is reported by."""
    return HEADLINE[kind]


def label_metrics(kind: str, scale: str = "") -> tuple[str, ...]:
    """The metrics a probe scores a label of this kind and declared scale by (headline first)."""
    try:
        return LABEL_METRICS[(kind, scale)]
    except KeyError:
        valid = ", ".join(f"{k}/{s or '-'}" for k, s in LABEL_METRICS)
        raise UnknownNameError(f"no metrics for a {kind} label of scale {scale!r}; valid: {valid}") from None


def k_shot_name(k: int) -> str:
    """The name of the k-shot accuracy: ``accuracy_<k>shot``."""
    return f"{ACCURACY}_{k}shot"


@registered(ACCURACY, "Acc", higher_is_better=True)
def accuracy(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Fraction of the labelled test rows whose predicted class equals the true class, the
    classifier (logistic regression) fitted on all labelled train rows and its C chosen on val."""
    return float(np.mean(prediction == y_test))


@registered(ACCURACY_GE0, "Acc-2 (logistic, y≥0)", higher_is_better=True)
def accuracy_ge0(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Fraction of the labelled test rows whose predicted class equals the true class, where the
    classes are a continuous label binarised as y >= 0 (positive) vs y < 0 (FactorCL's and S3's
    binarisation of MOSI/MOSEI sentiment) and the classifier is a logistic regression fitted on the
    binarised train rows, its C chosen on val accuracy: the probe the S3 paper reports, unlike
    ``acc2_has0``, which binarises a ridge regression's prediction of the score."""
    return float(np.mean(prediction == y_test))


@registered("accuracy_<k>shot", "Acc {k}-shot", higher_is_better=True, pattern=r"accuracy_(?P<k>[0-9]+)shot")
def k_shot_accuracy(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Fraction of the labelled test rows whose predicted class equals the true class, the
    classifier fitted on k train rows per class (drawn with the probe seed; every row of a class
    with fewer) and its C chosen on val."""
    return float(np.mean(prediction == y_test))


@registered(MSE, "MSE", higher_is_better=False)
def mse(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Mean over the labelled test rows of (prediction − label)², in float64 and in the label's own
    units (no standardisation of the label), the ridge α chosen on val MSE."""
    return float(np.mean((prediction.astype(np.float64) - y_test.astype(np.float64)) ** 2))


@registered(SILHOUETTE, "Sil", higher_is_better=True)
def silhouette(x_test: np.ndarray, y_test: np.ndarray, max_rows: int, seed: int) -> float | None:
    """Mean silhouette coefficient (Euclidean) of the train-standardised test features grouped by
    the test labels, on at most ``max_rows`` test rows drawn with the probe seed; undefined (None,
    no row) with fewer than two classes, or as many classes as rows (a row alone in its class has
    no silhouette)."""
    from sklearn.metrics import silhouette_score  # scikit-learn: imported only when probing

    if len(y_test) > max_rows:
        keep = np.random.default_rng(seed).choice(len(y_test), max_rows, replace=False)
        x_test, y_test = x_test[keep], y_test[keep]
    if not 2 <= len(np.unique(y_test)) < len(y_test):
        return None
    return float(silhouette_score(x_test, y_test))


# -- two-class and multimodal sentiment analysis (MSA) metrics --------------------------------------
# The MSA rules are those of MMSA's regression MetricsTop (thuiar/MMSA, used unchanged by DLF):
# /work/shared/references/dlf-spec.md §2.6 and affect-data.md §3.3–3.4. MMSA rounds each number to
# 4 decimals for printing; the registry stores it unrounded.
def _float64(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays)


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Support-weighted F1 over the classes (scikit-learn's ``f1_score(average="weighted")``):
    Σ_c n_c · F1_c / Σ_c n_c, with n_c the rows of true class c and F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c)
    (0 for a class never predicted correctly; a class that is only predicted has weight 0)."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    total = 0.0
    for c in np.unique(y_true):
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        total += np.sum(y_true == c) * 2 * tp / (2 * tp + fp + fn)
    return float(total / len(y_true))


def _class_accuracy(y_test: np.ndarray, prediction: np.ndarray, bound: float) -> float:
    y, p = _float64(y_test, prediction)
    return float(np.mean(np.round(np.clip(p, -bound, bound)) == np.round(np.clip(y, -bound, bound))))


def _non_zero(y_test: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    y, p = _float64(y_test, prediction)
    keep = y != 0
    return (y[keep] > 0, p[keep] > 0) if keep.any() else None


@registered(F1, "F1", higher_is_better=True)
def f1(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Support-weighted F1 of the predicted classes of the labelled test rows (scikit-learn's
    ``average="weighted"``: Σ_c n_c · 2TP_c / (2TP_c + FP_c + FN_c) / Σ_c n_c over the true classes
    c, n_c their test rows), the classifier (logistic regression) fitted on train and its C chosen
    on val accuracy. For a label declared binary (two classes)."""
    return weighted_f1(y_test, prediction)


@registered(MAE, "MAE", higher_is_better=False)
def mae(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Mean absolute error, mean over the labelled test rows of |prediction − label|, in float64 and
    the label's units, unclipped (MMSA's MAE), the ridge α chosen on val MSE."""
    y, p = _float64(y_test, prediction)
    return float(np.mean(np.abs(p - y)))


@registered(CORR, "Corr", higher_is_better=True)
def corr(y_test: np.ndarray, prediction: np.ndarray) -> float | None:
    """Pearson correlation of prediction and label over the labelled test rows (MMSA's
    ``np.corrcoef``), unclipped; undefined (None, no row) when either is constant. The ridge α is
    chosen on val MSE."""
    y, p = _float64(y_test, prediction)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return None
    return float(np.corrcoef(p, y)[0, 1])


@registered(ACC7, "Acc-7", higher_is_better=True)
def acc7(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Seven-class accuracy: label and prediction each clipped to [−3, 3] and rounded to the nearest
    integer, halves to even (numpy's ``round``: 2.5 → 2, −0.5 → 0, 1.5 → 2), then the fraction of
    labelled test rows where the two classes agree (MMSA's Mult_acc_7). Ridge α chosen on val MSE."""
    return _class_accuracy(y_test, prediction, 3.0)


@registered(ACC5, "Acc-5", higher_is_better=True)
def acc5(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Five-class accuracy: label and prediction each clipped to [−2, 2] and rounded to the nearest
    integer, halves to even (numpy's ``round``), then the fraction of labelled test rows where the
    two classes agree (MMSA's Mult_acc_5). Ridge α chosen on val MSE."""
    return _class_accuracy(y_test, prediction, 2.0)


@registered(ACC2_HAS0, "Acc-2 has0", higher_is_better=True)
def acc2_has0(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Binary accuracy with zeros kept: positive = value >= 0, for the label and the prediction alike
    (a zero label is positive), over every labelled test row (MMSA's Has0_acc_2). Ridge α chosen on
    val MSE."""
    y, p = _float64(y_test, prediction)
    return float(np.mean((y >= 0) == (p >= 0)))


@registered(F1_HAS0, "F1 has0", higher_is_better=True)
def f1_has0(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Support-weighted F1 (see ``f1``) of the has0 binarisation: positive = value >= 0 for label and
    prediction (a zero label is positive), over every labelled test row (MMSA's Has0_F1_score, which
    is weighted as well). Ridge α chosen on val MSE."""
    y, p = _float64(y_test, prediction)
    return weighted_f1(y >= 0, p >= 0)


@registered(ACC2_NON0, "Acc-2 non0", higher_is_better=True)
def acc2_non0(y_test: np.ndarray, prediction: np.ndarray) -> float | None:
    """Binary accuracy without zeros: the test rows whose *label* is exactly 0 are dropped (whatever
    their prediction), then positive = value > 0 for label and prediction alike (a zero prediction is
    negative), over the rows left (MMSA's Non0_acc_2, DLF's "Acc-2"); undefined (None) when every
    label is 0. Ridge α chosen on val MSE."""
    kept = _non_zero(y_test, prediction)
    return None if kept is None else float(np.mean(kept[0] == kept[1]))


@registered(F1_NON0, "F1 non0", higher_is_better=True)
def f1_non0(y_test: np.ndarray, prediction: np.ndarray) -> float | None:
    """Support-weighted F1 (see ``f1``) of the non0 binarisation: test rows whose label is exactly 0
    dropped, positive = value > 0 for label and prediction (MMSA's Non0_F1_score, DLF's "F1");
    undefined (None) when every label is 0. Ridge α chosen on val MSE."""
    kept = _non_zero(y_test, prediction)
    return None if kept is None else weighted_f1(*kept)


# -- cross-modal retrieval: computed from the ranks by `evaluate/retrieval.py` -----------------------
registered(retrieval.RECALL_FAMILY, "R@{k}", higher_is_better=True,
           pattern=retrieval.RECALL_PATTERN)(retrieval.recall_at)
registered(retrieval.MEDIAN_RANK, "MedR", higher_is_better=False)(retrieval.median_rank)
