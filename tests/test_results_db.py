import json
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from mmpipe.evaluate.delta import decoupling_components, delta, delta_over_seeds
from mmpipe.evaluate.probes import ProbeConfig, probe_run
from mmpipe.evaluate.results import query as evaluate_query
from mmpipe.evaluate.results import run_row, save_probes, variant_of
from mmpipe.store.errors import UserError
from mmpipe.store.results import LabelRow, ProbeRow, RunRow, query, reading, write_probes
from mmpipe.store.runs import RunRecord
from tests.evalruns import TRI, publish_synthetic, simulate_sim1, tri_dataset


def _record(run_id, seed=0, method="toy", ablation=None, settings=None, inputs=None, version="v1"):
    return RunRecord(method=method, dataset="d", manifest_version=version,
                     inputs=inputs or {"m1": "d.m1.f", "m2": "d.m2.f"}, input_fingerprints={}, seed=seed,
                     config={"seed": seed}, ablation=ablation, settings=settings or {}, dims={"m1": 2, "m2": 2},
                     components=["z_s", "z_m1", "z_m2"], started_at="2025-01-01T00:00:00", seconds=1.0,
                     code_version="abc", n_params=10, fingerprint="f" * 64, run_id=run_id)


def _run_row(run_id, seed=0, **kwargs):
    record = _record(run_id, seed, **kwargs)
    return RunRow.from_record(record, variant_of(record))


LABELS = [LabelRow("d", "y", "categorical", "shared")]


def _rows(run_id, value=0.5, n=3):
    return [ProbeRow(run_id, c, "y", "accuracy", value, "p", 10, 5) for c in ("z_s", "z_m1", "z_m2")[:n]]


SETUP = ["variant", "method", "ablation", "settings", "inputs", "dataset", "data_version"]


def test_tables_and_views_have_the_documented_columns(tmp_path):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a"))
    expected = {
        "runs": ["run_id", "method", "ablation", "settings", "inputs", "dataset", "data_version", "seed",
                 "fingerprint", "config", "started_at", "seconds", "n_params", "ranks", "code_version", "variant"],
        "probes": ["run_id", "component", "label", "metric", "value", "protocol", "n_train", "n_test"],
        "labels": ["dataset", "label", "kind", "owner"],
        "metrics": ["metric", "display", "higher_is_better", "pattern", "rule"],
        "run_modalities": ["run_id", "modality"],
        "probe_summary": SETUP + ["component", "label", "metric", "mean", "std", "n_seeds"],
        "delta_per_run": ["run_id"] + SETUP + ["seed", "label", "metric", "owner", "delta"],
        "delta_summary": SETUP + ["label", "metric", "mean", "std", "n_seeds"],
        "retrieval": ["run_id", "query_modality", "target_modality", "query_component", "target_component", "metric",
                      "value", "protocol", "n_candidates"],
        "retrieval_summary": SETUP + ["query_modality", "target_modality", "query_component", "target_component",
                                      "metric", "protocol", "n_candidates", "mean", "std", "n_seeds"],
    }
    for table, columns in expected.items():
        assert evaluate_query(db, f"SELECT * FROM {table} LIMIT 0").columns == columns, table
    run = query(db, "SELECT method, ablation, settings, inputs, variant FROM runs").rows
    assert run == [("toy", None, "{}", '{"m1": "d.m1.f", "m2": "d.m2.f"}', "toy")]
    assert evaluate_query(db, "SELECT modality FROM run_modalities ORDER BY 1").rows == [("m1",), ("m2",)]
    directions = dict(evaluate_query(db, "SELECT metric, higher_is_better FROM metrics").rows)
    assert directions == {"accuracy": True, "accuracy_<k>shot": True, "accuracy_ge0": True, "mse": False, "silhouette": True, "f1": True,
                          "mae": False, "corr": True, "acc7": True, "acc5": True, "acc2_has0": True,
                          "acc2_non0": True, "f1_has0": True, "f1_non0": True, "recall_at_<k>": True,
                          "median_rank": False}


def test_the_store_layer_knows_no_component_and_no_metric():
    source = (Path(__file__).parents[1] / "store" / "results.py").read_text()
    for word in ("z_s", "z_m", "'mse'", '"mse"', "accuracy", "HIGHER_IS_BETTER", "shared", "VIEW"):
        assert word not in source, word


def test_reprobing_replaces_rows(tmp_path):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a", 0.5))
    write_probes(db, _run_row("b", seed=1), LABELS, _rows("b", 0.7))
    write_probes(db, _run_row("a"), LABELS, _rows("a", 0.9, n=2))
    assert query(db, "SELECT run_id, count(*), max(value) FROM probes GROUP BY ALL ORDER BY 1").rows == \
        [("a", 2, 0.9), ("b", 3, 0.7)]
    assert query(db, "SELECT count(*) FROM runs").rows == [(2,)]


def test_views_group_by_setup_and_never_parse_the_variant(tmp_path):
    """Method, ablation, settings, inputs and data version each split a summary; equal setups average."""
    db = tmp_path / "r.duckdb"
    runs = {"a0": {}, "a1": {"seed": 1},  # two seeds of one setup
            "abl": {"ablation": "no pruning"}, "set": {"settings": {"temperature": 0.2}},
            "inp": {"inputs": {"m1": "d.m1.other", "m2": "d.m2.f"}}, "ver": {"version": "v2"}}
    for run_id, changes in runs.items():
        write_probes(db, _run_row(run_id, **changes), LABELS, _rows(run_id, 0.5 + 0.1 * changes.get("seed", 0)))
    got = evaluate_query(db, "SELECT variant, ablation, settings, data_version, n_seeds, round(mean, 3) "
                             "FROM probe_summary WHERE component = 'z_s' ORDER BY ALL").rows
    assert got == [("toy", None, "{}", "v1", 1, 0.5), ("toy", None, "{}", "v1", 2, 0.55),
                   ("toy", None, "{}", "v2", 1, 0.5), ("toy (no pruning)", "no pruning", "{}", "v1", 1, 0.5),
                   ("toy [temperature=0.2]", None, '{"temperature": 0.2}', "v1", 1, 0.5)]
    assert evaluate_query(db, "SELECT count(*) FROM delta_summary").rows == [(5,)]


def test_sql_delta_matches_python_delta_per_seed(store):
    version = simulate_sim1(store, n=500).manifest_version
    runs = [publish_synthetic(store, version, seed=s) for s in range(3)]
    outcomes = [probe_run(store, r) for r in runs]
    for run, outcome in zip(runs, outcomes, strict=True):
        save_probes(store, run, outcome)
    sql = {(r[0], r[1]): r[2:] for r in
           query(store.results_db, "SELECT label, metric, mean, std, n_seeds FROM delta_summary").rows}
    manifest = store.manifest("sim1", version)
    for (label, metric), (mean, std, n_seeds) in sql.items():
        per_seed = [{r.component: r.value for r in o.rows if r.label == label and r.metric == metric}
                    for o in outcomes]
        python = delta_over_seeds(manifest.label(label).owner, metric, per_seed, ("m1", "m2"))
        assert mean == pytest.approx(python.mean) and std == pytest.approx(python.std) and n_seeds == 3
    assert {k[0] for k in sql} == {"y_s", "y_m1", "y_m2"}  # the joint label y_cond has no Δ
    assert sql[("y_s", "accuracy")][0] > 0.6


def test_sql_delta_matches_python_delta_on_three_modalities(store):
    """One rule in two places: per run, the views' Δ equals `evaluate.delta.delta` for every
    (label, metric) — three modalities, a run on two of them, k-shot and silhouette included."""
    version = tri_dataset(store, n=300)
    runs = [publish_synthetic(store, version, seed=s, method="late-fusion", dataset="tri", modalities=TRI)
            for s in (0, 1)]
    runs.append(publish_synthetic(store, version, seed=0, method="late-fusion", dataset="tri",
                                  modalities=("text", "audio")))
    manifest = store.manifest("tri", version)
    python = {}
    for run in runs:
        outcome = probe_run(store, run, ProbeConfig(k_shot=(5,)), components=decoupling_components(run.record.modalities))
        save_probes(store, run, outcome)
        scores = defaultdict(dict)
        for row in outcome.rows:
            scores[(row.label, row.metric)][row.component] = row.value
        for (label, metric), by_component in scores.items():
            value = delta(manifest.label(label).owner, metric, by_component, run.record.modalities)
            if value is not None:
                python[(run.run_id, label, metric)] = value
    sql = {(r[0], r[1], r[2]): r[3] for r in
           query(store.results_db, "SELECT run_id, label, metric, delta FROM delta_per_run").rows}
    assert set(sql) == set(python)
    for key, value in python.items():
        assert sql[key] == pytest.approx(value, abs=1e-12), key
    two = runs[2].run_id
    labels_of_two = {label for run_id, label, _ in sql if run_id == two}
    assert labels_of_two == {"y_s", "y_text", "y_audio"}  # vision is not an input of that run: no Δ of y_vision
    assert {m for _, _, m in sql} == {"accuracy", "accuracy_5shot", "silhouette", "mse"}
    # each modality's own label is carried by its own component: positive Δ for every owner
    summary = {(r[0], r[1]): r[2] for r in query(store.results_db, "SELECT inputs, label, mean FROM delta_summary "
                                                 "WHERE metric IN ('accuracy', 'mse')").rows}
    full = json.dumps({m: f"tri.{m}.simulated" for m in TRI})
    assert all(summary[(full, label)] > 0 for label in ("y_s", "y_text", "y_audio", "y_vision"))


def test_ablation_is_its_own_method_in_the_views(store):
    version = simulate_sim1(store, n=300).manifest_version
    full = publish_synthetic(store, version, seed=0)
    ablated = publish_synthetic(store, version, seed=0, ablation="no pruning")
    assert variant_of(ablated.record) == "multiloreft (no pruning)"
    assert run_row(ablated).ablation == "no pruning" and run_row(full).ablation is None
    for run in (full, ablated):
        save_probes(store, run, probe_run(store, run, labels=["y_s"], components=["z_s"]))
    got = query(store.results_db, "SELECT variant, method, ablation, n_seeds FROM probe_summary "
                                  "WHERE metric = 'accuracy' ORDER BY 1")
    assert got.rows == [("multiloreft", "multiloreft", None, 1),
                        ("multiloreft (no pruning)", "multiloreft", "no pruning", 1)]


def test_readers_see_current_views_when_stored_ones_are_missing_or_stale_and_write_nothing(tmp_path):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a"))  # the store layer alone writes no view
    with pytest.raises(UserError, match="delta_summary does not exist"):
        query(db, "SELECT * FROM delta_summary")
    assert evaluate_query(db, "SELECT label, delta FROM delta_per_run").rows == [("y", 0.0)]
    conn = duckdb.connect(str(db))
    conn.execute("CREATE OR REPLACE VIEW delta_summary AS SELECT 1 AS stale")
    conn.close()
    before = db.read_bytes()
    assert evaluate_query(db, "SELECT label FROM delta_summary").rows == [("y",)]
    assert db.read_bytes() == before


def test_a_results_db_of_the_old_format_is_refused_in_one_line(tmp_path):
    db = tmp_path / "r.duckdb"
    conn = duckdb.connect(str(db))
    conn.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, method VARCHAR, dataset VARCHAR, m1 VARCHAR, "
                 "m2 VARCHAR, seed INTEGER)")
    conn.close()
    with pytest.raises(UserError, match="written by an older mmpipe .*delete it and probe the runs again"):
        write_probes(db, _run_row("a"), LABELS, _rows("a"))


def test_read_only_query_refuses_writes_and_reports_bad_sql(tmp_path):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a"))
    for sql in ("DELETE FROM probes", "INSERT INTO probes SELECT * FROM probes", "DROP TABLE runs",
                "SELECT 1; DELETE FROM probes", "COPY probes TO 'x.csv'", "ATTACH 'other.db'", "SET threads = 1"):
        with pytest.raises(UserError, match="refused: `mmpipe query` is read-only"):
            query(db, sql)
    assert query(db, "SELECT count(*) FROM probes").rows == [(3,)]
    with pytest.raises(UserError, match=r"^Parser Error: syntax error at or near \"SELEC\""):
        query(db, "SELEC 1")
    with pytest.raises(UserError, match="Catalog Error: Table with name nope does not exist"):
        query(db, "SELECT * FROM nope")
    with pytest.raises(UserError, match="no results yet"):
        query(tmp_path / "missing.duckdb", "SELECT 1")
    with pytest.raises(UserError, match="no results yet"):
        evaluate_query(tmp_path / "missing.duckdb", "SELECT 1")


WRITER = textwrap.dedent("""
    import sys
    from mmpipe.store.results import LabelRow, ProbeRow, RunRow, write_probes
    db, worker, n_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for i in range(n_runs):
        run_id = f"w{worker}-r{i}"
        run = RunRow(run_id, "toy", None, "{}", "{}", "d", None, i, "f", "{}", None, None, None, None, None, "toy")
        rows = [ProbeRow(run_id, f"c{c}", "y", "accuracy", c / 10, "p", 1, 1) for c in range(20)]
        write_probes(db, run, [LabelRow("d", "y", "categorical", "shared")], rows)
""")


def test_concurrent_writer_processes_lose_no_rows(tmp_path):
    db = tmp_path / "r.duckdb"
    workers, n_runs = 4, 12
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(w), str(n_runs)],
                              stderr=subprocess.PIPE, text=True) for w in range(workers)]
    reads = 0
    while any(p.poll() is None for p in procs):
        if db.exists():
            with reading(db) as conn:  # a reader in between must also wait its turn, not fail
                conn.execute("SELECT count(*) FROM probes").fetchall()
                reads += 1
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    assert query(db, "SELECT count(DISTINCT run_id), count(*) FROM probes").rows == [(workers * n_runs, workers * n_runs * 20)]
    assert query(db, "SELECT count(*) FROM runs").rows == [(workers * n_runs,)]
    assert reads > 0


def test_query_cannot_write_read_or_install_anything_outside_the_db(tmp_path):
    """Issue #12's escapes through `mmpipe query`: EXPLAIN ANALYZE wraps a statement the filter never
    sees, so the guard is DuckDB's own configuration, locked."""
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a"))
    victim = tmp_path / "checkpoint.safetensors"
    victim.write_bytes(b"weights")
    outside = tmp_path / "outside.csv"
    outside.write_text("a,b\n1,2\n")
    before = db.read_bytes()
    for sql in (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{victim}'",
                f"EXPLAIN ANALYZE COPY probes TO '{tmp_path / 'new.csv'}'",
                f"SELECT * FROM read_csv('{outside}')",
                "SELECT * FROM read_csv('/etc/passwd')",
                f"SELECT * FROM '{outside}'",
                "EXPLAIN ANALYZE INSTALL httpfs",
                "EXPLAIN ANALYZE LOAD httpfs"):
        with pytest.raises(UserError) as refused:
            query(db, sql)
        assert "\n" not in str(refused.value) and ("Permission Error" in str(refused.value)
                                                   or "refused" in str(refused.value)), (sql, str(refused.value))
    with reading(db, confined=True) as conn, pytest.raises(duckdb.InvalidInputException, match="Cannot change"):
        conn.execute("SET enable_external_access = true")  # the lock behind the statement filter
    assert victim.read_bytes() == b"weights" and not (tmp_path / "new.csv").exists() and db.read_bytes() == before
    assert query(db, "SELECT count(*) FROM probes").rows == [(3,)]  # ordinary reads still work
