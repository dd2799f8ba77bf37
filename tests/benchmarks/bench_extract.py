"""Extraction benchmarks on CPU with a full-size WavLM-base+ architecture (random weights from
``WavLMConfig()`` defaults, so no download is needed). Run on demand:

    python tests/benchmarks/bench_extract.py [--clips 48] [--batch-size 8] [--workers 1]

(a) overhead ratio = wall time of the whole ``mmpipe extract`` command (process start, model load,
    decoding, forward, writes) ÷ the bare encoder forward over the same pre-decoded batches
    (same bucketing, same batch size). Target ≤ 1.15. The engine's own wall time (from load to
    publish, as recorded in the entry) is printed too.
(b) speed-up of mmpipe over a naive loop: one clip at a time, fp32, decoding in the main process.

The command runs once first into the same store (its time is printed as the "first command"):
that fills the weights-hash memo, as a user's first extraction with these weights does.

Clip durations are drawn from 1.3–3.5 s (CREMA-D's range is about 1.3–5 s, mean ≈ 2.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmpipe.pipeline.encoders import ENCODERS  # noqa: E402
from mmpipe.pipeline.extract import plan_chunk  # noqa: E402
from tests.media import write_wav  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the minimum of each is kept")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmpipe-bench-"))
    rng = np.random.default_rng(0)
    durations = rng.uniform(1.3, 3.5, size=args.clips)
    rows = []
    for i, seconds in enumerate(durations):
        write_wav(root / "data" / f"c{i:03d}.wav", float(seconds), seed=i)
        rows.append({"sample_id": f"c{i:03d}", "m2": f"c{i:03d}.wav", "y": i % 6})
    pd.DataFrame(rows).to_csv(root / "data" / "samples.csv", index=False)
    weights = ENCODERS.get("wavlm").write_random_weights(root / "wavlm", tiny=False, seed=0)
    print(f"{args.clips} clips, {durations.sum():.0f} s of audio; batch {args.batch_size}, "
          f"{args.workers} worker(s), torch threads {torch.get_num_threads()}")

    encoder = ENCODERS.get("wavlm")()
    encoder.load("cpu", weights)
    preparer = encoder.preparer()
    paths = [root / "data" / r["m2"] for r in rows]
    lengths = [preparer.length(p) for p in paths]
    batches = plan_chunk(range(len(paths)), lengths, args.batch_size)
    decoded = [preparer.collate([preparer(paths[r]) for r in batch]) for batch in batches]
    encoder.encode(decoded[0])  # warm-up, as the engine's first batch also pays it

    # The box is shared: measurements are interleaved and the minimum of each kept. One store for
    # all runs, its features removed before each: the weights hash memo (store/statmemo.py) is
    # filled by the first, "cold" run, as by a user's first extraction with these weights.
    store = root / "store"
    command = [sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), "extract", "folder",
               "--encoder", "wavlm", "--data-dir", str(root / "data"), "--weights", str(weights),
               "--set", "m1_kind=none", "--batch-size", str(args.batch_size), "--workers", str(args.workers),
               "--dtype", "float32", "--device", "cpu"]
    cli_walls, bares, naives, all_timings, cold = [], [], [], [], None
    print(f"load average before: {os.getloadavg()}")
    for repeat in range(args.repeats + 1):
        shutil.rmtree(store / "features", ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if repeat == 0:
            cold = time.perf_counter() - started
            continue
        cli_walls.append(time.perf_counter() - started)
        meta = json.loads(next((store / "features" / "folder.wavlm").glob("*/meta.json")).read_text())
        all_timings.append(meta["timings"])

        started = time.perf_counter()
        for batch in decoded:
            encoder.encode(batch)
        bares.append(time.perf_counter() - started)

        started = time.perf_counter()
        for path in paths:  # the naive loop: decode in the main process, one clip per forward, fp32
            encoder.encode(preparer.collate([preparer(path)]))
        naives.append(time.perf_counter() - started)
    print(f"load average after: {os.getloadavg()}")
    best = min(range(args.repeats), key=lambda i: cli_walls[i])
    cli_wall, timings, bare, naive = cli_walls[best], all_timings[best], min(bares), min(naives)
    print("command walls", [round(x, 1) for x in cli_walls], "bare", [round(x, 1) for x in bares],
          "naive", [round(x, 1) for x in naives])

    print(f"bare forward over the same batches: {bare:.1f} s")
    print(f"mmpipe extract command wall time:   {cli_wall:.1f} s (engine load->publish {timings['wall_s'] + timings['load_s']:.1f} s; "
          f"forward {timings['forward_s']:.1f} s, decode {timings['decode_s']:.1f} s in workers, "
          f"waiting for data {timings['wait_s']:.1f} s, write {timings['write_s']:.2f} s)")
    print(f"naive loop (1 clip/forward, decode in main): {naive:.1f} s")
    print(f"first command into the store (weights hash not yet memoised): {cold:.1f} s, ratio {cold / bare:.3f}")
    print(f"(a) overhead ratio, command / bare forward: {cli_wall / bare:.3f}  "
          f"(engine without process start: {(timings['wall_s'] + timings['load_s']) / bare:.3f}; target <= 1.15)")
    # On a shared box the command and the bare loop run at different moments under different load;
    # the command's own forward time is measured in the same run, so this ratio is free of that noise.
    print(f"(a') command wall / its own forward time (same run, load-independent): "
          f"{cli_wall / timings['forward_s']:.3f}; fixed cost {cli_wall - timings['forward_s']:.1f} s")
    print(f"(b) speed-up over the naive loop: {naive / cli_wall:.2f}x (engine only: {naive / (timings['wall_s'] + timings['load_s']):.2f}x)")
    print(f"    throughput: {args.clips / cli_wall:.2f} clips/s (command), {timings['clips_per_s']:.2f} clips/s (engine)")


if __name__ == "__main__":
    main()
