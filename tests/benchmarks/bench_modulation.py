"""Gradient modulation (issue 17 point 4; run on demand, never by pytest): does the weaker
modality's own representation improve when late fusion is trained with OGM / OGM-GE?

    python tests/benchmarks/bench_modulation.py [--seeds 0,1,2] [--alphas 0.1,0.8] [--ge-alphas 0,0.8]
                                                [--simseq-n 2000] [--affect-sizes 600,150,150] [--dir DIR]

Datasets: ``simseq`` (`mmpipe simulate simseq`, three sequence modalities mean-pooled; target the
joint ``sentiment``, which text carries whole and audio and vision only in part) and the affect
fixtures (tests/affect_files.py: a MultiBench ``mosi_raw.pkl`` of ``--affect-sizes`` clips, 20
steps, text 300-d, audio 74-d, vision 35-d, every modality carrying the label in its first dims;
ingested with `mmpipe.pipeline.ingest`, mean-pooled; target its joint ``sentiment``).

For each dataset, both late-fusion objectives (``unimodal``: Σ_k loss(ŷ_k, y), the default;
``fused``: loss(mean_k ŷ_k, y), where modalities compete) × modulation none / ogm at each α /
ogm-ge at each of ``--ge-alphas`` (α = 0 makes every k 1: the Gaussian noise alone, the control
that separates GE's noise from the modulation), each for every seed (``size=input``, the defaults otherwise). Then the
evaluator's probes (evaluate/probes.py: ridge on train, α on val, scored on test) of the target
from every component: e_<k> is modality k's own representation, fused their concatenation.

Printed per dataset and objective: probe MSE on test (mean ± std over seeds; lower is better) per
component and variant, the paired change against modulation none of the same seed, and from each
modulated fit's record (train batches only) how often each modality was the dominant one (ρ > 1)
and its mean k. The weaker modality is read from the record (the one least often dominant), not
from the test scores. Measured numbers and what they mean: modulation_notes.md beside this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from mmpipe.adapters.methods.late_fusion import LateFusionConfig
from mmpipe.evaluate.probes import probe_run
from mmpipe.pipeline.datasets.affect import AffectConfig
from mmpipe.pipeline.datasets.simseq import SimseqConfig
from mmpipe.pipeline.fit import fit_runs
from mmpipe.pipeline.ingest import ingest_file
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.root import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.affect_files
from tests.affect_files import write  # noqa: E402

MODALITIES = ("text", "audio", "vision")
INPUTS = dict.fromkeys(MODALITIES)
TARGET = "sentiment"
METRIC = "mse"
COMPONENTS = (*(f"e_{m}" for m in MODALITIES), "fused")


def prepare(store: Store, folder: Path, simseq_n: int, affect_sizes: tuple[int, int, int]) -> None:
    simulate(store, "simseq", SimseqConfig(n=simseq_n))
    if not store.manifest_versions("mosi"):
        path, _ = write("multibench", folder / "data", "mosi", sizes=affect_sizes, steps=20)
        ingest_file(store, "mosi", AffectConfig(file=str(path)))


def variants(alphas: list[float], ge_alphas: list[float]) -> list[tuple[str, dict]]:
    found = [("none", {})]
    found += [(f"ogm α={a:g}", {"modulation": "ogm", "modulation_alpha": a}) for a in alphas]
    found += [(f"ogm-ge α={a:g}", {"modulation": "ogm-ge", "modulation_alpha": a}) for a in ge_alphas]
    return found


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def _paired(differences: list[float]) -> str:
    """mean ± std, then each seed's difference."""
    return f"{_mean_std(differences)} [{', '.join(f'{d:+.3f}' for d in differences)}]"


def bench(store: Store, dataset: str, objective: str, seeds: list[int], alphas: list[float],
          ge_alphas: list[float]) -> None:
    score: dict[tuple[str, int, str], float] = {}  # (variant, seed, component) -> test MSE
    dominance: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    coefficient: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    epochs: dict[str, list[int]] = defaultdict(list)
    started = time.perf_counter()
    for name, change in variants(alphas, ge_alphas):
        config = LateFusionConfig(size="input", target=TARGET, objective=objective, device="cpu", **change)
        for outcome in fit_runs(store, "late-fusion", dataset, INPUTS, config, seeds, pooling="mean"):
            run = outcome.run
            epochs[name].append(run.record.epochs)
            summary = run.record.history.get("modulation")
            if summary:
                for m in MODALITIES:
                    dominance[name][m].append(summary["dominant_share"][m])
                    coefficient[name][m].append(summary["mean_coefficient"][m])
            rows = probe_run(store, run, labels=[TARGET], components=list(COMPONENTS)).rows
            for row in rows:
                if row.metric == METRIC:
                    score[(name, run.record.seed, row.component)] = row.value
    names = [n for n, _ in variants(alphas, ge_alphas)]
    print(f"\n{dataset}, objective={objective}: {len(names) * len(seeds)} runs fitted (or reused) and probed in "
          f"{time.perf_counter() - started:.0f} s; probe {METRIC} of {TARGET} on test (lower is better), "
          f"mean ± std over seeds {seeds}")
    print(" | ".join(["variant", "epochs", *COMPONENTS]))
    for name in names:
        cells = [_mean_std([score[(name, s, c)] for s in seeds if (name, s, c) in score]) for c in COMPONENTS]
        print(" | ".join([name, f"{statistics.mean(epochs[name]):.0f}", *cells]))
    print("paired change against none, same seed (negative: the modulated fit's component is better)")
    for name in names[1:]:
        cells = [_paired([score[(name, s, c)] - score[("none", s, c)] for s in seeds
                          if (name, s, c) in score and ("none", s, c) in score]) for c in COMPONENTS]
        print(" | ".join([name, "", *cells]))
    print("train batches: share of steps each modality dominated (rho > 1); its mean k")
    for name in names[1:]:
        cells = [f"{m} {statistics.mean(dominance[name][m]):.2f}; {statistics.mean(coefficient[name][m]):.3f}"
                 for m in MODALITIES]
        print(" | ".join([name, *cells]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--alphas", default="0.1,0.8")  # the authors' recommended α for VGGSound and CREMA-D
    parser.add_argument("--ge-alphas", default="0,0.8")
    parser.add_argument("--simseq-n", type=int, default=2000)
    parser.add_argument("--affect-sizes", default="600,150,150")
    parser.add_argument("--dir", default=None, help="keep the store here (published fits are reused)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    alphas = [float(a) for a in args.alphas.split(",")]
    ge_alphas = [float(a) for a in args.ge_alphas.split(",")]
    sizes = tuple(int(s) for s in args.affect_sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        store = Store.open(folder / "store", create=True)
        prepare(store, folder, args.simseq_n, sizes)  # type: ignore[arg-type]
        for dataset in ("simseq", "mosi"):
            for objective in ("unimodal", "fused"):
                bench(store, dataset, objective, seeds, alphas, ge_alphas)


if __name__ == "__main__":
    main()
