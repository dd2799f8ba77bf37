"""The S3 method (adapters/methods/s3.py) on small sequence entries built here: components and record,
only the routers change in Selection, seeded determinism, checkpoint round trip, padding and
lengths, the ρ chosen on val, the active-parameter accounting, the task label, config refusals,
and the registry contract with sequence inputs. The CLI end to end: tests/test_s3_cli.py."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mmpipe.adapters import METHODS
from mmpipe.adapters.data import MultimodalFeatures, load_features
from mmpipe.adapters.methods.s3 import (
    RHOS,
    STAGE_COMPONENTS,
    S3Config,
    S3Summary,
    Schedule,
    as_sequences,
    class_target,
    infer_lengths,
    rho_component,
)
from mmpipe.adapters.training import single_cpu_thread
from mmpipe.store.config import apply_overrides
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import LabelSpec, Manifest, Modality
from mmpipe.store.root import Store

FAST = S3Config(widths=(8, 8), heads=2, layers=2, granularity=4, expansion=2, minibatch_size=32,
                max_epochs_specialization=2, max_epochs_selection=2, patience=2, sparsify_batch_size=40,
                probe_c_grid=(1.0,), device="cpu")


def write_toy(store: Store, n: int = 160, steps: tuple[int, int] = (7, 5), dims: tuple[int, int] = (6, 5),
              seed: int = 0, silent_rows: int = 0) -> None:
    """A two-modality sequence dataset "toy": a binary label y (joint) carried by a label-dependent
    direction at random steps of each modality, a continuous score (owned by vision), random
    lengths, zero padding (the store's). The first ``silent_rows`` rows end in a valid all-zero
    step (silence), so their zero padding reads one step short of their stored length."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    split = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    rng.shuffle(split)
    table = pd.DataFrame({"sample_id": [f"toy-{i:04d}" for i in range(n)], "split": split,
                          "group": pd.Series([None] * n, dtype="object"), "y": y,
                          "score": rng.normal(size=n)})
    labels = (LabelSpec("y", "categorical", "joint", "binary class"),
              LabelSpec("score", "continuous", "vision", "a continuous score"))
    manifest = Manifest("toy", table, labels, (Modality("vision", "features"), Modality("text", "features")), "random")
    version = store.save_manifest(manifest)
    for modality, t, d in zip(("vision", "text"), steps, dims, strict=True):
        lengths = rng.integers(1, t + 1, n)
        direction = rng.standard_normal(d).astype(np.float32)
        values = rng.standard_normal((n, t, d)).astype(np.float32)
        values += (rng.random((n, t)) < 0.5)[:, :, None] * (2 * y - 1)[:, None, None] * direction
        lengths[:silent_rows] = np.maximum(lengths[:silent_rows], 2)
        values[np.arange(silent_rows), lengths[:silent_rows] - 1] = 0
        with store.writer(f"toy.{modality}.seq", {"modality": modality, "seed": seed}, n_rows=n, dim=d, steps=t,
                          dtype="float32") as writer:
            for index in writer.pending_chunks():
                start, stop = writer.chunk_bounds(index)
                writer.write_chunk(index, values[start:stop], lengths=lengths[start:stop])
            writer.publish({"dataset": "toy", "manifest_version": version})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> MultimodalFeatures:
    store = Store.open(tmp_path_factory.mktemp("s3") / "store", create=True)
    write_toy(store)
    return load_features(store, "toy", {"vision": None, "text": None})


_FITTED: dict = {}


def _fit(data, config=FAST, seed=0):
    key = (config, seed)
    if key not in _FITTED:
        _FITTED[key] = METHODS.get("s3").fit(data, config, seed)
    return _FITTED[key]


def _lengths(data):
    return {i.modality: i.lengths for i in data.inputs}


def test_components_and_the_typed_record(data):
    model, history = _fit(data)
    parts = model.transform(data.values, _lengths(data))
    assert tuple(parts) == METHODS.get("s3").component_names(data.modalities) == (
        *STAGE_COMPONENTS, "e_vision", "e_text", "fused")
    assert STAGE_COMPONENTS == ("spec", "sel", "rho90", "rho80", "rho70", "rho60", "rho50", "rho40", "rho30", "rho20",
                                "rho10")
    for name, value in parts.items():
        assert value.shape == (160, 16 if name not in ("e_vision", "e_text") else 8) and torch.isfinite(value).all()
    summary = S3Summary.from_history(history)
    assert summary.stage_components["specialization"] == "spec" and summary.stage_components["rho=0.5"] == "rho50"
    assert summary.columns == {"vision": [0, 8], "text": [8, 16]}
    assert [row["stage"] for row in history["stage_history"]] == ["specialization", "selection", "sparsification"]
    assert {"specialization_s", "selection_s", "sparsification_s", "train_s"} <= set(history["timings"])
    # the chosen ρ is the best val accuracy (ties: the larger ρ), and fused / e_k are its component
    best = max(summary.val_accuracy[rho_component(r)] for r in RHOS)
    assert summary.val_accuracy[summary.rho_val_component] == best
    assert summary.rho_val == max(r for r in RHOS if summary.val_accuracy[rho_component(r)] == best)
    assert model.chosen_rho == summary.rho_val
    assert torch.equal(parts["fused"], parts[summary.rho_val_component])
    assert torch.equal(parts["e_vision"], parts["fused"][:, :8]) and torch.equal(parts["e_text"], parts["fused"][:, 8:])
    # per stage, modality and layer: expert usage (a distribution over the N_E experts) and entropies
    layer = summary.routing["selection"]["text"][1]
    assert layer.layer == 1 and len(layer.usage) == 8 and math.isclose(sum(layer.usage), 1.0, rel_tol=1e-6)
    assert 0 <= layer.local_entropy <= math.log(8) + 1e-6 and 0 <= layer.global_entropy <= math.log(8) + 1e-6
    assert summary.sparsify_batch_size == 40 and summary.lengths_from_padding_mismatch == 0
    assert summary.target == {"name": "y", "kind": "categorical", "classes": ["0", "1"], "binarize_at": None}


def test_active_parameter_fraction_and_router_share(data):
    model, history = _fit(data)
    summary = S3Summary.from_history(history)
    fractions = [summary.active_fraction[str(r)] for r in RHOS]
    assert fractions[0] == 1.0 and all(a > b for a, b in zip(fractions, fractions[1:], strict=False))
    # by hand for text at ρ = 0.5: Σ_layers (tokens · attention + kept pairs · expert) / the same at ρ = 1
    layers = model.encoders["text"].layers
    attention, expert = layers[0].attention_parameters(), layers[0].moe.expert_parameters()
    assert attention == 4 * 8 * 8 + 4 * 8 and expert == 2 * 8 * 8 + 8 + 8
    tokens = int(data.inputs[1].lengths.sum())  # every row is transformed, in batches of 40
    kept = summary.kept_pairs["text"]["0.5"]
    assert kept == [sum(math.ceil(0.5 * 4 * int(data.inputs[1].lengths[i:i + 40].sum()))
                        for i in range(0, 160, 40))] * 2
    full = 2 * (tokens * attention + 4 * tokens * expert)
    assert summary.active_fraction_by_modality["text"]["0.5"] == pytest.approx(
        sum(tokens * attention + k * expert for k in kept) / full)
    routers = sum(w.numel() for w in model.routers())
    assert routers == 2 * 2 * 8 * 8  # modalities × layers × (N_E × d)
    assert summary.router_share == pytest.approx(routers / sum(p.numel() for p in model.parameters()))


def test_only_the_routers_change_in_selection(data):
    selected, _ = _fit(data)
    skipped, history = _fit(data, dataclasses.replace(FAST, selection_losses="none"))
    assert history["stage_history"][1]["reason"] == "skipped: no active loss"
    after, before = dict(selected.named_parameters()), dict(skipped.named_parameters())
    routers = {name for name in after if name.endswith("moe.router.weight")}
    assert len(routers) == 4
    for name, value in after.items():
        if name in routers:
            assert not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), name  # bit for bit
    # the Specialization routers are kept: both models rebuild the same Specialization component
    for m in ("vision", "text"):
        for kept, trained in zip(selected.specialization_routers(m), skipped.encoders[m].routers(), strict=True):
            assert torch.equal(kept, trained)
    lengths = _lengths(data)
    assert torch.equal(selected.transform(data.values, lengths)["spec"], skipped.transform(data.values, lengths)["spec"])


def test_same_seed_same_result_and_another_seed_another(data):
    first, _ = _fit(data)
    again, _ = METHODS.get("s3").fit(data, FAST, 0)
    other, _ = _fit(data, seed=1)
    lengths = _lengths(data)
    a, b, c = (m.transform(data.values, lengths) for m in (first, again, other))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert not torch.allclose(a["spec"], c["spec"])


def test_checkpoint_round_trip(data):
    model, _ = _fit(data)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    again = METHODS.get("s3").from_state(FAST, data.dims, state)
    assert again.chosen_rho == model.chosen_rho
    lengths = _lengths(data)
    before, after = model.transform(data.values, lengths), again.transform(data.values, lengths)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_padded_longer_the_same_components_and_lengths_from_the_zero_padding(data):
    model, _ = _fit(data)
    lengths = _lengths(data)
    parts = model.transform(data.values, lengths)
    padded = {m: torch.cat([v, torch.randn(v.shape[0], 3, v.shape[2])], 1) for m, v in data.values.items()}
    longer = model.transform(padded, lengths)
    for name in parts:
        torch.testing.assert_close(longer[name], parts[name], atol=1e-5, rtol=1e-5)
    for item in data.inputs:  # the store pads with zeros: lengths can be read back
        assert torch.equal(infer_lengths(item.values), item.lengths.long())
    inferred = model.transform(data.values)
    for name in parts:
        assert torch.equal(inferred[name], parts[name]), name


def test_pooled_rows_are_one_step_sequences():
    values, lengths = as_sequences(torch.randn(5, 3), None)
    assert values.shape == (5, 1, 3) and torch.equal(lengths, torch.ones(5, dtype=torch.long))
    cls = METHODS.get("s3")
    cls.check_inputs({"a": "pooled", "b": "sequence"})
    with pytest.raises(UserError, match="s3 takes exactly 2 modalities, got 3"):
        cls.check_inputs({"a": "sequence", "b": "sequence", "c": "sequence"})


def test_the_task_label_classes(data):
    target = class_target(data, None, 0.0, torch.device("cpu"))  # the joint label
    assert target.name == "y" and target.classes == ["0", "1"] and target.binarize_at is None
    assert set(target.train_rows.tolist()) <= set(data.split_index["train"].tolist())
    assert not set(target.val_rows.tolist()) & set(data.split_index["test"].tolist())
    score = class_target(data, "score", 0.25, torch.device("cpu"))
    raw = data.manifest.table["score"].to_numpy()
    assert torch.equal(score.train_y, torch.from_numpy((raw[score.train_rows.numpy()] >= 0.25).astype(np.int64)))
    with pytest.raises(UserError, match="needs two classes"):
        class_target(data, "score", 100.0, torch.device("cpu"))


def test_gradients_are_finite_and_the_losses_can_fit_a_tiny_batch(data):
    schedule = Schedule(METHODS.get("s3"), data, FAST, 0, None)
    model, rows = schedule.model, schedule.train_rows[:16]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with single_cpu_thread(torch.device("cpu")):
        losses = schedule.specialization_losses(rows)
        losses["spec"].backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
        assert set(losses) >= {"intra", "cross", "importance", "load", "local_entropy", "global_entropy"}
        start = float(losses["spec"].detach())
        for _ in range(40):
            optimizer.zero_grad()
            schedule.specialization_losses(rows)["spec"].backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            end = float(schedule.specialization_losses(rows)["spec"])
    assert end < 0.6 * start, (start, end)
    schedule.stage = "selection"
    labels = schedule.target.train_y[:16]
    sel = schedule.selection_losses(schedule.target.train_rows[:16], labels)
    assert torch.isfinite(sel["sel"]) and torch.isclose(sel["sel"], sel["ts"] + sel["im"])


def test_ablations_and_refused_configs():
    cls = METHODS.get("s3")
    assert cls.ablation(FAST) is None
    assert [cls.ablation(dataclasses.replace(FAST, selection_losses=s)) for s in ("ts", "im", "none")] == [
        "Selection: L_TS only", "Selection: L_IM only", "no Selection"]
    assert "selection_losses" not in cls.settings(dataclasses.replace(FAST, selection_losses="ts"))
    assert cls.settings(dataclasses.replace(S3Config(), granularity=4)) == {"granularity": 4}
    for overrides, message in ((["heads=3"], "heads=3 must divide every width"),
                               (["granularity=7"], "granularity=7 must divide d_ff"),
                               (["top_k=100"], "top_k=100 exceeds the 64 experts"),
                               (["widths=40,60", "loss_head=none"], "loss_head=none needs equal widths"),
                               (["router_noise=0"], "the load loss needs router noise")):
        with pytest.raises(UserError, match=message):
            apply_overrides(S3Config(), overrides)
    apply_overrides(S3Config(), ["router_noise=0", "aux_weights=1,0,1,1"])


def test_unequal_widths_compare_through_loss_heads(data):
    config = dataclasses.replace(FAST, widths=(8, 12), max_epochs_specialization=1, max_epochs_selection=1)
    model, history = METHODS.get("s3").fit(data, config, 0)
    assert model.loss_heads is not None and model.loss_heads["text"].weight.shape == (8, 12)
    parts = model.transform(data.values, _lengths(data))
    assert parts["spec"].shape == (160, 20) and parts["e_text"].shape == (160, 12)
    assert S3Summary.from_history(history).columns == {"vision": [0, 8], "text": [8, 20]}


def test_the_objective_on_raw_rows_is_the_training_loss(data):
    model, _ = _fit(data)
    schedule = Schedule(METHODS.get("s3"), data, FAST, 0, None)
    schedule.model.load_state_dict(model.state_dict())
    rows = schedule.train_rows[:16]
    model.eval(), schedule.model.eval()
    with torch.no_grad():
        ours = model.objective(data, rows)
        theirs = schedule.specialization_losses(rows)
        labels = schedule.target.train_y[:16]
        selection = model.objective(data, schedule.target.train_rows[:16], labels)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name])
    assert set(selection) == {"sel", "ts", "im", "local_entropy", "global_entropy"}
