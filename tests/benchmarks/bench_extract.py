"""Extraction benchmarks on CPU with a full-size WavLM-base+ architecture (random weights from
``WavLMConfig()`` defaults, so no download is needed). Run on demand (about 4 min per repeat on
an idle 2-core box at the default 192 clips; two to four times that under other load):

    python tests/benchmarks/bench_extract.py [--clips 192] [--repeats 3] [--paired-clips 96]
                                             [--batch-size N] [--workers N]

The command runs with the CLI's own defaults (batch size, workers, stored dtype) unless
``--batch-size`` / ``--workers`` are given, so the figures are what a user gets by default.
192 clips (CREMA-D has 7,442) amortise the command's fixed start-up (imports, model build,
about 7–9 s) roughly as a real run does, which a 48-clip run does not.

(a) overhead ratio = wall time of the whole ``mmpipe extract`` command (process start, model load,
    decoding, forward, writes) ÷ the bare encoder forward over the same pre-decoded batches
    (the batches the engine forms: same per-chunk bucketing and batch size). Target ≤ 1.15.
(b) speed-up of mmpipe over a naive loop: one clip at a time, fp32, decoding in the main process.
(c) the results are the naive loop's: the command's stored float16 rows against the naive loop's
    float32 rows rounded to float16 (elements that differ, by how many ulp), and a float32
    extraction with the default batch size and workers (the first ``--paired-clips`` clips)
    against the naive rows: max over rows of max |Δ| / mean |naive row|.

The box this runs on is shared, and a busy neighbour slows the 2-thread forward by up to 3×
within minutes, so (a) taken from runs minutes apart mixes the engine's overhead with load
drift. Load-robust figures are therefore printed too, each from measurements taken side by side:

- each repeat's own ratios (command ÷ bare, naive ÷ command), and their medians;
- CPU seconds (all threads; the command's with its DataLoader workers, from ``RUSAGE_CHILDREN``):
  other processes' load barely changes them, though threads spinning while descheduled count;
(a1) command wall ÷ the forward time the command recorded itself (same run);
(a2) the engine's forward ÷ a bare forward of the same batch, paired batch by batch in one
     process (``extract()`` with an encoder that also times a bare forward next to each of its
     own; the order alternates). It answers whether the engine's forwards are slower than bare
     ones (worker processes competing for cores, different batches, shared-memory inputs).

and (a1 × a2) estimates (a) without load drift. Repeats are interleaved (their order alternates),
medians are kept, and ``os.getloadavg()`` is printed with each figure.

Clip durations are drawn from 1.3–3.5 s (CREMA-D's range is about 1.3–5 s, mean ≈ 2.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
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
from mmpipe.pipeline.engines.rows import plan_chunk  # noqa: E402
from mmpipe.pipeline.extract import ExtractOptions, extract  # noqa: E402
from mmpipe.store.features import FeatureEntry  # noqa: E402
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


def paired_engine_vs_bare(root: Path, weights: Path, clips: int,
                          options: ExtractOptions) -> tuple[float, float, np.ndarray]:
    """(engine forward seconds, bare forward seconds) over the same batches, paired per batch, and
    the rows the engine stored. The clips are the first ``clips`` of the main data (same seed)."""
    paths = write_clips(root / "paired", clips, seed=0)
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
    result = extract(Store.open(root / "paired-store", create=True), "folder", config, Paired(), weights=weights,
                     options=options, show_progress=False)
    assert result.entry.valid().all()
    ratios = [engine / bare for engine, bare in pairs]
    print(f"     per-batch engine/bare ratios: median {statistics.median(ratios):.3f}, "
          f"{[round(r, 2) for r in ratios]}")
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs), result.entry.load("data").numpy()


def relative_gap(rows: np.ndarray, reference: np.ndarray) -> float:
    """max over rows of max |row - reference| / mean |reference row|."""
    return float((np.abs(rows - reference).max(axis=1) / np.abs(reference).mean(axis=1)).max())


def float16_gap(stored: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """(elements of ``stored`` (float16) that differ from ``reference`` (float32) rounded to
    float16, the largest difference in float16 ulps)."""
    rounded = reference.astype(np.float16)
    ulps = np.abs(stored.astype(np.float32) - rounded.astype(np.float32)) / np.spacing(np.abs(rounded)).astype(
        np.float32)
    return int((stored != rounded).sum()), float(ulps.max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the CLI's default")
    parser.add_argument("--workers", type=int, default=None, help="default: the CLI's default")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians are kept")
    parser.add_argument("--paired-clips", type=int, default=96,
                        help="clips of the paired check (a2) and the float32 check (c), the first of --clips; 0 skips")
    args = parser.parse_args()
    args.paired_clips = min(args.paired_clips, args.clips)
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

    command_rows: list[np.ndarray] = []  # what each command stored (float16 by default)

    cpu: dict[str, list[float]] = {"command": [], "bare": [], "naive": []}  # CPU seconds, all threads

    def children_cpu() -> float:  # the command and its DataLoader workers, once they have exited
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def run_command() -> tuple[float, dict[str, Any]]:
        shutil.rmtree(store / "features", ignore_errors=True)
        cpu_started = children_cpu()
        started = time.perf_counter()
        subprocess.run(command(root / "data"), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        cpu["command"].append(children_cpu() - cpu_started)
        entry = FeatureEntry.open(next((store / "features" / "folder.audio.wavlm").glob("*/meta.json")).parent)
        assert entry.valid().all(), entry.failures()
        command_rows.append(entry.load("data", dtype=None).numpy())
        return seconds, meta()

    walls: list[tuple[float, dict[str, Any]]] = []
    bares: list[float] = []
    naives: list[float] = []
    naive_rows: list[np.ndarray] = []  # the naive loop's pooled float32 rows, in row order
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
        rows = []
        started = time.perf_counter()
        for path in paths:  # decode in the main process, one clip per forward, fp32
            rows.append(encoder.encode(preparer.collate([preparer(path)])).pooled[0].numpy())
        seconds = time.perf_counter() - started
        naive_rows[:] = rows
        return seconds

    for repeat in range(args.repeats):
        for name in (["command", "bare", "naive"] if repeat % 2 == 0 else ["naive", "bare", "command"]):
            if name == "command":
                walls.append(run_command())
                seconds = walls[-1][0]
            else:
                cpu_started = time.process_time()
                (bares if name == "bare" else naives).append((run_bare if name == "bare" else run_naive)())
                cpu[name].append(time.process_time() - cpu_started)
                seconds = (bares if name == "bare" else naives)[-1]
            print(f"  repeat {repeat} {name}: {seconds:.1f} s, {cpu[name][-1]:.1f} CPU s; {load()}", flush=True)

    # medians over the repeats, and the ratios of each repeat's own timings (taken minutes, not
    # hours, apart, so less load drift), then their medians
    middle = sorted(range(len(walls)), key=lambda i: walls[i][0])[(len(walls) - 1) // 2]
    cli_wall, timings = walls[middle][0], walls[middle][1]["timings"]
    bare, naive = statistics.median(bares), statistics.median(naives)
    overheads = [w / b for (w, _), b in zip(walls, bares, strict=True)]
    speedups = [n / w for (w, _), n in zip(walls, naives, strict=True)]
    engine = timings["wall_s"] + timings["load_s"]
    print(f"command walls {[round(w, 1) for w, _ in walls]}, bare {[round(x, 1) for x in bares]}, "
          f"naive {[round(x, 1) for x in naives]} (per repeat)")
    print(f"bare forward over the same batches: {bare:.1f} s (median)")
    print(f"mmpipe extract command wall time:   {cli_wall:.1f} s (median run: engine load->publish {engine:.1f} s; "
          f"load {timings['load_s']:.1f} s, forward {timings['forward_s']:.1f} s, decode {timings['decode_s']:.1f} s "
          f"in workers, waiting for data {timings['wait_s']:.1f} s, write {timings['write_s']:.2f} s)")
    print(f"naive loop (1 clip/forward, decode in main): {naive:.1f} s (median)")
    print(f"first command (2 clips, weights hash not yet memoised): {cold:.1f} s")
    print(f"(a) overhead ratio, command wall / bare forward: median of the repeats' own ratios "
          f"{statistics.median(overheads):.3f} {[round(x, 3) for x in overheads]}; of the medians {cli_wall / bare:.3f} "
          f"(target <= 1.15; engine without process start: {engine / bare:.3f})")
    c_command, c_bare, c_naive = (statistics.median(cpu[k]) for k in ("command", "bare", "naive"))
    print(f"CPU seconds (medians; all threads and processes; spinning threads count too): command {c_command:.1f}, "
          f"bare {c_bare:.1f}, naive {c_naive:.1f}: (a) on CPU time {c_command / c_bare:.3f}, (b) on CPU time "
          f"{c_naive / c_command:.2f}x")
    a1s = [w / m["timings"]["forward_s"] for w, m in walls]
    a1 = statistics.median(a1s)
    print(f"(a1) command wall / its own forward time (same run): {a1:.3f} {[round(x, 3) for x in a1s]}; fixed cost "
          f"{[round(w - m['timings']['forward_s'], 1) for w, m in walls]} s")
    reference = np.stack(naive_rows)
    stored_dtype = meta()["dtype"]
    same = all(np.array_equal(rows, command_rows[0]) for rows in command_rows)
    if stored_dtype == "float16":
        differing, ulps = float16_gap(command_rows[0], reference)
        print(f"(c) stored float16 rows vs the naive loop's float32 rows rounded to float16: {differing} of "
              f"{reference.size} elements differ, by at most {ulps:.0f} ulp; relative gap "
              f"{relative_gap(command_rows[0].astype(np.float32), reference):.1e}; every command stored the same "
              f"rows: {same}")
    else:
        print(f"(c) stored {stored_dtype} rows vs the naive loop's: relative gap "
              f"{relative_gap(command_rows[0].astype(np.float32), reference):.1e}; identical runs: {same}")
    if args.paired_clips:
        options = ExtractOptions(batch_size=batch_size, num_workers=workers, device="cpu", dtype="float32")
        engine_s, bare_s, paired_rows = paired_engine_vs_bare(root, weights, args.paired_clips, options)
        print(f"(c) float32 rows of the default engine ({args.paired_clips} clips) vs the naive loop: relative gap "
              f"{relative_gap(paired_rows, reference[:args.paired_clips]):.1e} (max |diff| / mean |row|)")
        a2 = engine_s / bare_s
        print(f"(a2) engine forward / bare forward, paired per batch ({args.paired_clips} clips): {a2:.3f} "
              f"({engine_s:.1f} s vs {bare_s:.1f} s); {load()}")
        print(f"(a) load-robust estimate a1 x a2: {a1 * a2:.3f}")
    print(f"(b) speed-up over the naive loop: median of the repeats' own ratios {statistics.median(speedups):.2f}x "
          f"{[round(x, 2) for x in speedups]}; of the medians {naive / cli_wall:.2f}x (engine only: "
          f"{naive / engine:.2f}x; bare batched forward vs naive: "
          f"{statistics.median([n / b for n, b in zip(naives, bares, strict=True)]):.2f}x)")
    print(f"    throughput: {args.clips / cli_wall:.2f} clips/s (command), {timings['clips_per_s']:.2f} clips/s "
          f"(engine); {load()}")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
