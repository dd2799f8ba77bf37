"""Extraction benchmarks on CPU with a full-size WavLM-base+ architecture (random weights from
``WavLMConfig()`` defaults, so no download is needed). Run on demand (about 4 min per repeat on
an idle 2-core box at the default 192 clips; two to three times that under other load):

    python tests/benchmarks/bench_extract.py [--clips 192] [--repeats 2] [--batch-size N] [--workers N]

The command runs with the CLI's own defaults (batch size, workers, stored dtype) unless
``--batch-size`` / ``--workers`` are given, so the figures are what a user gets by default.
192 clips (CREMA-D has 7,442) amortise the command's fixed start-up (imports, model build,
about 4–5 s) roughly as a real run does, which a 48-clip run does not.

(a) overhead ratio = wall time of the whole ``mmpipe extract`` command (process start, model load,
    decoding, forward, writes) ÷ the bare encoder forward over the same pre-decoded batches
    (the batches the engine forms: same per-chunk bucketing and batch size). Target ≤ 1.15.
(b) speed-up of mmpipe over a naive loop: one clip at a time, fp32, decoding in the main process.

The box this runs on is shared, and a busy neighbour slows the 2-thread forward by up to 3×
within minutes, so (a) taken from runs minutes apart mixes the engine's overhead with load
drift. Two load-robust factors are therefore printed too, each from timings taken side by side:

(a1) command wall ÷ the forward time the command recorded itself (same run);
(a2) the engine's forward ÷ a bare forward of the same batch, paired batch by batch in one
     process (``extract()`` with an encoder that also times a bare forward next to each of its
     own; the order alternates). It answers whether the engine's forwards are slower than bare
     ones (worker processes competing for cores, different batches, pinned/shared inputs).

and (a1 × a2) estimates (a) without load drift. Repeats are interleaved (their order alternates),
the minimum of each kept, and ``os.getloadavg()`` printed with each figure.

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
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmpipe.pipeline.datasets.folder import FolderConfig  # noqa: E402
from mmpipe.pipeline.encoders import ENCODERS  # noqa: E402
from mmpipe.pipeline.extract import ExtractOptions, extract, plan_chunk  # noqa: E402
from mmpipe.store.root import Store  # noqa: E402
from tests.media import write_wav  # noqa: E402


def load() -> str:
    return "load " + "/".join(f"{x:.2f}" for x in os.getloadavg())


def write_clips(directory: Path, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    rows = []
    for i, seconds in enumerate(rng.uniform(1.3, 3.5, size=n)):
        write_wav(directory / f"c{i:03d}.wav", float(seconds), seed=seed * 10_000 + i)
        rows.append({"sample_id": f"c{i:03d}", "audio": f"c{i:03d}.wav", "y": i % 6})
    pd.DataFrame(rows).to_csv(directory / "samples.csv", index=False)
    return [directory / r["audio"] for r in rows]


def engine_batches(lengths: list[int], batch_size: int, chunk_rows: int) -> list[list[int]]:
    """The batches the engine forms: each chunk of rows bucketed on its own."""
    n = len(lengths)
    return [batch for start in range(0, n, chunk_rows)
            for batch in plan_chunk(range(start, min(start + chunk_rows, n)), lengths[start:start + chunk_rows],
                                    batch_size)]


def paired_engine_vs_bare(root: Path, weights: Path, clips: int, options: ExtractOptions) -> tuple[float, float]:
    """(engine forward seconds, bare forward seconds) over the same batches, paired per batch."""
    paths = write_clips(root / "paired", clips, seed=1)
    wavlm = ENCODERS.get("wavlm")
    bare = wavlm()
    bare.load("cpu", weights)
    preparer = bare.preparer()
    decoded = {p.name: preparer(p) for p in paths}
    by_content = {(len(d["input_values"]), float(d["input_values"][:64].sum())): d for d in decoded.values()}
    pairs: list[tuple[float, float]] = []

    class Paired(wavlm):  # type: ignore[misc, valid-type]
        def encode(self, batch: dict[str, torch.Tensor], layers: tuple[int, ...] = ()) -> Any:
            # the same clips, decoded in this process and collated here, as the bare loop has them
            items = [by_content[(int(n), float(batch["input_values"][i, :64].sum()))]
                     for i, n in enumerate(batch["lengths"])]
            mine = preparer.collate(items)
            bare_first = len(pairs) % 2 == 0
            if bare_first:
                started = time.perf_counter()
                bare.encode(mine)
                bare_s = time.perf_counter() - started
            started = time.perf_counter()
            output = super().encode(batch, layers)
            engine_s = time.perf_counter() - started
            if not bare_first:
                started = time.perf_counter()
                bare.encode(mine)
                bare_s = time.perf_counter() - started
            pairs.append((engine_s, bare_s))
            return output

    bare.encode(preparer.collate([decoded[paths[0].name]]))  # warm-up
    config = FolderConfig(data_dir=str(root / "paired"), modalities=("audio:audio",))
    extract(Store.open(root / "paired-store", create=True), "folder", config, Paired(), weights=weights,
            options=options, show_progress=False)
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the CLI's default")
    parser.add_argument("--workers", type=int, default=None, help="default: the CLI's default")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the minimum of each is kept")
    parser.add_argument("--paired-clips", type=int, default=48, help="clips of the paired check (a2); 0 skips it")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmpipe-bench-"))
    paths = write_clips(root / "data", args.clips, seed=0)
    write_clips(root / "warm", 2, seed=2)
    weights = ENCODERS.get("wavlm").write_random_weights(root / "wavlm", tiny=False, seed=0)
    store = root / "store"

    def command(data: Path) -> list[str]:
        chosen = [*(["--batch-size", str(args.batch_size)] if args.batch_size is not None else []),
                  *(["--workers", str(args.workers)] if args.workers is not None else [])]
        return [sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), "extract", "folder", "--encoder",
                "wavlm", "--data-dir", str(data), "--weights", str(weights), "--set", "modalities=audio:audio",
                "--device", "cpu", *chosen]

    def meta() -> dict[str, Any]:
        return json.loads(next((store / "features" / "folder.audio.wavlm").glob("*/meta.json")).read_text())

    # A first command on 2 clips fills the store's weights-hash memo (store/statmemo.py), as a
    # user's first extraction with these weights does, and tells the batch size the CLI uses.
    started = time.perf_counter()
    subprocess.run(command(root / "warm"), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cold = time.perf_counter() - started
    batch_size, workers = meta()["batch_size"], meta()["num_workers"]
    shutil.rmtree(store / "features")

    encoder = ENCODERS.get("wavlm")()
    encoder.load("cpu", weights)
    preparer = encoder.preparer()
    lengths = [preparer.length(p) for p in paths]
    print(f"{args.clips} clips, {sum(lengths) / 16_000:.0f} s of audio; batch size {batch_size}, {workers} worker(s), "
          f"torch threads {torch.get_num_threads()}; {load()}", flush=True)

    def run_command() -> tuple[float, dict[str, Any]]:
        shutil.rmtree(store / "features", ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(command(root / "data"), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started, meta()

    walls: list[tuple[float, dict[str, Any]]] = []
    bares: list[float] = []
    naives: list[float] = []
    decoded: list[dict[str, torch.Tensor]] = []

    def run_bare() -> float:
        if not decoded:  # the engine's batches (per-chunk bucketing, its chunk size), decoded beforehand
            chunk_rows = walls[0][1]["chunk_rows"] if walls else args.clips
            batches = engine_batches(lengths, batch_size, chunk_rows)
            decoded.extend(preparer.collate([preparer(paths[r]) for r in batch]) for batch in batches)
            encoder.encode(decoded[0])  # warm-up, as the engine's first batch also pays it
        started = time.perf_counter()
        for batch in decoded:
            encoder.encode(batch)
        return time.perf_counter() - started

    def run_naive() -> float:
        started = time.perf_counter()
        for path in paths:  # decode in the main process, one clip per forward, fp32
            encoder.encode(preparer.collate([preparer(path)]))
        return time.perf_counter() - started

    for repeat in range(args.repeats):
        for name in (["command", "bare", "naive"] if repeat % 2 == 0 else ["naive", "bare", "command"]):
            if name == "command":
                walls.append(run_command())
                seconds = walls[-1][0]
            else:
                (bares if name == "bare" else naives).append((run_bare if name == "bare" else run_naive)())
                seconds = (bares if name == "bare" else naives)[-1]
            print(f"  repeat {repeat} {name}: {seconds:.1f} s; {load()}", flush=True)

    cli_wall, timings = min(walls, key=lambda w: w[0])[0], min(walls, key=lambda w: w[0])[1]["timings"]
    bare, naive = min(bares), min(naives)
    engine = timings["wall_s"] + timings["load_s"]
    print(f"command walls {[round(w, 1) for w, _ in walls]}, bare {[round(x, 1) for x in bares]}, "
          f"naive {[round(x, 1) for x in naives]}")
    print(f"bare forward over the same batches: {bare:.1f} s")
    print(f"mmpipe extract command wall time:   {cli_wall:.1f} s (engine load->publish {engine:.1f} s; forward "
          f"{timings['forward_s']:.1f} s, decode {timings['decode_s']:.1f} s in workers, waiting for data "
          f"{timings['wait_s']:.1f} s, write {timings['write_s']:.2f} s)")
    print(f"naive loop (1 clip/forward, decode in main): {naive:.1f} s")
    print(f"first command (2 clips, weights hash not yet memoised): {cold:.1f} s")
    print(f"(a) overhead ratio, command wall / bare forward: {cli_wall / bare:.3f}  (target <= 1.15; "
          f"engine without process start: {engine / bare:.3f})")
    a1 = cli_wall / timings["forward_s"]
    print(f"(a1) command wall / its own forward time (same run): {a1:.3f}; fixed cost "
          f"{cli_wall - timings['forward_s']:.1f} s")
    if args.paired_clips:
        options = ExtractOptions(batch_size=batch_size, num_workers=workers, device="cpu")
        engine_s, bare_s = paired_engine_vs_bare(root, weights, args.paired_clips, options)
        a2 = engine_s / bare_s
        print(f"(a2) engine forward / bare forward, paired per batch ({args.paired_clips} clips): {a2:.3f} "
              f"({engine_s:.1f} s vs {bare_s:.1f} s); {load()}")
        print(f"(a) load-robust estimate a1 x a2: {a1 * a2:.3f}")
    print(f"(b) speed-up over the naive loop: {naive / cli_wall:.2f}x (engine only: {naive / engine:.2f}x; "
          f"bare batched forward vs naive: {naive / bare:.2f}x)")
    print(f"    throughput: {args.clips / cli_wall:.2f} clips/s (command), {timings['clips_per_s']:.2f} clips/s "
          f"(engine); {load()}")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
