"""mmpipe's Python API: the same store, runs and scores as the ``mmpipe`` command, from a notebook.

Each call is one line over the functions the commands use (nothing is computed twice, nothing
differently)::

    import mmpipe

    store = mmpipe.open_store("mmpipe-store", create=True)
    mmpipe.simulate(store, "sim1", n=2000)                       # or `mmpipe extract` / `mmpipe ingest` data
    mmpipe.list_features(store)                                  # DataFrame: name, dataset, modality, shape, ...
    train = mmpipe.load_features(store, "sim1.m1.simulated", split="train")
    train.values, train.rows                                     # (n, D) tensor; manifest rows (sample_id, split, labels)
    train.to_pandas()                                            # manifest columns + one column per dimension
    runs = mmpipe.fit(store, "multiloreft", "sim1", seeds=[0, 1], config={"max_epochs": 20})
    test = mmpipe.load_components(store, runs[0], split="test")  # {"z_s": (n, r), ...} + manifest rows
    model = mmpipe.load_adapter(store, runs[0])                  # the fitted nn.Module, from its checkpoint
    z = model.transform({"m1": x1, "m2": x2})                    # components of new embeddings
    mmpipe.probe(store, runs)                                    # probe scores (saved to the results DB)
    mmpipe.results(store)                                        # DataFrame of every probe score

``import mmpipe`` is light: the names below are imported on first use (torch, the adapters and
scikit-learn load only when a call needs them). ``examples/quickstart.py`` runs the whole loop.
Errors a user can cause (an unknown name, a store that is not one) are `UserError` with a
one-line message, as on the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module (under mmpipe) that defines it
_EXPORTS = {
    "open_store": "features",
    "list_features": "features",
    "load_features": "features",
    "simulate": "features",
    "Features": "features",
    "fit": "runs",
    "list_runs": "runs",
    "load_components": "runs",
    "Components": "runs",
    "load_adapter": "runs",
    "probe": "scores",
    "results": "scores",
    "UserError": "features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mmpipe.{module}"), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
