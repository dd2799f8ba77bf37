"""Store vs raw numpy: write and read 100k × 768 float16 (issue #2 benchmark; run on demand).

    python tests/benchmarks/bench_store.py [--rows 100000] [--dim 768] [--repeats 7]

Prints median wall times and the ratio store-read-into-torch ÷ numpy.load (target ≤ 2).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import median_seconds  # tests/benchmarks/timing.py (the script's folder)

from mmpipe.store.root import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    data = np.random.default_rng(0).standard_normal((args.rows, args.dim)).astype(np.float16)
    print(f"array: {args.rows} × {args.dim} float16 = {data.nbytes / 2**20:.1f} MiB, median of {args.repeats}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        counter = iter(range(10**9))

        def store_write():
            store = Store.open(tmp / f"store{next(counter)}", create=True)
            with store.writer("bench.x", {"i": 0}, n_rows=args.rows, dim=args.dim) as writer:
                for index in writer.pending_chunks():
                    start, stop = writer.chunk_bounds(index)
                    writer.write_chunk(index, data[start:stop])
                return writer.publish()

        write_store = median_seconds(store_write, args.repeats)
        write_numpy = median_seconds(lambda: np.save(tmp / "x.npy", data), args.repeats)
        entry = store_write()
        assert torch.equal(entry.load(), torch.from_numpy(data))
        read_store = median_seconds(entry.load, args.repeats)
        read_numpy = median_seconds(lambda: torch.from_numpy(np.load(tmp / "x.npy")), args.repeats)

    print(f"write: store {write_store:.3f} s   numpy.save {write_numpy:.3f} s   ratio {write_store / write_numpy:.2f}")
    print(f"read:  store {read_store:.3f} s   numpy.load {read_numpy:.3f} s   ratio {read_store / read_numpy:.2f}"
          f"   (target <= 2.00: {'met' if read_store / read_numpy <= 2 else 'MISSED'})")


if __name__ == "__main__":
    main()
