"""Every store file, damaged every way, read by the commands that read it: one line naming the
file and what to do (exit 2), or — for commands that list the store — the damaged entry skipped and
named while the rest is served. Never a traceback, never a silent value."""

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.store.damage import DamagedError
from mmpipe.store.runs import RunRecord, publish_run

runner = CliRunner()
FAST = ["--set", "max_epochs_shared=2", "--set", "max_epochs_private=2", "--set", "max_epochs_joint=2",
        "--set", "minibatch_size=64", "--set", "hidden=8"]
FIT = ["fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", *FAST]
PROBE = ["probe", "--all", "--label", "y_s", "--component", "z_s"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine") / "store"
    assert runner.invoke(app, ["--store", str(root), "simulate", "sim1", "--n", "200"]).exit_code == 0
    result = runner.invoke(app, ["--store", str(root), "fit", "multiloreft", "--dataset", "sim1", "--seeds", "0,1",
                                 *FAST])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def store_copy(pristine, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(pristine, root)
    return root


def _entry(root: Path) -> Path:
    return next(p for p in sorted((root / "features" / "sim1.m1.simulated").iterdir()) if not p.name.startswith("."))


def _run_dir(root: Path, seed: int = 0) -> Path:
    return next(p for p in sorted((root / "runs" / "multiloreft").iterdir())
                if json.loads((p / "run.json").read_text())["seed"] == seed)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(random.Random(0).randbytes(max(len(data), 64)))
    elif how == "longer":
        path.write_bytes(data + b"\0" * 8)
    elif how == "not json":
        path.write_text('{"name": ')
    elif how == "json list":
        path.write_text("[1, 2, 3]")
    elif how == "json object":
        path.write_text("{}")
    else:
        raise AssertionError(how)


def _cli(root: Path, *args: str):
    result = runner.invoke(app, ["--store", str(root), *args])
    assert "Traceback" not in result.output and not (result.exception and not isinstance(result.exception, SystemExit)), \
        result.output
    return result


def _one_error(result, *fragments: str) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("mmpipe: error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


JSON_WAYS = ["delete", "truncate", "empty", "random", "not json", "json list", "json object"]
ZARR_JSON_WAYS = ["delete", "truncate", "random", "json list"]  # zarr reads a group's "{}" as a group
CHUNK_WAYS = ["delete", "truncate", "empty", "longer"]


@pytest.mark.parametrize("file, how", [(f, h) for f in ("meta.json", "key.json") for h in JSON_WAYS]
                         + [(f, h) for f in ("zarr.json", "data/zarr.json", "valid/zarr.json") for h in ZARR_JSON_WAYS]
                         + [(f, h) for f in ("data/c/0/0", "valid/c/0") for h in CHUNK_WAYS]
                         + [("valid/c/0", "random")])  # bytes other than 0/1 are no mask
def test_damaged_feature_entry(store_copy, file, how):
    entry = _entry(store_copy)
    _damage(entry / file, how)
    fit = _cli(store_copy, *FIT)
    _one_error(fit, f"damaged feature entry {entry}", "mmpipe verify --repair", "re-run the command that created it")
    verify = _cli(store_copy, "verify")
    assert verify.exit_code == 1 and f"{entry}: " in verify.output and "1 damaged" in verify.output
    if file in ("meta.json", "key.json"):  # what info reads: skipped and named, the rest listed
        info = _cli(store_copy, "info")
        assert info.exit_code == 0 and f"skipped damaged feature entry {entry}: {file}" in info.output
        other = next(p for p in (store_copy / "features" / "sim1.m2.simulated").iterdir() if not p.name.startswith("."))
        assert other.name[:8] in info.output and "adapter runs" in info.output  # the rest is listed
        simulate = _cli(store_copy, "simulate", "sim1", "--n", "200")  # never trusts (or overwrites) it
        _one_error(simulate, f"damaged feature entry {entry}: {file}")


RUN_FILES = [(f, h) for f in ("run.json", "key.json") for h in JSON_WAYS] + [
    (f, h) for f in ("components/zarr.json", "components/z_s/zarr.json", "components/valid/zarr.json")
    for h in ZARR_JSON_WAYS] + [(f, h) for f in ("components/z_s/c/0/0", "components/valid/c/0") for h in CHUNK_WAYS] + [
    ("components/z_s/c/0/0", "random"), ("components/valid/c/0", "random")]  # NaN/Inf, bytes other than 0/1


@pytest.mark.parametrize("file, how", RUN_FILES)
def test_damaged_run_is_skipped_by_probe_all_and_refused_by_id(store_copy, file, how):
    run, other = _run_dir(store_copy, 0), _run_dir(store_copy, 1)
    run_id, other_id = f"multiloreft-{run.name[:12]}", f"multiloreft-{other.name[:12]}"
    _damage(run / file, how)
    probe = _cli(store_copy, *PROBE)
    assert probe.exit_code == 1, probe.output
    assert f"damaged run {run}" in probe.output and "1 damaged run(s) skipped" in probe.output
    assert f"{other_id}: " in probe.output and "for 1 run(s)" in probe.output  # the other run was probed
    _one_error(_cli(store_copy, "plot", run_id[:20], "--out", str(store_copy.parent / "plots")),
               f"damaged run {run}", "mmpipe verify --repair")
    verify = _cli(store_copy, "verify")
    assert verify.exit_code == 1 and f"{run}: " in verify.output
    if file in ("run.json", "key.json"):  # what listing and fit read
        info = _cli(store_copy, "info")
        assert info.exit_code == 0 and f"skipped damaged run {run}: {file}" in info.output and other_id in info.output
        _one_error(_cli(store_copy, *FIT), f"damaged run {run}: {file}", "mmpipe fit")


@pytest.mark.parametrize("how", ["delete", "truncate", "empty", "random"])
def test_damaged_manifest(store_copy, how):
    [manifest] = (store_copy / "manifests" / "sim1").glob("*.parquet")
    _damage(manifest, how)
    _one_error(_cli(store_copy, *FIT), f"damaged manifest {manifest}" if how != "delete" else "sim1")
    if how != "delete":
        info = _cli(store_copy, "info")
        assert info.exit_code == 0 and f"skipped damaged manifest {manifest}" in info.output
        _one_error(_cli(store_copy, "simulate", "sim1", "--n", "200"), f"damaged manifest {manifest}")
        verify = _cli(store_copy, "verify")
        assert verify.exit_code == 1 and f"{manifest}: not a readable Parquet file" in verify.output


@pytest.mark.parametrize("how", JSON_WAYS)
def test_damaged_store_marker(store_copy, how):
    _damage(store_copy / "STORE.json", how)
    for args in (["info"], FIT, PROBE, ["report"], ["simulate", "sim1", "--n", "200"]):
        _one_error(_cli(store_copy, *args), f"damaged store marker {store_copy / 'STORE.json'}",
                   "run `mmpipe verify --repair` to rewrite it")


def test_checkpoint_and_compressed_chunks(store, tmp_path):
    """What no command of the case table reads: the checkpoint, and lz4 chunks (simulate stores
    none). Store-level reads fail in one line; verify names them."""
    from mmpipe.store.verify import verify

    with store.writer("toy.lz4", {"a": 1}, n_rows=300, dim=16, compression="lz4", chunk_rows=100) as writer:
        for index in writer.pending_chunks():
            writer.write_chunk(index, np.random.default_rng(index).standard_normal((100, 16)))
        entry = writer.publish()
    chunk = entry.path / "data" / "c" / "1" / "0"
    for how in ("truncate", "random", "empty", "longer", "delete"):
        original = chunk.read_bytes()
        _damage(chunk, how)
        problem = r"data/c/1/0 (is truncated|is longer than its blosc frame|is missing)"
        with pytest.raises(DamagedError, match=problem):
            entry.load()
        with pytest.raises(DamagedError, match=problem):
            entry.load(rows=[150], dtype=torch.float32)
        assert entry.load(rows=[50]).shape == (1, 16)  # other chunks still read
        [damaged] = verify(store.root).damaged
        assert damaged.path == entry.path and re.match(problem, damaged.reason)
        chunk.write_bytes(original)
    assert verify(store.root).clean
    run = publish_run(store.runs_dir, "toy", {"seed": 0}, RunRecord(
        method="toy", dataset="toy", manifest_version="v", inputs={}, input_fingerprints={}, seed=0, config={},
        ablation=None, settings={}, dims={}, components=[], started_at="", seconds=0.0, code_version="c",
        n_params=1), {"z": np.ones((4, 2), np.float32)}, np.ones(4, bool), {"w": torch.arange(100.0)})
    for how in ("delete", "truncate", "empty", "random", "longer"):
        checkpoint = run.path / "checkpoint.safetensors"
        original = checkpoint.read_bytes()
        _damage(checkpoint, how)
        with pytest.raises(DamagedError, match=r"damaged run .*: checkpoint.safetensors is (missing|unreadable)"):
            run.state_dict()
        assert [d.path for d in verify(store.root).damaged] == [run.path]
        checkpoint.write_bytes(original)
    assert torch.equal(run.state_dict()["w"], torch.arange(100.0))
