"""The results DB: one DuckDB file in the store (``<store>/results.duckdb``); every run and every
probe score is a row, so any table of the paper is a SQL query.

Tables::

    runs    (run_id, method, dataset, m1, m2, seed, fingerprint, config JSON, started_at, seconds,
             n_params, ranks JSON, code_version, variant, data_version)
    probes  (run_id, component, label, metric, value, protocol, n_train, n_test)
    labels  (dataset, label, kind, owner)      -- the manifest's label metadata, which Δ needs

Views::

    probe_summary (method, dataset, component, label, metric, mean, std, n_seeds, m1, m2, data_version)
    delta_summary (method, dataset, label, metric, mean, std, n_seeds, m1, m2, data_version)

``variant`` is the method name plus its ablation, e.g. ``multiloreft (no pruning)``; the views
report it as ``method`` so an ablation is never averaged with the full model, and they also group
by the two feature entries (m1, m2) and the manifest version (``data_version``), so runs on
different encoders or different versions of a dataset are never mixed. ``std`` is
the sample standard deviation over seeds (NULL for one seed).

Δ (MultiLoReFT paper §5, Tables 1–2) is computed **per run (= per seed)**, then mean ± std:
for a label owned by ``m1``/``m2``, Δ = score(z_m) − score(z_s); for a ``shared`` label,
Δ = score(z_s) − mean(score(z_m1), score(z_m2)); for ``mse`` the sign is flipped so that a larger
Δ is always better. ``joint`` labels have no Δ.

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
from typing import Any

import duckdb

from mmpipe.store.errors import UserError

LOCK_TIMEOUT_S = 120.0
HIGHER_IS_BETTER = {"accuracy": True, "silhouette": True, "mse": False}

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, method VARCHAR, dataset VARCHAR, m1 VARCHAR, m2 VARCHAR, seed INTEGER,
    fingerprint VARCHAR, config JSON, started_at TIMESTAMP, seconds DOUBLE, n_params BIGINT, ranks JSON,
    code_version VARCHAR, variant VARCHAR, data_version VARCHAR);
CREATE TABLE IF NOT EXISTS probes (
    run_id VARCHAR, component VARCHAR, label VARCHAR, metric VARCHAR, value DOUBLE, protocol VARCHAR,
    n_train INTEGER, n_test INTEGER);
CREATE TABLE IF NOT EXISTS labels (
    dataset VARCHAR, label VARCHAR, kind VARCHAR, owner VARCHAR, PRIMARY KEY (dataset, label));
CREATE OR REPLACE VIEW probe_summary AS
SELECT r.variant AS method, r.dataset, p.component, p.label, p.metric,
       avg(p.value) AS mean, stddev_samp(p.value) AS std, count(DISTINCT r.seed) AS n_seeds, r.m1, r.m2,
       r.data_version
FROM probes p JOIN runs r USING (run_id)
GROUP BY r.variant, r.dataset, r.data_version, r.m1, r.m2, p.component, p.label, p.metric;
CREATE OR REPLACE VIEW delta_per_run AS
WITH parts AS (
    SELECT p.run_id, r.variant, r.dataset, r.data_version, r.m1, r.m2, r.seed, p.label, p.metric, l.owner,
           CASE WHEN p.metric = 'mse' THEN -1.0 ELSE 1.0 END AS sign,
           max(p.value) FILTER (WHERE p.component = 'z_s') AS s,
           max(p.value) FILTER (WHERE p.component = 'z_m1') AS m1_score,
           max(p.value) FILTER (WHERE p.component = 'z_m2') AS m2_score
    FROM probes p JOIN runs r USING (run_id) JOIN labels l ON l.dataset = r.dataset AND l.label = p.label
    WHERE l.owner IN ('shared', 'm1', 'm2')
    GROUP BY ALL)
SELECT run_id, variant AS method, dataset, m1, m2, seed, label, metric, owner, data_version,
       sign * CASE owner WHEN 'shared' THEN s - (m1_score + m2_score) / 2
                         WHEN 'm1' THEN m1_score - s
                         WHEN 'm2' THEN m2_score - s END AS delta
FROM parts
WHERE s IS NOT NULL AND (owner <> 'shared' OR (m1_score IS NOT NULL AND m2_score IS NOT NULL))
  AND (owner <> 'm1' OR m1_score IS NOT NULL) AND (owner <> 'm2' OR m2_score IS NOT NULL);
CREATE OR REPLACE VIEW delta_summary AS
SELECT method, dataset, label, metric, avg(delta) AS mean, stddev_samp(delta) AS std,
       count(DISTINCT seed) AS n_seeds, m1, m2, data_version
FROM delta_per_run GROUP BY method, dataset, data_version, m1, m2, label, metric;
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
    run_id: str
    method: str
    dataset: str
    m1: str | None
    m2: str | None
    seed: int | None
    fingerprint: str
    config: str  # JSON text
    started_at: str | None  # ISO timestamp
    seconds: float | None
    n_params: int | None
    ranks: str | None  # JSON text
    code_version: str | None
    variant: str
    data_version: str | None = None  # the manifest version the run was trained on

    @classmethod
    def from_record(cls, record: dict[str, Any], variant: str) -> RunRow:
        ranks = record.get("ranks")
        return cls(run_id=record["run_id"], method=record["method"], dataset=record.get("dataset", ""),
                   m1=record.get("m1"), m2=record.get("m2"), seed=record.get("seed"),
                   fingerprint=record["fingerprint"], config=json.dumps(record.get("config", {}), sort_keys=True),
                   started_at=record.get("started_at"), seconds=record.get("seconds"),
                   n_params=record.get("n_params"), ranks=None if ranks is None else json.dumps(ranks),
                   code_version=record.get("code_version"), variant=variant,
                   data_version=record.get("manifest_version"))


@dataclass(frozen=True)
class LabelRow:
    dataset: str
    label: str
    kind: str
    owner: str


def _is_lock_error(error: duckdb.Error) -> bool:
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def _connect(path: Path, *, read_only: bool, timeout_s: float = LOCK_TIMEOUT_S) -> duckdb.DuckDBPyConnection:
    """Connect, retrying while another process holds the file lock (jittered exponential backoff)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as error:
            if not _is_lock_error(error) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)


@contextmanager
def writing(path: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short write transaction on a fresh connection; the file lock is released on exit."""
    conn = _connect(path, read_only=False, timeout_s=timeout_s)
    try:
        conn.execute(SCHEMA)
        conn.execute("BEGIN TRANSACTION")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def _insert(conn: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Any]) -> None:
    rows = [astuple(r) for r in rows]
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def record_run(path: Path, run: RunRow, labels: Iterable[LabelRow] = ()) -> None:
    """Insert or replace one run's row (e.g. when a fit finishes), without touching its probes."""
    with writing(path) as conn:
        _replace_run(conn, run, list(labels))


def _replace_run(conn: duckdb.DuckDBPyConnection, run: RunRow, labels: list[LabelRow]) -> None:
    conn.execute("DELETE FROM runs WHERE run_id = ?", [run.run_id])
    _insert(conn, "runs", [run])
    for label in labels:
        conn.execute("DELETE FROM labels WHERE dataset = ? AND label = ?", [label.dataset, label.label])
    _insert(conn, "labels", labels)


def write_probes(path: Path, run: RunRow, labels: Iterable[LabelRow], rows: Iterable[ProbeRow]) -> int:
    """Replace everything stored for ``run.run_id`` (its run row and all its probe rows) in one
    transaction, so re-probing a run never duplicates rows. Returns the number of probe rows."""
    rows = list(rows)
    with writing(path) as conn:
        _replace_run(conn, run, list(labels))
        conn.execute("DELETE FROM probes WHERE run_id = ?", [run.run_id])
        _insert(conn, "probes", rows)
    return len(rows)


# -- reading --------------------------------------------------------------------------------------
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


@contextmanager
def reading(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; a store with no results yet is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no results yet at {path}; probe runs first with `mmpipe probe --all`")
    conn = _connect(path, read_only=True)
    try:
        yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def query(path: Path, sql: str) -> QueryResult:
    """Run read-only SQL. Statements that could write (INSERT, CREATE, COPY, ATTACH, SET, ...) are
    refused before execution; malformed SQL becomes a UserError carrying DuckDB's own message."""
    with reading(path) as conn:
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


PROBE_COLUMNS = [f.name for f in fields(ProbeRow)]
