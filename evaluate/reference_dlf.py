"""The DLF paper's numbers, to print beside our own: the one source (`mmpipe reproduce dlf-table1`,
`dlf-table2`). Transcribed from Wang et al., "DLF: Disentangled-Language-Focused Multimodal
Sentiment Analysis" (AAAI 2025; code pwang322/DLF), Tables 1 and 2.

The paper reports **one seed** (1111) and fine-tunes BERT inside the training loop. Its metrics are
MMSA's regression ``MetricsTop``: Acc-7, Acc-5, Acc-2 and F1 in percent, Corr and MAE as they are;
its Acc-2 and F1 are the **non0** ones (test rows labelled exactly 0 dropped, positive = > 0), our
metrics ``acc2_non0`` / ``f1_non0`` (`evaluate/metrics.py`).

- Table 1: the DLF row on MOSI and MOSEI (``mosi``, ``mosei``).
- Table 2: the ablations on MOSI (Acc-7, Acc-2, F1, MAE), each with the `DLFConfig` change that
  makes it (`adapters/methods/dlf.py`, whose ``DLF.ablation`` names the row as the paper does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmpipe.evaluate.metrics import ACC2_NON0, ACC5, ACC7, CORR, F1_NON0, MAE

TABLE1_METRICS = (ACC7, ACC5, ACC2_NON0, F1_NON0, CORR, MAE)  # the paper's column order
TABLE2_METRICS = (ACC7, ACC2_NON0, F1_NON0, MAE)
PERCENT = frozenset({ACC7, ACC5, ACC2_NON0, F1_NON0})  # printed in percent; the others as they are


@dataclass(frozen=True)
class MSAScores:
    """One row as printed (one seed, no std): metric name → value (percent for `PERCENT`)."""

    values: tuple[tuple[str, float], ...]

    def get(self, metric: str) -> float | None:
        return dict(self.values).get(metric)


@dataclass(frozen=True)
class Ablation:
    """One row of Table 2: the paper's name, the config change, the scores on MOSI."""

    name: str  # as the paper prints it
    changes: tuple[tuple[str, Any], ...]  # `DLFConfig` fields; () for the full model
    scores: MSAScores


def _scores(metrics: tuple[str, ...], *values: float) -> MSAScores:
    if len(values) != len(metrics):
        raise AssertionError(f"{len(values)} values for {len(metrics)} metrics")
    return MSAScores(tuple(zip(metrics, values, strict=True)))


TABLE1: dict[str, MSAScores] = {
    "mosi": _scores(TABLE1_METRICS, 47.08, 52.33, 85.06, 85.04, 0.781, 0.731),
    "mosei": _scores(TABLE1_METRICS, 53.90, 55.70, 85.42, 85.27, 0.764, 0.536),
}

TABLE2_DATASET = "mosi"
TABLE2: tuple[Ablation, ...] = tuple(Ablation(name, changes, _scores(TABLE2_METRICS, *values)) for name, changes, values in (
    ("DLF", (), (47.08, 85.06, 85.04, 0.731)),
    ("only A", (("modalities", "A"),), (15.31, 42.84, 26.64, 1.453)),
    ("only V", (("modalities", "V"),), (15.01, 43.29, 29.73, 1.455)),
    ("only L", (("modalities", "L"),), (45.63, 84.45, 84.38, 0.752)),
    ("L&A", (("modalities", "LA"),), (45.77, 83.84, 83.88, 0.741)),
    ("L&V", (("modalities", "LV"),), (46.65, 83.08, 83.13, 0.745)),
    ("w/o Lr", (("use_recon", False),), (45.92, 84.67, 84.59, 0.734)),
    ("w/o Ls", (("use_specific", False),), (45.36, 84.60, 84.56, 0.740)),
    ("w/o Lm", (("use_triplet", False),), (45.77, 83.99, 83.97, 0.735)),
    ("w/o Lo", (("use_ortho", False),), (45.77, 83.08, 83.16, 0.738)),
    ("w/o FDM", (("fdm", False),), (45.92, 84.60, 84.58, 0.739)),
    ("w/o LFA", (("lfa", False),), (42.71, 83.84, 83.85, 0.767)),
    ("w/o HP", (("hierarchical", False),), (42.42, 84.76, 84.74, 0.761)),
))
