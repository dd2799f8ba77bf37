"""The metrics registry: every score a probe writes is one of these names.

A metric is a registered name with its direction (is a higher value better?), a short display
name for table headers, and the exact rule, which is the docstring of the function that computes
it. The probes compute through it, Δ and the report orient and label their numbers by it, and the
results DB's views read the same directions (``evaluate/views.py`` turns the registry into the
``metrics`` view), so a new metric is one registered function here.

A *family* of metrics shares one rule and one direction under a name pattern: the k-shot
accuracies ``accuracy_<k>shot`` (:func:`k_shot_name`). :func:`metric` resolves a concrete name
(``accuracy_5shot``) to its family; an unknown name raises an error that lists the valid ones.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

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
MSE = "mse"
SILHOUETTE = "silhouette"
# the headline metric of a label of each kind (the one its table column shows)
HEADLINE = {"categorical": ACCURACY, "continuous": MSE}


def headline(kind: str) -> str:
    """The metric a label of this kind (categorical / continuous) is reported by."""
    return HEADLINE[kind]


def k_shot_name(k: int) -> str:
    """The name of the k-shot accuracy: ``accuracy_<k>shot``."""
    return f"{ACCURACY}_{k}shot"


@registered(ACCURACY, "Acc", higher_is_better=True)
def accuracy(y_test: np.ndarray, prediction: np.ndarray) -> float:
    """Fraction of the labelled test rows whose predicted class equals the true class, the
    classifier (logistic regression) fitted on all labelled train rows and its C chosen on val."""
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
