"""Fixed cost of one `mmpipe extract` command with a full-size WavLM-base+ checkpoint (random
weights, ~380 MB) on CPU: what the command pays besides the forward passes. Run on demand:

    python tests/benchmarks/bench_extract_startup.py [--repeats 3] [--other-src DIR]

- no-op: the same command again on a store that holds the entry (start-up, imports, manifest,
  weights identity, store lookup; no model load);
- fixed: wall time of a 4-clip extraction minus its own recorded forward time (start-up, imports,
  model load, worker start, writes).

``--other-src DIR`` also times another checkout, for before/after comparisons: DIR must hold a
``mmpipe`` link to that checkout's root; it is put first on PYTHONPATH. Runs are interleaved and
the minimum kept; the load average is printed, as the box is shared.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmpipe.pipeline.encoders import ENCODERS  # noqa: E402
from tests.media import write_wav  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--other-src", type=Path, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmpipe-bench-startup-"))
    for i in range(4):
        write_wav(root / "data" / f"c{i}.wav", 2.0 + 0.3 * i, seed=i)
    (root / "data" / "samples.csv").write_text("sample_id,audio\n" + "".join(f"c{i},c{i}.wav\n" for i in range(4)))
    weights = ENCODERS.get("wavlm").write_random_weights(root / "wavlm", tiny=False, seed=0)
    variants = {"this checkout": dict(os.environ, PYTHONPATH="")}
    if args.other_src is not None:
        variants[f"other ({args.other_src})"] = dict(os.environ, PYTHONPATH=str(args.other_src))

    def command(store: Path) -> list[str]:
        return [sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), "extract", "folder", "--encoder",
                "wavlm", "--data-dir", str(root / "data"), "--weights", str(weights), "--set", "modalities=audio:audio",
                "--workers", "1", "--batch-size", "4", "--dtype", "float32", "--device", "cpu"]

    results = {name: {"noop": [], "fixed": []} for name in variants}
    for index, env in enumerate(variants.values()):  # fill each store (and its weights-hash memo) once
        subprocess.run(command(root / f"store{index}"), env=env, check=True, capture_output=True)
    print(f"load average before: {os.getloadavg()}")
    for _ in range(args.repeats):
        for index, (name, env) in enumerate(variants.items()):
            store = root / f"store{index}"
            started = time.perf_counter()
            subprocess.run(command(store), env=env, check=True, capture_output=True)
            results[name]["noop"].append(time.perf_counter() - started)
            shutil.rmtree(store / "features")
            started = time.perf_counter()
            subprocess.run(command(store), env=env, check=True, capture_output=True)
            wall = time.perf_counter() - started
            meta = json.loads(next((store / "features" / "folder.audio.wavlm").glob("*/meta.json")).read_text())
            results[name]["fixed"].append(wall - meta["timings"]["forward_s"])
    print(f"load average after: {os.getloadavg()}")
    for name, result in results.items():
        print(f"{name}: no-op command {min(result['noop']):.2f} s {[round(x, 2) for x in result['noop']]}; "
              f"fixed cost of a run {min(result['fixed']):.2f} s {[round(x, 2) for x in result['fixed']]}")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
