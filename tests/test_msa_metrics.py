"""The MSA metrics (MMSA's regression MetricsTop, as DLF reports them) and the two-class F1, each
against a hand-computed case; which metrics a probe writes for a label of each declared scale."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from mmpipe.evaluate import metrics
from mmpipe.evaluate.metrics import label_metrics, metric
from mmpipe.evaluate.probes import ProbeConfig, label_data, probe_components
from mmpipe.store.errors import UnknownNameError
from mmpipe.store.manifest import LabelSpec, Manifest, Modality


def score(name, y, p):
    return metric(name).compute(np.asarray(y, dtype=float), np.asarray(p, dtype=float))


def test_acc7_and_acc5_clip_then_round_half_to_even():
    y = [2.5, -0.5, 1.5, 3.4, -3.6, 0.4]
    p = [2.0, 0.0, 2.4, 2.6, -2.5, 0.6]
    # acc7: y → clip ±3 → [2.5, -0.5, 1.5, 3, -3, 0.4] → round half even [2, -0, 2, 3, -3, 0]
    #       p → [2, 0, 2.4, 2.6, -2.5, 0.6] → [2, 0, 2, 3, -2, 1]: rows 0-3 agree, 4-5 do not
    assert score("acc7", y, p) == pytest.approx(4 / 6)
    # half away from zero would give y [3, -1, 2, 3, -3, 0] and p [2, 0, 2, 3, -3, 1]: 3/6
    # acc5: y → clip ±2 → [2, -0.5, 1.5, 2, -2, 0.4] → [2, -0, 2, 2, -2, 0]; p → [2, 0, 2, 2, -2, 1]
    assert score("acc5", y, p) == pytest.approx(5 / 6)
    assert score("acc7", [0.5, -1.5, -2.5], [0.0, -2.0, -2.0]) == 1.0  # 0.5→0, -1.5→-2, -2.5→-2


def test_has0_and_non0_binarise_zero_labels_differently():
    y = [0, 0, 1, -1, 2, -2]
    p = [0.5, -0.5, 0.0, -0.3, 1.0, 0.2]
    # has0: y>=0 [T T T F T F], p>=0 [T F T F T T] → agree at rows 0, 2, 3, 4
    assert score("acc2_has0", y, p) == pytest.approx(4 / 6)
    # has0 F1, positive (support 4): TP 3 (rows 0,2,4), FP 1 (row 5), FN 1 (row 1) → 6/8
    #          negative (support 2): TP 1 (row 3), FP 1 (row 1), FN 1 (row 5) → 2/4
    assert score("f1_has0", y, p) == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)
    # non0: rows 0 and 1 (label 0) dropped; y>0 [T F T F], p>0 [F F T T] (a zero prediction is negative)
    assert score("acc2_non0", y, p) == pytest.approx(2 / 4)
    # non0 F1: positive (support 2) TP 1, FP 1, FN 1 → 1/2; negative (support 2) TP 1, FP 1, FN 1 → 1/2
    assert score("f1_non0", y, p) == pytest.approx(0.5)
    # the drop is by the true label only: a zero prediction of a non-zero label stays (and is negative)
    assert score("acc2_non0", [1.0, -1.0], [0.0, 0.0]) == pytest.approx(0.5)
    assert score("acc2_has0", [1.0, -1.0], [0.0, 0.0]) == pytest.approx(0.5)  # 0 → positive: row 0 right
    assert score("acc2_non0", [0.0, 0.0], [1.0, -1.0]) is None  # every label zero: undefined
    assert score("f1_non0", [0.0, 0.0], [1.0, -1.0]) is None


def test_mae_corr_and_binary_f1():
    assert score("mae", [1, 2, 3], [1.5, 2, 1]) == pytest.approx(2.5 / 3)
    # Pearson: dy = [-1, 0, 1], dp = [-7/3, -1/3, 8/3]; cov 5, var 2 and 38/3 → 5 / sqrt(76/3)
    assert score("corr", [1, 2, 3], [2, 4, 7]) == pytest.approx(5 / np.sqrt(76 / 3))
    assert score("corr", [1, 2, 3], [2, 2, 2]) is None  # a constant prediction: undefined
    # class 0 (support 2): TP 1, FP 1, FN 1 → 1/2; class 1 (support 3): TP 2, FP 1, FN 1 → 2/3
    assert score("f1", [0, 0, 1, 1, 1], [0, 1, 1, 1, 0]) == pytest.approx((2 * 0.5 + 3 * 2 / 3) / 5)


def test_weighted_f1_equals_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(-3, 4, size=40).astype(float) / 2  # some exact zeros
        p = y + rng.normal(0, 1.0, size=40)
        assert score("f1_has0", y, p) == pytest.approx(f1_score(y >= 0, p >= 0, average="weighted"))
        keep = y != 0
        assert score("f1_non0", y, p) == pytest.approx(f1_score(y[keep] > 0, p[keep] > 0, average="weighted"))
        c, d = rng.integers(0, 2, size=40), rng.integers(0, 2, size=40)
        assert score("f1", c, d) == pytest.approx(f1_score(c, d, average="weighted"))


def test_registry_directions_displays_and_label_metrics():
    for name in metrics.MSA + (metrics.F1,):
        assert len(metric(name).rule) > 40, name
    assert not metric("mae").higher_is_better and metric("corr").higher_is_better
    assert [metrics.display(m) for m in metrics.MSA] == ["Acc-7", "Acc-5", "Acc-2 has0", "Acc-2 non0", "F1 has0",
                                                          "F1 non0", "Corr", "MAE"]
    assert label_metrics("categorical") == ("accuracy",)
    assert label_metrics("categorical", "binary") == ("accuracy", "f1")
    assert label_metrics("continuous") == ("mse",)
    assert label_metrics("continuous", "sentiment") == ("mse", *metrics.MSA)
    with pytest.raises(UnknownNameError, match="valid"):
        label_metrics("continuous", "binary")


def test_manifest_checks_declared_scales():
    def manifest(label, values):
        table = pd.DataFrame({"sample_id": ["a", "b", "c"], "split": ["train", "val", "test"], "group": None,
                              label.name: values})
        return Manifest("d", table, (label,), (Modality("m1", "features"),))

    with pytest.raises(ValueError, match="must be continuous"):
        LabelSpec("s", "categorical", "joint", scale="sentiment")
    with pytest.raises(ValueError, match="scale must be one of"):
        LabelSpec("s", "continuous", "joint", scale="likert")
    with pytest.raises(ValueError, match="outside"):
        manifest(LabelSpec("s", "continuous", "joint", scale="sentiment"), [0.0, 3.5, np.nan])
    with pytest.raises(ValueError, match="3 distinct"):
        manifest(LabelSpec("b", "categorical", "joint", scale="binary"), [0, 1, 2])
    plain = manifest(LabelSpec("s", "continuous", "joint"), [0.0, 1.0, -1.0])
    declared = manifest(LabelSpec("s", "continuous", "joint", scale="sentiment"), [0.0, 1.0, -1.0])
    assert "scale" not in plain.metadata()["labels"][0] and declared.metadata()["labels"][0]["scale"] == "sentiment"
    assert plain.version() != declared.version()


def test_probe_writes_every_msa_metric_for_sentiment_and_f1_for_a_binary_label():
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 4))
    sentiment = np.clip(np.round(3 * (x[:, 0] + 0.3 * rng.normal(size=n))) / 3, -3, 3) + 0.0
    table = pd.DataFrame({"sample_id": [f"r{i}" for i in range(n)],
                          "split": np.array(["train", "val", "test"])[np.arange(n) % 3], "group": None,
                          "sentiment": sentiment, "humor": (x[:, 1] > 0).astype(int), "score": x[:, 2],
                          "kind": (x[:, 3] > 0).astype(int)})
    labels = (LabelSpec("sentiment", "continuous", "joint", scale="sentiment"),
              LabelSpec("humor", "categorical", "joint", scale="binary"),
              LabelSpec("score", "continuous", "joint"), LabelSpec("kind", "categorical", "joint"))
    manifest = Manifest("d", table, labels, (Modality("m1", "features"),), "every third row")
    outcome = probe_components({"fused": x}, np.ones(n, bool), manifest, label_data(manifest),
                               ProbeConfig(), "run")
    by_label = {}
    for row in outcome.rows:
        by_label.setdefault(row.label, {})[row.metric] = row.value
    assert set(by_label["sentiment"]) == {"mse", *metrics.MSA, metrics.ACCURACY_GE0}
    assert set(by_label["humor"]) == {"accuracy", "f1", "silhouette"}
    assert set(by_label["score"]) == {"mse"} and set(by_label["kind"]) == {"accuracy", "silhouette"}
    assert by_label["sentiment"]["corr"] > 0.9 and by_label["sentiment"]["acc2_non0"] > 0.9
    assert (sentiment[manifest.split_mask("test")] == 0).any()  # zero labels: has0 and non0 differ in rows
    assert by_label["humor"]["f1"] > 0.9


def test_a_sentiment_label_also_gets_a_logistic_probe_of_its_sign():
    """accuracy_ge0 is a logistic regression fitted on the train rows' y >= 0 classes, C chosen on
    val accuracy (ties: the smaller C), scored on test: recomputed here with scikit-learn."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    n = 240
    x = rng.normal(size=(n, 3))
    sentiment = np.clip(np.round(2 * (x[:, 0] - 0.4 + 0.8 * rng.normal(size=n))) / 2, -3, 3) + 0.0
    split = np.array(["train", "val", "test"])[np.arange(n) % 3]
    table = pd.DataFrame({"sample_id": [f"r{i}" for i in range(n)], "split": split, "group": None,
                          "sentiment": sentiment})
    manifest = Manifest("d", table, (LabelSpec("sentiment", "continuous", "joint", scale="sentiment"),),
                        (Modality("m1", "features"),), "every third row")
    config = ProbeConfig(c_grid=(0.01, 1.0))
    outcome = probe_components({"fused": x}, np.ones(n, bool), manifest, label_data(manifest), config, "run")
    [row] = [r for r in outcome.rows if r.metric == metrics.ACCURACY_GE0]
    assert "binarised as y >= 0" in row.protocol and "logistic" in row.protocol
    z = (x - x[split == "train"].mean(0)) / x[split == "train"].std(0)
    y = (sentiment >= 0).astype(int)
    best = max(((LogisticRegression(C=c, max_iter=500).fit(z[split == "train"], y[split == "train"]), c)
                for c in config.c_grid), key=lambda m: (m[0].score(z[split == "val"], y[split == "val"]), -m[1]))[0]
    assert row.value == pytest.approx(best.score(z[split == "test"], y[split == "test"]), abs=1e-9)
    assert row.n_test == (split == "test").sum()
