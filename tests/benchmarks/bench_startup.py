"""Start-up time of the CLI: `mmpipe --help` and `mmpipe list` against importing typer and rich
alone (the floor any Typer + rich CLI pays). Target (issue 18 point 5): each within 3× that floor.

Each command runs in a fresh interpreter (``python -m mmpipe.pipeline``, output to a pipe), N
times, alternating with the baseline so machine noise hits all alike; the medians are compared.

    python tests/benchmarks/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET = 3.0
COMMANDS = {
    "baseline: import typer, rich": [sys.executable, "-c", "import typer, rich.console, rich.table"],
    "mmpipe --help": [sys.executable, "-m", "mmpipe.pipeline", "--help"],
    "mmpipe list": [sys.executable, "-m", "mmpipe.pipeline", "list"],
}


def _seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the file cache and the bytecode
        _seconds(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            times[name].append(_seconds(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["baseline: import typer, rich"]
    met = True
    for name, median in medians.items():
        ratio = median / baseline
        line = f"{name:32s} median {median * 1000:7.0f} ms over {args.runs} runs  ×{ratio:.2f}"
        if name.startswith("mmpipe"):
            met &= ratio <= TARGET
            line += f"  ({'meets' if ratio <= TARGET else 'misses'} the ×{TARGET:g} target)"
        print(line)
    print(f"target {'met' if met else 'NOT met'}: every command within {TARGET:g}× the typer + rich import")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
