"""Hostile-user audit of the CLI (issue #12): try every case of each area and print a table of
cases tried / held / broke, then each broken case.

    python tests/benchmarks/hostile_audit.py [--areas bad-input,query,...] [--verbose]

Areas:
  bad-input      every command × generated bad values for every option and config field
                 (`tests/cli_cases.py`, the fuzz test's generator)
  query          statements that try to write, read outside the store, or load extensions
  corrupt-store  each store file × each damage (deleted, cut to half, zero bytes, random bytes,
                 JSON of the wrong shape) × each command; a command that needs the file must fail
                 in one line or skip and name it, one that does not must still work, and verify
                 must name it
  kill           simulate, fit and probe killed at several moments, then re-run: the result is
                 the same as an uninterrupted run
  concurrency    the same simulate twice at once, two probes at once, query during a probe
  media          every media kind × every damage through the decoders (`tests/media.py`)
  disk-full      simulate, fit and probe on a full filesystem (a small tmpfs in a user namespace)
  read-only      every command on a read-only store (a read-only bind mount, same namespace)
  lock           query, report and probe while another process holds the results DB

A case *holds* when: no traceback; a refusal is exit 2 with one ``mmpipe: error:`` line (plus
``mmpipe:`` notices, e.g. a lock wait); nothing stored changed unless the command's job is to
change it; and a command that succeeds gives the same result as on an intact store.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import typer.testing
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mmpipe.pipeline.cli import app  # noqa: E402

# Typer rebuilds the Click command on every invoke; the audit invokes thousands of times
typer.testing._get_command = functools.cache(typer.testing._get_command)
RUNNER = CliRunner()


@dataclass
class Outcome:
    area: str
    case: str
    held: bool
    detail: str = ""


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    crashed: str | None = None  # an exception that escaped (in-process runs)

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("mmpipe: error:")]

    def clean(self) -> str | None:
        """Why the output is not clean: a traceback, or stderr lines that are not mmpipe's."""
        if self.crashed:
            return f"raised {self.crashed}"
        if "Traceback" in self.stdout + self.stderr:
            return "traceback"
        stray = [line for line in self.stderr.splitlines() if "Warning" in line and not line.startswith("mmpipe:")]
        return f"a warning escaped: {stray[0][:120]}" if stray else None

    def refused(self) -> str | None:
        """Why this is not a proper refusal (exit 2, one error line, clean)."""
        problem = self.clean()
        if problem:
            return problem
        if self.code != 2:
            return f"exit {self.code}"
        if len(self.errors) != 1:
            return f"{len(self.errors)} error lines"
        return None


def invoke(store: Path, *argv: str, env: dict[str, str] | None = None) -> Ran:
    result = RUNNER.invoke(app, ["--store", str(store), *argv], env=env)
    crashed = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crashed = f"{type(result.exception).__name__}: {str(result.exception)[:150]}"
    return Ran(result.exit_code, result.stdout, result.stderr, crashed)


def run_cli(store: Path, *argv: str, timeout: float = 600, env: dict[str, str] | None = None) -> Ran:
    done = subprocess.run([sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), *argv],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return Ran(done.returncode, done.stdout, done.stderr)


def tree_hashes(root: Path) -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


FIT = ("fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", "--set", "max_epochs_shared=2",
       "--set", "max_epochs_private=2", "--set", "max_epochs_joint=3")
PROBE = ("probe", "--all", "--label", "y_s", "--component", "z_s")


def build_base(root: Path) -> tuple[Path, str]:
    """sim1 (400 rows), one short MultiLoReFT run, probed for y_s on z_s."""
    store = root / "base"
    for step in (("simulate", "sim1", "--n", "400"), FIT, PROBE):
        ran = invoke(store, *step)
        assert ran.code == 0, (step, ran.stderr, ran.crashed)
    return store, f"multiloreft-{_entry(store / 'runs' / 'multiloreft').name[:12]}"


# -- bad input and query ---------------------------------------------------------------------------
def bad_input(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    from tests.cli_cases import cases as bad_input_cases  # reads the declared ranges of this mmpipe

    scratch = work / "scratch"
    scratch.mkdir()
    (scratch / "a_file").write_text("x")
    store = work / "store"
    shutil.copytree(base, store)
    before = tree_hashes(store)
    for case in bad_input_cases(store, scratch, run_id):
        area = "query" if case.command == "query" else "bad-input"
        ran = invoke(store, *case.argv)
        problem = ran.refused()
        if problem is None and case.expect.lower() not in ran.errors[0].lower():
            problem = f"error does not name {case.expect!r}: {ran.errors[0]}"
        yield Outcome(area, f"{case.command}: {case.what}", problem is None, problem or "")
    if tree_hashes(store) != before:
        yield Outcome("bad-input", "store unchanged after every case", False, "store files changed")


QUERY_ESCAPES = (
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{store}/runs/x.safetensors'",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{store}/STORE.json'",
    "EXPLAIN ANALYZE INSTALL httpfs", "EXPLAIN ANALYZE LOAD httpfs", "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')", "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')", "SELECT * FROM '/etc/passwd'", "EXPLAIN ANALYZE ATTACH '{store}/x.db'",
    "EXPLAIN ANALYZE SET enable_external_access = true", "SELECT current_setting('enable_external_access')",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "EXPLAIN ANALYZE DELETE FROM probes",
    "EXPLAIN ANALYZE EXPORT DATABASE '{store}/dump'", "WITH x AS (SELECT 1) DELETE FROM probes",
    "SELECT * FROM parquet_scan('{store}/manifests/sim1/*.parquet')", "SELECT * FROM duckdb_secrets()",
)


def query_escapes(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    store = work / "store"
    shutil.copytree(base, store)
    before = tree_hashes(store)
    for template in QUERY_ESCAPES:
        sql = template.format(store=store)
        ran = invoke(store, "query", sql)
        changed = tree_hashes(store) != before
        leaked = "root:" in ran.stdout or "mmpipe-store" in ran.stdout and "parquet" in sql
        ok = ran.clean() is None and not changed and not leaked and (
            ran.code == 2 or "current_setting" in sql and "false" in ran.stdout.lower())
        yield Outcome("query", f"query {template[:60]}", ok,
                      "" if ok else f"exit {ran.code}, changed={changed}, leaked={leaked} {ran.stderr[:150]}")


# -- corrupt store ---------------------------------------------------------------------------------
def _entry(folder: Path) -> Path:
    return next(p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith("."))


def _targets(store: Path) -> dict[str, Path]:
    feature = _entry(store / "features" / "sim1.m1.simulated")
    run = _entry(store / "runs" / "multiloreft")
    manifest = next((store / "manifests" / "sim1").iterdir())
    first_chunk = next(p for p in sorted((feature / "data").rglob("*")) if p.is_file() and p.name != "zarr.json")
    component_chunk = next(p for p in sorted((run / "components" / "z_s").rglob("*"))
                           if p.is_file() and p.name != "zarr.json")
    return {"STORE.json": store / "STORE.json", "manifest": manifest,
            "feature meta.json": feature / "meta.json", "feature key.json": feature / "key.json",
            "feature zarr.json": feature / "zarr.json", "feature data/zarr.json": feature / "data" / "zarr.json",
            "feature chunk": first_chunk, "run run.json": run / "run.json", "run key.json": run / "key.json",
            "run checkpoint": run / "checkpoint.safetensors", "run components/zarr.json": run / "components" / "zarr.json",
            "run component chunk": component_chunk, "results.duckdb": store / "results.duckdb"}


# which commands read each target (they must fail in one line, or skip and name it)
NEEDS = {"STORE.json": {"info", "fit", "probe", "report", "query", "plot", "verify"},
         "manifest": {"info", "fit", "probe", "plot", "verify"},
         "results.duckdb": {"report", "query", "probe", "verify"}}
for _name in ("feature meta.json", "feature key.json", "feature zarr.json", "feature data/zarr.json", "feature chunk"):
    NEEDS[_name] = {"fit", "verify"} | ({"info"} if _name in ("feature meta.json", "feature key.json") else set())
for _name in ("run run.json", "run key.json", "run components/zarr.json", "run component chunk"):
    NEEDS[_name] = {"probe", "verify"} | ({"info", "fit", "plot"} if _name in ("run run.json", "run key.json")
                                         else {"plot"})
NEEDS["run checkpoint"] = {"verify"}  # probes, plots and reuse read the components, not the weights

DAMAGES = ("delete", "half", "empty", "random", "wrong-json")


def _damage(path: Path, kind: str) -> bool:
    """Damage ``path``; False when the damage does not apply (JSON shape on a binary file)."""
    data = path.read_bytes()
    if kind == "delete":
        path.unlink()
    elif kind == "half":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(max(len(data), 16)))
    elif kind == "wrong-json":
        if path.suffix != ".json":
            return False
        path.write_text("[1, 2, 3]")
    return True


def _command(name: str, run_id: str, scratch: Path) -> tuple[str, ...]:
    return {"info": ("info",), "fit": FIT, "probe": PROBE, "report": ("report", "--format", "markdown"),
            "query": ("query", "SELECT count(*) FROM probes"), "plot": ("plot", run_id, "--out", str(scratch / "p"),
                                                                          "--label", "y_s", "--component", "z_s"),
            "verify": ("verify",)}[name]


def _judge_damage(target: str, kind: str, command: str, path: Path, ran: Ran, reference: Ran) -> str | None:
    """Why ``command`` did not handle the damage (see the module docstring), or None."""
    problem = ran.clean()
    if problem is not None:
        return problem
    said = ran.stdout + ran.stderr
    if target == "results.duckdb" and kind in ("delete", "empty"):  # no results yet: not damage
        if command in ("report", "query"):
            return None if ran.code == 2 and "no results yet" in ran.stderr else f"exit {ran.code}: {ran.stderr[:150]}"
        return None if ran.code == 0 else f"exit {ran.code}: {ran.stderr[:150]}"
    if command == "verify":
        return None if ran.code == 1 and path.name in said else f"verify exit {ran.code}, names it: {path.name in said}"
    if ran.code == 0 and ran.stdout == reference.stdout and command != "info":
        return None  # it did not need the damaged part, and its result is the intact store's
    if command not in NEEDS[target]:
        return None if ran.code == 0 else f"fails ({ran.code}) though it does not need {target}: {ran.stderr[:150]}"
    named = any(word in ran.stderr for word in ("damaged", "verify", path.name)) or \
        target == "manifest" and kind == "delete" and ("manifest" in ran.stderr or "sim1 data" in ran.stderr)
    if ran.code == 0 and command != "info":
        return "exit 0 on damaged input, with another result than the intact store's"
    if ran.code not in (0, 1, 2):
        return f"exit {ran.code}"
    return None if named else f"does not name the damage: {ran.stderr[:150]}"


def corrupt_store(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    commands = ("verify", "info", "query", "report", "plot", "fit", "probe")
    reference = {name: invoke(base, *_command(name, run_id, work / f"ref-{name}")) for name in commands
                 if name != "probe"}
    for target in _targets(base):
        for kind in DAMAGES:
            store = work / f"s-{len(list(work.iterdir()))}"
            shutil.copytree(base, store)
            path = _targets(store)[target]
            if not _damage(path, kind):
                continue
            for command in commands:
                ran = invoke(store, *_command(command, run_id, work / f"out-{command}-{store.name}"))
                problem = _judge_damage(target, kind, command, path, ran, reference.get(command, Ran(-1, "", "")))
                yield Outcome("corrupt-store", f"{target} {kind} → {command}", problem is None, problem or "")
            shutil.rmtree(store)


# -- kill and concurrency --------------------------------------------------------------------------
def _start(store: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _content(store: Path, what: str) -> dict[str, str]:
    return {k: v for k, v in tree_hashes(store).items()
            if k.startswith(what) and "meta.json" not in k and "run.json" not in k}


def _killed_then_rerun(store: Path, argv: tuple[str, ...], delay: float) -> Ran:
    """Start ``argv``, SIGKILL it after ``delay`` seconds, then run it again to the end."""
    process = _start(store, *argv)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return run_cli(store, *argv)


def _copy_without(base: Path, store: Path, part: str) -> Path:
    shutil.copytree(base, store)
    target = store / part
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    return store


SCORES = ("query", "SELECT component, label, metric, value FROM probes ORDER BY ALL", "--format", "csv")


def kill(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    simulate = ("simulate", "sim2", "--n", "20000")
    clean = work / "clean"
    assert run_cli(clean, *simulate).code == 0
    for delay in (1.5, 3.0, 5.0):
        store = work / f"k-sim-{delay}"
        again = _killed_then_rerun(store, simulate, delay)
        same = _content(store, "features") == _content(clean, "features")
        yield Outcome("kill", f"simulate killed at {delay} s, re-run", again.code == 0 and same,
                      f"exit {again.code}, same={same}")
    for delay in (4.0, 8.0):
        store = _copy_without(base, work / f"k-fit-{delay}", "runs")
        again = _killed_then_rerun(store, FIT, delay)
        same = _content(store, "runs") == _content(base, "runs")
        yield Outcome("kill", f"fit killed at {delay} s, re-run", again.code == 0 and same,
                      f"exit {again.code}, components and checkpoint identical={same}")
    reference = run_cli(base, *SCORES)
    for delay in (4.0, 6.0, 8.0):
        store = _copy_without(base, work / f"k-probe-{delay}", "results.duckdb")
        again = _killed_then_rerun(store, PROBE, delay)
        ok = again.code == 0 and run_cli(store, *SCORES).stdout == reference.stdout
        yield Outcome("kill", f"first probe killed at {delay} s, re-run", ok, f"exit {again.code}")


def concurrency(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    store = work / "c-sim"
    processes = [_start(store, "simulate", "sim2", "--n", "5000") for _ in range(2)]
    codes = [p.wait() for p in processes]
    entries = [p for p in (store / "features").glob("*/*") if p.is_dir() and not p.name.startswith(".")]
    yield Outcome("concurrency", "the same simulate twice at once", codes == [0, 0] and len(entries) == 2,
                  f"exit {codes}, entries {len(entries)}")
    store = _copy_without(base, work / "c-fit", "runs")
    processes = [_start(store, *FIT) for _ in range(2)]
    codes = [p.wait() for p in processes]
    same = _content(store, "runs") == _content(base, "runs")
    yield Outcome("concurrency", "the same fit twice at once", codes == [0, 0] and same,
                  f"exit {codes}, one run identical to a lone fit's: {same}")
    store = _copy_without(base, work / "c-probe", "results.duckdb")
    processes = [_start(store, *PROBE) for _ in range(2)]
    reader = [run_cli(store, "query", "SELECT count(*) FROM probes") for _ in range(2)]
    codes = [p.wait() for p in processes]
    rows = run_cli(store, "query", "SELECT count(*) FROM probes", "--format", "csv").stdout.split()
    readers_ok = all(r.code in (0, 2) and r.clean() is None for r in reader)
    yield Outcome("concurrency", "two first probes at once, queries meanwhile",
                  codes == [0, 0] and readers_ok and rows[-1] != "0", f"exit {codes}, rows {rows[-1:]}")


# -- media -----------------------------------------------------------------------------------------
def media(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    import torch

    from mmpipe.pipeline.decode import DecodeError
    from tests.media import damage
    from tests.test_truncated_media import DAMAGES as MEDIA_DAMAGES
    from tests.test_truncated_media import HARMLESS, KINDS, _decoder, _write

    for kind in KINDS:
        suffix = kind.split("+")[0]
        intact = _write(kind, work / f"{kind}-intact.{suffix}")
        for damage_kind in MEDIA_DAMAGES:
            broken = damage(intact, damage_kind, work / f"{kind}-{damage_kind}.{suffix}")
            try:
                decoded = _decoder(kind)(broken)
            except DecodeError as error:
                held, detail = str(broken) in str(error) and "\n" not in str(error), str(error)[:100]
            except Exception as error:  # noqa: BLE001 - the audit records what escaped
                held, detail = False, f"{type(error).__name__}: {error}"
            else:
                held = (kind, damage_kind) in HARMLESS and torch.equal(decoded, _decoder(kind)(intact))
                detail = "harmless (the damaged bytes are not decoded)" if held else "decoded as valid"
            yield Outcome("media", f"{kind} {damage_kind}", held, detail)


# -- disk full, read-only, lock ----------------------------------------------------------------------
NAMESPACE = textwrap.dedent("""
    set -e
    mount -t tmpfs -o size={size} tmpfs {mount}
    cp -a {base}/. {mount}/
    {setup}
    exec {python} -c "$0" {mount}
""")

IN_NAMESPACE = textwrap.dedent("""
    import json, os, subprocess, sys
    store = sys.argv[1]
    results = []
    for name, argv, expect in json.loads(os.environ["CASES"]):
        done = subprocess.run([sys.executable, "-m", "mmpipe.pipeline", "--store", store, *argv],
                              capture_output=True, text=True)
        listed = [d for d in os.listdir(os.path.join(store, "runs", "multiloreft"))] \\
            if os.path.isdir(os.path.join(store, "runs", "multiloreft")) else []
        results.append([name, expect, done.returncode, done.stderr, listed])
    print(json.dumps(results))
""")


def _in_namespace(base: Path, size: str, setup: str, cases: list[tuple[str, list[str], str]]) -> list | None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-Urm", "true"]).returncode != 0:
        return None
    mount = Path(tempfile.mkdtemp())
    script = NAMESPACE.format(size=size, mount=mount, base=base, setup=setup.replace("__MOUNT__", str(mount)),
                              python=sys.executable)
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", script, IN_NAMESPACE], capture_output=True, text=True,
                          env={**os.environ, "CASES": json.dumps(cases)}, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.splitlines()[-1])


def _judge(area: str, results: list | None) -> Iterator[Outcome]:
    if results is None:
        yield Outcome(area, "user namespaces unavailable: not tried", False, "skipped")
        return
    for name, expect, code, stderr, listed in results:
        ran = Ran(code, "", stderr)
        problem = ran.clean()
        if problem is None and expect == "ok" and code != 0:
            problem = f"exit {code}: {stderr.strip()[:150]}"
        if problem is None and expect == "refused":
            problem = ran.refused()
            if problem is None and not any(w in stderr for w in ("full", "read-only", "locked", "free")):
                problem = f"the cause is not named: {stderr.strip()[:150]}"
        if problem is None and any(d.startswith(".tmp") for d in listed) and expect == "refused":
            problem = f"temporary run left: {listed}"
        yield Outcome(area, name, problem is None, problem or stderr.strip()[:100])


def disk_full(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    cases = [("simulate sim2 on a full disk", ["simulate", "sim2", "--n", "2000"], "refused"),
             ("fit a new seed on a full disk", [*FIT[:5], "1", *FIT[6:]], "refused"),
             ("probe on a full disk", list(PROBE), "refused"),
             ("info on a full disk", ["info"], "ok"), ("query on a full disk", ["query", "SELECT 1"], "ok"),
             ("report on a full disk", ["report"], "ok"),
             ("simulate of a stored entry on a full disk", ["simulate", "sim1", "--n", "400"], "ok"),
             ("fit of a stored run on a full disk", list(FIT), "ok"), ("verify on a full disk", ["verify"], "ok")]
    # the store is copied into the tmpfs first, then the rest of it is filled
    results = _in_namespace(base, "64m", "dd if=/dev/zero of=__MOUNT__/filler bs=4k 2>/dev/null || true", cases)
    yield from _judge("disk-full", results)


def read_only(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    cases = [("info", ["info"], "ok"), ("list", ["list"], "ok"), ("query", ["query", "SELECT count(*) FROM probes"], "ok"),
             ("report", ["report"], "ok"), ("verify", ["verify"], "ok"),
             ("simulate of a stored entry", ["simulate", "sim1", "--n", "400"], "ok"),
             ("fit of a stored run", list(FIT), "ok"),
             ("plot to a writable folder", ["plot", run_id, "--out", "/tmp/audit-plots", "--label", "y_s",
                                            "--component", "z_s"], "ok"),
             ("simulate a new entry", ["simulate", "sim2", "--n", "500"], "refused"),
             ("fit a new seed", [*FIT[:5], "1", *FIT[6:]], "refused"), ("probe", list(PROBE), "refused"),
             ("verify --repair of a clean store", ["verify", "--repair"], "ok")]
    results = _in_namespace(base, "256m", "mount -o remount,ro,bind __MOUNT__ __MOUNT__ || "
                            "mount -o remount,ro __MOUNT__", cases)
    yield from _judge("read-only", results)


LOCKER = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(600)"


def lock(base: Path, run_id: str, work: Path) -> Iterator[Outcome]:
    store = work / "l"
    shutil.copytree(base, store)
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(store / "results.duckdb")], stdout=subprocess.PIPE,
                              text=True)
    holder.stdout.readline()
    env = {"MMPIPE_LOCK_WAIT_S": "5"}
    try:
        for name, argv in (("query", ("query", "SELECT 1")), ("report", ("report",)), ("probe", PROBE)):
            started = time.monotonic()
            ran = run_cli(store, *argv, env=env)
            took = time.monotonic() - started
            named = f"PID {holder.pid}" in ran.stderr and "waiting" in ran.stderr
            problem = ran.refused() or (None if named else "the holder or the wait is not named")
            if problem is None and name == "probe" and "kept in" not in ran.stderr:
                problem = "the probe's scores are not kept"
            yield Outcome("lock", f"{name} while another process holds the DB", problem is None,
                          problem or f"gave up after {took:.0f} s")
    finally:
        holder.kill()
        holder.wait()
    again = run_cli(store, *PROBE)
    spill = list((store / "results.duckdb.unsaved").glob("*.json")) if (store / "results.duckdb.unsaved").exists() else []
    yield Outcome("lock", "the kept scores are saved by the next probe", again.code == 0 and not spill,
                  f"exit {again.code}, spill files left {len(spill)}")


AREAS: dict[str, Callable[[Path, str, Path], Iterator[Outcome]]] = {
    "bad-input": bad_input, "query": query_escapes, "corrupt-store": corrupt_store, "kill": kill,
    "concurrency": concurrency, "media": media, "disk-full": disk_full, "read-only": read_only, "lock": lock}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", default=",".join(AREAS))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmpipe-audit-"))
    started = time.monotonic()
    base, run_id = build_base(work)
    outcomes: list[Outcome] = []
    for area in args.areas.split(","):
        folder = work / area
        folder.mkdir()
        area_started = time.monotonic()
        found = list(AREAS[area](base, run_id, folder))
        outcomes += found
        print(f"{area}: {len(found)} cases in {time.monotonic() - area_started:.0f} s", file=sys.stderr)
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for outcome in outcomes:
        table[outcome.area][0 if outcome.held else 1] += 1
    print("\n| area | tried | held | broke |\n|---|---|---|---|")
    for area, (held, broke) in table.items():
        print(f"| {area} | {held + broke} | {held} | {broke} |")
    total_held = sum(h for h, _ in table.values())
    total = sum(h + b for h, b in table.values())
    print(f"| all | {total} | {total_held} | {total - total_held} |")
    print("\nbroke:")
    for outcome in outcomes:
        if not outcome.held:
            print(f"- [{outcome.area}] {outcome.case}: {outcome.detail}")
    if args.verbose:
        print("\nheld:")
        for outcome in outcomes:
            if outcome.held:
                print(f"- [{outcome.area}] {outcome.case}: {outcome.detail}")
    print(f"\naudit took {time.monotonic() - started:.0f} s (work folder {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
