"""Cross-modal retrieval (`evaluate/retrieval.py`): the metrics against a hand-computed similarity
matrix, both directions, aligned and shuffled toys, the probe's rows in the results DB (declared
pairs only, idempotent), the report table, and every method's declared pairs against what it
really produces."""

import dataclasses
import json
import math

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from mmpipe.adapters import METHODS
from mmpipe.adapters.components import shared_part
from mmpipe.evaluate import metrics, retrieval
from mmpipe.evaluate.probes import probe_run
from mmpipe.evaluate.report import ReportFilters, build_report, load_report_data
from mmpipe.evaluate.results import query, save_probes
from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.evalruns import publish_synthetic, simulate_sim1, synthetic_components
from tests.test_methods_registry import FAST, _fit, pooled_data, sequence_data  # noqa: F401  (fixtures)

R2 = 1 / math.sqrt(2)


# -- the metrics, by hand -----------------------------------------------------------------------------
def test_cosine_ranks_and_metrics_by_hand_with_a_tie():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    similarity = retrieval.cosine_similarity(a, b)
    np.testing.assert_allclose(similarity, [[1, R2, 0], [0, R2, -1], [R2, 1, -R2]], atol=1e-12)
    # a → b: row 0's partner is first, row 1's first, row 2's (−1/√2) is last of 3
    forward = retrieval.retrieval_ranks(a, b)
    assert forward.tolist() == [1, 1, 3]
    # b → a: b_1 = (1, 1) is exactly as close to a_0 as to its partner a_1 (both 1/√2): the tie
    # counts ahead (rank 2 of the two), and a_2 = (1, 1) is closer still: rank 3
    backward = retrieval.retrieval_ranks(b, a)
    assert backward.tolist() == [1, 3, 2]
    assert retrieval.partner_ranks(similarity.T).tolist() == [1, 3, 2]  # b → a ranks Sᵀ
    assert retrieval.scores(forward) == {"recall_at_1": 2 / 3, "recall_at_5": 1.0, "recall_at_10": 1.0,
                                         "median_rank": 1.0}
    assert retrieval.scores(backward) == {"recall_at_1": 1 / 3, "recall_at_5": 1.0, "recall_at_10": 1.0,
                                          "median_rank": 2.0}


def test_ranks_of_a_given_matrix_and_partners():
    similarity = np.array([[0.9, 0.9, 0.1, 0.0],
                           [0.2, 0.5, 0.7, 0.6],
                           [0.3, 0.3, 0.8, 0.1],
                           [0.4, 0.4, 0.4, 0.4]])
    assert retrieval.partner_ranks(similarity).tolist() == [2, 3, 1, 4]  # ties ahead; a constant row: last
    assert retrieval.partner_ranks(similarity, np.array([1, 0, 0, 3])).tolist() == [2, 4, 3, 4]
    ranks = np.array([2, 3, 1, 4])
    assert retrieval.recall_at(ranks, 1) == 0.25 and retrieval.recall_at(ranks, 3) == 0.75
    assert retrieval.median_rank(ranks) == 2.5  # even count: the mean of the two middle ranks


def test_blocks_give_the_same_ranks_as_one_matrix():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(37, 5)), rng.normal(size=(37, 5))
    whole = retrieval.partner_ranks(retrieval.cosine_similarity(a, b))
    assert retrieval.retrieval_ranks(a, b, block_rows=8).tolist() == whole.tolist()


def test_aligned_toy_is_perfect_and_a_shuffled_one_near_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16))
    aligned = retrieval.scores(retrieval.retrieval_ranks(x, 3.0 * x))  # cosine ignores the scale
    assert aligned == {"recall_at_1": 1.0, "recall_at_5": 1.0, "recall_at_10": 1.0, "median_rank": 1.0}
    shuffled = retrieval.scores(retrieval.retrieval_ranks(x, x[rng.permutation(400)]))
    assert shuffled["recall_at_1"] < 0.02 and shuffled["recall_at_10"] < 0.06  # chance: 1/400, 10/400
    assert 150 < shuffled["median_rank"] < 250  # chance ≈ 200.5
    zero = retrieval.retrieval_ranks(np.zeros((5, 3)), x[:5, :3])  # a zero vector ties with everything
    assert zero.tolist() == [5] * 5


def test_registry_holds_the_directions_and_rules():
    assert metrics.higher_is_better("recall_at_1") and metrics.higher_is_better("recall_at_10")
    assert not metrics.higher_is_better("median_rank")
    assert metrics.display("recall_at_5") == "R@5" and metrics.display("median_rank") == "MedR"
    assert metrics.metric("recall_at_5").compute(np.array([1, 6, 5]), 5) == pytest.approx(2 / 3)
    assert "ties counted ahead" in metrics.metric("median_rank").rule
    assert retrieval.METRIC_NAMES == tuple(retrieval.scores(np.ones(3)))
    for name in retrieval.METRIC_NAMES:
        metrics.metric(name)  # every name the rows carry is a registered one


# -- the probe and the results DB ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("retrieval") / "store", create=True)
    return store, simulate_sim1(store, n=400).manifest_version


def _aligned(store, version, seed):
    """Synthetic components whose shared parts z_s_m1 = z_s_m2 are the same random vectors."""
    parts = synthetic_components(store.manifest("sim1", version), seed)
    same = np.random.default_rng(seed).normal(size=(len(parts["z_s"]), 6)).astype(np.float32)
    return {**parts, shared_part("m1"): same, shared_part("m2"): same.copy()}


def test_probe_writes_both_directions_of_a_declared_pair(sim):
    store, version = sim
    manifest = store.manifest("sim1", version)
    valid = np.ones(len(manifest), dtype=bool)
    valid[manifest.split_mask("test").nonzero()[0][:5]] = False  # 5 invalid test rows are left out
    run = publish_synthetic(store, version, seed=0, components=_aligned(store, version, 0), valid=valid)
    outcome = probe_run(store, run)
    n_test = int(manifest.split_mask("test").sum()) - 5
    assert {(r.query_modality, r.target_modality, r.query_component, r.target_component) for r in outcome.retrieval} \
        == {("m1", "m2", "z_s_m1", "z_s_m2"), ("m2", "m1", "z_s_m2", "z_s_m1")}
    assert {r.metric for r in outcome.retrieval} == set(retrieval.METRIC_NAMES)
    assert all(r.value == 1.0 for r in outcome.retrieval)  # R@k = 1 and median rank 1
    assert {r.n_candidates for r in outcome.retrieval} == {n_test}
    assert all("zero-shot" in r.protocol and r.protocol.startswith(manifest.split_protocol) for r in outcome.retrieval)
    # restricted to components that do not hold the pair: no retrieval
    assert probe_run(store, run, components=["z_s", "z_s_m1"]).retrieval == []


def test_noisy_shared_parts_score_between_chance_and_perfect(sim):
    store, version = sim
    outcome = probe_run(store, publish_synthetic(store, version, seed=1))  # z_s_m1, z_s_m2: noisy copies of z_s
    recall = {(r.query_component, r.metric): r.value for r in outcome.retrieval}
    n = outcome.retrieval[0].n_candidates
    for component in ("z_s_m1", "z_s_m2"):
        assert 1 / n < recall[(component, "recall_at_10")] < 1.0


def test_a_method_without_pairs_writes_none(sim):
    store, version = sim
    # MultiLoReFT without L_MI has nothing aligning its shared parts: no pair
    run = publish_synthetic(store, version, seed=2, components=_aligned(store, version, 2), use_mi=False)
    outcome = probe_run(store, run)
    assert outcome.retrieval == [] and outcome.rows and not outcome.skipped
    # a run whose config this version cannot read is named, not scored
    unknown = publish_synthetic(store, version, seed=3, no_such_field=1)
    assert any("retrieval not scored" in line for line in probe_run(store, unknown).skipped)


def _rows(store, sql):
    return query(store.results_db, sql)


def test_reprobing_is_idempotent_and_the_summary_averages_seeds(sim):
    store, version = sim
    runs = [publish_synthetic(store, version, seed=s, components=_aligned(store, version, s),
                              settings={"temperature": 0.3}) for s in (10, 11)]
    for run in runs + runs[:1]:  # the first run twice
        save_probes(store, run, probe_run(store, run))
    ids = ", ".join(f"'{r.run_id}'" for r in runs)
    counts = _rows(store, f"SELECT run_id, count(*) FROM retrieval WHERE run_id IN ({ids}) GROUP BY 1").rows
    assert sorted(n for _, n in counts) == [8, 8]  # 2 directions × 4 metrics each, never duplicated
    summary = _rows(store, "SELECT query_component, metric, mean, std, n_seeds FROM retrieval_summary "
                           "WHERE variant = 'multiloreft [temperature=0.3]' ORDER BY ALL").rows
    assert len(summary) == 8 and all(row[2] == 1.0 and row[3] == 0.0 and row[4] == 2 for row in summary)
    filters = ReportFilters(variants=("multiloreft [temperature=0.3]",))
    (table,) = build_report(load_report_data(store.results_db, filters), ["retrieval"])
    assert table.title == "Retrieval: sim1, m1 ↔ m2" and [g.text for g in table.groups] == ["", "m1 → m2", "m2 → m1"]
    assert table.columns == ["Method", "Rep. m1", "Rep. m2"] + ["R@1 ↑", "R@5 ↑", "R@10 ↑", "MedR ↓"] * 2
    assert [c.text for c in table.rows[0]] == ["multiloreft [temperature=0.3]", "z_s_m1", "z_s_m2"] \
        + ["1.000 ± 0.000"] * 8
    assert any("chance" in note for note in table.notes)


def test_cli_probe_and_report_retrieval(store):
    version = simulate_sim1(store, n=300).manifest_version
    run = publish_synthetic(store, version, seed=0, components=_aligned(store, version, 0))
    runner = CliRunner()
    probed = runner.invoke(app, ["--store", str(store.root), "probe", run.run_id])
    assert probed.exit_code == 0, probed.output
    assert "8 retrieval rows" in probed.output
    shown = runner.invoke(app, ["--store", str(store.root), "report", "--table", "retrieval"])
    assert shown.exit_code == 0 and "Retrieval: sim1, m1 ↔ m2" in shown.output, shown.output
    got = runner.invoke(app, ["--store", str(store.root), "query", "SELECT metric, value FROM retrieval "
                              "WHERE query_modality = 'm2' ORDER BY metric", "--format", "json"])
    assert {r["metric"]: r["value"] for r in json.loads(got.output)}["median_rank"] == 1.0


def test_a_results_db_from_before_the_retrieval_table_reads(sim, tmp_path):
    store, version = sim
    run = publish_synthetic(store, version, seed=20, components=_aligned(store, version, 20))
    save_probes(store, run, probe_run(store, run))
    with duckdb.connect(str(store.results_db)) as conn:
        conn.execute("DROP VIEW retrieval_summary")
        conn.execute("DROP TABLE retrieval")
    assert _rows(store, "SELECT count(*) FROM retrieval_summary").rows == [(0,)]
    save_probes(store, run, probe_run(store, run))  # the next write adds the table
    assert _rows(store, f"SELECT count(*) FROM retrieval WHERE run_id = '{run.run_id}'").rows == [(8,)]


# -- every method's declaration against what it produces --------------------------------------------
@pytest.mark.parametrize("name", METHODS.names())
def test_declared_pairs_name_components_the_method_produces(name, pooled_data, sequence_data):  # noqa: F811
    cls = METHODS.get(name)
    data = sequence_data if "sequence" in cls.input_kinds else pooled_data
    if cls.modality_count[0] > len(data.modalities):
        assert cls.retrieval_pairs(("a", "b", "c"), FAST[name]) == ()
        return
    pairs = cls.retrieval_pairs(data.modalities, FAST[name])
    produced = cls.component_names(data.modalities)
    for pair in pairs:
        assert set(pair.components) <= set(produced) and len(set(pair.modalities)) == 2
        assert set(pair.modalities) <= set(data.modalities)
    if not pairs:
        return
    model, _ = _fit(name, data)
    parts = model.transform(data.values)
    for pair in pairs:
        first, second = (parts[c] for c in pair.components)
        assert first.shape == second.shape, (name, pair)  # one width: a cosine between them exists


def test_the_methods_that_embed_two_modalities_in_one_space_declare_it():
    modalities = ("image", "caption")
    declared = {name: METHODS.get(name).retrieval_pairs(modalities, FAST[name]) for name in METHODS.names()}
    assert {n for n, pairs in declared.items() if pairs} == {"contrastive", "multiloreft", "drimu", "apollo", "s3"}
    assert [p.components for p in declared["contrastive"]] == [("c_image", "c_caption")]
    assert [p.components for p in declared["drimu"]] == [("z_s_image", "z_s_caption")]
    assert [p.components for p in declared["s3"]] == [("e_image", "e_caption")]
    # a configuration that switches the aligning objective off declares nothing
    switched_off = {"multiloreft": {"use_mi": False}, "drimu": {"alpha": 0.0}, "apollo": {"max_epochs_encoders": 0},
                    "s3": {"widths": (10, 20)}}
    for name, change in switched_off.items():
        assert METHODS.get(name).retrieval_pairs(modalities, dataclasses.replace(FAST[name], **change)) == (), name
    assert METHODS.get("s3").retrieval_pairs(modalities, dataclasses.replace(FAST["s3"], loss_head="linear")) == ()
