import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import zarr

from mmpipe.store.errors import KeyMismatchError, UserError
from mmpipe.store.features import read_whole
from mmpipe.store.manifest import LabelSpec, Manifest
from mmpipe.store.root import Store


def _data(n=5000, d=96, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _write(store, data, name="toy.enc", config=None, compute=None, **kwargs):
    config = config or {"encoder": "enc", "rev": "r1"}
    with store.writer(name, config, n_rows=len(data), dim=data.shape[1], **kwargs) as writer:
        if writer.existing is not None:
            return writer.existing
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            if compute is not None:
                compute(index)
            writer.write_chunk(index, data[start:stop])
        return writer.publish({"dataset": "toy"})


@pytest.mark.parametrize("dtype, compression", [("float16", "none"), ("float32", "none"), ("float16", "lz4")])
def test_round_trip(store, dtype, compression):
    data = _data()
    entry = _write(store, data, dtype=dtype, compression=compression)
    loaded = entry.load()
    assert loaded.dtype == getattr(torch, dtype) and loaded.shape == data.shape
    np.testing.assert_array_equal(loaded.numpy(), data.astype(dtype))
    assert entry.valid().all() and entry.failures() == []
    reopened = store.features("toy.enc")
    assert reopened.fingerprint == entry.fingerprint and reopened.meta["dtype"] == dtype
    assert (entry.path / "key.json").exists()


def test_chunks_are_about_one_to_two_megabytes(store):
    entry = _write(store, np.zeros((20_000, 768), np.float32))
    chunk_bytes = entry.meta["chunk_rows"] * 768 * 2
    assert 1 * 2**20 <= chunk_bytes <= 2 * 2**20


def test_fast_read_matches_zarr_read_including_unwritten_chunks(tmp_path):
    group = zarr.open_group(tmp_path / "g", mode="w")
    array = group.create_array("x", shape=(10, 3), chunks=(4, 3), dtype="float16", compressors=None, fill_value=0)
    array[0:4] = np.arange(12).reshape(4, 3)
    array[8:10] = 7  # chunk 1 (rows 4..7) is never written
    np.testing.assert_array_equal(read_whole(array, tmp_path / "g" / "x"), array[...])


def test_load_split_returns_manifest_aligned_rows(store):
    import pandas as pd

    n = 50
    table = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": ["train", "val", "test", "train", "test"] * 10,
                          "group": [None] * n, "y": np.arange(n)})
    manifest = Manifest("toy", table, (LabelSpec("y", "continuous", "shared"),), {"m1": None})
    data = np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, axis=1)
    entry = _write(store, data, dtype="float32")
    split = store.load_split(entry, manifest, "test")
    assert split.features[:, 0].tolist() == split.rows["y"].astype(float).tolist()
    assert set(split.rows["split"]) == {"test"} and len(split.rows) == 20
    with pytest.raises(UserError, match="unknown split"):
        store.load_split(entry, manifest, "dev")


def test_extras_ragged_and_failures(store):
    n, d = 7, 4
    with store.writer("toy.seq", {"a": 1}, n_rows=n, dim=d, dtype="float32",
                      extras={"layer_3": (d,)}, ragged={"frames": (d,)}) as writer:
        writer.chunk_rows = 3  # several chunks on a tiny array
        sequences = [np.full((i + 1, d), i, np.float32) for i in range(n)]
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            valid = np.array([i != 4 for i in range(start, stop)])
            failures = [{"sample_id": "s4", "error": "corrupt"}] if 4 in range(start, stop) else []
            writer.write_chunk(index, np.ones((stop - start, d)), valid=valid, failures=failures,
                               extras={"layer_3": np.full((stop - start, d), 2.0)},
                               sequences={"frames": sequences[start:stop]})
        entry = writer.publish()
    assert entry.valid().tolist() == [True] * 4 + [False] + [True] * 2
    assert entry.load()[4].abs().sum() == 0 and entry.load()[3].sum() == d  # masked row is empty, not data
    assert entry.failures() == [{"sample_id": "s4", "error": "corrupt"}] and entry.meta["n_missing"] == 1
    assert torch.all(entry.load("layer_3") == 2)
    values, offsets = entry.ragged("frames")
    assert offsets.tolist() == [0, 1, 3, 6, 10, 15, 21, 28]
    for i in range(n):
        assert torch.all(values[offsets[i]:offsets[i + 1]] == i) and offsets[i + 1] - offsets[i] == i + 1


def test_same_key_is_reused_and_different_key_is_a_new_entry(store):
    data = _data(200)
    calls = []
    first = _write(store, data, compute=calls.append)
    again = _write(store, data, compute=calls.append)
    assert again.fingerprint == first.fingerprint and len(calls) == 1
    other = _write(store, data, config={"encoder": "enc", "rev": "r2"})
    assert other.fingerprint != first.fingerprint
    assert len(store.feature_entries("toy.enc")) == 2


def test_key_mismatch_names_the_differing_fields(store):
    _write(store, _data(100), config={"encoder": "enc", "rev": "r1", "layers": [12]})
    with pytest.raises(KeyMismatchError, match="differ in: layers, rev"):
        store.features("toy.enc", {"encoder": "enc", "rev": "r2", "layers": [6]})
    assert store.features("toy.enc", {"encoder": "enc", "rev": "r1", "layers": [12]}).shape == (100, 96)


def test_tampered_key_material_is_detected(store):
    entry = _write(store, _data(100))
    key = json.loads((entry.path / "key.json").read_text())
    (entry.path / "key.json").write_text(json.dumps({**key, "rev": "edited"}))
    with pytest.raises(KeyMismatchError, match="differs in rev"):
        store.features("toy.enc", {"encoder": "enc", "rev": "r1"})


def test_several_entries_need_a_choice(store):
    first = _write(store, _data(50), config={"v": 1})
    _write(store, _data(50), config={"v": 2})
    with pytest.raises(UserError, match="several entry of toy.enc"):
        store.features("toy.enc")
    assert store.features("toy.enc", fingerprint_prefix=first.fingerprint[:10]).fingerprint == first.fingerprint


def test_interrupted_write_resumes_only_missing_chunks_and_matches(store, tmp_path):
    data = _data(20000, 200)
    reference = _write(Store.open(tmp_path / "ref", create=True), data)

    class Killed(Exception):
        pass

    def die_at_third(index):
        if index == 3:
            raise Killed

    with pytest.raises(Killed):
        _write(store, data, compute=die_at_third)
    assert store.feature_entries("toy.enc") == []  # nothing visible yet
    recomputed = []
    entry = _write(store, data, compute=recomputed.append)
    n_chunks = -(-20000 // entry.meta["chunk_rows"])
    assert n_chunks > 4 and recomputed == list(range(3, n_chunks))
    assert torch.equal(entry.load(), reference.load())


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from mmpipe.store.root import Store
    store = Store.open(sys.argv[1])
    data = np.random.default_rng(0).standard_normal((20000, 200)).astype(np.float32)
    with store.writer("toy.enc", {"encoder": "enc", "rev": "r1"}, n_rows=20000, dim=200) as writer:
        for index in writer.pending_chunks():
            if index == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)
            start, stop = writer.chunk_bounds(index)
            writer.write_chunk(index, data[start:stop])
        writer.publish()
""")


def test_sigkilled_process_resumes_to_identical_array(store, tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store.root), "2"])
    assert proc.returncode == -signal.SIGKILL
    assert store.feature_entries("toy.enc") == []
    recomputed = []
    entry = _write(store, _data(20000, 200), compute=recomputed.append)
    assert recomputed[0] == 2 and 0 not in recomputed and 1 not in recomputed
    reference = _write(Store.open(tmp_path / "ref", create=True), _data(20000, 200))
    assert torch.equal(entry.load(), reference.load())


def test_interrupted_publish_leaves_no_visible_entry(store, monkeypatch):
    data = _data(300)

    def broken_rename(src, dst):
        raise KeyboardInterrupt  # the process dies between finishing the data and renaming

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(KeyboardInterrupt):
        _write(store, data)
    monkeypatch.undo()
    assert store.feature_entries() == [] and store.feature_names() == []
    entry = _write(store, data)
    np.testing.assert_array_equal(entry.load().numpy(), data.astype(np.float16))


CONCURRENT_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from mmpipe.store.root import Store
    store = Store.open(sys.argv[1])
    data = np.random.default_rng(0).standard_normal((8000, 300)).astype(np.float32)
    with store.writer("toy.enc", {"encoder": "enc"}, n_rows=8000, dim=300) as writer:
        if writer.existing is not None:
            print("reused", writer.existing.fingerprint)
            sys.exit(0)
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            time.sleep(0.02)
            writer.write_chunk(index, data[start:stop])
        print("wrote", writer.publish().fingerprint)
""")


def test_two_processes_publishing_the_same_entry(store):
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(store.root)], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = sorted(p.communicate(timeout=120)[0].split()[0] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["reused", "wrote"]
    (entry,) = store.feature_entries("toy.enc")
    expected = np.random.default_rng(0).standard_normal((8000, 300)).astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(entry.load().numpy(), expected)
    assert [p.name for p in (store.features_dir / "toy.enc").iterdir() if p.name.startswith(".tmp")] == []


def test_write_chunk_rejects_wrong_shape(store):
    with store.writer("toy.enc", {"a": 1}, n_rows=10, dim=4) as writer:
        with pytest.raises(ValueError, match="expected shape"):
            writer.write_chunk(0, np.zeros((10, 5)))
        with pytest.raises(RuntimeError, match="chunks not written"):
            writer.publish()


def test_store_open_refuses_foreign_directories(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="not an mmpipe store"):
        Store.open(tmp_path / "docs", create=True)
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["thesis.tex"]
    with pytest.raises(UserError, match="no mmpipe store"):
        Store.open(tmp_path / "new")
    assert not (tmp_path / "new").exists()
