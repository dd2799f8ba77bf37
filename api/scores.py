"""Probe scores from Python: probe runs (`mmpipe probe`) and read the results DB as a DataFrame
(`mmpipe query`).

Probes are fitted on train, their hyperparameters chosen on val, and scored on test; each score
names its protocol in the ``protocol`` column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from mmpipe.evaluate.probes import ProbeConfig, check_probe_data, probe_run
from mmpipe.evaluate.results import query, save_probes
from mmpipe.runs import Run, run_entry
from mmpipe.store.config import apply_overrides
from mmpipe.store.root import Store

__all__ = ["probe", "results"]

PROBE_COLUMNS = ["run_id", "component", "label", "metric", "value", "protocol", "n_train", "n_test"]
# every probe score with its run's method, variant, dataset and seed
DEFAULT_QUERY = ("SELECT r.method, r.variant, r.dataset, r.seed, p.* FROM probes p JOIN runs r USING (run_id) "
                 "ORDER BY r.method, r.variant, r.dataset, p.component, p.label, p.metric, r.seed")


def probe(store: Store, runs: Run | Sequence[Run], *, labels: Sequence[str] | None = None,
          components: Sequence[str] | None = None, k_shot: Sequence[int] = (), save: bool = True) -> pd.DataFrame:
    """Probe every component × label of ``runs`` (runs or run ids) and return the scores.

    With ``save`` (the default) the scores replace the runs' rows in the results DB, as
    `mmpipe probe` does; ``save=False`` only returns them.

    >>> scores = mmpipe.probe(store, runs)
    >>> scores.query("component == 'z_s' and metric == 'accuracy'")
    """
    config = apply_overrides(ProbeConfig(), {"k_shot": tuple(k_shot)})
    entries = [run_entry(store, r) for r in ([runs] if isinstance(runs, str) or not isinstance(runs, Sequence) else runs)]
    for entry in entries:  # every run's splits and classes, before any score is written
        manifest = store.manifest(entry.record.dataset, entry.record.manifest_version)
        check_probe_data(manifest, config, labels, entry.run_id)
    rows = []
    for entry in entries:
        outcome = probe_run(store, entry, config, labels=labels, components=components)
        if save:
            save_probes(store, entry, outcome)
        rows.extend(dataclasses.asdict(row) for row in outcome.rows)
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def results(store: Store, sql: str = DEFAULT_QUERY) -> pd.DataFrame:
    """A read-only SQL query over the results DB (tables runs, probes, labels, stress and the
    views such as ``delta_summary``) as a DataFrame; default: every probe score with its run's
    method, variant, dataset and seed.

    >>> mmpipe.results(store, "SELECT * FROM delta_summary")
    """
    result = query(store.results_db, sql)
    return pd.DataFrame(result.rows, columns=result.columns)
