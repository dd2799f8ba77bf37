"""Per-epoch progress of a fit as data, for a progress bar (`mmpipe fit`): after each epoch a
training loop calls ``epoch_done(stage, epoch, cap, last)``; the listener installed around the
fit (`listening`) receives an `EpochEvent`. The listener lives in a context variable, so a fit
without one (the API, the tests, `reproduce`) pays one lookup per epoch and nothing else; the
loops' text messages (``ProgressFn``) are unchanged.

A stage runs at most ``cap`` epochs and may stop earlier (converged, early stop): its last event
has ``last=True``, whether it reached the cap or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class EpochEvent:
    stage: str  # the training stage, as the run's curves name it (e.g. shared, private, joint; train)
    epoch: int  # epochs done in this stage, 1..cap
    cap: int  # the stage's epoch cap
    last: bool  # the stage's last epoch (stopped early, or at the cap)


EpochListener = Callable[[EpochEvent], None]
_listener: ContextVar[EpochListener | None] = ContextVar("mmpipe_epoch_listener", default=None)


def epoch_done(stage: str, epoch: int, cap: int, last: bool) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(EpochEvent(stage, epoch, cap, last or epoch >= cap))


@contextmanager
def listening(listener: EpochListener | None) -> Iterator[None]:
    """``listener`` receives the epoch events of the loops run inside the ``with`` body."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
