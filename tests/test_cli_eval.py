import json

from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from tests.evalruns import publish_synthetic, simulate_sim1

runner = CliRunner()


def _run(store, *args):
    return runner.invoke(app, ["--store", str(store.root), *args])


def _setup(store, seeds=(0, 1)):
    version = simulate_sim1(store, n=400).manifest_version
    return [publish_synthetic(store, version, seed=s) for s in seeds]


def test_probe_query_report_plot_end_to_end(store, tmp_path):
    runs = _setup(store)
    first = _run(store, "probe", "--all")
    assert first.exit_code == 0, first.output
    assert "80 probe rows for 2 run(s)" in first.output
    again = _run(store, "probe", runs[0].run_id, "--k-shot", "3")  # re-probing replaces, never duplicates
    assert again.exit_code == 0, again.output
    counts = _run(store, "query", "SELECT run_id, count(*) AS n FROM probes GROUP BY 1 ORDER BY 1", "--format", "json")
    assert counts.exit_code == 0, counts.output
    assert sorted(r["n"] for r in json.loads(counts.output)) == [40, 48]
    csv = _run(store, "query", "SELECT label, n_seeds FROM delta_summary WHERE metric = 'accuracy'", "--format", "csv")
    assert csv.output.splitlines() == ["label,n_seeds", "y_s,2"]
    table = _run(store, "query", "SELECT method, label FROM delta_summary WHERE metric = 'mse' ORDER BY label")
    assert table.exit_code == 0 and "y_m1" in table.output and "multiloreft" in table.output

    tex = tmp_path / "out" / "report.tex"
    report = _run(store, "report", "--format", "latex", "--out", str(tex), "--dataset", "sim1")
    assert report.exit_code == 0, report.output
    assert r"\begin{tabular}" in tex.read_text() and r"\toprule" in tex.read_text()
    names = tmp_path / "names.json"
    names.write_text('{"multiloreft": "MLR"}')
    fragment = _run(store, "report", "--format", "latex", "--fragment", "--names", str(names), "--table", "decoupling")
    assert fragment.exit_code == 0, fragment.output
    assert r"\documentclass" not in fragment.output and r"MLR & $z_{s}$" in fragment.output
    md = _run(store, "report", "--format", "markdown", "--label", "y_s", "--table", "decoupling")
    assert md.exit_code == 0 and "| multiloreft | z\\_s | <u>1.000 ± 0.000</u> |" in md.output
    term = _run(store, "report", "--method", "multiloreft")
    assert term.exit_code == 0 and "Learned ranks" in term.output

    plots = _run(store, "plot", runs[0].run_id, "--out", str(tmp_path / "plots"), "--label", "y_s")
    assert plots.exit_code == 0, plots.output
    assert (tmp_path / "plots" / f"{runs[0].run_id}-pca.png").exists()


def test_bad_input_exits_2_with_valid_values(store):
    runs = _setup(store, seeds=(0,))
    for args, message in (
        (["probe", "nope-123"], f"run 'nope-123' is unknown; valid: {runs[0].run_id}"),
        (["probe"], "give run ids or --all"),
        (["probe", "--all", "--label", "zz"], "no label 'zz'; valid: y_s, y_m1, y_m2, y_cond"),
        (["probe", "--all", "--component", "zz"],
         "no component 'zz'; valid: z_s_m1, z_s_m2, z_m1, z_m2, phi_m1, phi_m2, z_s, fused"),
        (["query", "SELECT 1"], "no results yet"),
        (["plot", "nope-1"], "is unknown; valid:"),
    ):
        result = _run(store, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert _run(store, "probe", "--all").exit_code == 0
    for args, message in (
        (["query", "DELETE FROM probes"], "refused: `mmpipe query` is read-only and this is a DELETE statement"),
        (["query", "SELEC * FROM probes"], "Parser Error: syntax error at or near"),
        (["query", f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{store.root / 'STORE.json'}'"], "Permission Error"),
        (["query", "SELECT * FROM read_csv('/etc/passwd')"], "Permission Error"),
        (["query", "SELECT 1", "--format", "xml"], "unknown --format 'xml'"),
        (["report", "--label", "zz"], "unknown label 'zz'; valid: y_cond, y_m1, y_m2, y_s"),
        (["report", "--method", "zz"], "unknown method 'zz'; valid: multiloreft"),
        (["report", "--table", "zz"], "unknown table 'zz'"),
        (["report", "--fragment"], "--fragment and --names apply to --format latex, not terminal"),
        (["report", "--format", "latex", "--names", "/nonexistent.json"], "--names /nonexistent.json: not a readable"),
        (["plot", runs[0].run_id, "--component", "zz"], "no component 'zz'"),
    ):
        result = _run(store, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert json.loads(_run(store, "query", "SELECT count(*) AS n FROM probes", "--format", "json").output) == [{"n": 40}]
    assert json.loads((store.root / "STORE.json").read_text())["format"] == "mmpipe-store"  # not overwritten
