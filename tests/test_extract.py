"""The extraction engine through the `folder` dataset: row order, layers, failures, idempotence,
resume after SIGKILL, bad directories, named modalities (three of them, two of one kind)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.folder import Folder, FolderConfig, parse_modalities
from mmpipe.pipeline.encoders import ENCODERS
from mmpipe.pipeline.extract import ExtractOptions, extract
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import Modality
from mmpipe.store.root import Store
from tests.media import write_image, write_wav
from tests.synthetic_trees import make_three_modality_tree
from tests.tiny_models import TEXTS, tiny_weights  # noqa: F401

runner = CliRunner()


def _audio_tree(root, n, *, seconds=lambda i: 0.3 + 0.1 * (i % 5)):
    rows = []
    for i in range(n):
        write_wav(root / "audio" / f"s{i:02d}.wav", seconds(i), seed=i)
        rows.append({"sample_id": f"s{i:02d}", "audio": f"audio/s{i:02d}.wav", "emotion": ["ang", "hap", "sad"][i % 3],
                     "group": f"actor{i % 4}"})
    pd.DataFrame(rows).to_csv(root / "samples.csv", index=False)
    return root


def _cli(store, *args):
    return runner.invoke(app, ["--store", str(store), "extract", "folder", *args])


def _snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_image_rows_follow_the_manifest_and_layers_are_stored(tmp_path, tiny_weights):  # noqa: F811
    rows = []
    for i in range(5):
        write_image(tmp_path / "data" / f"im{i}.png", size=(32 + 4 * i, 24), seed=i)
        rows.append({"sample_id": f"im{i}", "image": f"im{i}.png", "caption": TEXTS[i % len(TEXTS)], "y": i * 0.5})
    pd.DataFrame(rows).to_parquet(tmp_path / "data" / "table.parquet")
    store = Store.open(tmp_path / "store", create=True)
    config = FolderConfig(data_dir=str(tmp_path / "data"), table="table.parquet",
                          modalities=("image:image", "caption:text"), labels=("y:continuous:image",))
    weights = tiny_weights("dino")
    options = ExtractOptions(dtype="float32", layers=(1, 2), batch_size=2, num_workers=0, chunk_rows=2)
    result = extract(store, "folder", config, ENCODERS.get("dino")(), weights=weights, options=options,
                     show_progress=False)
    entry = result.entry
    assert result.created and entry.shape == (5, 32) and entry.name == "folder.image.dino"
    assert entry.load("layer1").shape == (5, 32) and entry.valid().all()
    assert set(entry.meta["timings"]) >= {"decode_s", "forward_s", "write_s", "wall_s", "clips_per_s"}
    assert entry.key["modality"] == "image" and entry.key["media_column"] == "image"
    assert entry.key["encoder"]["model_id"] == "facebook/dino-vitb16"
    assert "device" not in entry.key and "batch_size" not in entry.key
    encoder = ENCODERS.get("dino")()
    encoder.load("cpu", weights)
    preparer = encoder.preparer()
    for row in range(5):  # each stored row is the encoding of that manifest row's image
        alone = encoder.encode(preparer.collate([preparer(tmp_path / "data" / f"im{row}.png")])).pooled[0]
        assert torch.allclose(entry.load()[row], alone, atol=1e-4)
    manifest = store.manifest("folder")
    assert manifest.label("y").owner == "image" and set(manifest.table["split"]) <= {"train", "val", "test"}
    text = extract(store, "folder", config, ENCODERS.get("bert")(), weights=tiny_weights("bert"),
                   options=ExtractOptions(num_workers=1), show_progress=False)
    assert text.entry.name == "folder.caption.bert" and text.entry.key["modality"] == "caption"
    assert text.entry.valid().all()


def test_failures_are_recorded_masked_and_fail_the_command(tmp_path, tiny_weights):  # noqa: F811
    data = _audio_tree(tmp_path / "data", 8)
    (data / "audio" / "s03.wav").write_bytes(b"RIFF....not really a wav file" * 10)
    (data / "audio" / "s06.wav").unlink()
    store = tmp_path / "store"
    args = ["--encoder", "wav2vec2", "--data-dir", str(data), "--weights", str(tiny_weights("wav2vec2")),
            "--set", "modalities=audio:audio", "--workers", "2", "--batch-size", "3"]
    result = _cli(store, *args)
    assert result.exit_code == 1, result.output
    assert "2 of 8 clips failed" in result.output and "s03" in result.output and "s06" in result.output
    entry = Store.open(store).features("folder.audio.wav2vec2")
    valid = entry.valid()
    assert valid.tolist() == [i not in (3, 6) for i in range(8)]
    data_rows = entry.load().float()
    assert torch.all(data_rows[[3, 6]] == 0) and torch.all(data_rows[valid].abs().sum(dim=1) > 0)
    assert [f["sample_id"] for f in entry.failures()] == ["s03", "s06"]
    again = _cli(store, *args, "--allow-failures")
    assert again.exit_code == 0 and "nothing to do" in again.output and "2 of 8 clips failed" in again.output


def test_same_command_again_does_nothing_and_says_so(tmp_path, tiny_weights):  # noqa: F811
    data = _audio_tree(tmp_path / "data", 4)
    store = tmp_path / "store"
    args = ["--encoder", "wavlm", "--data-dir", str(data), "--weights", str(tiny_weights("wavlm")),
            "--set", "modalities=audio:audio", "--workers", "0"]
    assert _cli(store, *args).exit_code == 0
    before = _snapshot(store / "features")
    second = _cli(store, *args, "--batch-size", "3", "--workers", "1")  # speed knobs are not in the key
    assert second.exit_code == 0 and "already stored, nothing to do" in second.output
    assert _snapshot(store / "features") == before
    other = _cli(store, *args, "--dtype", "float32")
    assert other.exit_code == 0 and "written" in other.output


@pytest.mark.parametrize("problem", ["no_dir", "no_table", "no_column"])
def test_bad_directories_exit_2_with_one_line(tmp_path, tiny_weights, problem):  # noqa: F811
    data = tmp_path / "data"
    if problem != "no_dir":
        data.mkdir()
    if problem == "no_column":
        pd.DataFrame({"sample_id": ["a"], "sound": ["a.wav"]}).to_csv(data / "samples.csv", index=False)
    result = _cli(tmp_path / "store", "--encoder", "wavlm", "--data-dir", str(data), "--weights",
                  str(tiny_weights("wavlm")), "--set", "modalities=audio:audio")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmpipe: error: folder:")
    assert {"no_dir": "does not exist", "no_table": "no table at", "no_column": "lacks column(s) audio"}[problem] in lines[0]


def test_unknown_set_key_and_layer_are_user_errors(tmp_path, tiny_weights):  # noqa: F811
    data = _audio_tree(tmp_path / "data", 3)  # three groups: one per split
    base = ["--encoder", "wavlm", "--data-dir", str(data), "--weights", str(tiny_weights("wavlm"))]
    assert "unknown --set key" in _cli(tmp_path / "s", *base, "--set", "nope=1").output
    bad_layer = _cli(tmp_path / "s", *base, "--set", "modalities=audio:audio", "--layers", "9")
    assert bad_layer.exit_code == 2 and "hidden layers 0..2" in bad_layer.output


def _markers(store):
    return sorted(store.glob("features/folder.audio.wavlm/.tmp-*/progress/*.json"))


def test_resume_after_sigkill_skips_finished_chunks_and_matches_an_uninterrupted_run(tmp_path, tiny_weights):  # noqa: F811
    n, fifo_row = 14, 6  # chunks of 2 rows: chunks 0-2 finish, then planning chunk 3 blocks on a FIFO
    data = _audio_tree(tmp_path / "data", n)
    fifo = data / "audio" / f"s{fifo_row:02d}.wav"
    fifo.unlink()
    os.mkfifo(fifo)
    store = tmp_path / "store"
    command = [sys.executable, "-m", "mmpipe.pipeline", "--store", str(store), "extract", "folder", "--encoder", "wavlm",
               "--data-dir", str(data), "--weights", str(tiny_weights("wavlm")), "--set", "modalities=audio:audio",
               "--workers", "0", "--batch-size", "2", "--chunk-rows", "2", "--dtype", "float32"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_markers(store)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # it is now blocked opening the FIFO; nothing more can finish
    done = _markers(store)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and len(done) == 3, process.stderr.read().decode()[-2000:]
    tmp_entry = done[0].parent.parent
    finished = {i: (tmp_entry / "data" / "c" / str(i) / "0").stat().st_mtime_ns for i in range(3)}

    fifo.unlink()
    write_wav(fifo, 0.5, seed=fifo_row)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed 3 finished chunk(s)" in " ".join(resumed.stderr.split())
    entry = Store.open(store).features("folder.audio.wavlm")
    assert entry.meta["chunks_resumed"] == 3 and entry.meta["chunks_computed"] == 4
    for i, mtime in finished.items():  # the finished chunks were not written again
        assert (entry.path / "data" / "c" / str(i) / "0").stat().st_mtime_ns == mtime

    fresh_store = Store.open(tmp_path / "fresh", create=True)
    config = FolderConfig(data_dir=str(data), modalities=("audio:audio",))
    fresh = extract(fresh_store, "folder", config, ENCODERS.get("wavlm")(), weights=tiny_weights("wavlm"),
                    options=ExtractOptions(dtype="float32", batch_size=2, num_workers=0, chunk_rows=2),
                    show_progress=False).entry
    assert fresh.fingerprint == entry.fingerprint
    assert np.array_equal(entry.load().numpy(), fresh.load().numpy()) and entry.valid().all()


def test_three_modalities_extract_into_three_named_entries(tmp_path, tiny_weights):  # noqa: F811
    data = make_three_modality_tree(tmp_path / "data")
    config = FolderConfig(data_dir=str(data), modalities=("video:video", "audio:audio", "text:text"),
                          labels=("mood:categorical:shared", "topic:categorical:text"))
    manifest = Folder().manifest(config)
    assert manifest.modalities == (Modality("video", "video", "video"), Modality("audio", "audio", "audio"),
                                   Modality("text", "text", "text"))
    assert {s.name: s.owner for s in manifest.labels} == {"mood": "shared", "topic": "text"}
    store = Store.open(tmp_path / "store", create=True)
    encoders = {"video": "r3d18", "audio": "wavlm", "text": "bert"}
    entries = {}
    for modality, encoder in encoders.items():  # each encoder finds the one modality of its kind
        entries[modality] = extract(store, "folder", config, ENCODERS.get(encoder)(), weights=tiny_weights(encoder),
                                    options=ExtractOptions(dtype="float32", batch_size=4, num_workers=0),
                                    show_progress=False).entry
    assert {m: e.name for m, e in entries.items()} == {m: f"folder.{m}.{e}" for m, e in encoders.items()}
    assert sorted(store.feature_names()) == sorted(e.name for e in entries.values())
    for modality, entry in entries.items():
        assert entry.key["modality"] == entry.meta["modality"] == entry.key["media_column"] == modality
        assert entry.key["manifest_version"] == manifest.version() and entry.shape[0] == 6 and entry.valid().all()
        assert entry.load().abs().sum(dim=1).gt(0).all()
    # the same config again: nothing to do for any of the three
    again = extract(store, "folder", config, ENCODERS.get("bert")(), weights=tiny_weights("bert"),
                    options=ExtractOptions(dtype="float32", num_workers=0), show_progress=False)
    assert not again.created and again.entry.fingerprint == entries["text"].fingerprint


def test_two_modalities_of_one_kind_are_chosen_by_name_and_never_collide(tmp_path, tiny_weights):  # noqa: F811
    data = tmp_path / "data"
    rows = []
    for i in range(4):
        write_wav(data / "near" / f"s{i}.wav", 0.3, seed=i)
        write_wav(data / "far" / f"s{i}.wav", 0.5, seed=10 + i)
        rows.append({"sample_id": f"s{i}", "mic1": f"near/s{i}.wav", "far": f"far/s{i}.wav", "txt": TEXTS[i]})
    pd.DataFrame(rows).to_csv(data / "samples.csv", index=False)
    # name:kind:column reads another column than the modality's name
    config = FolderConfig(data_dir=str(data), modalities=("near:audio:mic1", "far:audio", "caption:text:txt"))
    store = Store.open(tmp_path / "store", create=True)
    wavlm = ENCODERS.get("wavlm")()

    def run(encoder, modality):
        options = ExtractOptions(dtype="float32", num_workers=0, modality=modality)
        return extract(store, "folder", config, encoder, weights=tiny_weights(encoder.name), options=options,
                       show_progress=False)

    with pytest.raises(UserError, match=r"has audio in 2 modalities \(near, far\); choose one with --set modality="):
        run(wavlm, None)
    with pytest.raises(UserError, match="folder caption is text, but the encoder reads audio; folder modalities "
                                        "of kind audio: near, far"):
        run(wavlm, "caption")
    with pytest.raises(UserError, match="has no modality 'left'; valid: near, far, caption"):
        run(wavlm, "left")
    near, far = run(wavlm, "near").entry, run(wavlm, "far").entry
    assert (near.name, far.name) == ("folder.near.wavlm", "folder.far.wavlm")
    assert (near.key["media_column"], far.key["media_column"]) == ("mic1", "far")
    assert near.fingerprint != far.fingerprint and not torch.equal(near.load(), far.load())
    assert run(ENCODERS.get("bert")(), None).entry.name == "folder.caption.bert"


@pytest.mark.parametrize("entries, message", [
    ((), "modalities is empty"),
    (("video",), "must be name:kind or name:kind:column"),
    (("video:video:a:b",), "must be name:kind or name:kind:column"),
    (("video:smell",), "has kind 'smell'"),
    (("m:features",), "has kind 'features'"),
    (("Video:video",), "must be lower-case"),
    (("shared:audio",), "must be lower-case"),
    (("a:audio", "a:video"), "named twice"),
    (("a:audio:x", "b:video:x"), "both read column 'x'"),
    (("a:text:group",), "cannot read the group column"),
])
def test_bad_modality_entries_are_one_line_user_errors(entries, message):
    with pytest.raises(UserError, match=message) as caught:
        parse_modalities(entries)
    assert str(caught.value).startswith("folder: ") and "\n" not in str(caught.value)


def test_label_owners_are_shared_joint_or_a_declared_modality(tmp_path):
    data = _audio_tree(tmp_path / "data", 4)
    config = FolderConfig(data_dir=str(data), modalities=("audio:audio",), labels=("emotion:categorical:audio",))
    manifest = Folder().manifest(config)
    assert manifest.label("emotion").owner == "audio" and manifest.modality_names == ("audio",)
    for owner in ("shared", "joint"):
        relabelled = FolderConfig(data_dir=str(data), modalities=("audio:audio",), labels=(f"emotion:categorical:{owner}",))
        assert Folder().manifest(relabelled).label("emotion").owner == owner
    with pytest.raises(UserError, match="folder: label 'emotion' has owner 'm2'; valid: shared, joint, audio"):
        Folder().manifest(FolderConfig(data_dir=str(data), modalities=("audio:audio",),
                                       labels=("emotion:categorical:m2",)))


def test_a_label_owner_naming_no_modality_exits_2_in_one_line(tmp_path, tiny_weights):  # noqa: F811
    data = _audio_tree(tmp_path / "data", 3)
    result = _cli(tmp_path / "store", "--encoder", "wavlm", "--data-dir", str(data), "--weights",
                  str(tiny_weights("wavlm")), "--set", "modalities=audio:audio", "--set",
                  "labels=emotion:categorical:video")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == ["mmpipe: error: folder: label 'emotion' has owner 'video'; valid: shared, joint, audio"]


def test_modalities_are_set_on_the_command_line(tmp_path, tiny_weights):  # noqa: F811
    data = make_three_modality_tree(tmp_path / "data", n=5)  # three groups
    result = _cli(tmp_path / "store", "--encoder", "wavlm", "--data-dir", str(data), "--weights",
                  str(tiny_weights("wavlm")), "--set", "modalities=video:video,audio:audio,text:text",
                  "--set", "modality=audio", "--workers", "0")
    assert result.exit_code == 0, result.output
    store = Store.open(tmp_path / "store")
    assert store.feature_names() == ["folder.audio.wavlm"]
    assert store.manifest("folder").modality_names == ("video", "audio", "text")


def test_an_encoder_output_that_is_not_finite_in_the_stored_dtype_is_a_failure(tmp_path, tiny_weights):  # noqa: F811
    data = _audio_tree(tmp_path / "data", 6)
    base = ENCODERS.get("wav2vec2")
    calls = []

    class Poisoned(base):  # the 2nd clip encodes to NaN, the 4th beyond float16's range
        def encode(self, inputs, layers=()):
            output = super().encode(inputs, layers)
            calls.append(1)
            if len(calls) in (2, 4):
                pooled = output.pooled.clone()
                pooled[0, 0] = float("nan") if len(calls) == 2 else 1e6
                output = dataclasses.replace(output, pooled=pooled)
            return output

    store = Store.open(tmp_path / "store", create=True)
    config = FolderConfig(data_dir=str(data), modalities=("audio:audio",))
    result = extract(store, "folder", config, Poisoned(), weights=tiny_weights("wav2vec2"),
                     options=ExtractOptions(batch_size=1, num_workers=0), show_progress=False)
    errors = sorted(f["error"] for f in result.failures)
    assert errors == ["the encoder's output exceeds the float16 range (extract with --dtype float32)",
                      "the encoder's output holds NaN or Inf"]
    valid = result.entry.valid()
    assert valid.sum() == 4 and torch.isfinite(result.entry.load()[valid]).all()
