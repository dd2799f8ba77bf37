"""Benchmark: `mmpipe reproduce table1` wall time (target < 20 min on the 2-core box), then the other
fusion baselines × the same seeds on Simulation I (table3a) and Simulation II, timed per method.

    python tests/benchmarks/bench_reproduce.py [--seeds 4] [--n 10000] [--store DIR] [--jobs 2]

Prints the reproduced Table 1 (markdown) with its per-label pattern lines, Table 3a, and the fit
time of every method (sum over seeds, from the run records). Simulation II has no joint label,
so its supervised fusion baselines are fitted to z4 (``target=z4``), which the paper does not do.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from typer.testing import CliRunner

from mmpipe.adapters import METHODS
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.fit import fit_runs
from mmpipe.store.root import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=2, help="seeds fitted in parallel (reproduce's default)")
    args = parser.parse_args()
    root = args.store or Path(tempfile.mkdtemp()) / "store"
    runner = CliRunner()
    timings = {}
    for table in ("table1", "table3a"):
        started = time.perf_counter()
        result = runner.invoke(app, ["--store", str(root), "reproduce", table, "--seeds", str(args.seeds),
                                     "--n", str(args.n), "--format", "markdown", "--jobs", str(args.jobs)])
        timings[table] = time.perf_counter() - started
        print(result.output)
        if result.exit_code != 0:
            print(f"{table} failed: exit {result.exit_code}", file=sys.stderr)
            sys.exit(1)
        print(f"`mmpipe reproduce {table} --seeds {args.seeds} --n {args.n}`: {timings[table]:.0f} s wall "
              "(runs already fitted by an earlier table are reused)\n", flush=True)
    store = Store.open(root)
    started = time.perf_counter()
    for method in ("late-fusion", "cross-attention", "mult-interactions", "contrastive"):
        config = METHODS.get(method).Config()
        if hasattr(config, "target"):
            config = dataclasses.replace(config, target="z4")
        fit_runs(store, method, "sim2", {"m1": None, "m2": None}, config, list(range(args.seeds)), jobs=args.jobs)
    timings["sim2 fusion baselines"] = time.perf_counter() - started
    per_method = defaultdict(lambda: defaultdict(float))
    for run in store.runs():
        per_method[run.method][run.record.dataset] += run.record.seconds
    print("| method | sim1 fit s (sum over seeds) | sim2 fit s |\n|---|---|---|")
    for method in sorted(per_method):
        print(f"| {method} | {per_method[method]['sim1']:.0f} | {per_method[method]['sim2']:.0f} |")
    print("\n" + "\n".join(f"{k}: {v:.0f} s wall" for k, v in timings.items()))
    print(f"total: {sum(timings.values()):.0f} s wall for {len(store.runs())} runs, {args.seeds} seeds, n={args.n}")


if __name__ == "__main__":
    main()
