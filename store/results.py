"""The results DB: one DuckDB file in the store (``<store>/results.duckdb``); every run and every
probe score is a row, so any table of the paper is a SQL query.

Tables::

    runs    (run_id, method, ablation, settings JSON, inputs JSON, dataset, data_version, seed,
             fingerprint, config JSON, started_at, seconds, n_params, ranks JSON, code_version, variant)
    probes  (run_id, component, label, metric, value, protocol, n_train, n_test)
    labels  (dataset, label, kind, owner)      -- the manifest's label metadata

A run row is the typed run record (``mmpipe.store.runs.RunRecord``): ``ablation`` (NULL for the
full method), ``settings`` (its other non-default config fields, JSON with sorted keys) and
``inputs`` (modality → feature entry, in the order the method saw them) are columns of their own;
``variant`` is only a display name, derived from them by whoever writes the row, and nothing reads
it back apart. ``data_version`` is the manifest version the run was trained on.

This module holds the tables and their I/O only: it knows no component name and no metric. The
views over them (per-setup summaries, Δ) are evaluation semantics and live in
``mmpipe.evaluate.views``, which creates them in the same transactions.

Concurrency: DuckDB lets one process hold a file for writing at a time, and a writer also blocks
readers in other processes. Every write here is one short transaction on a fresh connection
(connect, replace the run's rows, commit, close); a lock conflict is retried with jittered
backoff, so two probes finishing together both land, one after the other.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from mmpipe.store.errors import UserError

if TYPE_CHECKING:  # store.runs imports torch and zarr; a process that only writes rows needs neither
    from mmpipe.store.runs import RunRecord

LOCK_TIMEOUT_S = 120.0

RUN_COLUMNS = """run_id VARCHAR PRIMARY KEY, method VARCHAR, ablation VARCHAR, settings JSON, inputs JSON,
    dataset VARCHAR, data_version VARCHAR, seed INTEGER, fingerprint VARCHAR, config JSON, started_at TIMESTAMP,
    seconds DOUBLE, n_params BIGINT, ranks JSON, code_version VARCHAR, variant VARCHAR"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs ({RUN_COLUMNS});
CREATE TABLE IF NOT EXISTS probes (
    run_id VARCHAR, component VARCHAR, label VARCHAR, metric VARCHAR, value DOUBLE, protocol VARCHAR,
    n_train INTEGER, n_test INTEGER);
CREATE TABLE IF NOT EXISTS labels (
    dataset VARCHAR, label VARCHAR, kind VARCHAR, owner VARCHAR, PRIMARY KEY (dataset, label));
"""


@dataclass(frozen=True)
class ProbeRow:
    """One probe score: a metric of one label predicted from one component of one run."""

    run_id: str
    component: str
    label: str
    metric: str
    value: float
    protocol: str
    n_train: int
    n_test: int


@dataclass(frozen=True)
class RunRow:
    """A run's row: the typed run record, JSON fields as canonical text (field order = columns)."""

    run_id: str
    method: str
    ablation: str | None
    settings: str  # JSON object, sorted keys
    inputs: str  # JSON object modality -> feature entry, in the method's order
    dataset: str
    data_version: str | None  # the manifest version the run was trained on
    seed: int | None
    fingerprint: str
    config: str  # JSON text
    started_at: str | None  # ISO timestamp
    seconds: float | None
    n_params: int | None
    ranks: str | None  # JSON text
    code_version: str | None
    variant: str  # display name, derived from (method, ablation, settings) by the caller

    @classmethod
    def from_record(cls, record: RunRecord, variant: str) -> RunRow:
        return cls(run_id=record.run_id, method=record.method, ablation=record.ablation,
                   settings=json.dumps(record.settings, sort_keys=True, default=str),
                   inputs=json.dumps(record.inputs), dataset=record.dataset, data_version=record.manifest_version,
                   seed=record.seed, fingerprint=record.fingerprint,
                   config=json.dumps(record.config, sort_keys=True, default=str), started_at=record.started_at,
                   seconds=record.seconds, n_params=record.n_params,
                   ranks=None if record.ranks is None else json.dumps(record.ranks),
                   code_version=record.code_version, variant=variant)


@dataclass(frozen=True)
class LabelRow:
    dataset: str
    label: str
    kind: str
    owner: str


def _is_lock_error(error: duckdb.Error) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def _is_being_created(error: duckdb.Error, path: Path) -> bool:
    """Another process created the file a moment ago and has not written its header yet."""
    try:
        young = time.time() - Path(path).stat().st_mtime < 5.0
    except OSError:
        return False
    return isinstance(error, duckdb.IOException) and "not a valid DuckDB database file" in str(error) and young


# A connection for user SQL: it reads this one database and nothing else. DuckDB itself refuses
# every file or network access (COPY … TO, read_csv, ATTACH, INSTALL/LOAD, even under EXPLAIN
# ANALYZE), and the configuration is locked so no SET can undo it.
CONFINED = {"enable_external_access": False, "autoinstall_known_extensions": False,
            "autoload_known_extensions": False, "lock_configuration": True}


def _connect(path: Path, *, read_only: bool, timeout_s: float = LOCK_TIMEOUT_S,
             config: dict[str, object] | None = None) -> duckdb.DuckDBPyConnection:
    """Connect, retrying while another process holds the file lock (jittered exponential backoff)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.Error as error:
            if not (_is_lock_error(error) or _is_being_created(error, path)) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)


@contextmanager
def writing(path: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short write transaction on a fresh connection; the file lock is released on exit.

    A results DB whose ``runs`` table has other columns (written by an older mmpipe) is refused
    in one line rather than misread."""
    conn = _connect(path, read_only=False, timeout_s=timeout_s)
    try:
        conn.execute(SCHEMA)
        conn.execute("BEGIN TRANSACTION")
        try:
            check_schema(conn, path)
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def check_schema(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    columns = [row[0] for row in conn.execute("SELECT column_name FROM duckdb_columns() "
                                              "WHERE table_name = 'runs' ORDER BY column_index").fetchall()]
    expected = [f.name for f in fields(RunRow)]
    if columns and columns != expected:
        raise UserError(f"{path} was written by an older mmpipe (its runs table has columns {', '.join(columns)}); "
                        f"delete it and probe the runs again (`mmpipe probe --all`)")


def _insert(conn: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Any]) -> None:
    rows = [astuple(r) for r in rows]
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def replace_run(conn: duckdb.DuckDBPyConnection, run: RunRow, labels: Iterable[LabelRow] = ()) -> None:
    """Inside a ``writing`` transaction: insert or replace one run's row and its dataset's labels."""
    labels = list(labels)
    conn.execute("DELETE FROM runs WHERE run_id = ?", [run.run_id])
    _insert(conn, "runs", [run])
    for label in labels:
        conn.execute("DELETE FROM labels WHERE dataset = ? AND label = ?", [label.dataset, label.label])
    _insert(conn, "labels", labels)


def replace_probes(conn: duckdb.DuckDBPyConnection, run_id: str, rows: Iterable[ProbeRow]) -> int:
    """Inside a ``writing`` transaction: replace every probe row of ``run_id``; returns how many."""
    rows = list(rows)
    conn.execute("DELETE FROM probes WHERE run_id = ?", [run_id])
    _insert(conn, "probes", rows)
    return len(rows)


def write_probes(path: Path, run: RunRow, labels: Iterable[LabelRow], rows: Iterable[ProbeRow]) -> int:
    """Replace everything stored for ``run.run_id`` (its run row and all its probe rows) in one
    transaction, so re-probing a run never duplicates rows. Returns the number of probe rows."""
    with writing(path) as conn:
        replace_run(conn, run, labels)
        return replace_probes(conn, run.run_id, rows)


# -- reading --------------------------------------------------------------------------------------
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


@contextmanager
def reading(path: Path, *, confined: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection (``confined``: one that can reach no file but the database, for
    user SQL); a store with no results yet is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no results yet at {path}; probe runs first with `mmpipe probe --all`")
    conn = _connect(path, read_only=True, config=CONFINED if confined else None)
    try:
        yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def query(path: Path, sql: str) -> QueryResult:
    """Run user SQL on a confined read-only connection (`CONFINED`). Statements other than
    SELECT/EXPLAIN are refused with a clear line before execution; whatever gets past that can
    still neither write nor read a file, nor load an extension. Malformed or refused SQL becomes
    a UserError carrying DuckDB's own message."""
    with reading(path, confined=True) as conn:
        try:
            statements = conn.extract_statements(sql)
        except duckdb.Error as error:
            raise UserError(_one_line(error)) from None
        if not statements:
            raise UserError("empty query")
        for statement in statements:
            kind = statement.type.name
            if kind not in READ_ONLY_STATEMENTS:
                raise UserError(f"refused: `mmpipe query` is read-only and this is a {kind} statement; "
                                f"only SELECT (incl. WITH/SHOW/DESCRIBE) and EXPLAIN are allowed")
        try:
            result = None
            for statement in statements:
                result = conn.execute(statement.query)
            columns = [d[0] for d in result.description] if result.description else []
            return QueryResult(columns, result.fetchall())
        except duckdb.Error as error:
            raise UserError(_one_line(error)) from None


def _one_line(error: duckdb.Error) -> str:
    """DuckDB's message without its multi-line caret diagram (the CLI prints one line)."""
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    position = next((line.strip() for line in lines[1:] if line.strip().startswith("LINE")), "")
    return f"{first} ({position})" if position else first


def fetch(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a query as dicts (column name → value)."""
    result = conn.execute(sql, params or [])
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]

