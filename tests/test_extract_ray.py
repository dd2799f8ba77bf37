"""`--engine ray`: the same extraction on Ray Data (decoding tasks, one encoder actor, the driver as
the single writer) gives the local engine's entries bit for bit (#13 point 4).

Checked on one synthetic audio tree with a corrupt and a missing clip, small chunks and batches:
the pooled entry with ``--layers`` and the ``--sequence`` entry equal the local engine's (arrays,
masks, lengths, recorded failures, fingerprints); a run whose writer fails after two chunks, and
one whose encoder actor crashes, raise instead of publishing, and the next run computes only the
pending chunks; the CLI runs it; without Ray installed it is a one-line error.

One local Ray (2 CPUs: one encoder actor, decoding tasks on the other CPU) is started for the
module; each ray extraction then costs the actor's start and model load (a few seconds).
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.folder import FolderConfig
from mmpipe.pipeline.encoders.wavlm import WavLM
from mmpipe.pipeline.engines import ray as ray_engine  # imports Ray only when run
from mmpipe.pipeline.engines.assemble import Assembler
from mmpipe.pipeline.extract import ExtractOptions, extract
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store
from tests.media import write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")]  # Ray's own fields
runner = CliRunner()
N, BROKEN, MISSING = 14, 4, 9
CHUNK_ROWS, BATCH = 3, 2  # 5 chunks, batches of 2 sorted by length within each chunk
OPTIONS = {"dtype": "float32", "layers": (1,), "sequence": True, "chunk_rows": CHUNK_ROWS, "batch_size": BATCH,
           "num_workers": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module (the engine uses a running Ray as it is and leaves it running).
    The dev extra installs Ray, so CI runs these tests; without it they are skipped."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray_engine.start(None)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    rows = []
    for i in range(N):
        write_wav(root / f"s{i:02d}.wav", 0.3 + 0.15 * (i % 5), seed=i)
        rows.append({"sample_id": f"s{i:02d}", "audio": f"s{i:02d}.wav"})
    (root / f"s{BROKEN:02d}.wav").write_bytes(b"RIFF....not a wav file" * 8)
    (root / f"s{MISSING:02d}.wav").unlink()
    pd.DataFrame(rows).to_csv(root / "samples.csv", index=False)
    return root


def config_of(tree) -> FolderConfig:
    return FolderConfig(data_dir=str(tree), modalities=("audio:audio",))


def run(store_dir, tree, weights, encoder=None, **options):
    store = Store.open(store_dir, create=True)
    return extract(store, "folder", config_of(tree), encoder or WavLM(), weights=weights,
                   options=ExtractOptions(**{**OPTIONS, **options}), show_progress=False)


def arrays(pooled, sequence) -> dict[str, object]:
    return {"pooled": np.asarray(pooled.load()), "layer1": np.asarray(pooled.load("layer1")),
            "valid": np.asarray(pooled.valid()), "sequence": np.asarray(sequence.load()),
            "lengths": np.asarray(sequence.lengths()), "seq_valid": np.asarray(sequence.valid()),
            "failures": (pooled.failures(), sequence.failures()),
            "fingerprints": (pooled.fingerprint, sequence.fingerprint)}


def assert_identical(pooled, sequence, local_result):
    """The ray engine's pooled and sequence entries hold the local engine's bits."""
    got, expected = arrays(pooled, sequence), arrays(local_result.entry, local_result.sequence.entry)
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name  # bit for bit
        else:
            assert got[name] == value, name
    assert pooled.meta["engine"] == "ray" and local_result.entry.meta["engine"] == "local"


@pytest.fixture(scope="module")
def local_result(tree, tiny_weights, tmp_path_factory):  # noqa: F811
    result = run(tmp_path_factory.mktemp("local"), tree, tiny_weights("wavlm"))
    assert [f["sample_id"] for f in result.failures] == [f"s{BROKEN:02d}", f"s{MISSING:02d}"]
    assert result.entry.valid().sum() == N - 2
    return result


class Crashing(WavLM):
    """Its actor's process dies on the first batch (like a segfault or the OOM killer)."""

    def encode(self, batch, layers=()):
        os._exit(3)


class NoWeightsHere(WavLM):
    """Loads in the driver only, as if the weights were not on the actor's node."""

    driver = os.getpid()

    def load(self, device, weights=None):
        if os.getpid() != self.driver:
            raise UserError(f"no checkpoint at {weights} on this node")
        super().load(device, weights)


@contextlib.contextmanager
def shipped_by_value():
    """The actors get this file's encoder classes themselves, not an import of this test module."""
    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _markers(store_dir) -> list:
    return sorted(store_dir.glob("features/folder.audio.wavlm/.tmp-*/progress/*.json"))


def test_a_crashed_encoder_actor_fails_the_run_and_publishes_nothing(cluster, tree, tiny_weights, tmp_path):  # noqa: F811
    from ray.exceptions import RayError

    with shipped_by_value(), pytest.raises(RayError, match="(?i)actor.*died"):
        run(tmp_path / "store", tree, tiny_weights("wavlm"), encoder=Crashing(), engine="ray")
    assert not Store.open(tmp_path / "store").feature_entries("folder.audio.wavlm")
    assert not _markers(tmp_path / "store")  # nothing was encoded, so no chunk was written


def test_an_actor_that_cannot_load_the_encoder_is_a_one_line_error(cluster, tree, tiny_weights, tmp_path):  # noqa: F811
    with shipped_by_value(), pytest.raises(UserError) as raised:
        run(tmp_path / "store", tree, tiny_weights("wavlm"), encoder=NoWeightsHere(), engine="ray")
    assert str(raised.value) == f"no checkpoint at {tiny_weights('wavlm')} on this node"
    assert not Store.open(tmp_path / "store").feature_entries("folder.audio.wavlm")


def _cli(store, tree, weights, *extra):
    return runner.invoke(app, ["--store", str(store), "extract", "folder", "--encoder", "wavlm", "--data-dir",
                               str(tree), "--set", "modalities=audio:audio", "--weights", str(weights), "--workers",
                               "0", "--device", "cpu", "--dtype", "float32", "--chunk-rows", str(CHUNK_ROWS),
                               "--batch-size", str(BATCH), *extra])


def test_the_cli_ray_engine_writes_the_local_engines_entries_bit_for_bit(cluster, tree, tiny_weights,  # noqa: F811
                                                                         local_result, tmp_path):
    """Also after the crashed run above: the module's Ray is left usable."""
    result = _cli(tmp_path / "store", tree, tiny_weights("wavlm"), "--engine", "ray", "--layers", "1", "--sequence",
                  "--allow-failures")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "2 of 14 clips failed" in said and f"s{BROKEN:02d}" in said and "written" in said
    store = Store.open(tmp_path / "store")
    pooled, sequence = store.features("folder.audio.wavlm"), store.features("folder.audio.wavlm-seq")
    assert_identical(pooled, sequence, local_result)
    timings = pooled.meta["timings"]
    assert timings["rows"] == N and timings["forward_s"] > 0 and timings["first_result_s"] >= timings["start_s"]


def test_an_interrupted_extraction_resumes_on_ray_with_the_pending_chunks_only(cluster, tree, tiny_weights,  # noqa: F811
                                                                                local_result, tmp_path,
                                                                                monkeypatch):
    store, written = tmp_path / "store", []
    real = Assembler._write

    def fail_after_two(self, output, buffer):
        if output.kind == "pooled" and len(written) == 2:
            raise OSError("disk went away")
        real(self, output, buffer)
        if output.kind == "pooled":
            written.append(buffer.index)

    with monkeypatch.context() as patch:
        patch.setattr(Assembler, "_write", fail_after_two)
        with pytest.raises(OSError, match="disk went away"):
            run(store, tree, tiny_weights("wavlm"))  # the local engine, stopped after two pooled chunks
    assert len(_markers(store)) == 2 and not Store.open(store).feature_entries("folder.audio.wavlm")
    resumed = run(store, tree, tiny_weights("wavlm"), engine="ray")
    assert resumed.chunks_resumed == 2 and resumed.chunks_computed == -(-N // CHUNK_ROWS) - 2
    assert resumed.sequence.chunks_resumed == len(written)  # the sequence chunks written before it stopped
    assert_identical(resumed.entry, resumed.sequence.entry, local_result)


def test_without_ray_installed_the_ray_engine_is_one_line(tree, tiny_weights, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    result = _cli(tmp_path / "store", tree, tiny_weights("wavlm"), "--engine", "ray")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "mmpipe[ray]"' in lines[0], lines
    assert not (tmp_path / "store" / "features").exists() or not list((tmp_path / "store" / "features").iterdir())
