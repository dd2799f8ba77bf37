"""Ingest of a MOSEI-size feature pickle: wall time and peak memory against the file's size, and
the time to load the text entry for a fit against `pickle.load` of the same file (issue 14 point 7).

    python tests/benchmarks/bench_ingest.py [--rows 22856] [--steps 50] [--dir DIR] [--cold] [--keep]

Writes a synthetic file in MMSA's aligned_50.pkl layout with MOSEI's shapes (22,856 rows: text
768-d BERT tokens, audio 74-d, vision 35-d, 50 steps, float32: about 4.0 GB) with `pickle.dump`
(protocol 4, the default of Python 3.8+), then runs each step in a fresh process and reads its
peak resident memory (ru_maxrss) and wall time:

1. ``pickle.load`` of the file (what every upstream loader does);
2. ``mmpipe ingest mosei --set file=...`` into a new store (hashing included);
3. the same ingest again (nothing to do: the sha256 comes from the memo);
4. the text entry loaded into one float32 tensor (``FeatureEntry.load``), the fit's read;
5. the fit's whole input step for text alone: ``load_features(..., pooling="mean")``.

Each step but (2) runs ``--repeats`` times (default 2), each in a fresh process, after ``os.sync()``;
the fastest is kept (all are printed). Prints each, the peak of (2) as a multiple of the file's size (the target is at most ~1.5), and
(4) and (5) as a fraction of (1). By default every step reads warm: the files it reads are read
once just before it. With ``--cold`` the file's and the store's pages are dropped from the page
cache (posix_fadvise DONTNEED) before every step, so its reads come from the disk. Needs
about 2.2 x the file's size free in ``--dir`` (file + store); lab notes in ingest_notes.md beside
this script.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MOSEI_SPLITS = (16_326, 1_871, 4_659)  # MMSA's MOSEI train / valid / test
DIMS = {"text": 768, "audio": 74, "vision": 35}


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _split_sizes(rows: int) -> list[int]:
    total = sum(MOSEI_SPLITS)
    sizes = [round(rows * n / total) for n in MOSEI_SPLITS[:2]]
    return [*sizes, rows - sum(sizes)]


def write_file(path: Path, rows: int, steps: int) -> None:
    """The MMSA aligned layout with MOSEI's shapes; valid steps first, zeros after, per row."""
    rng = np.random.default_rng(0)
    tree = {}
    for split, n in zip(("train", "valid", "test"), _split_sizes(rows), strict=True):
        lengths = rng.integers(1, steps + 1, n)
        pad = np.arange(steps)[None, :] >= lengths[:, None]  # (n, T)
        part: dict = {"raw_text": [f"clip {i} of {split}" for i in range(n)],
                      "id": np.array([f"{split}v{i // 8:05d}$_${i % 8}" for i in range(n)], dtype=object)}
        for modality, dim in DIMS.items():
            values = rng.random((n, steps, dim), dtype=np.float32)
            values += np.float32(0.01)  # no valid step is all zero
            if modality != "text":  # BERT outputs are not zero at padded tokens: only the mask says where text ends
                values[pad] = 0
            part[modality] = values
        mask = np.where(pad, 0, 1)
        part["text_bert"] = np.stack([mask * 101, mask, np.zeros_like(mask)], axis=1).astype(np.float32)
        part["audio_lengths"] = lengths.tolist()
        part["vision_lengths"] = lengths.tolist()
        part["annotations"] = np.array(["Neutral"] * n, dtype=object)
        part["classification_labels"] = np.ones(n, dtype=np.float32)
        part["regression_labels"] = np.round(rng.uniform(-3, 3, n), 1).astype(np.float32)
        tree[split] = part
    with open(path, "wb") as handle:
        pickle.dump(tree, handle, protocol=4)


def _evict(*paths: Path) -> None:
    """Drop the files' clean pages from the page cache (no root needed)."""
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
        for file in files:
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd) if os.access(file, os.W_OK) else None
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# -- the steps, each run in its own process --------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def step(name: str, file: str, store: str) -> dict:
    """One measured step: imports first (timed apart), then the work; peak RSS of the process."""
    started = time.perf_counter()
    if name != "pickle_load":
        import torch  # noqa: F401  (what every mmpipe step imports; timed as import, not work)
        from typer.testing import CliRunner

        from mmpipe.adapters.data import load_features
        from mmpipe.pipeline.cli import app
        from mmpipe.store.root import Store
    imported, baseline = time.perf_counter(), _rss()
    if name == "pickle_load":
        with open(file, "rb") as handle:
            data = pickle.load(handle)
        assert data["train"]["text"].dtype == np.float32
    elif name in ("ingest", "ingest_again"):
        result = CliRunner().invoke(app, ["--store", store, "ingest", "mosei", "--set", f"file={file}"])
        assert result.exit_code == 0, result.output
        assert ("nothing to do" in result.stderr) == (name == "ingest_again"), result.stderr
    elif name == "load_text":
        tensor = Store.open(store).features("mosei.text.bert").load()
        assert tensor.shape[1:] == (50, 768)
    elif name == "load_features_text_mean":
        data = load_features(Store.open(store), "mosei", {"text": None}, pooling="mean")
        assert data.values["text"].shape[1] == 768
    else:
        raise ValueError(name)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"import_s": imported - started, "wall_s": time.perf_counter() - imported, "baseline_bytes": baseline,
            "peak_bytes": _peak(), "disk_read_bytes": usage.ru_inblock * 512, "minor_faults": usage.ru_minflt}


def _warm(*paths: Path) -> None:
    """Read the files once, so the step reads them from the page cache (files written once sit on
    the kernel's inactive list and are the first evicted: the store, just written, otherwise comes
    from the disk while the file, read before, comes from memory)."""
    block = bytearray(8 << 20)
    for root in paths:
        for file in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            with open(file, "rb", buffering=0) as handle:
                while handle.readinto(block):
                    pass


READS = {"pickle_load": ("file",), "ingest": ("file",), "ingest_again": (), "load_text": ("text",),
         "load_features_text_mean": ("text",)}


def _run(name: str, file: Path, store: Path, cold: bool, repeats: int) -> dict:
    """The step in fresh processes, ``repeats`` times: the fastest run (and its peak memory). Before
    each: ``os.sync()``, then the files the step reads evicted (cold) or read once (warm)."""
    runs = []
    text = store / "features" / "mosei.text.bert"
    for _ in range(repeats):
        os.sync()  # the previous step's writes are on disk, not competing with this step's reads
        reads = [{"file": file, "text": text}[what] for what in READS[name]]
        if cold:
            _evict(file, store)
        else:
            _warm(*reads)
        output = subprocess.run([sys.executable, __file__, "--step", name, str(file), str(store)], check=True,
                                capture_output=True, text=True).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["wall_s"])
    return {**best, "walls": [r["wall_s"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=sum(MOSEI_SPLITS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=None, help="where the file and the store go (default: a temp dir)")
    parser.add_argument("--cold", action="store_true", help="drop the file's and store's pages before every step")
    parser.add_argument("--keep", action="store_true", help="keep the file and the store")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each step but the first ingest (fastest kept)")
    parser.add_argument("--step", nargs=3, metavar=("NAME", "FILE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(*args.step)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.dir))
    try:
        file, store = work / "aligned_50.pkl", work / "store"
        planned = args.rows * args.steps * sum(DIMS.values()) * 4
        free = shutil.disk_usage(work).free
        if free < 2.2 * planned:
            raise SystemExit(f"needs about {2.2 * planned / 2**30:.1f} GiB in {work}, {free / 2**30:.1f} GiB free; "
                             "pass --rows N for a smaller file")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                        f"from bench_ingest import write_file; from pathlib import Path; "
                        f"write_file(Path({str(file)!r}), {args.rows}, {args.steps})"], check=True)
        size = file.stat().st_size
        print(f"file: {file.name}, {args.rows:,} rows x {args.steps} steps x (768 + 74 + 35) float32, {size:,} bytes "
              f"({size / 2**30:.2f} GiB), written in {time.perf_counter() - started:.0f} s; "
              f"page cache: {'dropped before each step' if args.cold else 'what each step reads, read just before it'}")
        results = {}
        for name in ("pickle_load", "ingest", "ingest_again", "load_text", "load_features_text_mean"):
            results[name] = _run(name, file, store, args.cold, 1 if name == "ingest" else args.repeats)
            r = results[name]
            walls = "/".join(f"{w:.1f}" for w in r["walls"])
            print(f"{name:24s} wall {r['wall_s']:7.2f} s [{walls}] (+ imports {r['import_s']:4.1f} s)   peak RSS "
                  f"{r['peak_bytes'] / 2**30:6.2f} GiB = {r['peak_bytes'] / size:5.2f} x file (after imports "
                  f"{r['baseline_bytes'] / 2**30:.2f} GiB; the work's own "
                  f"{(r['peak_bytes'] - r['baseline_bytes']) / size:.2f} x file); read from disk "
                  f"{r['disk_read_bytes'] / 2**30:.2f} GiB, {r['minor_faults']:,} minor page faults", flush=True)
        ingest, load = results["ingest"], results["pickle_load"]
        print(f"ingest peak RSS / file size: {ingest['peak_bytes'] / size:.2f} (target <= ~1.5); "
              f"pickle.load peak / file size: {load['peak_bytes'] / size:.2f}")
        print(f"text entry load / pickle.load wall: {results['load_text']['wall_s'] / load['wall_s']:.2f}; "
              f"load_features(text, mean) / pickle.load wall: "
              f"{results['load_features_text_mean']['wall_s'] / load['wall_s']:.2f}")
        store_bytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        print(f"store: {store_bytes:,} bytes ({store_bytes / size:.2f} x file)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
