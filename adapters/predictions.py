"""A method's own predictions of a label, stored with its run so the evaluator scores them as
they are (no probe fitted on top).

A supervised method whose prediction is itself the result a paper reports (DLF's regression
output, scored with the MSA metrics) stores it as one more component of the run: an (N, 1) float32
array in manifest row order, in the label's own units, with the run's valid mask (every split:
train and val rows too, so a selection on val can be checked). Its run record's ``history`` names
it under ``HISTORY_KEY``: which component holds the prediction of which label, and how it was
produced. `mmpipe.evaluate.probes.probe_run` scores that component on the test rows with the
label's metrics (`metrics.label_metrics`) instead of fitting a probe to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

PREDICTION = "prediction"  # the component name of a method's own prediction
HISTORY_KEY = "own_prediction"


@dataclass(frozen=True)
class OwnPrediction:
    component: str  # the run's component holding the prediction, (N, 1)
    label: str  # the manifest label it predicts, in the label's units
    how: str  # one line: what was trained on what, and how the checkpoint was chosen

    def history(self) -> dict[str, dict[str, str]]:
        """The entry a method merges into its fit history (`RunRecord.history`)."""
        return {HISTORY_KEY: asdict(self)}

    @classmethod
    def of(cls, history: Mapping[str, Any]) -> OwnPrediction | None:
        """The declaration in a run's history, or None when the run stores no prediction of its own."""
        entry = history.get(HISTORY_KEY)
        if not isinstance(entry, Mapping):
            return None
        try:
            return cls(str(entry["component"]), str(entry["label"]), str(entry.get("how", "")))
        except KeyError:
            return None
