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

from mmpipe.store.damage import DamagedError
from mmpipe.store.errors import KeyMismatchError, UserError
from mmpipe.store.features import read_whole
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
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


def test_fast_read_matches_zarr_read_and_refuses_unwritten_chunks(tmp_path):
    group = zarr.open_group(tmp_path / "g", mode="w")
    array = group.create_array("x", shape=(10, 3), chunks=(4, 3), dtype="float16", compressors=None, fill_value=0)
    array[0:4] = np.arange(12).reshape(4, 3)
    array[8:10] = 7
    with pytest.raises(UserError, match="x/c/1/0 is missing"):  # chunk 1 (rows 4..7) was never written
        read_whole(array, tmp_path / "g" / "x")
    array[4:8] = 3
    np.testing.assert_array_equal(read_whole(array, tmp_path / "g" / "x"), array[...])


def test_load_split_returns_manifest_aligned_rows(store):
    import pandas as pd

    n = 50
    table = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "split": ["train", "val", "test", "train", "test"] * 10,
                          "group": [None] * n, "y": np.arange(n)})
    manifest = Manifest("toy", table, (LabelSpec("y", "continuous", "shared"),), (Modality("m1", "features"),))
    data = np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, axis=1)
    entry = _write(store, data, dtype="float32")
    split = store.load_split(entry, manifest, "test")
    assert split.features[:, 0].tolist() == split.rows["y"].astype(float).tolist()
    assert set(split.rows["split"]) == {"test"} and len(split.rows) == 20
    with pytest.raises(UserError, match="unknown split"):
        store.load_split(entry, manifest, "dev")


def test_extras_and_failures(store):
    n, d = 7, 4
    with store.writer("toy.enc", {"a": 1}, n_rows=n, dim=d, dtype="float32", extras={"layer_3": (d,)},
                      chunk_rows=3) as writer:  # several chunks on a tiny array
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            valid = np.array([i != 4 for i in range(start, stop)])
            failures = [{"sample_id": "s4", "error": "corrupt"}] if 4 in range(start, stop) else []
            writer.write_chunk(index, np.ones((stop - start, d)), valid=valid, failures=failures,
                               extras={"layer_3": np.full((stop - start, d), 2.0)})
        entry = writer.publish()
    assert writer.n_chunks == 3 and entry.meta["row_shape"] == [d] and not entry.is_sequence
    assert entry.lengths() is None and entry.array_names() == ["data", "layer_3"]
    assert entry.valid().tolist() == [True] * 4 + [False] + [True] * 2
    assert entry.load()[4].abs().sum() == 0 and entry.load()[3].sum() == d  # masked row is empty, not data
    assert entry.failures() == [{"sample_id": "s4", "error": "corrupt"}] and entry.meta["n_missing"] == 1
    layer = entry.load("layer_3")
    assert torch.all(layer[[0, 1, 2, 3, 5, 6]] == 2) and torch.all(layer[4] == 0)


# -- sequence entries: rows (T, D), end-padded with zeros, with lengths [N] ------------------------
SEQ_DATA = textwrap.dedent("""
    import numpy as np

    def seq_data(n=1000, steps=12, dim=8):
        rng = np.random.default_rng(1)
        values = rng.standard_normal((n, steps, dim)).astype(np.float32)  # padding deliberately non-zero
        lengths = rng.integers(0, steps + 1, n)
        valid = np.arange(n) % 97 != 5
        return values, lengths, valid
""")
_namespace: dict = {}
exec(SEQ_DATA, _namespace)
seq_data = _namespace["seq_data"]

SEQ_WRITER = SEQ_DATA + textwrap.dedent("""
    import os, signal, sys
    from mmpipe.store.root import Store
    values, lengths, valid = seq_data()
    store = Store.open(sys.argv[1])
    with store.writer("toy.seq", {"encoder": "enc"}, n_rows=1000, dim=8, steps=12, chunk_rows=150) as writer:
        for index in writer.pending_chunks():
            if index == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)
            start, stop = writer.chunk_bounds(index)
            writer.write_chunk(index, values[start:stop], valid=valid[start:stop], lengths=lengths[start:stop])
        writer.publish()
""")


def _write_seq(store, compute=None, name="toy.seq", **kwargs):
    values, lengths, valid = seq_data()
    kwargs = {"n_rows": 1000, "dim": 8, "steps": 12, "chunk_rows": 150, **kwargs}
    with store.writer(name, {"encoder": "enc"}, **kwargs) as writer:
        if writer.existing is not None:
            return writer.existing
        for index in writer.pending_chunks():
            if compute is not None:
                compute(index)
            start, stop = writer.chunk_bounds(index)
            writer.write_chunk(index, torch.from_numpy(values[start:stop]), valid=valid[start:stop],
                               lengths=torch.from_numpy(lengths[start:stop]))
        return writer.publish()


def _expected_seq():
    """What the store must hold: float16 values, zero past each row's length and on invalid rows."""
    values, lengths, valid = seq_data()
    lengths = np.where(valid, lengths, 0)
    expected = values.astype(np.float16)
    expected[np.arange(values.shape[1])[None, :] >= lengths[:, None]] = 0
    return expected, lengths, valid


def test_sequence_entry_survives_sigkill_resumes_and_pools(store):
    proc = subprocess.run([sys.executable, "-c", SEQ_WRITER, str(store.root), "3"])
    assert proc.returncode == -signal.SIGKILL
    assert store.feature_entries("toy.seq") == []  # nothing visible yet
    recomputed = []
    entry = _write_seq(store, compute=recomputed.append)
    assert recomputed == [3, 4, 5, 6]  # chunks 0..2 were finished by the killed process

    expected, lengths, valid = _expected_seq()
    assert entry.is_sequence and entry.row_shape == (12, 8) and entry.dim == 8 and entry.shape == (1000, 12, 8)
    assert entry.meta["row_shape"] == [12, 8] and entry.meta["shape"] == [1000, 12, 8]
    assert entry.array_names() == ["data", "lengths"]
    assert entry.valid().tolist() == valid.tolist()
    got_lengths = entry.lengths()
    assert got_lengths.dtype == torch.int64 and got_lengths.tolist() == lengths.tolist()
    assert (lengths == 0).sum() > len(lengths) // 20 and (lengths == 12).any()  # the data covers the edges
    loaded = entry.load()
    assert loaded.dtype == torch.float16 and loaded.shape == (1000, 12, 8)
    assert np.array_equal(loaded.numpy().view(np.uint16), expected.view(np.uint16))  # bit-identical
    steps = torch.arange(12)[None, :]
    assert torch.all(loaded[steps >= got_lengths[:, None]] == 0)  # padding is zero

    rows = np.array([999, 0, 151, 150, 149, 3, 3, 600, 451])  # unordered, repeated, across chunks
    assert torch.equal(entry.load(rows=rows), loaded[rows])
    assert torch.equal(entry.load(rows=torch.from_numpy(rows)), loaded[rows])
    assert entry.load(rows=np.array([], dtype=np.int64)).shape == (0, 12, 8)
    as_float = entry.load(dtype=torch.float32)
    assert as_float.dtype == torch.float32 and torch.equal(as_float, loaded.float())
    assert torch.equal(entry.load(rows=rows, dtype=torch.float32), loaded[rows].float())

    from mmpipe.adapters.pooling import pool, valid_rows

    keep = valid_rows(got_lengths) & torch.from_numpy(entry.valid())
    values, kept_lengths = as_float[keep], got_lengths[keep]
    mean, last = pool(values, kept_lengths, "mean"), pool(values, kept_lengths, "last")
    for i in range(len(values)):
        length = int(kept_lengths[i])
        steps_i = [[float(x) for x in values[i, t]] for t in range(length)]
        loop_mean = [sum(step[k] for step in steps_i) / length for k in range(8)]
        assert torch.allclose(mean[i], torch.tensor(loop_mean), rtol=1e-6, atol=1e-6)
        assert last[i].tolist() == steps_i[-1]


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_sequence_row_and_dtype_loads_match_the_whole_load(store, compression):
    entry = _write_seq(store, compression=compression, chunk_rows=None)
    loaded = entry.load()
    assert entry.meta["chunk_rows"] == 1000  # 1000 rows of 12 x 8 float16 fit in one ~1.5 MiB chunk
    rows = torch.tensor([5, 998, 17, 5])
    assert torch.equal(entry.load(rows=rows), loaded[rows])
    assert torch.equal(entry.load(dtype=torch.float32), loaded.float())
    assert torch.equal(entry.load(rows=rows, dtype=torch.float64), loaded[rows].double())
    assert torch.equal(entry.load(dtype=torch.bfloat16), loaded.bfloat16())  # no numpy view: torch converts
    assert torch.equal(entry.load(rows=rows, dtype=torch.bfloat16), loaded[rows].bfloat16())
    assert torch.equal(entry.load("lengths", rows=rows), entry.lengths()[rows].int())
    with pytest.raises(IndexError, match="rows must lie in 0..999"):
        entry.load(rows=[1000])
    with pytest.raises(ValueError, match="integer indices"):
        entry.load(rows=torch.ones(1000, dtype=torch.bool))


def test_sequence_chunks_hold_whole_rows_and_extras_are_padded(store):
    n, steps, d = 45, 50, 768  # a row is 50 x 768 float16 = 75 KiB: 20 rows per ~1.5 MiB chunk
    with store.writer("toy.seq", {"a": 1}, n_rows=n, dim=d, steps=steps, extras={"layer2": (steps, 4), "pooled": (4,)},
                      ) as writer:
        for index in writer.pending_chunks():
            start, stop = writer.chunk_bounds(index)
            writer.write_chunk(index, np.ones((stop - start, steps, d)), lengths=np.full(stop - start, 30),
                               extras={"layer2": np.ones((stop - start, steps, 4)), "pooled": np.ones((stop - start, 4))})
        entry = writer.publish()
    assert entry.meta["chunk_rows"] == 20 and writer.n_chunks == 3
    group = zarr.open_group(entry.path, mode="r")
    assert group["data"].chunks == (20, steps, d) and group["lengths"].chunks == (20,)
    assert group["lengths"].dtype == np.int32 and group["valid"].chunks == (20,)
    layer = entry.load("layer2")
    assert torch.all(layer[:, :30] == 1) and torch.all(layer[:, 30:] == 0)
    assert torch.all(entry.load("pooled") == 1)


def test_sequence_write_chunk_checks_lengths(store):
    with store.writer("toy.seq", {"a": 1}, n_rows=4, dim=2, steps=3) as writer:
        data = np.ones((4, 3, 2))
        with pytest.raises(ValueError, match="needs the rows' lengths"):
            writer.write_chunk(0, data)
        with pytest.raises(ValueError, match=r"1 lengths outside 0..3, e.g. 4"):
            writer.write_chunk(0, data, lengths=[1, 2, 3, 4])
        with pytest.raises(ValueError, match="outside 0..3, e.g. -1"):
            writer.write_chunk(0, data, lengths=[1, -1, 3, 0])
        with pytest.raises(ValueError, match="lengths must have shape"):
            writer.write_chunk(0, data, lengths=[1, 2, 3])
        with pytest.raises(ValueError, match="must be integers"):
            writer.write_chunk(0, data, lengths=np.array([1.0, 2, 3, 0]))
        with pytest.raises(ValueError, match="expected shape"):
            writer.write_chunk(0, np.ones((4, 2)), lengths=[1, 2, 3, 0])
        assert writer.pending_chunks() == [0]  # nothing marked done
        writer.write_chunk(0, data, lengths=[1, 2, 3, 0])
        entry = writer.publish()
    assert entry.load()[:, :, 0].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 0, 0]]
    with store.writer("toy.pooled", {"a": 1}, n_rows=4, dim=2) as writer:
        with pytest.raises(ValueError, match="pooled rows"):
            writer.write_chunk(0, np.ones((4, 2)), lengths=[1, 1, 1, 1])


def test_same_key_with_another_shape_is_refused(store):
    _write_seq(store)
    with pytest.raises(ValueError, match=r"shape \(1000, 12, 8\) under the same key.*\(1000, 10, 8\)"):
        _write_seq(store, steps=10)
    with store.writer("toy.other", {"encoder": "enc"}, n_rows=10, dim=8, steps=12):
        pass  # an unfinished entry: its temporary directory fixes the shape too
    with pytest.raises(ValueError, match="unfinished entry"):
        with store.writer("toy.other", {"encoder": "enc"}, n_rows=10, dim=8):
            pass


def test_load_split_of_a_sequence_entry_carries_lengths(store):
    import pandas as pd

    table = pd.DataFrame({"sample_id": [f"s{i}" for i in range(1000)], "split": ["train", "test"] * 500,
                          "group": [None] * 1000, "y": np.zeros(1000)})
    manifest = Manifest("toy", table, (LabelSpec("y", "continuous", "shared"),), (Modality("m1", "features"),))
    entry = _write_seq(store)
    split = store.load_split(entry, manifest, "test")
    assert torch.equal(split.features, entry.load()[1::2]) and torch.equal(split.lengths, entry.lengths()[1::2])
    assert store.load_split(entry, manifest).lengths.shape == (1000,)


def test_missing_chunk_file_is_an_error_not_a_fill_value(store):
    entry = _write(store, _data(3000, 64), chunk_rows=1000)
    (entry.path / "data" / "c" / "1" / "0").unlink()
    for load in (entry.load, lambda: entry.load(dtype=torch.float32), lambda: entry.load(rows=[1500])):
        with pytest.raises(DamagedError, match=r"damaged feature entry .*: data/c/1/0 is missing; run `mmpipe verify "
                                               r"--repair` .* re-run the command that created it"):
            load()
    assert entry.load(rows=[0, 2999]).shape == (2, 64)  # rows of intact chunks still load
    (entry.path / "valid" / "c" / "2").unlink()
    with pytest.raises(UserError, match="valid/c/2 is missing"):
        entry.valid()
    compressed = _write(store, _data(3000, 64), name="toy.lz4", chunk_rows=1000, compression="lz4")
    (compressed.path / "data" / "c" / "0" / "0").unlink()
    with pytest.raises(UserError, match="data/c/0/0 is missing"):
        compressed.load()
    with pytest.raises(UserError, match="data/c/0/0 is missing"):
        compressed.load(rows=[5], dtype=torch.float32)


def test_all_zero_chunks_are_stored(store):
    """zarr skips chunks equal to the fill value unless told otherwise; an entry keeps them all."""
    with store.writer("toy.enc", {"a": 1}, n_rows=6, dim=2, chunk_rows=2) as writer:
        for index in writer.pending_chunks():
            writer.write_chunk(index, np.zeros((2, 2)), valid=np.zeros(2, bool))
        entry = writer.publish()
    assert sorted(p.name for p in (entry.path / "data" / "c").iterdir()) == ["0", "1", "2"]
    assert sorted(p.name for p in (entry.path / "valid" / "c").iterdir()) == ["0", "1", "2"]
    assert torch.all(entry.load() == 0) and not entry.valid().any()


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
    with pytest.raises(DamagedError, match="key.json does not hash to the entry's fingerprint"):
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
