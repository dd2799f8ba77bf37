"""Training curves (adapters/curves.py): the typed point and its round trip through the record, and
what each shared training loop records: the one-stage loop (adapters/loop.py), the staged trainer
with learned weights (adapters/staged.py), the accumulated MMSA schedule (adapters/accumulation.py);
then the methods that use them, fitted on a small Simulation I (the curves hold the numbers the
loops early-stopped on). Recording changes no number: tests/benchmarks/components_snapshot.py."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mmpipe.adapters import METHODS
from mmpipe.adapters.accumulation import Schedule, train_accumulated
from mmpipe.adapters.curves import LOSS, CurvePoint, Curves, read_curves
from mmpipe.adapters.data import load_features
from mmpipe.adapters.gradnorm import GradNorm
from mmpipe.adapters.loop import train_epochs
from mmpipe.adapters.staged import Stage, StagedTrainer
from mmpipe.pipeline.datasets.sim1 import Sim1Config
from mmpipe.pipeline.simulate import simulate
from mmpipe.store.root import Store
from tests.test_methods_registry import FAST


def test_points_round_trip_through_the_record_as_json():
    curves = Curves()
    curves.add("joint", 1, "train", {"mi": 2.5, "orth": 0.25})
    curves.add("joint", 1, "val", 3.0)  # one unnamed number: term "loss"
    history = json.loads(json.dumps({"curves": curves.rows()}))
    assert read_curves(history) == [CurvePoint("joint", 1, "train", "mi", 2.5),
                                    CurvePoint("joint", 1, "train", "orth", 0.25),
                                    CurvePoint("joint", 1, "val", LOSS, 3.0)]
    assert read_curves({}) == []


class Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))


def test_the_loop_records_the_mean_train_terms_and_the_validation_terms():
    model, curves = Scale(), Curves()
    steps: list[torch.Tensor] = []

    def step(index: torch.Tensor) -> dict[str, float]:
        steps.append(index)
        return {LOSS: float(index.sum()), "part": float(len(index))}

    values = iter([{LOSS: 5.0, "part": 1.0}, {LOSS: 4.0, "part": 2.0}, {LOSS: 4.5, "part": 3.0}])
    history = train_epochs(model, step, 10, batch_size=4, max_epochs=3, patience=5, min_rel_improvement=0.0,
                           generator=torch.Generator().manual_seed(0), device=torch.device("cpu"), curves=curves,
                           validate=lambda: next(values))
    assert history["epochs"] == 3 and history["best_epoch"] == 2
    train = [p for p in curves.points if p.split == "train"]
    # two full batches of 4 per epoch: the mean of the rows' index sums, and of the batch sizes
    for epoch in (1, 2, 3):
        batches = steps[2 * (epoch - 1): 2 * epoch]
        assert [(p.term, p.value) for p in train if p.epoch == epoch] == [
            (LOSS, sum(float(b.sum()) for b in batches) / 2), ("part", 4.0)]
    assert [(p.epoch, p.term, p.value) for p in curves.points if p.split == "val"] == [
        (1, LOSS, 5.0), (1, "part", 1.0), (2, LOSS, 4.0), (2, "part", 2.0), (3, LOSS, 4.5), (3, "part", 3.0)]
    assert {p.stage for p in curves.points} == {"train"}


def test_the_staged_trainer_records_each_stage_from_epoch_1_and_learned_weights():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))

        def losses(self) -> dict[str, torch.Tensor]:
            return {"a": ((self.a - 1) ** 2).sum(), "b": ((self.b + 1) ** 2).sum(), "extra": self.a.sum()}

    model = Two()
    gradnorm = GradNorm(2, device="cpu")
    train_values: list[dict[str, float]] = []

    def train_losses(index, names):
        losses = model.losses()
        train_values.append({k: float(v.detach()) for k, v in losses.items()})
        return losses

    def backward(values):
        gradnorm.backward([values["a"], values["b"]], [model.a, model.b], [model.a, model.b])

    def validation():
        with torch.no_grad():
            return {k: float(v) for k, v in model.losses().items() if k != "extra"}

    trainer = StagedTrainer(model, train_losses=train_losses, validation_losses=validation, n_train=8, batch_size=4,
                            generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    sgd = lambda: torch.optim.SGD(model.parameters(), lr=0.1)  # noqa: E731
    history = trainer.run([Stage("first", ("a",), sgd, patience=10, max_epochs=2),
                           Stage("second", ("a", "b"), sgd, patience=10, max_epochs=3, backward=backward,
                                 weights=lambda: gradnorm.named_weights(("a", "b")))])
    points = history.curves.points
    assert [(p.stage, p.epoch) for p in points if p.split == "val" and p.term == "a"] == [
        ("first", 1), ("first", 2), ("second", 1), ("second", 2), ("second", 3)]
    # train: the mean over the epoch's two batches of every term train_losses gave, the stage's first
    first_epoch = [(p.term, p.value) for p in points if p.split == "train" and p.stage == "first" and p.epoch == 1]
    expected = {k: (train_values[0][k] + train_values[1][k]) / 2 for k in ("a", "b", "extra")}
    assert [t for t, _ in first_epoch] == ["a", "b", "extra"]
    assert dict(first_epoch) == pytest.approx(expected, rel=1e-6)
    weights = [p for p in points if p.split == "weight"]
    assert {p.stage for p in weights} == {"second"} and len(weights) == 6
    assert [p.value for p in weights[-2:]] == gradnorm.weights.detach().tolist()
    assert sum(p.value for p in weights[:2]) == pytest.approx(2.0)  # GradNorm keeps Σ w = T


def test_the_accumulated_schedule_records_train_terms_and_the_monitored_validation_loss():
    model = Scale()
    x = torch.linspace(-1, 1, 16)

    def losses(index):
        fit = ((model.w * x[index] - 2 * x[index]) ** 2).mean()
        return {"task": fit, "total": 2 * fit}

    schedule = Schedule(lr=0.05, minibatch_size=4, accumulate=2, clip_value=None, plateau_factor=0.5,
                        plateau_patience=5, early_stop=10, min_improvement=0.0, max_epochs=3)
    history = train_accumulated(model, model.parameters(), losses, lambda: float((model.w - 2).abs()), 16, schedule,
                                generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    points = read_curves(history)
    assert sorted({(p.split, p.term) for p in points}) == [("train", "task"), ("train", "total"), ("val", LOSS)]
    for epoch in (1, 2, 3):
        task, total = (next(p.value for p in points if p.epoch == epoch and p.term == t) for t in ("task", "total"))
        assert total == pytest.approx(2 * task)
    assert [row for row in history["epoch_history"]] == [{"epoch": e, "lr": 0.05} for e in (1, 2, 3)]


@pytest.fixture(scope="module")
def sim1(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("curves") / "store", create=True)
    simulate(store, "sim1", Sim1Config(n=240))
    return load_features(store, "sim1", {"m1": None, "m2": None})


@pytest.mark.parametrize("name", ["multiloreft", "drimu", "apollo", "late-fusion"])
def test_methods_record_their_curves(name, sim1):
    _, history = METHODS.get(name).fit(sim1, FAST[name], 0)
    points = read_curves(history)
    stages = [s["stage"] for s in history["stage_history"] if not s["reason"].startswith("skipped")]
    assert list(dict.fromkeys(p.stage for p in points)) == stages
    for row in history["stage_history"]:
        if row["reason"].startswith("skipped"):
            continue
        epochs = sorted({p.epoch for p in points if p.stage == row["stage"] and p.split == "train"})
        n = row["epochs"] if "epochs" in row else row["end_epoch"] - row["start_epoch"]
        assert epochs == list(range(1, n + 1))
    terms = {(p.split, p.term) for p in points}
    if name == "multiloreft":  # every validation loss, the trained ones, GradNorm's weights of the joint stage
        assert {("val", t) for t in ("indep", "orth", "mi")} <= terms and ("weight", "mi") in terms
        for row in history["rank_history"]:  # the val curve holds the numbers the plateau read
            start = next(s["start_epoch"] for s in history["stage_history"] if s["stage"] == row["stage"])
            for term in ("indep", "orth", "mi"):
                assert [p.value for p in points if p.stage == row["stage"] and p.split == "val" and p.term == term
                        and p.epoch == row["epoch"] - start] == [row[f"val_{term}"]]
    elif name == "drimu":
        assert {("train", t) for t in (LOSS, "shared", "unique", "rec", "discriminator")} <= terms
        assert {("val", t) for t in (LOSS, "shared", "unique", "rec")} <= terms
    elif name == "apollo":  # the latent stage has no validation rows
        assert not any(p.split == "val" and p.stage == "latents" for p in points)
        assert any(p.split == "val" and p.stage == "encoders" for p in points)
    else:
        assert terms == {("train", LOSS), ("val", LOSS)}
