import math

import numpy as np
import pytest

from mmpipe.evaluate.delta import (
    carries,
    decoupling_components,
    delta,
    delta_over_seeds,
    mean_std,
    owner_component,
)
from mmpipe.evaluate.metrics import METRICS, display, higher_is_better, k_shot_name, metric
from mmpipe.store.errors import UnknownNameError

SIM = ("m1", "m2")


def test_paper_table1_sim1_shared_accuracy():
    # MultiLoReFT, Simulation I, shared label: z_s 1.000, z_m1 0.798, z_m2 0.756 → Δ 0.223
    got = delta("shared", "accuracy", {"z_s": 1.000, "z_m1": 0.798, "z_m2": 0.756}, SIM)
    assert round(got, 3) == 0.223


def test_paper_table1_sim2_modality1_accuracy():
    # Simulation II, M1 label: z_s 0.537, z_m1 1.000 → Δ 0.463
    assert round(delta("m1", "accuracy", {"z_s": 0.537, "z_m1": 1.000, "z_m2": 0.500}, SIM), 3) == 0.463


def test_paper_table2_cremad_sentence_id_is_owned_by_audio():
    # CREMA-D Sentence ID (best captured by audio): z_s 0.303, z_video 0.244, z_audio 0.975 → Δ 0.672
    scores = {"z_s": 0.303, "z_video": 0.244, "z_audio": 0.975}
    assert round(delta("audio", "accuracy", scores, ("video", "audio")), 3) == 0.672
    assert round(delta("video", "accuracy", scores, ("video", "audio")), 3) != 0.672


def test_paper_table1_mse_rows_are_oriented_larger_is_better():
    # Simulation I, M2 (MSE): z_s 0.059, z_m2 0.005 → Δ 0.054 (an error: score(z_s) − score(z_m))
    assert round(delta("m2", "mse", {"z_s": 0.059, "z_m1": 0.081, "z_m2": 0.005}, SIM), 3) == 0.054
    # a shared label measured by MSE: mean of the private errors minus the shared error
    assert delta("shared", "mse", {"z_s": 0.1, "z_m1": 0.3, "z_m2": 0.5}, SIM) == pytest.approx(0.3)


def test_three_modalities_shared_label_averages_every_modality_of_the_run():
    scores = {"z_s": 0.9, "z_text": 0.3, "z_audio": 0.6, "z_vision": 0.0}
    assert delta("shared", "accuracy", scores, ("text", "audio", "vision")) == pytest.approx(0.9 - 0.3)
    # a run on two of the three modalities averages those two only
    assert delta("shared", "accuracy", scores, ("text", "audio")) == pytest.approx(0.9 - 0.45)
    assert delta("vision", "accuracy", scores, ("text", "audio", "vision")) == pytest.approx(-0.9)
    # a label owned by a modality the run did not use has no Δ, even if a component of that name exists
    assert delta("vision", "accuracy", scores, ("text", "audio")) is None


def test_joint_labels_and_missing_components_have_no_delta():
    assert delta("joint", "mse", {"z_s": 1, "z_m1": 1, "z_m2": 1}, SIM) is None
    assert delta("shared", "accuracy", {"z_s": 1, "z_m1": 1}, SIM) is None
    assert delta("m1", "accuracy", {"z_m1": 1}, SIM) is None
    with pytest.raises(UnknownNameError, match="unknown metric 'auroc'; valid: acc2_has0"):
        delta("m1", "auroc", {"z_s": 1, "z_m1": 1}, SIM)


def test_delta_is_per_seed_then_mean_std():
    # per seed: 1 − (0.6+0.8)/2 = 0.3 and 1 − (0.9+0.9)/2 = 0.1 → mean 0.2, sample std 0.1414
    seeds = [{"z_s": 1.0, "z_m1": 0.6, "z_m2": 0.8}, {"z_s": 1.0, "z_m1": 0.9, "z_m2": 0.9}]
    summary = delta_over_seeds("shared", "accuracy", seeds, SIM)
    assert summary.mean == pytest.approx(0.2) and summary.std == pytest.approx(math.sqrt(0.02)) and summary.n == 2
    assert mean_std([0.5]).std is None


def test_reference_rows_reproduce_their_own_delta_within_rounding():
    from collections import defaultdict

    from mmpipe.evaluate.reference import DELTA, paper_values

    owners = {"y_s": "shared", "y_m1": "m1", "y_m2": "m2", "z1": "shared", "z3": "m1"}
    rows = defaultdict(dict)
    for v in paper_values("table1"):
        if v.row == "multiloreft":
            rows[(v.dataset, v.label, v.metric)][v.component] = v.mean
    assert len(rows) == 5
    for (dataset, label, name), row in rows.items():
        scores = {c: mean for c, mean in row.items() if c != DELTA}
        # the paper averages Δ per seed, so the Δ of the means can differ by rounding (≤ 0.002)
        assert abs(delta(owners[label], name, scores, SIM) - row[DELTA]) <= 0.0015, (dataset, label)


def test_owner_components_and_who_carries_a_label():
    assert owner_component("shared") == "z_s" and owner_component("audio") == "z_audio"
    assert owner_component("joint") is None
    assert decoupling_components(("text", "audio", "vision")) == ("z_s", "z_text", "z_audio", "z_vision")
    modalities = ("video", "audio")
    assert carries("z_s_video", "shared", modalities) and carries("z_s", "shared", modalities)
    assert not carries("z_audio", "shared", modalities) and not carries("z_s", "audio", modalities)
    assert carries("z_audio", "audio", modalities) and not carries("z_video", "audio", modalities)
    assert carries("fused", "audio", modalities) and carries("z_audio", "joint", modalities)


def test_metrics_registry_directions_names_and_rules():
    assert set(METRICS.names()) == {"accuracy", "accuracy_ge0", "accuracy_<k>shot", "mse", "silhouette", "f1", "mae", "corr", "acc7",
                                    "acc5", "acc2_has0", "acc2_non0", "f1_has0", "f1_non0", "recall_at_<k>",
                                    "median_rank"}
    assert higher_is_better("accuracy") and higher_is_better("silhouette") and not higher_is_better("mse")
    assert k_shot_name(5) == "accuracy_5shot" and higher_is_better(k_shot_name(5))
    assert display("mse") == "MSE" and display("accuracy") == "Acc" and display("accuracy_5shot") == "Acc 5-shot"
    for name in METRICS.names():  # every rule is stated
        assert len(metric(name).rule) > 40, name
    assert metric("mse").compute(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(2.0)
    assert metric("accuracy_3shot").compute(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])) == 0.75
    with pytest.raises(UnknownNameError, match="valid: acc2_has0, acc2_non0, acc5, acc7, accuracy, accuracy_<k>shot, accuracy_ge0, corr, f1, f1_has0, f1_non0, mae, median_rank, mse, recall_at_<k>, silhouette"):
        metric("accuracy_shot")
