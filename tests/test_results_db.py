import subprocess
import sys
import textwrap

import pytest

from mmpipe.evaluate.delta import delta_over_seeds
from mmpipe.evaluate.probes import probe_run
from mmpipe.evaluate.results import save_probes, variant_of
from mmpipe.store.errors import UserError
from mmpipe.store.results import LabelRow, ProbeRow, RunRow, query, reading, write_probes
from tests.evalruns import publish_synthetic, simulate_sim1


def _run_row(run_id, seed=0, variant="toy"):
    return RunRow(run_id, "toy", "d", "d.m1", "d.m2", seed, "f" * 64, "{}", "2025-01-01T00:00:00", 1.0, 10,
                  None, "abc", variant)


LABELS = [LabelRow("d", "y", "categorical", "shared")]


def _rows(run_id, value=0.5, n=3):
    return [ProbeRow(run_id, c, "y", "accuracy", value, "p", 10, 5) for c in ("z_s", "z_m1", "z_m2")[:n]]


def test_tables_and_views_have_the_documented_columns(tmp_path):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a"))
    expected = {
        "runs": ["run_id", "method", "dataset", "m1", "m2", "seed", "fingerprint", "config", "started_at", "seconds",
                 "n_params", "ranks", "code_version"],
        "probes": ["run_id", "component", "label", "metric", "value", "protocol", "n_train", "n_test"],
        "probe_summary": ["method", "dataset", "component", "label", "metric", "mean", "std", "n_seeds"],
        "delta_summary": ["method", "dataset", "label", "metric", "mean", "std", "n_seeds"],
    }
    for table, columns in expected.items():
        got = query(db, f"SELECT * FROM {table} LIMIT 0").columns
        assert got[:len(columns)] == columns, table


def test_reprobing_replaces_rows(tmp_path):
    db = tmp_path / "r.duckdb"
    write_probes(db, _run_row("a"), LABELS, _rows("a", 0.5))
    write_probes(db, _run_row("b", seed=1), LABELS, _rows("b", 0.7))
    write_probes(db, _run_row("a"), LABELS, _rows("a", 0.9, n=2))
    assert query(db, "SELECT run_id, count(*), max(value) FROM probes GROUP BY ALL ORDER BY 1").rows == \
        [("a", 2, 0.9), ("b", 3, 0.7)]
    assert query(db, "SELECT count(*) FROM runs").rows == [(2,)]


def test_sql_delta_matches_python_delta_per_seed(store):
    version = simulate_sim1(store, n=500).manifest_version
    runs = [publish_synthetic(store, version, seed=s) for s in range(3)]
    outcomes = [probe_run(store, r) for r in runs]
    for run, outcome in zip(runs, outcomes, strict=True):
        save_probes(store, run, outcome)
    sql = {(r[0], r[1]): r[2:] for r in
           query(store.results_db, "SELECT label, metric, mean, std, n_seeds FROM delta_summary").rows}
    owners = {"y_s": "shared", "y_m1": "m1", "y_m2": "m2"}
    for (label, metric), (mean, std, n_seeds) in sql.items():
        per_seed = [{r.component: r.value for r in o.rows if r.label == label and r.metric == metric}
                    for o in outcomes]
        python = delta_over_seeds(owners[label], metric, per_seed)
        assert mean == pytest.approx(python.mean) and std == pytest.approx(python.std) and n_seeds == 3
    assert {k[0] for k in sql} == {"y_s", "y_m1", "y_m2"}  # the joint label y_cond has no Δ
    assert sql[("y_s", "accuracy")][0] > 0.6


def test_ablation_is_its_own_method_in_the_views(store):
    version = simulate_sim1(store, n=300).manifest_version
    full = publish_synthetic(store, version, seed=0)
    ablated = publish_synthetic(store, version, seed=0, ablation="no pruning")
    assert variant_of(ablated.record) == "multiloreft (no pruning)"
    for run in (full, ablated):
        save_probes(store, run, probe_run(store, run, labels=["y_s"], components=["z_s"]))
    got = query(store.results_db, "SELECT method, n_seeds FROM probe_summary WHERE metric = 'accuracy' ORDER BY 1")
    assert got.rows == [("multiloreft", 1), ("multiloreft (no pruning)", 1)]


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


WRITER = textwrap.dedent("""
    import sys
    from mmpipe.store.results import LabelRow, ProbeRow, RunRow, write_probes
    db, worker, n_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for i in range(n_runs):
        run_id = f"w{worker}-r{i}"
        run = RunRow(run_id, "toy", "d", None, None, i, "f", "{}", None, None, None, None, None, "toy")
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
