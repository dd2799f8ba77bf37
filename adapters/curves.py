"""Training curves: what every training loop records per epoch, as one typed point per
(stage, epoch, split, term), in the run's record under ``history["curves"]``.

- ``stage``: the loop's stage name (``train`` for a one-stage fit; MultiLoReFT's shared / private /
  joint, S3's specialization / selection, APOLLO's latents / encoders);
- ``epoch``: 1, 2, … within the stage (a staged fit's history rows count epochs across stages;
  a curve restarts with each stage, which is how it is drawn);
- ``split``: ``train``, the term's mean over the epoch's minibatches as trained (dropout and noise
  on, the parameters moving during the epoch); ``val``, the term on the validation rows after the
  epoch, as the loop's validation computes it (the value early stopping reads); ``weight``, the
  term's weight in the trained loss at the end of the epoch (GradNorm's learned weights);
- ``term``: the loss term's name as the method names it; a loop given one unnamed number calls it
  ``loss`` (`LOSS`).

Recording reads numbers the loop already computes (no extra forward pass, no random draw), so a
fit with curves trains exactly as one without. The points are JSON rows of the record
(`Curves.rows`); :func:`read_curves` turns them back into `CurvePoint` values for whoever reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Split = Literal["train", "val", "weight"]
SPLITS: tuple[Split, ...] = ("train", "val", "weight")
LOSS = "loss"  # the term name of an unnamed loss
HISTORY_KEY = "curves"


@dataclass(frozen=True)
class CurvePoint:
    stage: str
    epoch: int  # within the stage, from 1
    split: Split
    term: str
    value: float


@dataclass
class Curves:
    """The points of one fit, in the order they were recorded."""

    points: list[CurvePoint] = field(default_factory=list)

    def add(self, stage: str, epoch: int, split: Split, values: Mapping[str, float] | float) -> None:
        """Record ``values`` (term → value, or one number: term ``loss``) for one epoch and split."""
        named = {LOSS: values} if isinstance(values, int | float) else values
        self.points += [CurvePoint(stage, epoch, split, term, float(value)) for term, value in named.items()]

    def rows(self) -> list[dict[str, Any]]:
        """The points as the record stores them."""
        return [asdict(p) for p in self.points]


def read_curves(history: Mapping[str, Any]) -> list[CurvePoint]:
    """The curve points of a run record's ``history`` (empty when the run recorded none)."""
    return [CurvePoint(**row) for row in history.get(HISTORY_KEY) or []]
