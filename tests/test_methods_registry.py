"""Every registered adapter method gets the same checks: component names and shapes, finite
gradients, it can overfit a tiny batch, checkpoint round trip, seeded determinism, and the number
and kind of inputs it declares (accepted within its range, refused in one line outside it; a
method taking three or more modalities is fitted on three).

FAST holds a quick config per method; a method registered without an entry fails the suite.
TRAINING_LOSS says how to compute each method's training objective on a standardised batch (None:
nothing is trained).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

from mmpipe.adapters import METHODS
from mmpipe.adapters.data import ModalityInput, MultimodalFeatures, load_features
from mmpipe.adapters.methods.dlf import DLFConfig
from mmpipe.adapters.methods.multiloreft import MultiLoReFTConfig
from mmpipe.adapters.methods.s3 import S3Config
from mmpipe.adapters.targets import supervised_target
from mmpipe.adapters.training import single_cpu_thread
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store

SIZES = (3, 2, 2)
_BASE = {"sizes": SIZES, "max_epochs": 3, "minibatch_size": 32, "hidden": 8, "device": "cpu"}
FAST = {
    "multiloreft": MultiLoReFTConfig(device="cpu", patience=2, joint_patience=2, max_epochs_shared=2,
                                     max_epochs_private=2, max_epochs_joint=3, minibatch_size=32, hidden=8),
    "inputs": METHODS.get("inputs").Config(),
    "drimu": METHODS.get("drimu").Config(**_BASE),
    "apollo": METHODS.get("apollo").Config(**_BASE, max_epochs_encoders=3),
    "late-fusion": METHODS.get("late-fusion").Config(**_BASE),
    "early-fusion": METHODS.get("early-fusion").Config(**_BASE),
    "cross-attention": METHODS.get("cross-attention").Config(**_BASE),
    "mult-interactions": METHODS.get("mult-interactions").Config(**_BASE),
    "contrastive": METHODS.get("contrastive").Config(**_BASE),
    "s3": S3Config(widths=(8, 8), heads=2, layers=2, granularity=4, expansion=2, minibatch_size=32,
                   max_epochs_specialization=2, max_epochs_selection=2, patience=2, sparsify_batch_size=60,
                   probe_c_grid=(1.0,), target="y_s", device="cpu"),
    "dlf": DLFConfig(d_model=8, heads=2, layers=1, memory_layers_self=1, memory_layers_cross=1, conv_kernel=3,
                     ortho_chunk=4, minibatch_size=16, accumulate=1, max_epochs=3, early_stop=3, target="y_cond",
                     device="cpu"),
}

LossFn = Callable[[torch.nn.Module, MultimodalFeatures, torch.Tensor], torch.Tensor]  # model, data, train rows → loss


def _batch(model, data, rows):
    train1, train2 = model.pair(data.split("train"))
    return model.standardized(train1[rows], train2[rows])


_TARGETS: dict[int, object] = {}


def _supervised(model, data, rows):
    target = _TARGETS.setdefault(id(data), supervised_target(data, None, torch.device("cpu")))
    scaled = model.scaler({k: v[target.train_rows[rows]] for k, v in data.values.items()})
    return model.objective(target, target.train_y[rows], scaled)


TRAINING_LOSS: dict[str, LossFn | None] = {
    "multiloreft": lambda m, d, r: sum(m.losses(m(*_batch(m, d, r)), *_batch(m, d, r)).values()),
    "inputs": None,
    # the encoders' non-adversarial terms: the adversarial one is a game, not a quantity to drive to 0
    "drimu": lambda m, d, r: (lambda o: o["shared"] + o["rec"])(m.objective(*_batch(m, d, r))),
    "apollo": lambda m, d, r: m.latent_objective(r, *_batch(m, d, r), noise=0.0)
    + m.encoder_objective(r, *_batch(m, d, r)),
    "late-fusion": _supervised,
    "early-fusion": _supervised,
    "cross-attention": _supervised,
    "mult-interactions": _supervised,
    "contrastive": lambda m, d, r: m.objective(*_batch(m, d, r)),
    "s3": lambda m, d, r: m.objective(d, d.split_index["train"][r])["spec"],
    "dlf": lambda m, d, r: _dlf_loss(m, d, d.split_index["train"][r]),
}


def _dlf_loss(model: torch.nn.Module, data: MultimodalFeatures, rows: torch.Tensor) -> torch.Tensor:
    y = torch.tensor(data.manifest.table["y_cond"].to_numpy(), dtype=torch.float32)[rows]
    inputs = {i.modality: i.values[rows] for i in data.inputs}
    lengths = {i.modality: i.lengths[rows] for i in data.inputs}
    return model.losses(model(inputs, lengths, with_losses=True), y)["total"]


def test_every_registered_method_has_a_fast_config_and_a_loss():
    assert set(METHODS.names()) == set(FAST), "add the new method to FAST and TRAINING_LOSS"
    assert set(METHODS.names()) == set(TRAINING_LOSS)
    for name, config in FAST.items():
        assert isinstance(config, METHODS.get(name).Config)


@pytest.fixture(scope="module")
def pooled_data(tmp_path_factory) -> MultimodalFeatures:
    store = Store.open(tmp_path_factory.mktemp("registry") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=240))
    return load_features(store, "sim1", {"m1": None, "m2": None})


def _as_sequences(data: MultimodalFeatures) -> MultimodalFeatures:
    """sim1's rows as end-padded sequences of 1–4 steps (x plus noise at every valid step, zeros
    after), for the methods that take sequences."""
    generator = torch.Generator().manual_seed(4)
    inputs = []
    for item in data.inputs:
        n, d = item.values.shape
        lengths = torch.randint(1, 5, (n,), generator=generator)
        steps = item.values[:, None, :] + 0.1 * torch.randn(n, 4, d, generator=generator)
        steps = steps * (torch.arange(4)[None, :, None] < lengths[:, None, None])
        inputs.append(dataclasses.replace(item, values=steps, lengths=lengths))
    return dataclasses.replace(data, inputs=tuple(inputs))


@pytest.fixture(scope="module")
def sequence_data(pooled_data) -> MultimodalFeatures:
    return _as_sequences(pooled_data)


@pytest.fixture
def data(request, pooled_data, sequence_data) -> MultimodalFeatures:
    """A test's inputs: sequences for a method that takes them, pooled rows otherwise; three
    modalities for a method that takes no fewer."""
    name = request.node.callspec.params.get("name") if hasattr(request.node, "callspec") else None
    if name and METHODS.get(name).modality_count[0] >= 3:
        return _as_sequences(three_modalities(pooled_data))
    return sequence_data if name and "sequence" in METHODS.get(name).input_kinds else pooled_data


def three_modalities(data: MultimodalFeatures) -> MultimodalFeatures:
    """``data`` plus a third modality m3: a noisy, rescaled copy of m1 with another width."""
    generator = torch.Generator().manual_seed(3)
    m1 = data.values["m1"]
    m3 = torch.cat([m1, m1[:, :2]], 1) * 2 + 0.1 * torch.randn(len(m1), m1.shape[1] + 2, generator=generator)
    return dataclasses.replace(data, inputs=(*data.inputs, ModalityInput("m3", data.inputs[0].entry, m3)))


_FITTED: dict[tuple[str, int], tuple] = {}


def _fit(name: str, data: MultimodalFeatures, seed: int = 0):
    if (name, seed) not in _FITTED:
        _FITTED[(name, seed)] = METHODS.get(name).fit(data, FAST[name], seed)
    return _FITTED[(name, seed)]


@pytest.mark.parametrize("name", METHODS.names())
def test_components_have_the_declared_names_and_shapes(name, data):
    model, history = _fit(name, data)
    parts = model.transform(data.values)
    assert tuple(parts) == METHODS.get(name).component_names(data.modalities)
    for component, value in parts.items():
        assert value.ndim == 2 and value.shape[0] == len(data.valid) and value.shape[1] >= 1, component
        assert torch.isfinite(value).all(), component
    assert isinstance(history, dict) and "timings" in history


@pytest.mark.parametrize("name", METHODS.names())
def test_gradients_are_finite(name, data):
    model, _ = _fit(name, data)
    loss_fn = TRAINING_LOSS[name]
    if loss_fn is None:
        assert not any(p.requires_grad for p in model.parameters())
        return
    model = METHODS.get(name).from_state(FAST[name], data.dims, model.state_dict())
    model.train()
    loss = loss_fn(model, data, torch.arange(16))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", [n for n in METHODS.names() if TRAINING_LOSS.get(n) is not None])
def test_overfits_a_tiny_batch(name, data):
    torch.manual_seed(0)
    model, _ = _fit(name, data)
    model = METHODS.get(name).from_state(FAST[name], data.dims, model.state_dict())
    model.train()
    rows = torch.arange(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        start = float(TRAINING_LOSS[name](model, data, rows))
    with single_cpu_thread(torch.device("cpu")):
        for _ in range(80):
            optimizer.zero_grad()
            TRAINING_LOSS[name](model, data, rows).backward()
            optimizer.step()
    with torch.no_grad():
        end = float(TRAINING_LOSS[name](model, data, rows))
    assert end < 0.6 * start, (start, end)


@pytest.mark.parametrize("name", METHODS.names())
def test_state_round_trip(name, data):
    model, _ = _fit(name, data)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    again = METHODS.get(name).from_state(FAST[name], data.dims, state)
    before, after = model.transform(data.values), again.transform(data.values)
    for component in before:
        torch.testing.assert_close(after[component], before[component])


@pytest.mark.parametrize("name", METHODS.names())
def test_same_seed_same_result(name, data):
    first, _ = _fit(name, data, seed=0)
    second, _ = METHODS.get(name).fit(data, FAST[name], 0)
    other, _ = _fit(name, data, seed=1)
    a, b, c = (m.transform(data.values) for m in (first, second, other))
    for component in a:
        torch.testing.assert_close(b[component], a[component])
    if TRAINING_LOSS[name] is not None:
        assert any(not torch.allclose(a[k], c[k]) for k in a), "another seed should give another model"


def test_fast_configs_are_real_configs():
    for name, config in FAST.items():
        assert dataclasses.is_dataclass(config) and type(config).__dataclass_params__.frozen, name


@pytest.mark.parametrize("name", METHODS.names())
def test_declared_number_and_kind_of_inputs(name):
    cls = METHODS.get(name)
    low, high = cls.modality_count
    taken = "pooled" if "pooled" in cls.input_kinds else "sequence"
    for count in range(1, 5):
        kinds = {f"m{i}": taken for i in range(1, count + 1)}
        if low <= count and (high is None or count <= high):
            cls.check_inputs(kinds)
        else:
            with pytest.raises(UserError, match=f"{name} takes {cls.accepts()} modalities, got {count}"):
                cls.check_inputs(kinds)
    if "sequence" not in cls.input_kinds:
        kinds = {f"m{i}": "pooled" for i in range(1, low + 1)} | {"m1": "sequence"}
        with pytest.raises(UserError, match="m1 is a sequence feature"):
            cls.check_inputs(kinds)
    if "pooled" not in cls.input_kinds:
        kinds = {f"m{i}": "sequence" for i in range(1, low + 1)} | {"m1": "pooled"}
        with pytest.raises(UserError, match="m1 is a pooled feature"):
            cls.check_inputs(kinds)


@pytest.mark.parametrize("name", [n for n in METHODS.names()  # a method of exactly 3 is fitted on 3 above
                                  if METHODS.get(n).modality_count[0] < 3 and
                                  (METHODS.get(n).modality_count[1] is None or METHODS.get(n).modality_count[1] >= 3)])
def test_three_modality_fit(name, data):
    three = three_modalities(data)
    config = FAST[name]
    if hasattr(config, "sizes"):
        config = dataclasses.replace(config, sizes=(3, 2, 2, 2))
    model, _ = METHODS.get(name).fit(three, config, 0)
    parts = model.transform(three.values)
    assert tuple(parts) == METHODS.get(name).component_names(("m1", "m2", "m3"))
    assert all(torch.isfinite(v).all() and v.shape[0] == len(three.valid) for v in parts.values())
    again = METHODS.get(name).from_state(config, three.dims, model.state_dict())
    for component, value in again.transform(three.values).items():
        torch.testing.assert_close(value, parts[component])
