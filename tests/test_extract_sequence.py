"""`--sequence`: the last layer's frame / token outputs stored as a sequence entry (T, D) + lengths
beside the pooled one, for every encoder (#13 point 3).

Checked: the entry's T is the longest sequence any row can give and each row's length is its own
(token count, conv frames, patches, temporal positions); the sequence agrees with the pooled row
where the pooling is a function of it; it is batch-invariant like the pooled rows; ``max_steps``
averages longer sequences over equal windows; the size on disk is printed first and a store
without the space is refused before anything is written; a run killed mid-way resumes and gives
the uninterrupted run's arrays; the entry loads as (N, T, D) inputs with lengths.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from typer.testing import CliRunner

from mmpipe.adapters.data import load_features
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.folder import FolderConfig
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.extract import ExtractOptions, extract, sequence_feature
from mmpipe.pipeline.windows import window_mean
from mmpipe.store.root import Store
from tests.media import write_image, write_video, write_wav
from tests.tiny_models import tiny_weights  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
runner = CliRunner()
TOLERANCE = 1e-4
SECONDS = (0.3, 2.4, 0.5, 1.6, 0.9)
TEXTS = ("a", "the red dog sat on the woman's ball " * 5, "un chien", "the man on the red ball", "xylophone quartz " * 3)
KIND = {"wavlm": "audio", "wav2vec2": "audio", "bert": "text", "labse": "text", "dino": "image", "r3d18": "video",
        "mvit": "video"}
VIDEOS = 2  # full-size video architectures on CPU: few clips, one run


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    rows = []
    for i, (seconds, text) in enumerate(zip(SECONDS, TEXTS, strict=True)):
        write_wav(root / f"a{i}.wav", seconds, seed=i)
        write_image(root / f"i{i}.png", size=(30 + 7 * i, 40), seed=i)
        if i < VIDEOS:
            write_video(root / f"v{i}.mp4", frames=6 + 9 * i, seed=i)
        rows.append({"sample_id": f"s{i}", "audio": f"a{i}.wav", "text": text, "image": f"i{i}.png",
                     "video": f"v{i % VIDEOS}.mp4"})
    pd.DataFrame(rows).to_parquet(root / "table.parquet")
    pd.DataFrame(rows[:VIDEOS]).to_parquet(root / "videos.parquet")
    return root


def config_of(tree, kind: str) -> FolderConfig:
    table = "videos.parquet" if kind == "video" else "table.parquet"
    return FolderConfig(data_dir=str(tree), table=table, modalities=(f"{kind}:{kind}",))


def weights_of(name: str, tiny_weights):  # noqa: F811
    path = tiny_weights(name)
    return next(path.glob("*.pth")) if path.is_dir() and list(path.glob("*.pth")) else path


Extracted = namedtuple("Extracted", "pooled sequence lengths")


def run(store_dir, tree, name, weights, **options) -> Extracted:
    store = Store.open(store_dir, create=True)
    result = extract(store, "folder", config_of(tree, KIND[name]), ENCODERS.get(name)(), weights=weights,
                     options=ExtractOptions(dtype="float32", num_workers=0, device="cpu", sequence=True, **options),
                     show_progress=False)
    assert result.sequence is not None and result.sequence.entry.is_sequence and result.entry.valid().all()
    entry = result.sequence.entry
    assert entry.name == f"folder.{KIND[name]}.{sequence_feature(name)}" and entry.valid().all()
    return Extracted(result.entry.load().numpy(), entry.load().numpy(), entry.lengths().numpy())


def conv_frames(samples: int, config) -> int:
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        samples = (samples - kernel) // stride + 1
    return max(samples, 0)


def expected_lengths(name: str, weights, tree) -> list[int]:
    """Each row's steps, computed here from the inputs and the checkpoint's config."""
    if KIND[name] == "text":
        tokenizer = transformers.AutoTokenizer.from_pretrained(weights)
        return [len(tokenizer(text)["input_ids"]) for text in TEXTS]
    if KIND[name] == "audio":
        config = transformers.AutoConfig.from_pretrained(weights)
        return [conv_frames(round(seconds * 16_000), config) for seconds in SECONDS]
    if name == "dino":
        config = transformers.AutoConfig.from_pretrained(weights)
        return [1 + (config.image_size // config.patch_size) ** 2] * len(SECONDS)
    return [{"r3d18": 2, "mvit": 8}[name]] * VIDEOS  # 16 frames: r3d18 halves time 3×, mvit's stem once


def pooled_from_sequence(name: str, sequence: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """The pooled row as a function of the stored sequence, where the pooling is one."""
    if KIND[name] == "audio" or name == "r3d18":  # mean over valid frames / temporal positions
        return np.stack([s[:n].mean(axis=0) for s, n in zip(sequence, lengths, strict=True)])
    if name in ("bert", "dino"):  # the [CLS] token of the last hidden state
        return sequence[:, 0]
    return None  # labse: a dense layer over [CLS]; mvit: the class token, not among the frames


def gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).mean())


def test_every_encoder_has_a_case():
    assert set(KIND) == set(ENCODERS.names())


@pytest.mark.parametrize("name", sorted(KIND))
def test_sequence_entry_of_every_encoder(name, tree, tiny_weights, tmp_path):  # noqa: F811
    weights = weights_of(name, tiny_weights)
    default = run(tmp_path / "default", tree, name, weights)
    lengths = expected_lengths(name, tiny_weights(name), tree)
    assert default.lengths.tolist() == lengths
    assert default.sequence.shape[1] >= max(lengths)  # T bounds every row (planned from the headers)
    for row, n in enumerate(lengths):
        assert not default.sequence[row, n:].any()  # zero after each row's end
    derived = pooled_from_sequence(name, default.sequence, default.lengths)
    if derived is not None:
        assert gap(derived, default.pooled) <= TOLERANCE
    if KIND[name] == "video":  # no operation mixes the clips of a batch (shown in test_batch_invariance.py)
        return
    alone = run(tmp_path / "alone", tree, name, weights, batch_size=1)
    assert alone.lengths.tolist() == lengths
    assert gap(alone.sequence, default.sequence) <= TOLERANCE  # batch-invariant like the pooled rows


def test_max_steps_averages_equal_windows_and_keys_a_separate_entry(tree, tiny_weights, tmp_path):  # noqa: F811
    weights = tiny_weights("wavlm")
    full = run(tmp_path / "store", tree, "wavlm", weights)
    bounded = run(tmp_path / "store", tree, "wavlm", weights, max_steps=20)
    assert bounded.sequence.shape[1] == 20 and bounded.lengths.tolist() == np.minimum(full.lengths, 20).tolist()
    expected, _ = window_mean(torch.from_numpy(full.sequence), torch.from_numpy(full.lengths), 20)
    assert gap(bounded.sequence, expected.numpy()) <= 1e-6
    assert np.array_equal(bounded.pooled, full.pooled)  # the pooled entry was found, not recomputed
    names = Store.open(tmp_path / "store").feature_entries("folder.audio.wavlm-seq")
    assert len(names) == 2  # max_steps is part of the key


def test_pooled_first_then_sequence_leaves_the_pooled_entry_untouched(tree, tiny_weights, tmp_path):  # noqa: F811
    args = ["--store", str(tmp_path / "store"), "extract", "folder", "--encoder", "bert", "--data-dir", str(tree),
            "--set", "table=table.parquet", "--set", "modalities=text:text", "--weights", str(tiny_weights("bert")),
            "--workers", "0"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    pooled = Store.open(tmp_path / "store").features("folder.text.bert")
    before = sorted((p, p.stat().st_mtime_ns) for p in pooled.path.rglob("*"))
    second = runner.invoke(app, [*args, "--sequence"])
    assert second.exit_code == 0, second.output
    said = " ".join(second.stderr.split())
    assert "folder.text.bert [" in said and "already stored, nothing to do" in said
    assert "writing about" in said and "folder.text.bert-seq 5 ×" in said  # the size, before writing
    assert sorted((p, p.stat().st_mtime_ns) for p in pooled.path.rglob("*")) == before


def test_an_extraction_larger_than_the_free_space_is_refused_before_writing(tree, tiny_weights, tmp_path, monkeypatch):  # noqa: F811
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=4096))
    result = runner.invoke(app, ["--store", str(tmp_path / "store"), "extract", "folder", "--encoder", "bert",
                                 "--data-dir", str(tree), "--set", "table=table.parquet", "--set", "modalities=text:text",
                                 "--weights", str(tiny_weights("bert")), "--workers", "0", "--sequence"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "free" in lines[0] and "max_steps" in lines[0], lines
    assert not list((tmp_path / "store" / "features").glob("*/*"))  # nothing opened, nothing written


def _markers(store):
    return sorted(store.glob("features/folder.audio.wavlm-seq/.tmp-*/progress/*.json"))


def test_a_killed_sequence_extraction_resumes_to_the_uninterrupted_arrays(tmp_path, tiny_weights):  # noqa: F811
    n, fifo_row = 10, 6
    data = tmp_path / "data"
    rows = []
    for i in range(n):
        write_wav(data / f"s{i}.wav", 0.3 + 0.2 * (i % 4), seed=i)
        rows.append({"sample_id": f"s{i}", "audio": f"s{i}.wav"})
    pd.DataFrame(rows).to_csv(data / "samples.csv", index=False)
    fifo = data / f"s{fifo_row}.wav"
    fifo.unlink()
    os.mkfifo(fifo)  # the run blocks opening it: chunks 0-2 (rows 0-5) are finished by then
    store = tmp_path / "store"
    command = [sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), "extract", "folder", "--encoder", "wavlm",
               "--data-dir", str(data), "--weights", str(tiny_weights("wavlm")), "--set", "modalities=audio:audio",
               "--workers", "0", "--batch-size", "2", "--chunk-rows", "2", "--dtype", "float16", "--sequence",
               "--set", "max_steps=12"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_markers(store)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and len(_markers(store)) == 3, process.stderr.read().decode()[-2000:]

    fifo.unlink()
    write_wav(fifo, 0.5, seed=fifo_row)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    entry = Store.open(store).features("folder.audio.wavlm-seq")
    assert entry.meta["chunks_resumed"] == 3 and entry.meta["chunks_computed"] == 2

    fresh = extract(Store.open(tmp_path / "fresh", create=True), "folder",
                    FolderConfig(data_dir=str(data), modalities=("audio:audio",)), ENCODERS.get("wavlm")(),
                    weights=tiny_weights("wavlm"), show_progress=False,
                    options=ExtractOptions(batch_size=2, num_workers=0, chunk_rows=2, sequence=True, max_steps=12))
    assert fresh.sequence.entry.fingerprint == entry.fingerprint
    for array in ("data", "lengths", "valid"):
        assert np.array_equal(entry.load(array).numpy(), fresh.sequence.entry.load(array).numpy())

    features = load_features(Store.open(store), "folder", {"audio": "wavlm-seq"})
    (audio,) = features.inputs
    assert audio.kind == "sequence" and tuple(audio.values.shape) == (n, 12, 32)
    assert torch.equal(audio.lengths, entry.lengths())
