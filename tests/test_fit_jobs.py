"""`mmpipe fit --jobs 2` stopped from outside: its worker processes never outlive it, and it says so
in one line.

The fit tests start a fit long enough never to finish, wait until both workers are initialised
(they ignore SIGINT: /proc/<pid>/status) or, for an early Ctrl-C, merely exist, signal, and check
that the workers are gone within seconds and that no run is listed. SIGINT goes to the whole
process group, as a terminal's Ctrl-C does; SIGKILL and SIGTERM go to the CLI process alone, as a
supervisor's would. The early Ctrl-C runs the CLI from a script file, as the `mmpipe` console
script does: spawned workers then re-import the whole CLI before their initializer runs, which
leaves seconds for a Ctrl-C to reach them there. Extraction's DataLoader workers use the same
`die_with_parent`, tested once here. Two small tests check its other guards: a parent gone before
the call, and the polling thread alone (as without PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.root import Store
from tests.media import write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

NEVER_ENDS = [option for name in ("max_epochs_shared", "max_epochs_private", "max_epochs_joint", "patience",
                                  "joint_patience") for option in ("--set", f"{name}=1000000")]
STARTUP_S = 90  # two spawned workers import torch on a shared two-core machine
EXIT_S = 15
GONE_S = 5
CONSOLE_SCRIPT = 'from mmpipe.pipeline.cli import main\nif __name__ == "__main__":\n    main()\n'


@pytest.fixture
def root(tmp_path) -> Path:
    store = Store.open(tmp_path / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=200))
    return store.root


def _start(root: Path, stderr: int, script: Path | None = None) -> subprocess.Popen:
    cli = [str(script)] if script is not None else ["-m", "mmpipe.pipeline"]
    return subprocess.Popen(
        [sys.executable, *cli, "--store", str(root), "fit", "multiloreft", "--dataset", "sim1",
         "--seeds", "0,1", "--jobs", "2", "--set", "minibatch_size=64", *NEVER_ENDS],
        stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _worker(pid: int, initialised: bool) -> bool:
    """A pool worker (not multiprocessing's resource tracker), past its initializer if ``initialised``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return b"spawn_main" in command and (not initialised or bool(ignored & (1 << (signal.SIGINT - 1))))


def _workers(process: subprocess.Popen, initialised: bool = True) -> dict[int, str]:
    """The two pool workers of ``process``, once both exist (and are initialised if asked):
    pid -> start time (a pid's identity)."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the fit ended early with exit code {process.returncode}"
        workers = {}
        for entry in Path("/proc").iterdir():
            fields = _stat(int(entry.name)) if entry.name.isdigit() else None
            if fields is not None and int(fields[1]) == process.pid and _worker(int(entry.name), initialised):
                workers[int(entry.name)] = fields[19]
        if len(workers) == 2:
            return workers
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the fit's two workers were not {'initialised' if initialised else 'started'} within {STARTUP_S} s")


def _stderr_after_exit(process: subprocess.Popen, workers: dict[int, str], what: str) -> str:
    try:
        return process.communicate(timeout=EXIT_S)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        _assert_gone(workers)
        pytest.fail(f"the fit did not exit within {EXIT_S} s of {what}")

def _alive(workers: dict[int, str]) -> list[int]:
    # a zombie has exited (whether or not anyone reaped it); a new start time is another process
    return [pid for pid, started in workers.items()
            if (fields := _stat(pid)) is not None and fields[0] != "Z" and fields[19] == started]


def _assert_gone(workers: dict[int, str], within_s: float = GONE_S) -> None:
    deadline = time.monotonic() + within_s
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(workers)
    for pid in alive:  # do not leave them running after a failure
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their parent by {within_s} s"


def test_workers_die_when_the_fit_is_killed(root):
    process = _start(root, subprocess.DEVNULL)
    workers = _workers(process)
    process.kill()
    process.wait()
    _assert_gone(workers)
    assert Store.open(root).runs() == []


@pytest.mark.parametrize("stop", ["ctrl-c", "early ctrl-c", "sigterm"])
def test_an_interrupted_fit_stops_its_workers_and_says_one_line(root, tmp_path, stop):
    script = tmp_path / "mmpipe_script.py"
    script.write_text(CONSOLE_SCRIPT)
    process = _start(root, subprocess.PIPE, script if stop == "early ctrl-c" else None)
    workers = _workers(process, initialised=stop != "early ctrl-c")
    if stop == "sigterm":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    stderr = _stderr_after_exit(process, workers, stop)
    _assert_gone(workers)
    assert process.returncode == 130
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmpipe: error: interrupted"), stderr
    assert Store.open(root).runs() == []


def test_a_worker_killed_from_outside_is_one_line_and_stops_the_fit(root):
    process = _start(root, subprocess.PIPE)
    workers = _workers(process)
    os.kill(min(workers), signal.SIGKILL)
    stderr = _stderr_after_exit(process, workers, "a worker's death")
    _assert_gone(workers)
    assert process.returncode == 2
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmpipe: error: a worker process died"), stderr
    assert Store.open(root).runs() == []


def test_extraction_workers_die_at_once_with_the_extraction(tmp_path, tiny_weights):  # noqa: F811
    """torch's own watchdog would take up to 5 s (MP_STATUS_CHECK_INTERVAL) to end an idle worker."""
    rows = []
    for i in range(14):
        write_wav(tmp_path / "data" / "audio" / f"s{i:02d}.wav", 0.3, seed=i)
        rows.append({"sample_id": f"s{i:02d}", "audio": f"audio/s{i:02d}.wav", "emotion": "ang", "group": f"g{i % 4}"})
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "samples.csv", index=False)
    fifo = tmp_path / "data" / "audio" / "s06.wav"  # the loader, planning ahead, blocks on it for good
    fifo.unlink()
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "mmpipe.pipeline", "--store", str(tmp_path / "store"), "extract", "folder",
         "--encoder", "wavlm", "--data-dir", str(tmp_path / "data"), "--weights", str(tiny_weights("wavlm")),
         "--set", "modalities=audio:audio", "--workers", "2", "--batch-size", "2", "--chunk-rows", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + STARTUP_S
    workers: dict[int, str] = {}
    while len(workers) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, f"the extraction ended early with exit code {process.returncode}"
        time.sleep(0.1)
        workers = {int(entry.name): fields[19] for entry in Path("/proc").iterdir()
                   if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None
                   and int(fields[1]) == process.pid}
    time.sleep(1.0)  # forked workers run their init at once; this leaves them a thousand times the time
    process.kill()
    process.wait()
    assert len(workers) == 2, workers
    _assert_gone(workers, within_s=1.0)


# a child that arms die_with_parent for the middle process that started it, then says so in a file
CHILD = """
import sys, time
if sys.argv[4] == "no-pdeathsig":
    sys.platform = "other"  # as on a system without PR_SET_PDEATHSIG: only the polling thread
from mmpipe.pipeline.workers import die_with_parent
time.sleep(float(sys.argv[3]))
die_with_parent(int(sys.argv[1]))
open(sys.argv[2], "w").write("armed")
time.sleep(60)
"""
# the middle process: starts the child, prints its pid, waits for the file if asked, and exits
MIDDLE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), *sys.argv[2:5]])
print(child.pid, flush=True)
while sys.argv[5] == "wait-armed" and not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
os._exit(0)
"""


def _orphan(tmp_path: Path, delay_s: float, pdeathsig: str, wait: str) -> tuple[dict[int, str], Path]:
    marker = tmp_path / "armed"
    middle = subprocess.run([sys.executable, "-c", MIDDLE, CHILD, str(marker), str(delay_s), pdeathsig, wait],
                            capture_output=True, text=True, timeout=60, check=True)
    pid = int(middle.stdout)
    fields = _stat(pid)
    return ({pid: fields[19]} if fields is not None else {}), marker


def test_a_worker_whose_parent_died_before_it_armed_exits(tmp_path):
    child, marker = _orphan(tmp_path, 1.0, "pdeathsig", "no-wait")
    _assert_gone(child)
    assert not marker.exists()


def test_the_polling_thread_alone_ends_an_orphaned_worker(tmp_path):
    child, marker = _orphan(tmp_path, 0.0, "no-pdeathsig", "wait-armed")
    assert marker.read_text() == "armed"
    _assert_gone(child)
