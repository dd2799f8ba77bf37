"""Extraction speed on a CUDA machine, every registered encoder in one go (issue 13 point 5).

    python tests/benchmarks/bench_extract_gpu.py [--out FILE] [--encoders wavlm,bert] [--quick]
    python tests/benchmarks/bench_extract_gpu.py --device cpu --quick     # smoke run, no GPU needed

Needs no network: every encoder gets full-size random weights from its own
``write_random_weights(path, tiny=False)`` (``--tiny`` shrinks them, for smoke runs only), and the
media are generated here with the writers of ``tests/media.py``, shaped like the real datasets:
16 kHz WAV clips of 1.3–3.5 s (CREMA-D), 480 × 360 FLV videos of 2.5 s at 30 fps (CREMA-D's
VideoFlash), 500 × 375 JPEG images and 8–20-word captions (Flickr30k).

Per encoder, each measured after a warm-up of its own (CUDA context, kernels, allocator):

- ``extract``: the default ``extract()`` in this process (the CLI's defaults: batch size, workers,
  float16 storage, bf16/fp16 autocast on CUDA) into a fresh store; clips/s over the whole call
  (manifest, weights hash, model load, decode, forward, writes) and over the engine's loop alone;
- ``bare``: the encoder's forward over the very batches the engine formed (same per-chunk length
  bucketing and batch size), decoded and moved to the device beforehand, same autocast, each
  batch's output copied back to the host as the engine does: the floor the engine can approach;
- overhead ratio = extract call wall ÷ bare (target ≤ 1.15), and the engine loop ÷ bare;
- ``naive``: one clip at a time, fp32 (no autocast), decoded in the main process, as a first
  script would do it; speed-up = naive wall ÷ extract call wall;
- ``extract wN``: the same default extraction with ``--more-workers`` DataLoader workers (0 skips
  it), which tells whether the default 2 workers starve the GPU;
- the peak of ``torch.cuda.max_memory_allocated`` in each phase;
- how far the stored rows are from the naive loop's: max over rows of max|Δ| / mean|naive row|
  (on CUDA the engine uses bf16 autocast and the naive loop fp32, so this gap is autocast's, not
  a bug; on CPU both are fp32 and it is the float16 storage rounding, ≤ 2⁻¹¹ relative).

Prints a table and writes JSON to ``--out`` (default ``$OUT/bench_extract_gpu.json`` when ``$OUT``
is set). Clip counts are sized so that the whole run, media and weights included, should take
about 5 minutes on an H200 with 16 cores (an estimate: not yet run on one; ``--scale 0.5``
halves every count); ``--quick`` runs a handful of clips per encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmpipe.pipeline.datasets.folder import FolderConfig  # noqa: E402
from mmpipe.pipeline.encoders import ENCODERS  # noqa: E402
from mmpipe.pipeline.engines.local import autocast as engine_autocast  # noqa: E402
from mmpipe.pipeline.engines.rows import plan_chunk  # noqa: E402
from mmpipe.pipeline.extract import ExtractOptions, extract  # noqa: E402
from mmpipe.store.root import Store  # noqa: E402
from tests.media import write_image, write_video, write_wav  # noqa: E402

# transformers' WavLM attention trips a torch deprecation warning on masked batches
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")

# clips per modality: (full run, --quick)
COUNTS = {"audio": (512, 6), "text": (2048, 8), "image": (1024, 6), "video": (192, 4)}
WORDS = ("a man woman child dog two people in on the red blue green shirt street playing ball running water "
         "sitting standing near with of at young old black white small large group crowd bike car beach "
         "grass snow building holding looking wearing jacket hat front").split()


# -- media -------------------------------------------------------------------------------------
def _write_one(kind: str, path: str, index: int) -> None:
    rng = np.random.default_rng(index)
    if kind == "audio":
        write_wav(Path(path), float(rng.uniform(1.3, 3.5)), seed=index)
    elif kind == "video":  # CREMA-D's VideoFlash: FLV, 480 × 360, 30 fps, about 2.5 s
        write_video(Path(path), frames=int(rng.integers(60, 91)), size=(480, 360), fps=30, seed=index)
    else:  # Flickr30k-like JPEG
        write_image(Path(path), size=(500, 375), seed=index)


def write_media(directory: Path, kind: str, n: int, pool: ProcessPoolExecutor) -> FolderConfig:
    """A folder dataset of ``n`` samples of one modality kind, written in parallel."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    if kind == "text":
        rng = np.random.default_rng(0)
        rows = [{"sample_id": f"s{i:05d}", "text": " ".join(rng.choice(WORDS, size=int(rng.integers(8, 21))))}
                for i in range(n)]
    else:
        suffix = {"audio": ".wav", "video": ".flv", "image": ".jpg"}[kind]
        names = [f"{kind}/s{i:05d}{suffix}" for i in range(n)]
        list(pool.map(_write_one, [kind] * n, [str(directory / name) for name in names], range(n)))
        rows = [{"sample_id": f"s{i:05d}", kind: name} for i, name in enumerate(names)]
    pd.DataFrame(rows).to_csv(directory / "samples.csv", index=False)
    return FolderConfig(data_dir=str(directory), modalities=(f"{kind}:{kind}",))


# -- measurements ------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def run_extract(name: str, weights: Path, config: FolderConfig, store_dir: Path, options: ExtractOptions,
                device: torch.device) -> tuple[float, Any]:
    """(wall of the whole extract() call, its entry). The store is kept between calls (its memo of
    the weights hash, as a user's second extraction has it); its features are not."""
    shutil.rmtree(store_dir / "features", ignore_errors=True)
    store = Store.open(store_dir, create=True)
    encoder = ENCODERS.get(name)()
    reset_peak(device)
    started = time.perf_counter()
    result = extract(store, "folder", config, encoder, weights=weights, options=options, show_progress=False,
                     console=Console(stderr=True, quiet=True))
    sync(device)
    wall = time.perf_counter() - started
    assert result.created and bool(result.entry.valid().all()), f"{name}: rows failed: {result.failures[:3]}"
    return wall, result.entry


def sources_of(config: FolderConfig, kind: str) -> list[Any]:
    table = pd.read_csv(Path(config.data_dir) / config.table)
    values = table[kind].tolist()
    return values if kind == "text" else [str(Path(config.data_dir) / v) for v in values]


def bench_encoder(name: str, weights: Path, config: FolderConfig, warm: FolderConfig, kind: str, work: Path,
                  device: torch.device, more_workers: int) -> dict[str, Any]:
    row: dict[str, Any] = {"encoder": name, "modality": kind}
    defaults = ExtractOptions(device=str(device))
    # warm-up: a short extraction pays CUDA context, kernel selection and the weights-hash memo
    run_extract(name, weights, warm, work / "store", defaults, device)
    wall, entry = run_extract(name, weights, config, work / "store", defaults, device)
    timings = entry.meta["timings"]
    rows = int(timings["rows"])
    stored = entry.load("data").float().numpy()
    row.update(clips=rows, batch_size=entry.meta["batch_size"], workers=entry.meta["num_workers"],
               precision=entry.meta["precision"], extract_wall_s=wall,
               extract_clips_per_s=rows / wall, engine_loop_s=timings["wall_s"], load_s=timings["load_s"],
               engine_forward_s=timings["forward_s"], engine_wait_s=timings["wait_s"],
               engine_decode_s=timings["decode_s"], engine_write_s=timings["write_s"],
               extract_peak_mib=peak_mib(device))
    if more_workers:
        wall_more, entry_more = run_extract(name, weights, config, work / "store", ExtractOptions(
            device=str(device), num_workers=more_workers), device)
        row.update(more_workers=more_workers, extract_more_wall_s=wall_more,
                   extract_more_clips_per_s=rows / wall_more,
                   extract_more_wait_s=entry_more.meta["timings"]["wait_s"])
    shutil.rmtree(work / "store", ignore_errors=True)

    encoder = ENCODERS.get(name)()
    encoder.load(device, weights)
    preparer = encoder.preparer()
    sources = sources_of(config, kind)
    autocast, _ = engine_autocast(device)

    # bare: the engine's batches (per-chunk length sort, its batch size), on the device beforehand
    chunk_rows = int(entry.meta["chunk_rows"])
    lengths = [preparer.length(s) for s in sources]
    batches = [batch for start in range(0, rows, chunk_rows)
               for batch in plan_chunk(range(start, min(start + chunk_rows, rows)), lengths[start:start + chunk_rows],
                                       defaults.batch_size)]
    decoded = [preparer(s) for s in sources]
    on_device = [{k: v.to(device) for k, v in preparer.collate([decoded[r] for r in batch]).items()}
                 for batch in batches]

    def forward(inputs: dict[str, torch.Tensor]) -> np.ndarray:
        with autocast:
            output = encoder.encode(inputs)
        return output.pooled.float().cpu().numpy()  # synchronises, as the engine's copy does

    forward(on_device[0])  # warm-up
    reset_peak(device)
    sync(device)
    started = time.perf_counter()
    for inputs in on_device:
        forward(inputs)
    sync(device)
    bare = time.perf_counter() - started
    row.update(bare_s=bare, bare_clips_per_s=rows / bare, bare_peak_mib=peak_mib(device))
    del on_device, decoded

    # naive: one clip per forward, fp32, decoded here in the main process
    def naive_one(source: Any) -> np.ndarray:
        inputs = {k: v.to(device) for k, v in preparer.collate([preparer(source)]).items()}
        return encoder.encode(inputs).pooled.float().cpu().numpy()[0]

    naive_one(sources[0])  # warm-up
    reset_peak(device)
    sync(device)
    started = time.perf_counter()
    naive_rows = np.stack([naive_one(s) for s in sources])
    naive = time.perf_counter() - started
    gaps = np.abs(stored - naive_rows).max(axis=1) / np.maximum(np.abs(naive_rows).mean(axis=1), 1e-12)
    row.update(naive_s=naive, naive_clips_per_s=rows / naive, naive_peak_mib=peak_mib(device),
               overhead=wall / bare, overhead_loop=timings["wall_s"] / bare, speedup=naive / wall,
               speedup_loop=naive / timings["wall_s"], max_rel_gap_vs_naive=float(gaps.max()))
    encoder.model = None  # free the device memory before the next encoder
    if hasattr(encoder, "conv"):
        encoder.conv = None  # the speech encoders' conv feature extractor, held apart from the model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def fmt(value: Any, digits: int = 1) -> str:
    """``digits`` decimals, but at least 3 significant digits for small values."""
    if value is None:
        return "-"
    if not isinstance(value, float):
        return str(value)
    if value and abs(value) < 10 ** (2 - digits):
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def print_table(results: list[dict[str, Any]]) -> None:
    columns = [("encoder", "encoder", 0), ("clips", "clips", 0), ("extract clips/s", "extract_clips_per_s", 1),
               ("bare clips/s", "bare_clips_per_s", 1), ("naive clips/s", "naive_clips_per_s", 1),
               ("overhead", "overhead", 2), ("loop/bare", "overhead_loop", 2), ("speed-up", "speedup", 2),
               ("wN clips/s", "extract_more_clips_per_s", 1), ("wait s", "engine_wait_s", 2),
               ("peak MiB", "extract_peak_mib", 0), ("gap vs naive", "max_rel_gap_vs_naive", 5)]
    cells = [[h for h, _, _ in columns]] + [
        [fmt(r.get(key), d) if key != "max_rel_gap_vs_naive" or r.get(key) is None else f"{r[key]:.1e}"
         for _, key, d in columns] for r in results]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (only with --quick)")
    parser.add_argument("--quick", action="store_true", help="a handful of clips per encoder (smoke run)")
    parser.add_argument("--tiny", action="store_true", help="tiny random architectures (smoke runs only)")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated (default: all registered)")
    parser.add_argument("--more-workers", type=int, default=None,
                        help="also time extraction with this many workers (default: cores - 2, 0 skips; --quick: 0)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the clip counts")
    out_default = str(Path(os.environ["OUT"]) / "bench_extract_gpu.json") if os.environ.get("OUT") else None
    parser.add_argument("--out", default=out_default, help="JSON results (default: $OUT/bench_extract_gpu.json)")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_extract_gpu: no CUDA device here (torch.cuda.is_available() is False). This benchmark is "
                 "for a CUDA machine; for a smoke run on CPU pass --device cpu --quick.")
    if device.type != "cuda" and not args.quick:
        sys.exit("bench_extract_gpu: a full run needs --device cuda; on CPU only a smoke run (--quick) is allowed")
    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENCODERS]
    if unknown:
        sys.exit(f"bench_extract_gpu: unknown encoder(s) {', '.join(unknown)}; registered: {', '.join(ENCODERS)}")
    cores = os.cpu_count() or 1
    more_workers = args.more_workers if args.more_workers is not None else (0 if args.quick else max(0, cores - 2))
    if more_workers == ExtractOptions().num_workers:
        more_workers = 0

    started_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mmpipe-bench-gpu-"))
    environment = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "cores": cores,
        "torch_threads": torch.get_num_threads(), "defaults": {"batch_size": ExtractOptions().batch_size,
                                                              "num_workers": ExtractOptions().num_workers,
                                                              "dtype": ExtractOptions().dtype},
        "quick": args.quick, "tiny": args.tiny, "loadavg_start": os.getloadavg(),
    }
    print(f"{environment['device']}; torch {environment['torch']}; {cores} cores; defaults "
          f"{environment['defaults']}; extra run with {more_workers or 'no'} workers", flush=True)
    kinds = {name: ENCODERS.get(name)().spec(None).modality for name in names}  # declared, nothing loaded
    datasets: dict[str, tuple[FolderConfig, FolderConfig]] = {}
    with ProcessPoolExecutor(max_workers=min(cores, 16)) as pool:
        for kind in sorted(set(kinds.values())):
            count = max(2, round(COUNTS[kind][1 if args.quick else 0] * args.scale))
            t = time.perf_counter()
            datasets[kind] = (write_media(work / "data" / kind, kind, count, pool),
                              write_media(work / "warm" / kind, kind, 2, pool))
            print(f"  {count} {kind} samples written in {time.perf_counter() - t:.1f} s", flush=True)

    results: list[dict[str, Any]] = []
    for name in names:
        t = time.perf_counter()
        weights = ENCODERS.get(name).write_random_weights(work / "weights" / name, tiny=args.tiny, seed=0)
        written = time.perf_counter() - t
        kind = kinds[name]
        config, warm = datasets[kind]
        try:
            row = bench_encoder(name, weights, config, warm, kind, work / name, device, more_workers)
        except Exception as error:  # one encoder's failure must not lose the others' figures
            row = {"encoder": name, "modality": kind, "error": f"{type(error).__name__}: {error}"}
            print(f"  {name}: FAILED {row['error']}", flush=True)
        row.update(weights_written_s=written, seconds=time.perf_counter() - t, loadavg=os.getloadavg())
        results.append(row)
        if "error" not in row:
            print(f"  {name}: {row['clips']} clips, extract {row['extract_clips_per_s']:.1f} clips/s, bare "
                  f"{row['bare_clips_per_s']:.1f}, naive {row['naive_clips_per_s']:.1f}; overhead "
                  f"{row['overhead']:.2f}, speed-up {row['speedup']:.2f}x ({row['seconds']:.0f} s)", flush=True)
        shutil.rmtree(work / "weights" / name, ignore_errors=True)

    total = time.perf_counter() - started_all
    print()
    print_table([r for r in results if "error" not in r])
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"FAILED {r['encoder']}: {r['error']}")
    print(f"\ntotal {total:.0f} s; overhead = extract() call wall / bare forward of the same batches (target "
          f"<= 1.15); speed-up = naive one-clip fp32 loop / extract() call wall")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"environment": environment, "total_s": total, "results": results}, indent=2))
        print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
