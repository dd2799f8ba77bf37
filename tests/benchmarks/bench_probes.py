"""Probe throughput: one MultiLoReFT-shaped run (8 components) on Sim I, n = 10,000, all labels.

Run: ``python tests/benchmarks/bench_probes.py`` (from the repository root). Prints seconds per run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmpipe.evaluate.probes import ProbeConfig, probe_run  # noqa: E402
from mmpipe.store.root import Store  # noqa: E402
from tests.evalruns import publish_synthetic, simulate_sim1  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "store", create=True)
        version = simulate_sim1(store, n=10_000).manifest_version
        runs = [publish_synthetic(store, version, seed=s) for s in range(4)]
        probe_run(store, runs[0])  # warm-up (imports, BLAS threads)
        for config, name in ((ProbeConfig(), "full"), (ProbeConfig(k_shot=(5,)), "full + 5-shot")):
            started = time.perf_counter()
            rows = sum(len(probe_run(store, run, config).rows) for run in runs)
            seconds = time.perf_counter() - started
            print(f"{name}: 4 runs × 8 components × 4 labels, n=10,000: {seconds:.2f} s "
                  f"({seconds / 4:.2f} s per run, {rows} scores)")


if __name__ == "__main__":
    main()
