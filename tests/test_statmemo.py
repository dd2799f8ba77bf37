"""The stat memo: a value computed once per unchanged (path, size, mtime_ns) set of files."""

import os

from mmpipe.store.statmemo import StatMemo, stat_signature


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_computed_once_while_files_are_unchanged(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 100)
    (folder / "config.json").write_text("{}")
    memo = StatMemo(tmp_path / "cache" / "memo.json")
    compute, calls = _counting({"sha256": "abc"})
    assert memo.get("hash", folder, compute) == {"sha256": "abc"}
    assert memo.get("hash", folder, compute) == {"sha256": "abc"} and len(calls) == 1
    assert StatMemo(tmp_path / "cache" / "memo.json").get("hash", folder, compute) == {"sha256": "abc"}
    assert len(calls) == 1  # persisted across instances (processes)
    other, other_calls = _counting("other kind")
    assert memo.get("size", folder, other) == "other kind" and len(other_calls) == 1


def test_rewritten_touched_added_or_moved_files_are_recomputed(tmp_path):
    file = tmp_path / "w.pth"
    file.write_bytes(b"a" * 10)
    memo = StatMemo(tmp_path / "memo.json")
    compute, calls = _counting(1)
    memo.get("hash", file, compute)
    signature = stat_signature(file)
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000))
    assert stat_signature(file) != signature
    memo.get("hash", file, compute)
    file.write_bytes(b"b" * 11)
    memo.get("hash", file, compute)
    moved = file.rename(tmp_path / "v.pth")
    memo.get("hash", moved, compute)
    assert len(calls) == 4
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"1")
    before = stat_signature(folder)
    (folder / ".hidden").write_bytes(b"ignored")
    assert stat_signature(folder) == before
    (folder / "b.bin").write_bytes(b"2")
    assert stat_signature(folder) != before


def test_missing_paths_are_not_memoised_and_a_damaged_memo_starts_empty(tmp_path):
    memo = StatMemo(tmp_path / "memo.json")
    compute, calls = _counting(0)
    memo.get("hash", tmp_path / "absent", compute)
    memo.get("hash", tmp_path / "absent", compute)
    assert len(calls) == 2 and not (tmp_path / "memo.json").exists()
    (tmp_path / "memo.json").write_text("{not json")
    (tmp_path / "f").write_bytes(b"1")
    assert memo.get("hash", tmp_path / "f", compute) == 0 and len(calls) == 3
    assert memo.get("hash", tmp_path / "f", compute) == 0 and len(calls) == 3
