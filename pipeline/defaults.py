"""Data-dependent defaults: config values a method takes on a particular dataset unless the user
sets them (the analogue of a paper's per-dataset hyperparameters). `mmpipe fit` and
`mmpipe reproduce` both read this one table; a run records the values it used among its
settings, and an explicit ``--set`` or ``--config`` wins.

MultiLoReFT's decay on its projections decides which directions fade before pruning, and no one
value fits both simulations: on Simulation II the default 1e-3 leaves the shared rank at 40 and z3
in z_s, while 0.1 and more collapse Simulation I's z_s to rank 1. Each value was chosen without
the test split by `tests/benchmarks/bench_multiloreft.py select` (largest mean validation Δ over
the dataset's Table 1 labels; the measurements are in the notes beside that benchmark).
"""

from __future__ import annotations

from typing import Any

from mmpipe.adapters.methods.dlf import MOSEI as DLF_MOSEI
from mmpipe.store.config import apply_overrides

DATA_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("multiloreft", "sim1"): {"projection_weight_decay": 0.01},
    ("multiloreft", "sim2"): {"projection_weight_decay": 0.3},
    ("dlf", "mosei"): dict(DLF_MOSEI),  # the DLF code's MOSEI config (kernel, dropouts, ortho chunk)
}


def data_defaults(method: str, dataset: str) -> dict[str, Any]:
    return dict(DATA_DEFAULTS.get((method, dataset), {}))


def default_config(config_cls: type, method: str, dataset: str) -> Any:
    """The method's config with its defaults for ``dataset`` applied."""
    return apply_overrides(config_cls(), data_defaults(method, dataset))

