"""DLF (adapters/methods/dlf.py) and its blocks (adapters/mult.py, adapters/accumulation.py): shapes
through every block with variable lengths, the causal mask, padding that never leaks, the schedule
(accumulation, clipping, LR plateau, early stopping, best checkpoint), the ablation switches
(parameters and loss terms really gone), seeded determinism, the checkpoint round trip, and the
contract tests every registered method gets, on three sequence inputs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mmpipe.adapters import METHODS
from mmpipe.adapters.accumulation import Schedule, train_accumulated
from mmpipe.adapters.data import load_features
from mmpipe.adapters.methods.dlf import DLF, DLFConfig, DLFFit, cpu_threads, infer_lengths, regression_target
from mmpipe.adapters.mult import MulTEncoder, keep_mask, sinusoidal_positions, visible
from mmpipe.adapters.predictions import PREDICTION, OwnPrediction
from mmpipe.adapters.training import single_cpu_thread
from mmpipe.pipeline.datasets.simseq import SimseqConfig
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

INPUTS = {"text": None, "audio": None, "vision": None}
TINY = DLFConfig(device="cpu", d_model=8, heads=2, layers=1, memory_layers_self=1, memory_layers_cross=1,
                 ortho_chunk=4, minibatch_size=8, accumulate=2, max_epochs=2, early_stop=2, lr=1e-3)
DIMS = {"text": 6, "audio": 4, "vision": 3}


def _store(tmp_path_factory, name: str, config: SimseqConfig):
    store = Store.open(tmp_path_factory.mktemp(name) / "store", create=True)
    simulate(store, "simseq", config)
    return load_features(store, "simseq", INPUTS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """simseq, unaligned: text / audio / vision of 12 / 16 / 10 steps at most, variable lengths."""
    return _store(tmp_path_factory, "dlf", SimseqConfig(n=80, max_steps=(12, 16, 10), min_steps=(4, 5, 3)))


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """simseq with every modality 10 steps wide (the shared encoder runs once on stacked rows)."""
    return _store(tmp_path_factory, "dlf-aligned", SimseqConfig(n=80, max_steps=(10, 10, 10), min_steps=(3, 3, 3)))


_FITTED: dict = {}


def _fit(data, config=TINY, seed=0):
    key = (id(data), config, seed)
    if key not in _FITTED:
        _FITTED[key] = DLF.fit(data, config, seed)
    return _FITTED[key]


def _batch(b: int = 5, steps=(7, 9, 6), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = {m: torch.randn(b, t, d, generator=generator) for (m, d), t in zip(DIMS.items(), steps, strict=True)}
    lengths = {m: torch.randint(1, t + 1, (b,), generator=generator) for m, t in zip(DIMS, steps, strict=True)}
    for m, t in zip(DIMS, steps, strict=True):
        lengths[m][0] = t  # one full row per modality
        x[m] = x[m] * (torch.arange(t)[None, :, None] < lengths[m][:, None, None])  # zero padding, as stored
    return x, lengths


def _model(config=TINY, steps=(7, 9, 6), seed=0) -> DLF:
    torch.manual_seed(seed)
    return DLF(config, DIMS, dict(zip(DIMS, steps, strict=True))).eval()


# -- MulT blocks -------------------------------------------------------------------------------------
def test_sinusoidal_positions_are_fairseqs_table_and_zero_past_the_length():
    table = sinusoidal_positions(torch.tensor([3, 5]), 5, 7)  # d odd: a zero column
    half = 3
    for p in range(1, 6):
        for i in range(half):
            omega = math.exp(-i * math.log(10000) / (half - 1))
            assert table[1, p - 1, i] == pytest.approx(math.sin(p * omega), abs=1e-6)
            assert table[1, p - 1, half + i] == pytest.approx(math.cos(p * omega), abs=1e-6)
    assert (table[:, :, 6] == 0).all() and (table[0, 3:] == 0).all() and (table[0, :3] != 0).any()


def test_visible_is_causal_in_relative_time_and_never_shows_padding():
    same = visible(torch.tensor([4]), torch.tensor([4]), 6, 6, causal=True)[0]
    expected = torch.tril(torch.ones(6, 6, dtype=torch.bool)) & (torch.arange(6)[None, :] < 4)
    assert torch.equal(same, expected)  # equal lengths: exactly MulT's causal mask, padding keys hidden
    cross = visible(torch.tensor([2]), torch.tensor([4]), 2, 6, causal=True)[0]
    # query step i sees key step j when j·L_q < (i + 1)·L_k: step 0 sees keys 0, 1; step 1 sees 0..3
    assert cross.tolist() == [[True, True, False, False, False, False], [True, True, True, True, False, False]]
    short = visible(torch.tensor([5]), torch.tensor([2]), 5, 2, causal=True)[0]
    assert short.any(1).all() and short[:, 0].all()  # no query row is ever fully masked
    assert visible(torch.tensor([3]), torch.tensor([4]), 3, 6, causal=False)[0].tolist() == [[True] * 4 + [False] * 2] * 3


@pytest.mark.parametrize("cross", [False, True])
def test_a_later_step_never_changes_an_earlier_output(cross):
    torch.manual_seed(0)
    encoder = MulTEncoder(8, 2, 2).eval()
    x, y = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    lengths = torch.tensor([6, 6])
    out = encoder(x, lengths, y if cross else None, lengths if cross else None)
    x2, y2 = x.clone(), y.clone()
    x2[:, 4:] += 3 * torch.randn(2, 2, 8)  # not a constant shift: the LayerNorms would remove that
    y2[:, 4:] -= 3 * torch.randn(2, 2, 8)
    again = encoder(x2, lengths, y2 if cross else None, lengths if cross else None)
    torch.testing.assert_close(again[:, :4], out[:, :4])
    assert not torch.allclose(again[:, 4:], out[:, 4:])


def test_padding_and_the_padded_width_never_change_a_valid_step():
    torch.manual_seed(0)
    encoder = MulTEncoder(8, 2, 2).eval()
    x, lengths = torch.randn(3, 5, 8), torch.tensor([5, 3, 1])
    y, y_lengths = torch.randn(3, 4, 8), torch.tensor([2, 4, 3])
    out = encoder(x, lengths, y, y_lengths)
    wider = encoder(torch.cat([x, torch.randn(3, 4, 8)], 1), lengths, torch.cat([y, 9 * torch.randn(3, 2, 8)], 1),
                    y_lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(wider[row, :length], out[row, :length])


def test_keep_mask_draws_bernoulli_with_the_asked_rate():
    torch.manual_seed(0)
    keep = keep_mask(torch.Size([200, 500]), 0.3, torch.device("cpu"))
    assert keep.dtype == torch.bool and abs(1 - keep.float().mean().item() - 0.3) < 0.005


# -- DLF blocks ----------------------------------------------------------------------------------------
def test_shapes_through_every_block_with_variable_lengths():
    model = _model().train()
    x, lengths = _batch()
    out = model(x, lengths, with_losses=True)
    d, b = TINY.d_model, 5
    for m, t in zip(DIMS, (7, 9, 6), strict=True):
        assert out.projected[m].shape == out.specific[m].shape == out.shared[m].shape == (b, t, d)
        assert out.reconstructed[m].shape == out.re_specific[m].shape == (b, t, d)
        assert out.aligned[m].shape == (b, d) and out.high[m].shape == (b, d) and out.heads[m].shape == (b,)
        assert torch.equal(out.masks[m].sum(1), lengths[m])
    assert out.shared_high.shape == (b, 3 * d) and out.heads["shared"].shape == (b,)
    assert out.fused.shape == (b, 6 * d) and out.output.shape == (b,)
    losses = model.losses(out, torch.randn(b))
    assert set(losses) == {"task", "recon", "specific", "triplet", "ortho", "total"}
    assert all(torch.isfinite(v) for v in losses.values())
    parts = model.eval().components_of(model(x, lengths))
    assert tuple(parts) == DLF.component_names(tuple(DIMS))
    assert parts[PREDICTION].shape == (b, 1) and parts["fused"].shape == (b, 6 * d)


def test_the_whole_model_is_causal_in_time():
    model = _model(steps=(8, 8, 8))
    x, _ = _batch(3, (8, 8, 8))
    lengths = {m: torch.full((3,), 8) for m in DIMS}
    out = model(x, lengths)
    later = {m: v.clone() for m, v in x.items()}
    for v in later.values():
        v[:, 5:] = 3 * torch.randn(v[:, 5:].shape)
    again = model(later, lengths)
    for part in ("projected", "specific", "shared"):
        for m in DIMS:
            torch.testing.assert_close(getattr(again, part)[m][:, :5], getattr(out, part)[m][:, :5])
    assert not torch.allclose(again.output, out.output)


def test_rows_do_not_depend_on_padding_or_on_the_other_rows():
    model = _model()
    x, lengths = _batch()
    full = model.transform(x, lengths)
    noisy = {m: v + 7.0 * (torch.arange(v.shape[1])[None, :, None] >= lengths[m][:, None, None]) for m, v in x.items()}
    for name, value in model.transform(noisy, lengths).items():
        torch.testing.assert_close(value, full[name], atol=1e-5, rtol=1e-5)
    alone = model.transform({m: v[3:4] for m, v in x.items()}, {m: v[3:4] for m, v in lengths.items()})
    for name, value in alone.items():
        torch.testing.assert_close(value, full[name][3:4], atol=1e-5, rtol=1e-5)


def test_lengths_are_read_from_the_zero_padding_when_not_given():
    values = torch.zeros(3, 5, 2)
    values[0, :5, 0], values[1, :2, 1], values[1, 3, 0] = 1.0, 1.0, 0.0
    assert infer_lengths(values).tolist() == [5, 2, 0]
    model = _model()
    x, lengths = _batch()
    inferred, given = model.transform(x), model.transform(x, lengths)
    for name in given:
        torch.testing.assert_close(inferred[name], given[name])


def test_task_and_decoupling_weights_are_the_codes():
    model = _model()
    assert model.task_weights() == {"output": 1.0, "shared": 1.0, "text": 3.0, "audio": 1.0, "vision": 1.0}
    assert model.loss_weights() == {"recon": 0.1, "specific": 0.1, "triplet": 0.01, "ortho": 0.01}
    x, lengths = _batch()
    out = model.train()(x, lengths, with_losses=True)
    losses = model.losses(out, torch.randn(5))
    expected = losses["task"] + 0.1 * (losses["recon"] + losses["specific"]) + 0.01 * (losses["triplet"]
                                                                                       + losses["ortho"])
    torch.testing.assert_close(losses["total"], expected)


# -- ablations -----------------------------------------------------------------------------------------
def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


ABLATIONS = {
    "only L": {"modalities": "L"}, "only A": {"modalities": "A"}, "only V": {"modalities": "V"},
    "L & A": {"modalities": "LA"}, "L & V": {"modalities": "LV"},
    "w/o Lr": {"use_recon": False}, "w/o Ls": {"use_specific": False}, "w/o Lm": {"use_triplet": False},
    "w/o Lo": {"use_ortho": False}, "w/o FDM": {"fdm": False}, "w/o LFA": {"lfa": False},
    "w/o HP": {"hierarchical": False},
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_an_ablation_removes_its_part(name):
    config = dataclasses.replace(TINY, **ABLATIONS[name])
    assert DLF.ablation(config) == name and DLF.ablation(TINY) is None
    assert DLF.settings(config) == DLF.settings(TINY)  # an ablation is not a setting
    full, model = _model(), _model(config)
    x, lengths = _batch()
    losses = model.losses(model.train()(x, lengths, with_losses=True), torch.randn(5))
    terms = set(losses) - {"total", "task"}
    parts = model.eval().transform(x, lengths)
    assert all(torch.isfinite(v).all() for v in parts.values())
    state = {k for k in model.state_dict()}
    if name in ("w/o Lr", "w/o Ls", "w/o Lm", "w/o Lo"):  # a loss term: the same parameters, one term fewer
        assert _n_params(model) == _n_params(full)
        gone = {"w/o Lr": "recon", "w/o Ls": "specific", "w/o Lm": "triplet", "w/o Lo": "ortho"}[name]
        assert terms == {"recon", "specific", "triplet", "ortho"} - {gone}
        return
    if name != "w/o LFA":  # the LFA is replaced by MulT-style blocks (below), not just removed
        assert _n_params(model) < _n_params(full)
    if name in ("only L", "only A", "only V", "L & A", "L & V"):
        kept = [m for m, letter in zip(DIMS, "LAV", strict=True) if letter in ABLATIONS[name]["modalities"]]
        assert {k.split(".")[1] for k in state if k.startswith("project.")} == set(kept)
        assert {k for k in parts if k.startswith("z_") and k != "z_s"} == {
            *(f"z_{m}" for m in kept), *(f"z_s_{m}" for m in kept)}
        assert set(model.task_weights()) == {"output", "shared", *kept}
    elif name == "w/o FDM":
        assert not any(k.startswith(("shared", "decoders", "align", "shared_branch")) for k in state)
        assert terms == set() and "z_s" not in parts and set(model.task_weights()) == {"output", *DIMS}
    elif name == "w/o LFA":  # every modality queries the other two, instead of language querying both
        assert {k.split(".")[1] for k in state if k.startswith("cross.")} == {
            "text_from_audio", "text_from_vision", "audio_from_text", "audio_from_vision", "vision_from_text",
            "vision_from_audio"}
        assert parts["lf_text"].shape[1] == 2 * TINY.d_model
    elif name == "w/o HP":
        assert not any(k.startswith(("heads", "shared_head")) for k in state)
        assert set(model.task_weights()) == {"output"} and terms == {"recon", "specific", "triplet", "ortho"}


def test_the_lfa_queries_with_language_only():
    model = _model()
    assert set(model.cross) == {"text_from_audio", "text_from_vision"}
    assert [len(model.memory[m].layers) for m in DIMS] == [TINY.memory_layers_self, TINY.memory_layers_cross,
                                                          TINY.memory_layers_cross]
    default = DLF(DLFConfig(device="cpu"), DIMS, dict.fromkeys(DIMS, 6))
    assert [len(default.memory[m].layers) for m in DIMS] == [2, 3, 3]
    assert default.project["text"].kernel_size == (5,) and default.project["text"].bias is None


def test_cpu_threads_are_set_for_the_fit_and_restored():
    before = torch.get_num_threads()
    for threads in (1, 2):
        with cpu_threads(torch.device("cpu"), threads):
            assert torch.get_num_threads() == threads
        assert torch.get_num_threads() == before


def test_config_relations_are_checked():
    with pytest.raises(UserError, match="heads=3 must divide d_model=8"):
        dataclasses.replace(TINY, heads=3)
    with pytest.raises(UserError, match="ortho_chunk=3 must divide d_model=8"):
        dataclasses.replace(TINY, ortho_chunk=3)


# -- the schedule --------------------------------------------------------------------------------------
def _toy(values: list[float], schedule: Schedule):
    """A one-parameter model whose validation loss follows ``values``; returns the history and the
    parameter value after each epoch."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    seen = iter(values)
    after: list[float] = []

    def validate() -> float:
        after.append(float(model.weight.detach()))
        return next(seen)

    history = train_accumulated(model, model.parameters(), lambda index: {"total": (model.weight.sum() - 1).pow(2)},
                                validate, 4, schedule, generator=torch.Generator().manual_seed(0),
                                device=torch.device("cpu"))
    return model, history, after


def test_early_stopping_lr_plateau_and_the_best_checkpoint():
    schedule = Schedule(lr=0.1, minibatch_size=2, accumulate=1, clip_value=None, plateau_factor=0.5,
                        plateau_patience=2, early_stop=4, min_improvement=1e-6, max_epochs=50)
    values = [5.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    model, history, after = _toy(values, schedule)
    assert history["epochs"] == 6 and history["reason"] == "early stop" and history["best_epoch"] == 2
    assert history["best_val"] == 3.0
    lrs = [row["lr"] for row in history["epoch_history"]]
    # the plateau counts epochs 3, 4, 5 as bad; more than 2 of them halve the rate for epoch 6
    assert lrs == [0.1, 0.1, 0.1, 0.1, 0.1, 0.05]
    assert float(model.weight.detach()) == after[1] != after[-1]  # the parameters of the best epoch are restored


def test_accumulation_sums_clipped_gradients_and_skips_the_leftover_batches():
    schedule = Schedule(lr=0.5, minibatch_size=2, accumulate=2, clip_value=0.6, plateau_factor=0.5,
                        plateau_patience=5, early_stop=5, min_improvement=1e-6, max_epochs=1)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    start = model.weight.detach().clone()
    x, y = torch.randn(10, 3), torch.randn(10)
    calls = []

    def loss(index):
        calls.append(index.clone())
        return {"total": (model(x[index]).squeeze(1) - y[index]).abs().mean() * 5}

    history = train_accumulated(model, model.parameters(), loss, lambda: 0.0, 10, schedule,
                                generator=torch.Generator().manual_seed(3), device=torch.device("cpu"))
    assert len(calls) == 4 and history["updates_per_epoch"] == 2 and history["minibatches_skipped_per_epoch"] == 1
    # the same two updates by hand: Adam on g = clip(clip(∇₁) + ∇₂), clipped after every backward
    reference = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.Adam([reference], lr=0.5)
    for group in (calls[:2], calls[2:]):
        grad = torch.zeros_like(reference)
        for index in group:
            value = ((x[index] @ reference.T).squeeze(1) - y[index]).abs().mean() * 5
            grad = (grad + torch.autograd.grad(value, reference)[0]).clamp(-0.6, 0.6)
        reference.grad = grad
        optimizer.step()
    torch.testing.assert_close(model.weight.detach(), reference.detach())


def test_a_schedule_without_updates_is_refused(data):
    with pytest.raises(UserError, match="make 7 full minibatches of 8 per epoch, fewer than accumulate=8: no update"):
        DLF.fit(data, dataclasses.replace(TINY, accumulate=8), 0)


# -- the fit -------------------------------------------------------------------------------------------
def test_fit_records_the_schedule_and_its_own_prediction(data):
    model, history = _fit(data)
    assert history["target"] == "sentiment" and history["epochs"] == 2 and history["updates_per_epoch"] >= 1
    assert history["loss_terms"] == ["task", "recon", "specific", "triplet", "ortho"]
    assert history["lengths_from_padding_mismatch"] == 0
    own = OwnPrediction.of(history)
    assert own is not None and own.component == PREDICTION and own.label == "sentiment"
    parts = model.transform(data.values)
    assert tuple(parts) == DLF.component_names(data.modalities)
    fit = DLFFit(DLF, data, TINY, 0, None)
    fit.model.load_state_dict(model.state_dict())
    rows = fit.target.val_rows
    l1 = (parts[PREDICTION][rows, 0] - fit.target.values[rows]).abs().mean()
    assert float(l1) == pytest.approx(history["best_val"], abs=1e-5)  # the restored checkpoint is the best one


def test_aligned_inputs_share_one_pass_of_the_shared_encoder(aligned):
    model, _ = _fit(aligned)
    values, lengths = aligned.values, {i.modality: i.lengths for i in aligned.inputs}
    out = model.eval()({m: v[:6] for m, v in values.items()}, {m: v[:6] for m, v in lengths.items()})
    separate = {m: model.shared(out.projected[m], out.lengths[m]) for m in model.kept}
    for m in model.kept:
        torch.testing.assert_close(out.shared[m], separate[m], atol=1e-5, rtol=1e-5)


def test_the_target_is_the_sentiment_label_and_must_be_continuous(data):
    assert regression_target(data, None, torch.device("cpu")).name == "sentiment"
    assert regression_target(data, "y_text", torch.device("cpu")).name == "y_text"
    with pytest.raises(UserError, match="dlf regresses a continuous label, but y_all of simseq is categorical"):
        regression_target(data, "y_all", torch.device("cpu"))


# -- the contract every registered method meets, on three sequence inputs --------------------------------
def test_registered_with_three_sequence_inputs():
    assert METHODS.get("dlf") is DLF
    DLF.check_inputs(dict.fromkeys(DIMS, "sequence"))
    with pytest.raises(UserError, match="dlf takes exactly 3 modalities, got 2"):
        DLF.check_inputs({"text": "sequence", "audio": "sequence"})
    with pytest.raises(UserError, match="dlf takes sequence inputs, but text is a pooled feature"):
        DLF.check_inputs({"text": "pooled", "audio": "sequence", "vision": "sequence"})


def test_components_are_finite_and_one_row_per_sample(data):
    model, history = _fit(data)
    parts = model.transform(data.values)
    for name, value in parts.items():
        assert value.ndim == 2 and value.shape[0] == len(data.valid) and torch.isfinite(value).all(), name
    assert "timings" in history and history["n_params"] == sum(p.numel() for p in model.parameters())


def test_gradients_are_finite_and_a_tiny_batch_is_overfitted(data):
    model, _ = _fit(data)
    model = DLF.from_state(TINY, data.dims, model.state_dict())
    fit = DLFFit(DLF, data, TINY, 0, None)
    fit.model = model
    model.train()
    index = torch.arange(8)
    loss = fit.train_losses(index)["total"]
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    config = dataclasses.replace(TINY, text_dropout=0.0, output_dropout=0.0, embed_dropout=0.0, attn_dropout=0.0,
                                 attn_dropout_a=0.0)
    torch.manual_seed(0)
    model = DLF(config, data.dims, {m: v.shape[1] for m, v in data.values.items()})
    fit.model = model
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    with torch.no_grad():
        start = float(fit.train_losses(index)["task"])
    with single_cpu_thread(torch.device("cpu")):
        for _ in range(30):
            optimizer.zero_grad()
            fit.train_losses(index)["total"].backward()
            optimizer.step()
    with torch.no_grad():
        assert float(fit.train_losses(index)["task"]) < 0.3 * start


def test_checkpoint_round_trip(data):
    model, _ = _fit(data)
    again = DLF.from_state(TINY, data.dims, {k: v.clone() for k, v in model.state_dict().items()})
    before, after = model.transform(data.values), again.transform(data.values)
    for name in before:
        torch.testing.assert_close(after[name], before[name])


def test_same_seed_same_result_another_seed_another(data):
    first, _ = _fit(data, seed=0)
    second, _ = DLF.fit(data, TINY, 0)
    other, _ = _fit(data, seed=1)
    a, b, c = (m.transform(data.values) for m in (first, second, other))
    for name in a:
        torch.testing.assert_close(b[name], a[name])
    assert any(not torch.allclose(a[k], c[k]) for k in a)
