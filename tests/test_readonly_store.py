"""A read-only store serves every command that writes nothing; a write the disk refuses (read-only,
full) is one line naming what, where and the free space, and leaves nothing half-published.

The read-only filesystem and the full disk are real (a bind mount remounted read-only, a small
tmpfs), made in a user namespace with `unshare -Urm`; the tests skip where that is unavailable.
"""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app

runner = CliRunner()
FAST = "--set max_epochs_shared=2 --set max_epochs_private=2 --set max_epochs_joint=2 --set minibatch_size=64 " \
       "--set hidden=8"


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-Urm", "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = pytest.mark.skipif(not _unshare_works(), reason="needs user namespaces (unshare -Urm)")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitted") / "store"
    for args in (["simulate", "sim1", "--n", "200"], ["fit", "multiloreft", "--dataset", "sim1", "--seeds", "0",
                                                       *FAST.split()],
                 ["probe", "--all", "--label", "y_s", "--component", "z_s"]):
        result = runner.invoke(app, ["--store", str(root), *args])
        assert result.exit_code == 0, result.output
    return root


def _hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


DRIVER = """
import json, shlex, sys
from typer.testing import CliRunner
from mmpipe.pipeline.cli import app
store, commands = sys.argv[1], json.loads(sys.argv[2])
results = []
for command in commands:
    result = CliRunner().invoke(app, ["--store", store, *shlex.split(command)])
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    results.append([result.exit_code, result.output + (f"Traceback: {result.exception!r}" if crashed else "")])
print(json.dumps(results))
"""


def _in_namespace(setup: str, store, commands: list[str]) -> list[tuple[int, str]]:
    """Run ``setup``, then each mmpipe command (in one Python process), in a user namespace:
    (exit code, output) of each."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    driver = shlex.join([sys.executable, "-c", DRIVER, str(store), json.dumps(commands)])
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", f"{setup} || exit 99\n{driver}"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(item) for item in json.loads(done.stdout.strip().splitlines()[-1])]


def _one_error(code: int, output: str, *fragments: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("mmpipe: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_commands_that_write_nothing_run_on_a_read_only_store(fitted, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(fitted, store)
    run_id = "multiloreft-" + next((store / "runs" / "multiloreft").iterdir()).name[:12]
    before = _hashes(store)
    readonly = f"mount --bind {store} {store} && mount -o remount,bind,ro {store}"
    reads = ["info", "verify", "simulate sim1 --n 200", f"fit multiloreft --dataset sim1 --seeds 0 {FAST}",
             "query 'SELECT count(*) AS n FROM probes'", "report", f"plot {run_id} --out {tmp_path / 'plots'}"]
    writes = ["simulate sim1 --n 300", f"fit multiloreft --dataset sim1 --seeds 7 {FAST}"]
    results = _in_namespace(readonly, store, reads + writes)
    for command, (code, output) in zip(reads, results, strict=False):
        assert code == 0 and "Traceback" not in output, f"{command}: {output}"
    assert "already stored, nothing to do" in results[2][1] and "already fitted" in results[3][1]
    simulate, fit = results[len(reads):]
    _one_error(*simulate, "could not write the manifest of sim1 at", "the filesystem is read-only", "free)")
    _one_error(*fit, "could not write run multiloreft-", "the filesystem is read-only")
    assert _hashes(store) == before


def test_a_full_disk_is_one_line_and_publishes_nothing(fitted, tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    store = mount / "store"
    # a 2 MiB disk holding a copy of the store, then filled to all but 48 KiB
    setup = (f"mount -t tmpfs -o size=2m tmpfs {mount} && cp -r {fitted} {store} && rm -rf {store}/runs "
             f"&& (dd if=/dev/zero of={mount}/filler bs=4k 2>/dev/null; true) "
             f"&& {shlex.quote(sys.executable)} -c \"import os; p='{mount}/filler'; "
             f"os.truncate(p, os.path.getsize(p) - 48 * 1024)\"")
    simulate, fit, verify = _in_namespace(setup, store, ["simulate sim1 --n 5000",
                                                         f"fit multiloreft --dataset sim1 --seeds 0 {FAST}", "verify"])
    _one_error(*simulate, "could not write", "sim1", "the disk is full (", "free)")
    _one_error(*fit, "could not write run multiloreft-", "the disk is full (")
    # nothing half-published, no temporary run left: verify (run on that disk) finds no damage
    assert verify[0] == 0 and "no damage" in verify[1] and "unpublished run" not in verify[1], verify[1]
