"""The shared staged trainer: stages in order, their losses and optimisers, plateau and cap,
skipped stages, hooks that rebuild the optimiser, and the history it returns."""

import torch
from torch import nn

from mmpipe.adapters.staged import EpochContext, Stage, StagedTrainer


class Toy(nn.Module):
    """Two parameters, one loss each: "a" pulls a towards 1, "b" pulls b towards -1."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(3))
        self.b = nn.Parameter(torch.zeros(3))
        self.x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))

    def losses(self, rows: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        out = {"a": ((rows * (self.a - 1)) ** 2).mean(), "b": ((rows * (self.b + 1)) ** 2).mean()}
        return {n: out[n] for n in names}


def _trainer(model: Toy, progress=None) -> StagedTrainer:
    def validation() -> dict[str, float]:
        with torch.no_grad():
            return {k: float(v) for k, v in model.losses(model.x, ("a", "b")).items()}

    return StagedTrainer(model, train_losses=lambda index, names: model.losses(model.x[index], names),
                         validation_losses=validation, n_train=32, batch_size=8,
                         generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                         describe=lambda: {"norm_a": round(float(model.a.detach().norm()), 3)}, progress=progress)


def test_stages_train_their_own_parameters_and_record_history():
    model = Toy()
    sgd = lambda params: (lambda: torch.optim.SGD(params, lr=0.1))  # noqa: E731
    messages = []
    history = _trainer(model, messages.append).run([
        Stage("first", ("a",), sgd([model.a]), patience=100, max_epochs=3),
        Stage("nothing", (), sgd([model.b]), patience=1, max_epochs=5),
        Stage("second", ("b",), sgd([model.b]), patience=100, max_epochs=12),
    ])
    assert model.a.detach().gt(0).all() and model.b.detach().lt(0).all()
    assert history.stages == [
        {"stage": "first", "start_epoch": 0, "end_epoch": 3, "reason": "epoch cap", "losses": ["a"]},
        {"stage": "nothing", "start_epoch": 3, "end_epoch": 3, "reason": "skipped: no active loss"},
        {"stage": "second", "start_epoch": 3, "end_epoch": 15, "reason": "epoch cap", "losses": ["b"]},
    ]
    assert history.n_epochs == 15 and [row["epoch"] for row in history.epochs] == list(range(1, 16))
    assert set(history.epochs[0]) == {"epoch", "stage", "norm_a", "val_a", "val_b"}
    assert history.epochs[-1]["norm_a"] == history.epochs[3]["norm_a"]  # a did not move in "second"
    [message] = messages  # every 10th epoch (and on convergence)
    assert message.startswith("second epoch 10: val b=") and " norm_a=" in message


def test_plateau_ends_a_stage_and_hooks_may_rebuild_the_optimizer():
    model = Toy()
    built, seen = [], []

    def optimizer() -> torch.optim.Optimizer:
        built.append(1)
        return torch.optim.SGD([model.a], lr=0.5)

    def hook(context: EpochContext) -> None:
        seen.append((context.epoch, set(context.val)))
        if context.epoch == 2:
            context.rebuild_optimizer()

    history = _trainer(model).run([Stage("only", ("a",), optimizer, patience=2, max_epochs=500,
                                         min_rel_improvement=0.5, after_epoch=(hook,))])
    [stage] = history.stages
    assert stage["reason"] == "converged" and stage["end_epoch"] < 500
    assert len(built) == 2  # at the start and once by the hook
    assert seen[0] == (1, {"a", "b"}) and len(seen) == stage["end_epoch"]


def test_custom_backward_weights_the_losses():
    model = Toy()
    calls = []

    def backward(losses):
        calls.append(tuple(losses))
        (0.0 * losses["a"] + losses["b"]).backward()

    _trainer(model).run([Stage("both", ("a", "b"), lambda: torch.optim.SGD([model.a, model.b], lr=0.1),
                               patience=10, max_epochs=1, backward=backward)])
    assert calls == [("a", "b")] * 4  # 32 rows, batches of 8
    assert torch.equal(model.a.detach(), torch.zeros(3)) and model.b.detach().lt(0).all()
