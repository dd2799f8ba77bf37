"""The ray engine: the local engine's extraction on Ray Data, for a GPU node or a cluster.

Contract (what makes its entries bitwise identical to the local engine's, and resumable):

* Ray is an optional extra (``pip install "mmpipe[ray]"``), imported only here; without it the
  engine is a one-line `UserError`.
* Without an address a single-node Ray is started in this process with every CPU of the machine
  and a bounded object store (``min(2 GiB, 30% of RAM)``), no dashboard, quiet logs, and shut down
  at the end, also on errors and Ctrl-C. With an address (``auto``, ``ray://head:10001``) the
  driver joins that cluster and only disconnects at the end. A Ray already initialised in this
  process (a notebook, the tests) is used as it is and left running.
* One dataset row per pending planning chunk (``job.chunks``), carrying the chunk's sources.
  Decoding runs in Ray tasks (one torch thread each, like the local engine's workers): a task
  plans the chunk's batches exactly as the local engine does (`rows.plan_chunk` over the
  preparer's lengths, in the chunk's row order), decodes every row (`rows.decode_row`: a bad file
  is a recorded failure, not an error) and collates each batch (`rows.Collate`); each batch leaves
  the task as soon as it is collated, as one pickled row, so a task holds one batch at a time and
  Ray may split or merge blocks without changing a batch.
* Encoding runs in a fixed pool of actors (``ActorPoolStrategy``): one per GPU of the cluster
  (``num_gpus=1``) when the driver's device is CUDA, else one CPU actor reserving half the
  largest node's CPUs (at least one CPU is always left to the decoding tasks: a pool that takes
  every CPU starves them and the run hangs) and running the driver's number of torch threads
  (torch's CPU kernels give other bits with another thread count, so CPU results equal the local
  engine's on the same machine). Each actor loads its own copy of the encoder
  (``type(encoder)(encoder.options).load(device, weights)``: a ``--weights`` path must be
  readable at the same path on every node, like the media; hub weights come from each node's
  cache) and runs `assemble.encode_batch` under the local engine's autocast. Same batches, same
  device type, same precision: the same bits as the local engine.
* The driver is the single writer: results arrive in any order (``preserve_order`` is off; each
  carries its rows) and go to ``job.assembler``, which writes each chunk as soon as its last row
  is in. ``job.chunks`` holds only the pending chunks, so resuming needs nothing more.
* A task or actor that raises or dies fails the run with that error (actors are not restarted:
  Ray would retry a batch that kills its actor forever); an actor that cannot load the encoder
  (a `UserError`, e.g. no weights at that path on its node) fails it with that one line. The
  chunks already written stay for the next run; the entry is never published incomplete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmpipe.pipeline.engines import local
from mmpipe.pipeline.engines.assemble import encode_batch
from mmpipe.pipeline.engines.job import Job
from mmpipe.pipeline.engines.rows import Collate, chunk_lengths, decode_row, plan_chunk
from mmpipe.store.errors import UserError

INSTALL = 'pip install "mmpipe[ray]"'
OBJECT_STORE_CAP = 2 * 2**30  # bytes: the local Ray's object store is min(this, OBJECT_STORE_SHARE of RAM)
OBJECT_STORE_SHARE = 0.3


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data])
    except ImportError:
        raise UserError(f"the ray engine needs Ray Data, which is not installed: {INSTALL}") from None
    return ray


def local_resources() -> dict[str, Any]:
    """What a local single-node Ray is started with: every CPU this process may use and a bounded
    object store."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"num_cpus": cpus, "object_store_memory": int(min(OBJECT_STORE_CAP, OBJECT_STORE_SHARE * memory))}


QUIET_LOGGERS = (  # informational lines of Ray's that would interleave with the progress bar
    "ray.data",  # "Progress bars disabled", "execution finished in ..."
    "ray._private.authentication.authentication_token_setup",  # "token authentication is enabled" (it is)
)


@contextlib.contextmanager
def _quiet(ray: Any) -> Iterator[None]:
    """Ray's info lines and its own progress bars off for the run; errors still raise."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    context = ray.data.DataContext.get_current()
    shown = context.enable_progress_bars, context.print_on_execution_start
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    context.enable_progress_bars = context.print_on_execution_start = False  # the run's own bar says it
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")  # max_restarts=0
            yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = shown
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def start(address: str | None) -> None:
    """Join the cluster at ``address``, or start a local single-node Ray (`local_resources`).
    Workers' output stays in Ray's session logs (``/tmp/ray/session_latest/logs``); their errors
    reach the driver as exceptions."""
    ray = _import_ray()
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address is not None:
        ray.init(address=address, **quiet)
    else:
        ray.init(**local_resources(), include_dashboard=False, **quiet)


def _ship(value: Any) -> bytes:
    """Pickled here with cloudpickle, unpickled in the worker by this module: a class defined in
    ``__main__`` or a test module (a custom preparer or encoder) travels by value."""
    from ray import cloudpickle  # classes of ``__main__`` or test modules travel by value when registered

    return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _decode_chunks(block: dict[str, np.ndarray], shipped: bytes, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """A Ray task: each planning chunk of ``block`` → its collated batches, yielded one by one."""
    torch.set_num_threads(1)  # as the local engine's decoding workers (and not every core per task)
    preparer = pickle.loads(shipped)
    collate = Collate(preparer)
    for blob in block["chunk"]:
        start_row, stop_row, sources, known = pickle.loads(blob)  # sources, known: by row number
        rows = range(start_row, stop_row)
        for batch in plan_chunk(rows, chunk_lengths(rows, sources, preparer, known), batch_size):
            collated = collate([decode_row(row, sources[row], preparer, known) for row in batch])
            yield {"batch": np.array([pickle.dumps(collated, protocol=pickle.HIGHEST_PROTOCOL)], dtype=object)}


class _Encode:
    """A Ray actor: its own copy of the encoder; collated batch → (rows, encoded, errors, seconds)."""

    def __init__(self, shipped: bytes, device_type: str, threads: int) -> None:
        encoder_class, options, weights, request = pickle.loads(shipped)
        torch.set_num_threads(threads)
        self.device = torch.device(device_type)  # CUDA: the GPU Ray gave this actor (CUDA_VISIBLE_DEVICES)
        self.encoder = encoder_class(options)
        self.request, self.unusable = request, None
        try:
            self.encoder.load(self.device, weights)
        except UserError as error:  # e.g. no weights at that path on this node: sent back with the first batch
            self.unusable = str(error)  # (raised here, Ray would only pass on its traceback's text)
        self.context, _ = local.autocast(self.device)

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.unusable is not None:
            return {"result": np.array([pickle.dumps(self.unusable)], dtype=object)}
        results = []
        for blob in block["batch"]:
            batch = pickle.loads(blob)
            encoded, forward_s = None, 0.0
            if batch.inputs is not None:
                started = time.perf_counter()
                inputs = {k: v.to(self.device) for k, v in batch.inputs.items()}
                with self.context:
                    encoded = encode_batch(self.encoder, inputs, batch.valid_rows, self.request)
                forward_s = time.perf_counter() - started
            results.append(pickle.dumps((batch.rows, encoded, batch.errors, batch.decode_s, forward_s),
                                        protocol=pickle.HIGHEST_PROTOCOL))
        return {"result": np.array(results, dtype=object)}


@dataclass(frozen=True)
class Engine:
    address: str | None  # None: a local single-node Ray

    def run(self, job: Job) -> dict[str, float]:
        """Encode every row of ``job.chunks`` into ``job.assembler``; returns the engine's timings."""
        timings = {"decode_s": 0.0, "wait_s": 0.0, "forward_s": 0.0, "start_s": 0.0}
        if not job.chunks:
            return timings
        ray = _import_ray()
        started = time.perf_counter()
        owned = not ray.is_initialized()
        try:
            with _quiet(ray):
                if owned:
                    start(self.address)
                return _run(ray, job, timings, started)
        finally:
            if owned and ray.is_initialized():
                ray.shutdown()  # a joined cluster is only disconnected from


def _pool(ray: Any, job: Job) -> tuple[int, dict[str, Any], int, float]:
    """(actors, each actor's resources, its torch threads, each decoding task's CPUs)."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    node_cpus = max((int(resources.get("CPU", 0)) for resources in nodes), default=1)
    decode_cpus = 1.0 if node_cpus >= 2 else 0.5
    if job.device.type == "cuda":
        gpus = int(sum(resources.get("GPU", 0) for resources in nodes))
        if gpus == 0:
            raise UserError("the device is CUDA but the Ray cluster has no GPU: run with --device cpu, or join a "
                            "cluster with GPUs (--ray-address)")
        per_node = max(int(resources.get("GPU", 0)) for resources in nodes)
        # the actors of a node reserve at most half its CPUs: the rest decode
        return gpus, {"num_gpus": 1, "num_cpus": min(1.0, node_cpus / (2 * per_node))}, 1, decode_cpus
    # torch's CPU kernels give other bits with other thread counts: the actor runs as many as the
    # local engine's forward would here; Ray's reservation only keeps CPUs free for decoding
    return 1, {"num_cpus": max(1, node_cpus // 2) if node_cpus >= 2 else 0.5}, torch.get_num_threads(), decode_cpus


def _run(ray: Any, job: Job, timings: dict[str, float], started: float) -> dict[str, float]:
    timings["start_s"] = time.perf_counter() - started
    size, resources, threads, decode_cpus = _pool(ray, job)
    chunks = [{"chunk": pickle.dumps((rows.start, rows.stop, {r: job.sources[r] for r in rows},
                                      {r: job.known[r] for r in rows if r in job.known}))}
              for rows in job.chunks]
    dataset = ray.data.from_items(chunks, override_num_blocks=len(chunks))
    dataset = dataset.map_batches(_decode_chunks, batch_size=1, batch_format="numpy", num_cpus=decode_cpus,
                                  fn_kwargs={"shipped": _ship(job.preparer), "batch_size": job.batch_size})
    dataset = dataset.map_batches(
        _Encode, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=size),
        fn_constructor_kwargs={"shipped": _ship((type(job.encoder), job.encoder.options, job.weights, job.request)),
                               "device_type": job.device.type, "threads": threads},
        max_restarts=0, **resources)  # a crash fails the run (restarts would retry a crashing batch forever)
    with local.progress_bar(job.console, job.show_progress) as progress:
        task = progress.add_task(job.description, total=job.total_rows)
        waited = time.perf_counter()
        for row in dataset.iter_rows():
            now = time.perf_counter()
            timings["wait_s"] += now - waited
            if "first_result_s" not in timings:
                timings["first_result_s"] = now - started  # Ray's start, the actors' model loads, one batch
            result = pickle.loads(row["result"])
            if isinstance(result, str):
                raise UserError(result)  # the actor could not load the encoder
            rows, encoded, errors, decode_s, forward_s = result
            timings["decode_s"] += decode_s
            timings["forward_s"] += forward_s
            job.assembler.add(rows, encoded, errors)
            progress.advance(task, len(rows))
            waited = time.perf_counter()
    return timings


def engine(address: str | None = None) -> Engine:
    """The ray engine (`mmpipe.pipeline.extract` calls ``engine(options.ray_address).run(job)``)."""
    _import_ray()  # a missing extra is reported before anything runs
    return Engine(address)
