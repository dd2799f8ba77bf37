"""`mmpipe verify [--repair]`: every check finds its damage, repair moves entries aside (never
deletes) and the commands that created them rebuild them."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.store.results import ProbeRow, RunRow, spill
from mmpipe.store.root import FORMAT, Store
from mmpipe.store.verify import repair, verify

runner = CliRunner()
FAST = ["--set", "max_epochs_shared=2", "--set", "max_epochs_private=2", "--set", "max_epochs_joint=2",
        "--set", "minibatch_size=64", "--set", "hidden=8"]


def _cli(root, *args):
    result = runner.invoke(app, ["--store", str(root), *args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitted") / "store"
    assert _cli(root, "simulate", "sim1", "--n", "200").exit_code == 0
    assert _cli(root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", *FAST).exit_code == 0
    assert _cli(root, "probe", "--all", "--label", "y_s", "--component", "z_s").exit_code == 0
    return root


@pytest.fixture
def root(fitted, tmp_path):
    shutil.copytree(fitted, tmp_path / "store")
    return tmp_path / "store"


def _hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _entry(root, name="sim1.m1.simulated"):
    return next(p for p in (root / "features" / name).iterdir() if not p.name.startswith("."))


def test_a_clean_store_exits_0_and_says_what_it_checked(root):
    result = _cli(root, "verify")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"{root}: checked 1 manifest(s), 2 feature entries, 1 run(s), the results DB: "
                                     "no damage")


def test_no_store_and_another_layout_are_usage_errors(tmp_path):
    result = _cli(tmp_path / "nothing", "verify")
    assert result.exit_code == 2 and "no mmpipe store at" in result.output
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "STORE.json").write_text(json.dumps({**FORMAT, "layout_version": 1}))
    result = _cli(tmp_path / "old", "verify")
    assert result.exit_code == 2 and "layout 1" in result.output


def test_repair_moves_a_damaged_feature_entry_aside_and_simulate_rebuilds_it_bit_identically(root):
    entry = _entry(root)
    before = _hashes(entry)
    (entry / "data" / "c" / "0" / "0").write_bytes(b"\0" * 10)
    result = _cli(root, "verify", "--repair")
    assert result.exit_code == 1
    assert f"{entry}: data/c/0/0 is truncated (10 bytes, not 8000)" in result.output
    moved = [line for line in result.output.splitlines() if line.startswith("moved ")]
    assert len(moved) == 1 and f"moved damaged feature entry {entry} to {root}/damaged/" in moved[0]
    assert moved[0].endswith("`mmpipe simulate sim1` with the same options rebuilds it")
    assert not entry.exists()
    [aside] = (root / "damaged").glob(f"*/features/sim1.m1.simulated/{entry.name}")
    assert (aside / "data" / "c" / "0" / "0").read_bytes() == b"\0" * 10  # kept, never deleted
    assert _cli(root, "verify").exit_code == 0
    assert _cli(root, "simulate", "sim1", "--n", "200").exit_code == 0
    after = _hashes(entry)
    del before["meta.json"], after["meta.json"]  # meta.json records when the entry was written
    assert after == before
    assert _cli(root, "verify").exit_code == 0


def test_repair_moves_a_damaged_run_aside_and_fit_refits_it(root):
    [run] = Store.open(root).runs()
    (run.path / "run.json").write_text("{")
    assert _cli(root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", *FAST).exit_code == 2
    result = _cli(root, "verify", "--repair")
    assert result.exit_code == 1 and f"{run.path}: run.json is not valid JSON" in result.output
    assert "`mmpipe fit multiloreft` with the same config and seed refits it" in result.output
    refit = _cli(root, "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", *FAST)
    assert refit.exit_code == 0 and run.run_id in refit.output
    [again] = Store.open(root).runs()
    assert again.path == run.path and np.array_equal(again.components(["z_s"])["z_s"], run.components(["z_s"])["z_s"])
    assert _cli(root, "verify").exit_code == 0


def test_a_damaged_manifest_is_moved_and_rewritten_by_simulate(root):
    [manifest] = (root / "manifests" / "sim1").glob("*.parquet")
    original = manifest.read_bytes()
    manifest.write_bytes(original[: len(original) // 2])
    result = _cli(root, "verify", "--repair")
    assert result.exit_code == 1 and f"moved damaged manifest {manifest}" in result.output
    assert _cli(root, "simulate", "sim1", "--n", "200").exit_code == 0
    assert manifest.read_bytes() == original and _cli(root, "verify").exit_code == 0


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"format": "mmpipe-store"}', None])
def test_a_damaged_store_marker_is_rewritten(root, content):
    marker = root / "STORE.json"
    if content is None:
        marker.unlink()
    else:
        marker.write_bytes(content)
    assert _cli(root, "info").exit_code == 2
    result = _cli(root, "verify", "--repair")
    assert result.exit_code == 1 and f"{marker}: " in result.output
    assert json.loads(marker.read_text()) == FORMAT
    assert _cli(root, "verify").exit_code == 0 and _cli(root, "info").exit_code == 0


def test_a_garbage_results_db_is_moved_aside_and_probe_rebuilds_it(root):
    db = root / "results.duckdb"
    db.write_bytes(os.urandom(4096))
    result = _cli(root, "verify")
    assert result.exit_code == 1 and f"{db}: " in result.output
    result = _cli(root, "verify", "--repair")
    assert "moved damaged results DB" in result.output and "`mmpipe probe --all` rebuilds it" in result.output
    assert not db.exists()
    assert _cli(root, "probe", "--all", "--label", "y_s", "--component", "z_s").exit_code == 0
    assert _cli(root, "verify").exit_code == 0


def test_a_deleted_manifest_that_entries_were_built_on_is_damage(root):
    manifest = next((root / "manifests" / "sim1").glob("*.parquet"))
    manifest.unlink()
    result = _cli(root, "verify")
    assert result.exit_code == 1
    assert f"{manifest}: is missing, but 3 entries were built on it" in result.output
    listed = _cli(root, "info")
    assert listed.exit_code == 0 and f"skipped damaged manifest {manifest}: is missing" in listed.stderr
    assert "`mmpipe simulate sim1` with the same options rebuilds it" in _cli(root, "verify", "--repair").output


def test_scores_kept_after_a_failed_write_are_reported_and_an_unreadable_spill_is_damage(root):
    folder = root / "results.duckdb.unsaved"
    folder.mkdir()
    run = RunRow("toy-1", "toy", None, "{}", "{}", "sim1", None, 0, "f", "{}", None, None, None, None, None, "toy")
    kept = spill(root / "results.duckdb", run, [], [ProbeRow("toy-1", "z_s", "y_s", "accuracy", 0.5, "p", 1, 1)])
    result = _cli(root, "verify")
    assert result.exit_code == 0 and f"{kept}: 1 probe scores of toy-1 kept after a failed write" in result.output
    kept.write_text("{")
    result = _cli(root, "verify")
    assert result.exit_code == 1 and f"{folder}: {kept} (probe scores kept after a failed write) is unreadable" \
        in result.output


def test_unfinished_writes_are_reported_not_damage(root):
    store = Store.open(root)
    with store.writer("sim1.m1.other", {"x": 1}, n_rows=10, dim=2, chunk_rows=5) as writer:
        writer.write_chunk(0, np.zeros((5, 2)))  # killed before chunk 1 and publish
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = root / "runs" / "multiloreft" / f".tmp-abc-{int(dead.stdout)}"
    leftover.mkdir()
    result = _cli(root, "verify", "--repair")
    assert result.exit_code == 0, result.output
    assert f"{writer.tmp}: unfinished feature entry of sim1.m1.other with 1 finished chunk(s)" in result.output
    assert "2 unfinished write(s)" in result.output and f"moved leftover {leftover}" in result.output
    assert writer.tmp.exists() and not leftover.exists()  # resumable work is left in place


def test_every_array_and_record_check(root):
    """Damage only verify sees (the commands read around it), each found and named."""
    entry, [run] = _entry(root), Store.open(root).runs()
    checks = [
        (entry / "valid" / "c" / "0", b"\2" * 200, "valid holds bytes other than 0 and 1"),
        (entry / "key.json", json.dumps({"feature": "x"}).encode(), "key.json does not hash"),
        (run.path / "checkpoint.safetensors", b"\0" * 8, "checkpoint.safetensors is unreadable"),
        (run.path / "components" / "z_s" / "zarr.json", b"{}", "components/z_s/zarr.json is unreadable"),
        (entry / "zarr.json", b"{}", "zarr.json is not the metadata of a Zarr v3 group"),
        (run.path / "components" / "zarr.json", b"{}", "components/zarr.json is not the metadata of a Zarr v3 group"),
        (entry / "data" / "c" / "0" / "0", b"\xff" * 8000, "data holds NaN or Inf in valid rows"),
        (run.path / "components" / "z_s" / "c" / "0" / "0", b"\xff" * 8000, "components/z_s holds NaN or Inf"),
    ]
    for path, content, reason in checks:
        original = path.read_bytes()
        path.write_bytes(content)
        [damaged] = verify(root).damaged
        assert reason in damaged.reason, damaged
        path.write_bytes(original)
    assert verify(root).clean and repair(verify(root)) == []


def test_sequence_lengths_out_of_range(tmp_path):
    store = Store.open(tmp_path / "s", create=True)
    with store.writer("toy.seq", {"a": 1}, n_rows=4, dim=2, steps=3) as writer:
        writer.write_chunk(0, np.ones((4, 3, 2)), lengths=[1, 2, 3, 0])
        entry = writer.publish()
    chunk = entry.path / "lengths" / "c" / "0"
    chunk.write_bytes(np.array([1, 2, 9, 0], np.int32).tobytes())
    [damaged] = verify(store.root).damaged
    assert damaged.reason == "lengths holds lengths outside 0..3"
