"""The results DB's views: per-setup summaries and Δ, in SQL, over the tables of
``mmpipe.store.results``. They are evaluation semantics, so they are written here, from the
metrics registry (`evaluate/metrics.py`) and the component naming (`adapters/components.py`),
never typed a second time.

Views::

    metrics        (metric, display, higher_is_better, pattern, rule)   -- the metrics registry
    run_modalities (run_id, modality)                                   -- the keys of runs.inputs
    probe_summary  (variant, method, ablation, settings, inputs, dataset, data_version,
                    component, label, metric, mean, std, n_seeds)
    delta_per_run  (run_id, variant, method, ablation, settings, inputs, dataset, data_version, seed,
                    label, metric, owner, delta)
    delta_summary  (variant, method, ablation, settings, inputs, dataset, data_version,
                    label, metric, mean, std, n_seeds)
    stress_summary (variant, method, ablation, settings, inputs, dataset, data_version, modality, mode,
                    noise_std, corruption_seed, rate, component, label, metric, protocol, mean, std, n_seeds)
    retrieval_summary (variant, method, ablation, settings, inputs, dataset, data_version, query_modality,
                       target_modality, query_component, target_component, metric, protocol, n_candidates,
                       mean, std, n_seeds)

A *setup* is (method, ablation, settings, inputs, dataset, data_version): the summaries group by
it, so an ablation, another hyperparameter, another encoder or another version of the data is
never averaged with the rest; ``variant`` (the display name) rides along. ``std`` is the sample
standard deviation over seeds (NULL for one seed).
``stress_summary`` summarises the stress test's scores the same way, per corruption (modality,
mode, noise_std, corruption_seed) and rate; the protocol is part of its key, so scores of other
probe settings are never averaged together. ``retrieval_summary`` summarises the retrieval rows per
direction (query → target component) and metric; the protocol and the number of candidates (which
sets the chance level) are part of its key.

Δ is the rule of `evaluate/delta.py`, per run (= per seed), then mean ± std: for a label owned by
modality k, Δ = score(z_k) − score(z_s); for a ``shared`` label, Δ = score(z_s) − the mean of
score(z_k) over every modality k of the run (the keys of ``runs.inputs``), and no Δ unless each of
them was probed; ``joint`` labels have none; times −1 for a metric where lower is better.

:func:`create_views` runs inside every write transaction of `evaluate/results.py` and (re)creates
the views when they are missing or were written by another version of this file (the SQL's hash
is the ``delta_summary`` view's comment); readers call :func:`use_current_views`, which gives
their connection this version's views as temporary ones and writes nothing.
"""

from __future__ import annotations

import hashlib

import duckdb

from mmpipe.adapters.components import SHARED, specific
from mmpipe.evaluate.delta import JOINT_OWNER, SHARED_OWNER
from mmpipe.evaluate.metrics import METRICS

SETUP = "r.variant, r.method, r.ablation, r.settings, r.inputs, r.dataset, r.data_version"
VIEW_NAMES = ("metrics", "run_modalities", "probe_summary", "delta_per_run", "delta_summary", "stress_summary",
              "retrieval_summary")
STRESS = "s.modality, s.mode, s.noise_std, s.corruption_seed, s.rate, s.component, s.label, s.metric, s.protocol"
RETRIEVAL = ("t.query_modality, t.target_modality, t.query_component, t.target_component, t.metric, t.protocol, "
             "t.n_candidates")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _specific_sql(modality: str) -> str:
    """SQL for ``specific(<modality column>)``: the naming rule of adapters/components.py, applied
    to a column (it is ``prefix + modality + suffix`` for some fixed prefix and suffix)."""
    marker = "\x00"
    prefix, suffix = specific(marker).split(marker)
    return f"({_literal(prefix)} || {modality} || {_literal(suffix)})"


def _metrics_sql() -> str:
    rows = ",\n    ".join(f"({_literal(m.name)}, {_literal(m.template)}, {str(m.higher_is_better).upper()}, "
                          f"{_literal(m.pattern)}, {_literal(m.rule)})"
                          for m in (METRICS.get(n) for n in METRICS.names()))
    return (f"SELECT * FROM (VALUES\n    {rows}\n) AS t(metric, display, higher_is_better, pattern, rule)")


def views_sql(temporary: bool = False) -> str:
    """The views' SQL; ``temporary``: as TEMP views of one connection (a reader's, which may not write)."""
    shared, shared_owner, joint = _literal(SHARED), _literal(SHARED_OWNER), _literal(JOINT_OWNER)
    sql = f"""
CREATE OR REPLACE VIEW metrics AS
{_metrics_sql()};
CREATE OR REPLACE VIEW run_modalities AS
SELECT run_id, unnest(json_keys(inputs)) AS modality FROM runs;
CREATE OR REPLACE VIEW probe_summary AS
SELECT {SETUP}, p.component, p.label, p.metric,
       avg(p.value) AS mean, stddev_samp(p.value) AS std, count(DISTINCT r.seed) AS n_seeds
FROM probes p JOIN runs r USING (run_id)
GROUP BY {SETUP}, p.component, p.label, p.metric;
CREATE OR REPLACE VIEW delta_per_run AS
WITH scored AS (
    SELECT p.run_id, p.label, p.metric, l.owner, p.component, max(p.value) AS value,
           CASE WHEN any_value(m.higher_is_better) THEN 1.0 ELSE -1.0 END AS sign
    FROM probes p JOIN runs r USING (run_id)
    JOIN labels l ON l.dataset = r.dataset AND l.label = p.label
    JOIN metrics m ON regexp_full_match(p.metric, m.pattern)
    WHERE l.owner <> {joint}
    GROUP BY p.run_id, p.label, p.metric, l.owner, p.component),
z_s AS (SELECT * FROM scored WHERE component = {shared}),
own AS (
    SELECT s.run_id, s.label, s.metric, rm.modality, s.value
    FROM scored s JOIN run_modalities rm ON rm.run_id = s.run_id AND s.component = {_specific_sql("rm.modality")}),
specific_mean AS (
    SELECT run_id, label, metric, avg(value) AS mean, count(*) AS n FROM own GROUP BY run_id, label, metric),
n_modalities AS (SELECT run_id, count(*) AS n FROM run_modalities GROUP BY run_id),
per_run AS (
    SELECT s.run_id, s.label, s.metric, s.owner, s.sign * (s.value - sm.mean) AS delta
    FROM z_s s JOIN specific_mean sm USING (run_id, label, metric) JOIN n_modalities nm USING (run_id)
    WHERE s.owner = {shared_owner} AND sm.n = nm.n
    UNION ALL
    SELECT s.run_id, s.label, s.metric, s.owner, s.sign * (k.value - s.value) AS delta
    FROM z_s s JOIN own k ON k.run_id = s.run_id AND k.label = s.label AND k.metric = s.metric
                              AND k.modality = s.owner)
SELECT d.run_id, {SETUP}, r.seed, d.label, d.metric, d.owner, d.delta
FROM per_run d JOIN runs r USING (run_id);
CREATE OR REPLACE VIEW delta_summary AS
SELECT {SETUP.replace("r.", "")}, label, metric,
       avg(delta) AS mean, stddev_samp(delta) AS std, count(DISTINCT seed) AS n_seeds
FROM delta_per_run
GROUP BY {SETUP.replace("r.", "")}, label, metric;
CREATE OR REPLACE VIEW stress_summary AS
SELECT {SETUP}, {STRESS},
       avg(s.value) AS mean, stddev_samp(s.value) AS std, count(DISTINCT r.seed) AS n_seeds
FROM stress s JOIN runs r USING (run_id)
GROUP BY {SETUP}, {STRESS};
CREATE OR REPLACE VIEW retrieval_summary AS
SELECT {SETUP}, {RETRIEVAL},
       avg(t.value) AS mean, stddev_samp(t.value) AS std, count(DISTINCT r.seed) AS n_seeds
FROM retrieval t JOIN runs r USING (run_id)
GROUP BY {SETUP}, {RETRIEVAL};
"""
    return sql.replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP VIEW") if temporary else sql


def views_version() -> str:
    return hashlib.sha256(views_sql().encode()).hexdigest()[:16]


def create_views(conn: duckdb.DuckDBPyConnection) -> None:
    """Inside the caller's write transaction: (re)create the views unless they are this version's."""
    if not _current(conn):
        conn.execute(views_sql())
        conn.execute(f"COMMENT ON VIEW delta_summary IS {_literal(views_version())}")


def _current(conn: duckdb.DuckDBPyConnection) -> bool:
    found = dict(conn.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    return set(VIEW_NAMES) <= set(found) and found["delta_summary"] == views_version()


def use_current_views(conn: duckdb.DuckDBPyConnection) -> None:
    """On a reading connection: when the stored views are missing or another version's, this
    version's as temporary views, which shadow them for this connection only. Readers never
    write (the store may be read-only, or another process may hold the write lock); the next
    probe stores the current views."""
    if not _current(conn):
        conn.execute(views_sql(temporary=True))
