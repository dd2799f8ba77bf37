"""Turn a run and its probe outcome into results-DB rows, and write them.

A run's *variant* is how tables name it: the method, plus its ablation when the run's config
marks one (``config["ablation"]``, a short name such as ``"no pruning"`` or a list of them),
e.g. ``multiloreft (no pruning)``, plus any other non-default settings the run records
(``record["settings"]``), e.g. ``multiloreft [temperature=0.2]``. Ablations and other
hyperparameters are thus never averaged with the full model.
"""

from __future__ import annotations

from typing import Any

from mmpipe.evaluate.probes import ProbeOutcome
from mmpipe.store.manifest import Manifest
from mmpipe.store.results import LabelRow, RunRow, write_probes
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry


def ablation_of(record: dict[str, Any]) -> str | None:
    value = (record.get("config") or {}).get("ablation", record.get("ablation"))
    if not value:
        return None
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def paper_row_of(record: dict[str, Any]) -> str:
    """``method`` or ``method (ablation)``: the row a run belongs to in one of the paper's tables."""
    ablation = ablation_of(record)
    return f"{record['method']} ({ablation})" if ablation else record["method"]


def variant_of(record: dict[str, Any]) -> str:
    """``paper_row_of`` plus ``[key=value, …]`` for the run's other non-default settings."""
    name = paper_row_of(record)
    settings = record.get("settings") or {}
    if settings:
        name += " [" + ", ".join(f"{k}={_setting(v)}" for k, v in sorted(settings.items())) + "]"
    return name


def _setting(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def run_row(run: RunEntry) -> RunRow:
    return RunRow.from_record({**run.record, "run_id": run.run_id, "fingerprint": run.fingerprint}, variant_of(run.record))


def label_rows(manifest: Manifest) -> list[LabelRow]:
    return [LabelRow(manifest.dataset, s.name, s.kind, s.owner) for s in manifest.labels]


def save_probes(store: Store, run: RunEntry, outcome: ProbeOutcome) -> int:
    """Replace the run's rows in the results DB with this outcome (one short transaction)."""
    manifest = store.manifest(run.record["dataset"], run.record.get("manifest_version"))
    return write_probes(store.results_db, run_row(run), label_rows(manifest), outcome.rows)
