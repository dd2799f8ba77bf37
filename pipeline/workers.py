"""Worker processes that never outlive the process that started them.

Contract:

- ``die_with_parent(parent_pid)``, called first thing in a worker, makes the worker exit when
  ``parent_pid`` is gone, however it ended (SIGKILL included): on Linux the kernel SIGKILLs the
  worker (``PR_SET_PDEATHSIG``); everywhere, a daemon thread checks ``os.getppid()`` every
  ``POLL_S`` seconds and exits the worker when it changes. A parent that died before the call is
  caught by a check right after it. ``PR_SET_PDEATHSIG`` fires when the parent *thread* that
  started the worker exits, so that thread must outlive its workers (a pool shut down before the
  starting function returns does).
- ``worker_pool(jobs)`` yields a spawn-context process pool (``submit`` returns a future) whose
  workers die with this process and never see SIGINT: a terminal's Ctrl-C reaches the whole
  process group, and the parent alone decides what stops. They start with SIGINT blocked (so a
  Ctrl-C while they still import never reaches them) and their initializer ignores it. When the ``with``
  body, or the wait for running calls at its end, is interrupted (KeyboardInterrupt, which the CLI
  also raises on SIGTERM), pending calls are cancelled, the workers are killed, and the interrupt
  propagates; nothing waits for a running call to finish. A worker that dies on its own (killed
  from outside, out of memory) is a ``UserError`` saying so. After any other error in the body the
  running calls finish first, as with a plain pool. A worker killed mid-publish leaves at most a
  ``.tmp-*`` directory, never a listed run.
- ``worker_pool(jobs, on_event=f)`` also carries events from the workers to this process: a
  worker's ``send_event(item)`` (a picklable item, e.g. a fit's epoch progress) reaches ``f``,
  called in order on a thread of this process, until the pool is shut down. Without ``on_event``,
  ``send_event`` does nothing.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from mmpipe.store.errors import UserError

POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_ORPHANED = 1  # exit status of a worker whose parent is gone (nobody is left to read it)


def die_with_parent(parent_pid: int) -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(_ORPHANED)
    threading.Thread(target=_watch, args=(parent_pid,), name="mmpipe-parent-watch", daemon=True).start()


def _watch(parent_pid: int) -> None:
    # portable safety net: a reparented process sees another parent pid
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    os._exit(_ORPHANED)


_events: Any = None  # in a pool worker: the queue its events go to (``worker_pool(on_event=...)``)
_END = None  # put on the queue by the parent when the pool is done: the relay thread stops


def _init_pool_worker(parent_pid: int, events: Any = None) -> None:
    global _events
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    _events = events


def send_event(item: Any) -> None:
    """From a pool worker: pass ``item`` to the parent's ``on_event`` (nothing without one)."""
    if _events is not None:
        _events.put(item)


@contextmanager
def _relay(context: Any, on_event: Callable[[Any], None] | None) -> Iterator[Any]:
    """The queue the workers' events travel on, and a thread that hands each to ``on_event``."""
    if on_event is None:
        yield None
        return
    events = context.Queue()

    def relay() -> None:
        while (item := events.get()) is not _END:
            on_event(item)

    thread = threading.Thread(target=relay, name="mmpipe-worker-events", daemon=True)
    thread.start()
    try:
        yield events
    finally:
        events.put(_END)
        thread.join(timeout=5)
        events.close()


class WorkerPool:
    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        # the executor may start a worker here; SIGINT blocked now is blocked in it from birth
        # (the mask survives fork and exec), and one that arrives meanwhile stays pending for this
        # process until the mask is restored
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self._executor.submit(fn, *args)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def worker_pool(jobs: int, on_event: Callable[[Any], None] | None = None) -> Iterator[WorkerPool]:
    context = multiprocessing.get_context("spawn")
    with _relay(context, on_event) as events, _pool(jobs, context, events) as pool:
        yield pool


@contextmanager
def _pool(jobs: int, context: Any, events: Any) -> Iterator[WorkerPool]:
    before = set(multiprocessing.active_children())
    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                   initializer=_init_pool_worker, initargs=(os.getpid(), events))
    try:
        try:
            yield WorkerPool(executor)
        except Exception as error:
            executor.shutdown(wait=True)  # as a plain pool: the running calls finish first (none if it broke)
            if isinstance(error, BrokenProcessPool):
                raise UserError("a worker process died before its work finished (killed from outside, or out "
                                "of memory?); what was published is kept; run the command again for the rest"
                                ) from None
            raise
        executor.shutdown(wait=True)
    except KeyboardInterrupt:
        # the pool's workers are the children started since ``before``: with a spawn context the
        # executor starts each one in ``submit`` (in this thread), and without max_tasks_per_child
        # it never replaces one. They are killed before the executor shuts down, so that none is
        # still starting while it releases the queues (named semaphores) a starting worker opens.
        # They have no cleanup to do (SIGTERM would end them as abruptly).
        workers = [process for process in multiprocessing.active_children() if process not in before]
        for process in workers:
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            process.join()
        raise
