"""Turn a run and its probe outcome into results-DB rows, and write them (with the views).

A run's *variant* is how tables name it, derived from its typed record and never parsed back:
the method, plus its ablation when the record names one (``RunRecord.ablation``, e.g.
``multiloreft (no pruning)``), plus its other non-default settings (``RunRecord.settings``,
e.g. ``multiloreft [temperature=0.2]``). The DB keeps ``method``, ``ablation`` and ``settings``
as columns of their own; every grouping uses those.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from mmpipe.evaluate.probes import ProbeOutcome
from mmpipe.evaluate.reference import paper_row
from mmpipe.evaluate.views import create_views, use_current_views
from mmpipe.store.manifest import Manifest
from mmpipe.store.results import (
    DatabaseUnavailable,
    LabelRow,
    QueryResult,
    RunRow,
    StressKey,
    StressRow,
    replace_probes,
    replace_retrieval,
    replace_run,
    replace_stress,
    spill,
    spilled,
    writing,
)
from mmpipe.store.results import query as store_query
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry, RunRecord

log = logging.getLogger(__name__)


def paper_row_of(record: RunRecord) -> str:
    """``method`` or ``method (ablation)``: the row a run belongs to in one of the paper's tables."""
    return paper_row(record.method, record.ablation)


def variant_of(record: RunRecord) -> str:
    """``paper_row_of`` plus ``[key=value, …]`` for the run's other non-default settings."""
    name = paper_row_of(record)
    if record.settings:
        name += " [" + ", ".join(f"{k}={_setting(v)}" for k, v in sorted(record.settings.items())) + "]"
    return name


def _setting(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def run_row(run: RunEntry) -> RunRow:
    record = dataclasses.replace(run.record, run_id=run.run_id, fingerprint=run.fingerprint)
    return RunRow.from_record(record, variant_of(record))


def label_rows(manifest: Manifest) -> list[LabelRow]:
    return [LabelRow(manifest.dataset, s.name, s.kind, s.owner) for s in manifest.labels]


def _manifest(store: Store, run: RunEntry) -> Manifest:
    return store.manifest(run.record.dataset, run.record.manifest_version)


def save_probes(store: Store, run: RunEntry, outcome: ProbeOutcome) -> int:
    """Replace the run's rows in the results DB with this outcome, its probe and retrieval rows (one
    short transaction), after the rows an earlier probe could not write (`spilled`).

    When the DB cannot be written (a lock held too long, a full or read-only disk) the scores are
    not lost: they are kept in a spill file beside the DB, which the next successful write
    imports, and the error says so."""
    labels = label_rows(_manifest(store, run))
    row = run_row(run)
    db = store.results_db
    try:
        waiting = spilled(db)
        with writing(db) as conn:
            for kept in waiting:
                replace_run(conn, kept.run, kept.labels)
                replace_probes(conn, kept.run.run_id, kept.probes)
                replace_retrieval(conn, kept.run.run_id, kept.retrieval)
            replace_run(conn, row, labels)
            count = replace_probes(conn, run.run_id, outcome.rows)
            replace_retrieval(conn, run.run_id, outcome.retrieval)
            create_views(conn)
    except DatabaseUnavailable as error:
        try:
            where = spill(db, row, labels, outcome.rows, outcome.retrieval)
        except OSError as spill_error:
            raise DatabaseUnavailable(f"{error}; the {len(outcome.rows)} scores of {run.run_id} could not be kept "
                                      f"either ({spill_error.strerror}): probe it again later") from None
        raise DatabaseUnavailable(f"{error}; the {len(outcome.rows)} scores of {run.run_id} are kept in {where} "
                                  "and the next `mmpipe probe` saves them") from None
    for kept in waiting:
        kept.path.unlink(missing_ok=True)
        log.warning("saved the %d scores of %s kept from an earlier probe", len(kept.probes), kept.run.run_id)
    return count


def save_stress(store: Store, run: RunEntry, key: StressKey, rows: list[StressRow]) -> int:
    """Write a run's stress rows (and its run row and labels) in one transaction, replacing what
    an earlier stress of the same corruption stored at these rates (`replace_stress`); returns the
    number of rows. Rows a write could not save are not kept: the error says to run it again."""
    labels = label_rows(_manifest(store, run))
    try:
        with writing(store.results_db) as conn:
            replace_run(conn, run_row(run), labels)
            count = replace_stress(conn, key, rows)
            create_views(conn)
    except DatabaseUnavailable as error:
        raise DatabaseUnavailable(f"{error}; the {len(rows)} stress scores of {run.run_id} were not saved: "
                                  "run the stress again") from None
    return count


def query(path: Path, sql: str) -> QueryResult:
    """Read-only SQL over the results DB's tables and views (`mmpipe query`)."""
    return store_query(path, sql, prepare=use_current_views)
