"""The results DB when things go wrong: a full disk, a lock held by another process, a kill
during the first write, an empty or damaged file. Nothing is wedged, no cause is hidden, and a
probe's computed scores are never lost silently."""

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from mmpipe.evaluate.probes import ProbeOutcome
from mmpipe.evaluate.results import save_probes
from mmpipe.store.errors import UserError, disk_error
from mmpipe.store.results import (
    DatabaseUnavailable,
    LabelRow,
    ProbeRow,
    RunRow,
    db_problem,
    query,
    reading,
    spill_dir,
    write_probes,
)
from tests.evalruns import publish_synthetic, simulate_sim1


def _run_row(run_id: str, seed: int = 0) -> RunRow:
    return RunRow(run_id, "toy", None, "{}", "{}", "d", None, seed, "f", "{}", None, None, None, None, None, "toy")


LABELS = [LabelRow("d", "y", "categorical", "shared")]


def _rows(run_id: str, n: int = 3) -> list[ProbeRow]:
    return [ProbeRow(run_id, f"c{c}", "y", "accuracy", c / 10, "p", 10, 5) for c in range(n)]


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])
    conn.execute("SELECT 1").fetchall()
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def _hold_lock(db, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_held_lock_is_announced_with_its_holder_then_given_up_after_a_bounded_wait(tmp_path, monkeypatch):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a"))
    holder = _hold_lock(db, 30)
    monkeypatch.setenv("MMPIPE_LOCK_WAIT_S", "3")
    seen = _Records()  # on the module's own logger: the CLI stops mmpipe's records from propagating
    logger = logging.getLogger("mmpipe.store.results")
    logger.addHandler(seen)
    try:
        started = time.time()
        with pytest.raises(DatabaseUnavailable, match=rf"locked by PID {holder.pid} .*gave up after waiting 3 s"):
            write_probes(db, _run_row("b"), LABELS, _rows("b"))
        waited = time.time() - started
        notice = [r for r in seen.records if "waiting up to 3 s" in r.getMessage()]
        assert len(notice) == 1 and f"PID {holder.pid}" in notice[0].getMessage()
        assert notice[0].created - started < 2.0  # said within two seconds
        assert 3.0 <= waited < 6.0
        with pytest.raises(DatabaseUnavailable, match="locked by"):  # readers too: bounded, one line
            query(db, "SELECT 1")
    finally:
        logger.removeHandler(seen)
        holder.kill()
        holder.wait()
    assert query(db, "SELECT count(*) FROM probes").rows == [(3,)]


def test_a_probe_keeps_its_scores_when_the_db_is_locked_and_the_next_probe_saves_them(store, monkeypatch):
    version = simulate_sim1(store, n=200).manifest_version
    first, second = publish_synthetic(store, version, seed=0), publish_synthetic(store, version, seed=1)
    save_probes(store, first, ProbeOutcome(rows=_rows(first.run_id)))
    holder = _hold_lock(store.results_db, 30)
    monkeypatch.setenv("MMPIPE_LOCK_WAIT_S", "1")
    try:
        with pytest.raises(DatabaseUnavailable, match=rf"scores of {second.run_id} are kept in .*next `mmpipe probe`"):
            save_probes(store, second, ProbeOutcome(rows=_rows(second.run_id, n=5)))
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in spill_dir(store.results_db).iterdir()] == [f"{second.run_id}.json"]
    save_probes(store, first, ProbeOutcome(rows=_rows(first.run_id, n=2)))  # any later probe imports them
    counts = query(store.results_db, "SELECT run_id, count(*) FROM probes GROUP BY ALL ORDER BY ALL").rows
    assert sorted(counts) == sorted([(first.run_id, 2), (second.run_id, 5)])
    assert query(store.results_db, "SELECT count(*) FROM runs").rows == [(2,)]
    assert list(spill_dir(store.results_db).iterdir()) == []


def test_an_empty_or_tableless_db_reads_as_no_results_and_the_next_write_repairs_it(tmp_path):
    db = tmp_path / "r.duckdb"
    db.touch()  # what an older mmpipe left after a first probe on a full disk
    assert db_problem(db) is None
    with pytest.raises(UserError, match="no results yet"):
        query(db, "SELECT 1")
    write_probes(db, _run_row("a"), LABELS, _rows("a"))
    assert query(db, "SELECT count(*) FROM probes").rows == [(3,)]

    other = tmp_path / "t.duckdb"
    duckdb.connect(str(other)).close()  # a first write killed before its tables (older mmpipe)
    assert "has no runs, probes, labels table" in db_problem(other)
    with pytest.raises(UserError, match="no results yet"):
        query(other, "SELECT 1")
    write_probes(other, _run_row("a"), LABELS, _rows("a"))
    assert db_problem(other) is None


def test_a_damaged_db_is_named_in_one_line(tmp_path):
    db = tmp_path / "r.duckdb"
    db.write_bytes(os.urandom(20_000))
    for attempt in (lambda: query(db, "SELECT 1"), lambda: write_probes(db, _run_row("a"), LABELS, _rows("a"))):
        with pytest.raises(DatabaseUnavailable, match=r"not a readable DuckDB database .*mmpipe verify --repair") as err:
            attempt()
        assert "\n" not in str(err.value)
    assert "not a readable DuckDB database" in db_problem(db)
    good = tmp_path / "g.duckdb"
    write_probes(good, _run_row("a"), LABELS, _rows("a"))
    assert db_problem(good) is None


KILLED_WRITER = textwrap.dedent("""
    import sys
    from mmpipe.store.results import LabelRow, ProbeRow, RunRow, write_probes
    run = RunRow("a", "toy", None, "{}", "{}", "d", None, 0, "f", "{}", None, None, None, None, None, "toy")
    rows = [ProbeRow("a", f"c{c}", "y", "accuracy", c / 10, "p", 1, 1) for c in range(200_000)]
    print("writing", flush=True)
    write_probes(sys.argv[1], run, [LabelRow("d", "y", "categorical", "shared")], rows)
""")


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8])
def test_a_first_write_killed_midway_leaves_no_db_or_a_whole_one(tmp_path, delay):
    db = tmp_path / "r.duckdb"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    time.sleep(delay)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert db_problem(db) is None  # absent, or with its tables (and then all rows or none)
    if db.exists():
        assert query(db, "SELECT count(*) FROM probes").rows in ([(0,)], [(200_000,)])
    write_probes(db, _run_row("b"), LABELS, _rows("b"))  # the next command is not wedged
    assert query(db, "SELECT count(*) FROM probes WHERE run_id = 'b'").rows == [(3,)]


def test_disk_errors_name_the_file_the_cause_and_the_free_space(tmp_path):
    error = disk_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x" / "meta.json")))
    assert str(error).startswith(f"could not write at {tmp_path / 'x' / 'meta.json'}: the disk is full (")
    assert "free)" in str(error)
    assert "read-only" in str(disk_error(OSError(errno.EROFS, "Read-only file system", "/s/f")))
    assert disk_error(OSError(errno.ENOENT, "No such file", "/s/f")) is None  # not the disk's doing


FULL_DISK = textwrap.dedent("""
    import os, sys
    from mmpipe.store.errors import UserError
    from mmpipe.store.results import LabelRow, ProbeRow, RunRow, query, write_probes
    folder = sys.argv[1]
    db = os.path.join(folder, "results.duckdb")

    def write(run_id, n):
        run = RunRow(run_id, "toy", None, "{}", "{}", "d", None, 0, "f", "{}", None, None, None, None, None, "toy")
        rows = [ProbeRow(run_id, f"c{c}" * 20, "y", "accuracy", c / 10, "p", 1, 1) for c in range(n)]
        write_probes(db, run, [LabelRow("d", "y", "categorical", "shared")], rows)

    def fill():
        handle = open(os.path.join(folder, "filler"), "wb", buffering=0)
        try:
            while True:
                handle.write(b"x" * 4096)
        except OSError:
            pass
        try:
            handle.close()
        except OSError:
            pass

    fill()
    try:
        write("first", 10)
    except UserError as error:
        print("first:", error)
    print("files:", sorted(os.listdir(folder)))
    os.remove(os.path.join(folder, "filler"))
    write("a", 10)
    fill()
    try:
        write("b", 3000)
    except UserError as error:
        print("later:", error)
    os.remove(os.path.join(folder, "filler"))
    print("after:", query(db, "SELECT run_id, count(*) FROM probes GROUP BY ALL ORDER BY ALL").rows)
    write("c", 10)
    print("then:", query(db, "SELECT run_id, count(*) FROM probes GROUP BY ALL ORDER BY ALL").rows)
""")


def _in_small_filesystem(script: str, size: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``script`` (argv[1] = a folder on a tmpfs of ``size``) in a user and mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available")
    folder = tmp_path / "small"
    folder.mkdir()
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here")
    command = f"mount -t tmpfs -o size={size} tmpfs {folder} && exec {sys.executable} -c \"$0\" {folder}"
    return subprocess.run(["unshare", "-Urm", "sh", "-c", command, script], capture_output=True, text=True,
                          timeout=120)


def test_a_full_disk_fails_in_one_line_leaves_no_half_db_and_wedges_nothing(tmp_path):
    result = _in_small_filesystem(FULL_DISK, "2m", tmp_path)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["first"].startswith("could not write the results DB at ") and "the disk is full" in lines["first"]
    assert lines["files"] == "['filler']"  # the failed first write left no results file
    assert "the disk is full" in lines["later"] and "rollback" not in lines["later"]
    assert lines["after"] == "[('a', 10)]"  # the failed write is rolled back, the DB is intact
    assert lines["then"] == "[('a', 10), ('c', 10)]"


def test_the_cli_says_who_holds_the_lock_within_two_seconds_then_gives_up_in_one_line(tmp_path):
    from mmpipe.store.root import Store

    store = Store.open(tmp_path / "store", create=True)
    write_probes(store.results_db, _run_row("a"), LABELS, _rows("a"))
    holder = _hold_lock(store.results_db, 30)
    try:
        cli = subprocess.Popen(["mmpipe", "--store", str(store.root), "query", "SELECT count(*) FROM probes"],
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "MMPIPE_LOCK_WAIT_S": "4"})
        notice = cli.stderr.readline()
        noticed = time.monotonic()
        rest = cli.stderr.read()
        cli.wait()
        gave_up = time.monotonic()
    finally:
        holder.kill()
        holder.wait()
    assert notice.startswith("mmpipe: ") and f"locked by PID {holder.pid}" in notice and "waiting up to 4 s" in notice
    # the wait lasts 4 s; the notice came at least 2 s before its end, so within 2 s of its start
    assert gave_up - noticed >= 2.0
    assert cli.returncode == 2
    assert rest.count("\n") == 1 and rest.startswith("mmpipe: error: ") and "gave up after waiting 4 s" in rest
    assert "Traceback" not in rest


def test_a_db_cut_short_is_named_as_damaged_by_every_reader_and_by_db_problem(tmp_path):
    db = tmp_path / "r.duckdb"
    for index in range(3):
        write_probes(db, _run_row(f"r{index}", index), LABELS, _rows(f"r{index}", n=2000))
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    assert "not a readable DuckDB database" in db_problem(db)
    with pytest.raises(DatabaseUnavailable, match="not a readable DuckDB database .*verify --repair"):
        query(db, "SELECT * FROM probes")
    with pytest.raises(DatabaseUnavailable, match="not a readable DuckDB database"), reading(db) as conn:
        conn.execute("SELECT * FROM probes").fetchall()
