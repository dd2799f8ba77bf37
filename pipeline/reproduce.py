"""`mmpipe reproduce`'s workflow: fit every run one of the paper's tables needs (the table specs
are `evaluate/reproduce.py`), reusing published runs.

Each method gets its data-dependent defaults (`pipeline/defaults.py`) on each dataset, ablations
included, then the table's config changes. Baselines are sized by the MultiLoReFT run of the same
dataset and seed fitted here (paper §5.1).
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


def fit_table(store: Store, spec: TableSpec, seeds: list[int], versions: dict[str, str],
              max_epochs: int | None = None, progress: Progress | None = None, jobs: int = 1) -> list[RunEntry]:
    """Every run the table needs (fitted, or found already published), per dataset and method;
    the seeds of one method are fitted ``jobs`` at a time in worker processes."""
    say = progress or (lambda message: None)
    runs: list[RunEntry] = []
    for dataset in spec.datasets:
        sizes_of: dict[int, RunEntry] = {}  # seed → this table's MultiLoReFT run
        for method, changes in spec.fits:
            config = default_config(METHODS.get(method).Config, method, dataset)
            config = capped(dataclasses.replace(config, **dict(changes)), max_epochs)
            seed_configs = {}
            if needs_sizes(config) and config.size == "learned" and config.sizes is None:
                if set(seeds) - set(sizes_of):
                    raise UserError(f"{spec.key}: {method} needs a multiloreft fit before it")
                seed_configs = {seed: dataclasses.replace(config, sizes=sizes_of_run(sizes_of[seed]),
                                                          sizes_from=sizes_of[seed].run_id) for seed in seeds}
            say(f"{spec.key}: {method}{' ' + str(dict(changes)) if changes else ''} on {dataset}, "
                f"{len(seeds)} seed(s)" + (f" in {jobs} processes" if jobs > 1 else ""))
            outcomes = fit_runs(store, method, dataset, {"m1": None, "m2": None}, config, seeds, versions[dataset],
                                progress=lambda message, m=method: say(f"{m}: {message}"), jobs=jobs,
                                seed_configs=seed_configs)
            for seed, outcome in zip(seeds, outcomes, strict=True):
                if method == "multiloreft" and not changes:
                    sizes_of[seed] = outcome.run
                runs.append(outcome.run)
    return runs
