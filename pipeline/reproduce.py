"""`mmpipe reproduce`'s workflow: fit every run one of the papers' tables needs (the table specs
are `evaluate/reproduce.py` and `evaluate/reproduce_papers.py`), reusing published runs.

Each method gets its data-dependent defaults (`pipeline/defaults.py`) on each dataset, ablations
included, then the table's changes for that dataset, then the fit's own changes, then the user's
``--set`` values (each to the methods whose config has the field), and last the ``--max-epochs``
cap. Baselines are sized by the MultiLoReFT run of the same dataset and seed fitted here (paper
§5.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mmpipe.adapters.registry import METHODS
from mmpipe.evaluate.reproduce import TableSpec
from mmpipe.pipeline.defaults import default_config
from mmpipe.pipeline.fit import fit_runs
from mmpipe.pipeline.sizes import needs_sizes, sizes_of_run
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store
from mmpipe.store.runs import RunEntry

Progress = Callable[[str], None]


def capped(config: Any, max_epochs: int | None) -> Any:
    """Every ``max_epochs*`` field of ``config`` capped at ``max_epochs`` (a quick look; the
    paper's tables use the defaults)."""
    if max_epochs is None:
        return config
    changes = {f.name: min(getattr(config, f.name), max_epochs) for f in dataclasses.fields(config)
               if f.name.startswith("max_epochs")}
    return dataclasses.replace(config, **changes)


def split_overrides(spec: TableSpec, overrides: list[str]) -> dict[str, list[str]]:
    """``--set key=value`` items per method of the table: each goes to every method whose config has
    the field. Checked before any work: a key no method has, or a value a method refuses, is one line."""
    methods = list(dict.fromkeys(method for method, _ in spec.fits))
    per_method: dict[str, list[str]] = {method: [] for method in methods}
    for item in overrides:
        key = item.partition("=")[0].strip()
        takers = [m for m in methods if key in {f.name for f in dataclasses.fields(METHODS.get(m).Config)}]
        if not takers:
            apply_overrides(METHODS.get(methods[0]).Config(), [item])  # the one-line error: no such field
        for method in takers:
            per_method[method].append(item)
    for method, items in per_method.items():
        apply_overrides(METHODS.get(method).Config(), items)
    return per_method


def fit_table(store: Store, spec: TableSpec, seeds: list[int], versions: dict[str, str],
              max_epochs: int | None = None, progress: Progress | None = None, jobs: int = 1,
              overrides: list[str] | None = None) -> list[RunEntry]:
    """Every run the table needs on the datasets of ``versions`` (dataset → manifest version; in
    the table's order), fitted or found already published, per dataset and method; the seeds of
    one method are fitted ``jobs`` at a time in worker processes."""
    say = progress or (lambda message: None)
    per_method = split_overrides(spec, list(overrides or []))
    runs: list[RunEntry] = []
    for dataset in [d for d in spec.datasets if d in versions]:
        sizes_of: dict[int, RunEntry] = {}  # seed → this table's MultiLoReFT run
        for method, changes in spec.fits:
            config = default_config(METHODS.get(method).Config, method, dataset)
            config = dataclasses.replace(config, **{**dict(spec.changes_for(dataset)), **dict(changes)})
            config = capped(apply_overrides(config, per_method[method]), max_epochs)
            seed_configs = {}
            if needs_sizes(config) and config.size == "learned" and config.sizes is None:
                if set(seeds) - set(sizes_of):
                    raise UserError(f"{spec.key}: {method} needs a multiloreft fit before it")
                seed_configs = {seed: dataclasses.replace(config, sizes=sizes_of_run(sizes_of[seed]),
                                                          sizes_from=sizes_of[seed].run_id) for seed in seeds}
            say(f"{spec.key}: {method}{' ' + str(dict(changes)) if changes else ''} on {dataset}, "
                f"{len(seeds)} seed(s)" + (f" in {jobs} processes" if jobs > 1 else ""))
            outcomes = fit_runs(store, method, dataset, dict.fromkeys(spec.inputs), config, seeds, versions[dataset],
                                progress=lambda message, m=method: say(f"{m}: {message}"), jobs=jobs,
                                seed_configs=seed_configs)
            for seed, outcome in zip(seeds, outcomes, strict=True):
                if method == "multiloreft" and not changes:
                    sizes_of[seed] = outcome.run
                runs.append(outcome.run)
    return runs
