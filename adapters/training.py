"""Shared training utilities: seeding, device resolution, checks of a config against the data,
device-resident minibatches, validation-based convergence, and the divergence stop.

A fit stops as soon as a loss is NaN or infinite (`check_finite`, read once per epoch on the
epoch's summed losses, so the hot loop never synchronises): it raises a UserError naming the
method, the loss term, the epoch and the stage, and nothing is published.
"""

from __future__ import annotations

import ctypes
import functools
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from mmpipe.store.errors import UserError


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else the CPU) or a torch device name; an unknown name or an
    unavailable CUDA device is a one-line UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r} is not a torch device (cpu, cuda, cuda:1, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name}: CUDA is not available on this machine")
    return device


def check_minibatch(method: str, minibatch_size: int, n_train: int, what: str) -> None:
    """A minibatch holds at most the train rows (a larger one would silently be the whole split,
    and the stored config would not say what was used)."""
    if minibatch_size > n_train:
        raise UserError(f"{method}: minibatch_size={minibatch_size} is larger than the train split of {what} "
                        f"({n_train} rows); set minibatch_size to at most {n_train}")


def check_finite(method: str, losses: dict[str, float], epoch: int, stage: str) -> None:
    """Stop a diverged fit: the first loss term that is NaN or ±inf, in one line."""
    for term, value in losses.items():
        if not math.isfinite(value):
            raise UserError(f"{method} diverged: loss {term} is {value} at epoch {epoch} of stage {stage}; "
                            "lower lr (or raise temperature), and check the config values the loss depends on")


def minibatches(n: int, batch_size: int, generator: torch.Generator, device: torch.device,
                drop_last: bool = True) -> Iterator[torch.Tensor]:
    """Index tensors of a fresh permutation; the data stays where it is and is indexed on device.

    The last short batch is dropped by default: HSIC and InfoNCE estimates on a handful of rows
    are noise, and a fixed batch size keeps the losses comparable across steps.
    """
    order = torch.randperm(n, generator=generator).to(device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


@dataclass
class Plateau:
    """Stage convergence (paper §3.3.1): stop when the validation loss has improved by less than
    ``min_rel_improvement`` (relative to the best so far) for ``patience`` consecutive epochs."""

    patience: int
    min_rel_improvement: float = 1e-3
    best: float = float("inf")
    stale: int = 0
    history: list[float] = field(default_factory=list)

    def update(self, value: float) -> bool:
        """Record one epoch's validation loss; True when the stage has converged."""
        self.history.append(value)
        if self.best == float("inf") or (self.best - value) > self.min_rel_improvement * abs(self.best):
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return self.stale >= self.patience


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process reuse freed heap memory instead of handing it back to the OS and faulting
    it in again (glibc only; elsewhere a no-op). Returns whether the setting took.

    A fit allocates and frees the same few-hundred-KiB tensors every step (a 256-row batch's RBF
    kernels are 256 KiB each). glibc serves blocks above its mmap threshold (128 KiB, raised only
    after a larger mapped block happens to be freed) with fresh mappings, so whether every step
    pays page faults depended on what the process had allocated before: the same MultiLoReFT fit
    took 3.5 times the page faults and ~30 % more wall time after an unrelated refactor. Fixed
    thresholds (64 MiB mmap, 128 MiB trim) make it not depend on history; the memory kept is
    bounded by the trim threshold. Measured in tests/benchmarks/multiloreft_notes.md.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mapped = libc.mallopt(_M_MMAP_THRESHOLD, 64 * 2**20)
        return bool(mapped) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 128 * 2**20))
    except (OSError, AttributeError):
        return False


@contextmanager
def single_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run a CPU fit on one intra-op thread, restoring the previous count afterwards, with freed
    memory kept for reuse (`keep_freed_memory`).

    Adapter tensors are tiny: extra intra-op threads only add synchronisation, and on a busy CPU
    their spin-waiting made fits over ten times slower (the MultiLoReFT trainer does the same).
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
        keep_freed_memory()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
