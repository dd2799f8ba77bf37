"""The results DB: one DuckDB file in the store (``<store>/results.duckdb``); every run and every
probe score is a row, so any table of the paper is a SQL query.

Tables::

    runs    (run_id, method, ablation, settings JSON, inputs JSON, dataset, data_version, seed,
             fingerprint, config JSON, started_at, seconds, n_params, ranks JSON, code_version, variant)
    probes  (run_id, component, label, metric, value, protocol, n_train, n_test)
    labels  (dataset, label, kind, owner)      -- the manifest's label metadata
    stress  (run_id, modality, mode, noise_std, corruption_seed, rate, n_corrupted,
             component, label, metric, value, protocol, n_train, n_test)
    retrieval (run_id, query_modality, target_modality, query_component, target_component, metric,
               value, protocol, n_candidates)

A stress row is a probe score on test rows of which a fraction ``rate`` had one modality corrupted
(``mode``; ``noise_std`` for ``noise``, else NULL; the rows chosen with ``corruption_seed``, which
is not the run's seed); a stress re-run replaces the rows of the same (run, modality, mode,
noise_std, corruption_seed, rate). A retrieval row is one metric of one direction (query modality's
component → target modality's component) of zero-shot cross-modal retrieval among ``n_candidates``
test rows; it belongs to the run's probe, so re-probing a run replaces its retrieval rows with its
probe rows. These two tables came after the others: a writer adds them to an older file (``CREATE
TABLE IF NOT EXISTS``) and a reader of a file that lacks one sees it empty (`LATER_TABLES`).

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
backoff, so two probes finishing together both land, one after the other. A lock held longer
than ``NOTICE_AFTER_S`` is logged (``logging``, this module's logger) with the holder's PID, and
after ``lock_wait_s()`` the wait ends in a `DatabaseUnavailable` error.

Failure: the file is created atomically (built under a temporary name with its tables, then
linked into place), so a first write that fails or is killed leaves no file; an empty file left
by an older mmpipe is replaced by the next writer and read as "no results yet". A write that
fails (disk full, read-only filesystem, a lock held too long) raises `DatabaseUnavailable`
naming the cause; a failing rollback never hides it. The caller may keep what it could not
write in a spill file (`spill`), which the next write imports (`spilled`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, astuple, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from mmpipe.store.errors import UserError, disk_error_message

if TYPE_CHECKING:  # store.runs imports torch and zarr; a process that only writes rows needs neither
    from mmpipe.store.runs import RunRecord

LOCK_WAIT_ENV = "MMPIPE_LOCK_WAIT_S"
DEFAULT_LOCK_WAIT_S = 60.0
NOTICE_AFTER_S = 1.0
log = logging.getLogger(__name__)


def lock_wait_s() -> float:
    """How long to wait for another process's lock: ``MMPIPE_LOCK_WAIT_S`` or 60 s."""
    try:
        wait = float(os.environ.get(LOCK_WAIT_ENV, DEFAULT_LOCK_WAIT_S))
    except ValueError:
        raise UserError(f"{LOCK_WAIT_ENV} must be a number of seconds, not {os.environ[LOCK_WAIT_ENV]!r}") from None
    if not 0 <= wait < float("inf"):
        raise UserError(f"{LOCK_WAIT_ENV} must be a finite number of seconds >= 0, not {wait}")
    return wait


class DatabaseUnavailable(UserError):
    """The results DB could not be opened or written now (held lock, full disk, read-only
    filesystem, damaged file); the message says which and what to do."""

STRESS_COLUMNS = """run_id VARCHAR, modality VARCHAR, mode VARCHAR, noise_std DOUBLE, corruption_seed BIGINT,
    rate DOUBLE, n_corrupted INTEGER, component VARCHAR, label VARCHAR, metric VARCHAR, value DOUBLE,
    protocol VARCHAR, n_train INTEGER, n_test INTEGER"""
RETRIEVAL_COLUMNS = """run_id VARCHAR, query_modality VARCHAR, target_modality VARCHAR, query_component VARCHAR,
    target_component VARCHAR, metric VARCHAR, value DOUBLE, protocol VARCHAR, n_candidates INTEGER"""
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
CREATE TABLE IF NOT EXISTS stress ({STRESS_COLUMNS});
CREATE TABLE IF NOT EXISTS retrieval ({RETRIEVAL_COLUMNS});
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
class StressRow:
    """One probe score under the stress test (field order = the stress table's columns)."""

    run_id: str
    modality: str  # the corrupted modality
    mode: str  # drop, zero, mean or noise
    noise_std: float | None  # for mode noise, else None
    corruption_seed: int  # chose the corrupted rows (and drew the noise)
    rate: float  # the fraction of the valid test rows corrupted
    n_corrupted: int
    component: str
    label: str
    metric: str
    value: float
    protocol: str
    n_train: int
    n_test: int


@dataclass(frozen=True)
class RetrievalRow:
    """One retrieval score (field order = the retrieval table's columns): queries from
    ``query_component`` (embedding ``query_modality``), candidates from ``target_component``."""

    run_id: str
    query_modality: str
    target_modality: str
    query_component: str
    target_component: str
    metric: str
    value: float
    protocol: str
    n_candidates: int  # the test rows: every one is a query and a candidate


@dataclass(frozen=True)
class StressKey:
    """What one stress re-run replaces: a run's rows of one corruption at the given rates."""

    run_id: str
    modality: str
    mode: str
    noise_std: float | None
    corruption_seed: int
    rates: tuple[float, ...]


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


def _holder(error: duckdb.Error) -> str:
    """Who holds the lock, from DuckDB's message ("Conflicting lock is held in PROGRAM (PID N)")."""
    found = re.search(r"held in (.*?) \(PID (\d+)\)", str(error))
    return f"PID {found.group(2)} ({found.group(1)})" if found else "another process"


def _is_being_created(error: duckdb.Error, path: Path) -> bool:
    """An older mmpipe created the file a moment ago and has not written its header yet."""
    try:
        young = time.time() - Path(path).stat().st_mtime < 5.0
    except OSError:
        return False
    return isinstance(error, duckdb.IOException) and "not a valid DuckDB database file" in str(error) and young


_DISK_ERRORS = {"No space left on device": "the disk is full", "Read-only file system": "the filesystem is read-only",
                "Disk quota exceeded": "the disk quota is exceeded", "Permission denied": "permission denied"}


# DuckDB's words for a file that is not (wholly) a database: garbage, or cut short
_DAMAGE_MARKERS = ("not a valid DuckDB database file", "Could not read enough bytes", "checksum")


def _unavailable(error: duckdb.Error, path: Path, writing_: bool) -> UserError | None:
    """DuckDB's error as one line naming the cause, or None when it is not about the file."""
    text = str(error)
    for marker, reason in _DISK_ERRORS.items():
        if marker in text:
            doing = "write" if writing_ else "read"
            return DatabaseUnavailable(disk_error_message(path, f"could not {doing} the results DB", reason))
    if any(marker in text for marker in _DAMAGE_MARKERS) or "database file" in text and "corrupt" in text.lower():
        return DatabaseUnavailable(f"{path} is not a readable DuckDB database (damaged): move it aside with "
                                   "`mmpipe verify --repair`, then `mmpipe probe --all` rebuilds it")
    return None


@contextmanager
def _named_failures(path: Path, *, writing_: bool) -> Iterator[None]:
    """DuckDB errors about the file itself (disk, damage) as `DatabaseUnavailable`; others as they are."""
    try:
        yield
    except duckdb.Error as error:
        problem = _unavailable(error, path, writing_)
        if problem is None:
            raise
        raise problem from None


# A connection for user SQL: it reads this one database and nothing else. DuckDB itself refuses
# every file or network access (COPY … TO, read_csv, ATTACH, INSTALL/LOAD, even under EXPLAIN
# ANALYZE), and the configuration is locked so no SET can undo it.
CONFINED = {"enable_external_access": False, "autoinstall_known_extensions": False,
            "autoload_known_extensions": False, "lock_configuration": True}


def _connect(path: Path, *, read_only: bool, timeout_s: float | None = None,
             config: dict[str, object] | None = None) -> duckdb.DuckDBPyConnection:
    """Connect, waiting while another process holds the file lock (jittered exponential backoff):
    after ``NOTICE_AFTER_S`` the wait is logged with the holder, after ``timeout_s`` (default
    `lock_wait_s`) it ends in `DatabaseUnavailable`."""
    timeout_s = lock_wait_s() if timeout_s is None else timeout_s
    started = time.monotonic()
    noticed = False
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.Error as error:
            waited = time.monotonic() - started
            if _is_lock_error(error):
                if waited > timeout_s:
                    raise DatabaseUnavailable(
                        f"{path} is locked by {_holder(error)}; gave up after waiting {timeout_s:.0f} s "
                        f"(set {LOCK_WAIT_ENV} to wait longer), run the command again when it has finished") from None
                if not noticed and waited >= NOTICE_AFTER_S:
                    log.warning("%s is locked by %s; waiting up to %.0f s", path, _holder(error), timeout_s)
                    noticed = True
            elif not (_is_being_created(error, path) and waited <= timeout_s):
                problem = _unavailable(error, path, not read_only)
                if problem is None:
                    raise
                raise problem from None
        time.sleep(min(delay * (0.5 + random.random()), max(0.0, started + timeout_s - time.monotonic()) + 0.01))
        delay = min(delay * 2, 0.5)


def _create(path: Path) -> None:
    """Make the DB with its tables under a temporary name, then link it into place: a failed or
    killed first write leaves no results file (only a temporary one, removed by the next writer
    of the same process id or by `mmpipe verify --repair`). An empty file (older mmpipe versions
    left one on a full disk) holds nothing and is replaced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    wal = tmp.with_name(tmp.name + ".wal")
    for leftover in (tmp, wal):
        leftover.unlink(missing_ok=True)
    try:
        with _named_failures(path, writing_=True):
            conn = duckdb.connect(str(tmp))
            try:
                conn.execute(SCHEMA)
            finally:
                conn.close()  # checkpoints: the tables are in the file itself, no WAL is left
        if _is_empty(path):
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first; its tables are the same
    except OSError as error:
        raise DatabaseUnavailable(disk_error_message(path, "could not create the results DB",
                                                     error.strerror or str(error))) from None
    finally:
        for leftover in (tmp, wal):
            leftover.unlink(missing_ok=True)


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


@contextmanager
def writing(path: Path, *, timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short write transaction on a fresh connection; the file lock is released on exit.

    A results DB whose ``runs`` table has other columns (written by an older mmpipe) is refused
    in one line rather than misread. A write the disk refuses raises `DatabaseUnavailable`."""
    path = Path(path)
    if not path.exists() or _is_empty(path):
        _create(path)
    conn = _connect(path, read_only=False, timeout_s=timeout_s)
    try:
        with _named_failures(path, writing_=True):
            conn.execute(SCHEMA)
            conn.execute("BEGIN TRANSACTION")
            try:
                check_schema(conn, path)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except duckdb.Error:
                    pass  # DuckDB already aborted it (e.g. after a failed write): the cause is being raised
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


def replace_retrieval(conn: duckdb.DuckDBPyConnection, run_id: str, rows: Iterable[RetrievalRow]) -> int:
    """Inside a ``writing`` transaction: replace every retrieval row of ``run_id``; returns how many."""
    rows = list(rows)
    conn.execute("DELETE FROM retrieval WHERE run_id = ?", [run_id])
    _insert(conn, "retrieval", rows)
    return len(rows)


def replace_stress(conn: duckdb.DuckDBPyConnection, key: StressKey, rows: Iterable[StressRow]) -> int:
    """Inside a ``writing`` transaction: replace the stress rows of ``key`` (one corruption of one
    run, at its rates; rows at other rates stay); returns how many were written."""
    rows = list(rows)
    for rate in key.rates:
        conn.execute("DELETE FROM stress WHERE run_id = ? AND modality = ? AND mode = ? "
                     "AND noise_std IS NOT DISTINCT FROM ? AND corruption_seed = ? AND rate = ?",
                     [key.run_id, key.modality, key.mode, key.noise_std, key.corruption_seed, rate])
    _insert(conn, "stress", rows)
    return len(rows)


def write_probes(path: Path, run: RunRow, labels: Iterable[LabelRow], rows: Iterable[ProbeRow]) -> int:
    """Replace everything stored for ``run.run_id`` (its run row and all its probe rows) in one
    transaction, so re-probing a run never duplicates rows. Returns the number of probe rows."""
    with writing(path) as conn:
        replace_run(conn, run, labels)
        return replace_probes(conn, run.run_id, rows)


# -- spill: scores a write could not save, kept for the next one -----------------------------------
@dataclass(frozen=True)
class Spill:
    """One run's rows that could not be written (`spill`), waiting in ``path`` for the next write."""

    path: Path
    run: RunRow
    labels: list[LabelRow]
    probes: list[ProbeRow]
    retrieval: list[RetrievalRow] = field(default_factory=list)  # absent from an older mmpipe's spill file


def spill_dir(db: Path) -> Path:
    """``<db>.unsaved/``: one JSON file per run whose rows wait to be written."""
    return Path(db).with_name(Path(db).name + ".unsaved")


def spill(db: Path, run: RunRow, labels: Iterable[LabelRow], probes: Iterable[ProbeRow],
          retrieval: Iterable[RetrievalRow] = ()) -> Path:
    """Keep one run's rows beside the DB (atomically: a complete file or none); returns its path.
    Raises OSError when even that cannot be written (the same full or read-only disk)."""
    folder = spill_dir(db)
    folder.mkdir(exist_ok=True)
    target = folder / f"{run.run_id}.json"
    tmp = folder / f".{run.run_id}.json.tmp"
    data = {"run": asdict(run), "labels": [asdict(r) for r in labels], "probes": [asdict(r) for r in probes],
            "retrieval": [asdict(r) for r in retrieval]}
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def spilled(db: Path) -> list[Spill]:
    """The rows waiting beside ``db``, oldest first; an unreadable spill file is a UserError."""
    folder = spill_dir(db)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(path.read_text())
            found.append(Spill(path, RunRow(**data["run"]), [LabelRow(**r) for r in data["labels"]],
                               [ProbeRow(**r) for r in data["probes"]],
                               [RetrievalRow(**r) for r in data.get("retrieval", [])]))
        except (OSError, ValueError, TypeError, KeyError):
            raise UserError(f"{path} (probe scores kept after a failed write) is unreadable: delete it and "
                            "probe that run again") from None
    return found


# -- reading --------------------------------------------------------------------------------------
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


TABLES = ("runs", "probes", "labels")
LATER_TABLES = {"stress": STRESS_COLUMNS, "retrieval": RETRIEVAL_COLUMNS}  # added after the first release: read as empty where absent
Prepare = Callable[[duckdb.DuckDBPyConnection], None]


@contextmanager
def reading(path: Path, *, confined: bool = False, prepare: Prepare | None = None,
            ) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection (``confined``: one that can reach no file but the database, for
    user SQL); ``prepare`` runs on it first (e.g. temporary views). A store with no results yet
    (no file, an empty one, or one without its tables) is a UserError."""
    path = Path(path)
    if not path.exists() or _is_empty(path):
        raise UserError(f"no results yet at {path}; probe runs first with `mmpipe probe --all`")
    conn = _connect(path, read_only=True, config=CONFINED if confined else None)
    try:
        with _named_failures(path, writing_=False):
            tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if not set(TABLES) <= tables:
                raise UserError(f"no results yet at {path} (it has no tables); probe runs with `mmpipe probe --all`")
            for table, columns in LATER_TABLES.items():
                if table not in tables:  # a file from before the table: an empty one, for this connection
                    conn.execute(f"CREATE TEMP TABLE {table} ({columns})")
            if prepare is not None:
                prepare(conn)
            yield conn
    finally:
        conn.close()


def db_problem(path: Path) -> str | None:
    """What is wrong with the results DB at ``path`` (one line), or None when it reads: a file
    that is not a DuckDB database, tables missing or of another mmpipe's columns. No DB is fine."""
    path = Path(path)
    if not path.exists() or _is_empty(path):
        return None
    try:
        conn = _connect(path, read_only=True, config=CONFINED)
    except UserError as error:
        return str(error)
    except duckdb.Error as error:
        return _one_line(error)
    try:
        tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        missing = [t for t in TABLES if t not in tables]
        if missing:
            return f"{path} has no {', '.join(missing)} table: it was never fully written"
        check_schema(conn, path)
        # every row of every column: a file cut short fails only where it is read
        for table in (*TABLES, *(t for t in LATER_TABLES if t in tables)):
            result = conn.execute(f"SELECT * FROM {table}")
            while result.fetchmany(100_000):
                pass
    except UserError as error:
        return str(error)
    except duckdb.Error as error:
        return str(_unavailable(error, path, False) or f"{path}: {_one_line(error)}")
    finally:
        conn.close()
    return None


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]


def query(path: Path, sql: str, prepare: Prepare | None = None) -> QueryResult:
    """Run user SQL on a confined read-only connection (`CONFINED`). Statements other than
    SELECT/EXPLAIN are refused with a clear line before execution; whatever gets past that can
    still neither write nor read a file, nor load an extension. Malformed or refused SQL becomes
    a UserError carrying DuckDB's own message; ``prepare`` runs on the connection first."""
    with reading(path, confined=True, prepare=prepare) as conn:
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
            raise (_unavailable(error, path, False) or UserError(_one_line(error))) from None


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

