"""Save, or compare bit for bit, the components every adapter method produces on Simulation I and
II: the check a refactor of how methods are fed must pass (every number kept).

    python tests/benchmarks/components_snapshot.py save before.npz      # on the code before the change
    python tests/benchmarks/components_snapshot.py check before.npz     # on the code after it

Each method is fitted with seed 0 through the CLI (`mmpipe simulate`, `mmpipe fit --m1 m1 --m2 m2`)
in a fresh store, MultiLoReFT first (the baselines take its ranks), with the per-dataset
projection decay `mmpipe reproduce` uses given explicitly, so the same command runs on both
sides. ``--n`` sets the simulations' size (default 2,000, about two minutes for everything).
Components are keyed ``<dataset>/<method>/<component>``; ``check`` reports, per key, whether the
arrays are identical, and maps the components that were renamed (``RENAMED``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DATASETS = ("sim1", "sim2")
METHODS = ("multiloreft", "drimu", "apollo", "contrastive", "late-fusion", "cross-attention",
           "mult-interactions", "inputs")
PROJECTION_DECAY = {"sim1": 0.01, "sim2": 0.3}  # reproduce's per-dataset MultiLoReFT setting
SUPERVISED = ("late-fusion", "cross-attention", "mult-interactions")
TARGET = {"sim2": "z4"}  # Simulation II has no joint label; reproduce's fusion target there
# old component name -> new name (issue #11 named components after the modalities, m1 and m2 here)
POSITIONAL = {"z_s1": "z_s_m1", "z_s2": "z_s_m2", "phi1": "phi_m1", "phi2": "phi_m2", "h1": "h_m1", "h2": "h_m2",
              "c1": "c_m1", "c2": "c_m2", "e1": "e_m1", "e2": "e_m2", "u1": "u_m1", "u2": "u_m2"}
RENAMED: dict[str, dict[str, str]] = {method: POSITIONAL for method in METHODS}


def mmpipe(store: Path, *args: str) -> None:
    command = [sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr}")


def snapshot(n: int) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mmpipe.store.root import Store

    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        store_path = Path(folder) / "store"
        for dataset in DATASETS:
            mmpipe(store_path, "simulate", dataset, "--n", str(n))
            for method in METHODS:
                extra = ["--set", f"projection_weight_decay={PROJECTION_DECAY[dataset]}"] if method == "multiloreft" else []
                if method in SUPERVISED and dataset in TARGET:
                    extra = ["--set", f"target={TARGET[dataset]}"]
                mmpipe(store_path, "fit", method, "--dataset", dataset, "--seeds", "0", *extra)
                print(f"fitted {method} on {dataset}", flush=True)
        store = Store.open(store_path)
        for run in store.runs():
            for name, values in run.components().items():
                record = run.record
                dataset = record["dataset"] if isinstance(record, dict) else record.dataset
                arrays[f"{dataset}/{run.method}/{name}"] = values.numpy()
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "check"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    arrays = snapshot(args.n)
    if args.action == "save":
        np.savez(args.file, **arrays)
        print(f"saved {len(arrays)} components to {args.file}")
        return
    before = np.load(args.file)
    failures = 0
    for key in sorted(before.files):
        dataset, method, component = key.split("/")
        new_key = f"{dataset}/{method}/{RENAMED.get(method, {}).get(component, component)}"
        if new_key not in arrays:
            print(f"MISSING   {key} (looked for {new_key})")
            failures += 1
            continue
        old, new = before[key], arrays[new_key]
        same = old.shape == new.shape and old.dtype == new.dtype and np.array_equal(old, new, equal_nan=True)
        if not same:
            diff = float(np.abs(old - new).max()) if old.shape == new.shape else float("nan")
            print(f"DIFFERENT {key}: shapes {old.shape} / {new.shape}, max |diff| {diff:.3g}")
            failures += 1
    extra = sorted(set(arrays) - {f"{k.split('/')[0]}/{k.split('/')[1]}/"
                                  f"{RENAMED.get(k.split('/')[1], {}).get(k.split('/')[2], k.split('/')[2])}"
                                  for k in before.files})
    for key in extra:
        print(f"NEW       {key}")
    print(f"{len(before.files) - failures}/{len(before.files)} components bit-identical")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
