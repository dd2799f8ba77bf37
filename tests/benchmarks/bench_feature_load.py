"""Peak memory of loading a float16 entry as float32: load(dtype=torch.float32) vs load().float().

    python tests/benchmarks/bench_feature_load.py [--rows 100000] [--dim 1024]

Writes one ~200 MB float16 entry, then measures each way of loading it in a fresh process: peak
resident memory (ru_maxrss) minus the resident memory just before the load. The chunked load
should peak near the float32 output plus one chunk; the naive one near float16 + float32. Prints
both peaks and the ratio naive ÷ chunked (expected about 1.5).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mmpipe.store.root import Store


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def measure(root: str, how: str) -> None:
    """In a fresh process: print the load's peak memory above the resident memory before it."""
    entry = Store.open(root).features("bench.x")
    before = _rss_bytes()
    out = entry.load(dtype=torch.float32) if how == "chunked" else entry.load().float()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    assert out.dtype == torch.float32
    print(peak - before)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--measure", nargs=2, metavar=("ROOT", "HOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "store", create=True)
        rng = np.random.default_rng(0)
        with store.writer("bench.x", {"i": 0}, n_rows=args.rows, dim=args.dim) as writer:
            for index in writer.pending_chunks():
                start, stop = writer.chunk_bounds(index)
                writer.write_chunk(index, rng.standard_normal((stop - start, args.dim), dtype=np.float32))
            entry = writer.publish()
        f16, f32, chunk = args.rows * args.dim * 2, args.rows * args.dim * 4, entry.meta["chunk_rows"] * args.dim * 2
        print(f"entry: {args.rows} x {args.dim} float16 = {f16 / 2**20:.0f} MiB (float32: {f32 / 2**20:.0f} MiB, "
              f"chunk {chunk / 2**20:.2f} MiB)")
        peaks = {}
        for how in ("naive", "chunked"):
            done = subprocess.run([sys.executable, __file__, "--measure", str(store.root), how],
                                  capture_output=True, text=True, check=True)
            peaks[how] = int(done.stdout.split()[-1])
            print(f"{how:8s} peak above baseline: {peaks[how] / 2**20:7.1f} MiB "
                  f"({peaks[how] / f32:.2f} x the float32 output)")
    print(f"ratio naive / chunked: {peaks['naive'] / peaks['chunked']:.2f}")


if __name__ == "__main__":
    main()
