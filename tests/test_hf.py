"""Hugging Face datasets in and out: `mmpipe extract hf` reads a saved Dataset/DatasetDict (media
embedded in its Arrow files) or an imagefolder where it lies, and `mmpipe export` writes what the
store holds back as a DatasetDict or Parquet that `datasets.load_from_disk` reads with the same
values."""

from __future__ import annotations

import pickle

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import mmpipe.pipeline.cli.export  # noqa: F401  (registers `mmpipe export` until the CLI imports it)
from mmpipe.pipeline.cli import app
from mmpipe.pipeline.datasets.hf import HF, HFConfig
from mmpipe.pipeline.embedded import EmbeddedMedia
from mmpipe.store.errors import UserError
from mmpipe.store.root import Store
from tests.media import write_image, write_wav
from tests.tiny_models import TEXTS, tiny_weights  # noqa: F401

runner = CliRunner()
N = 12
MOODS = ["calm", "angry", "sad"]


def _invoke(store, *args):
    return runner.invoke(app, ["--store", str(store), *args])


def _refused(result, *words):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("mmpipe: error:"), result.output
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def _columns(media):
    return {"image": [str(write_image(media / f"i{i}.png", size=(20 + 2 * i, 16 + i), seed=i)) for i in range(N)],
            "audio": [str(write_wav(media / f"a{i}.wav", 0.2 + 0.02 * i, seed=i)) for i in range(N)],
            "caption": [TEXTS[i % len(TEXTS)] for i in range(N)], "mood": [i % 3 for i in range(N)],
            "score": [0.25 * i for i in range(N)], "speaker": [f"s{i // 2}" for i in range(N)]}


def _dataset(columns, rows=slice(None)):
    features = datasets.Features({"image": datasets.Value("string"), "audio": datasets.Value("string"),
                                  "caption": datasets.Value("string"), "mood": datasets.ClassLabel(names=MOODS),
                                  "score": datasets.Value("float32"), "speaker": datasets.Value("string")})
    data = datasets.Dataset.from_dict({k: v[rows] for k, v in columns.items()}, features=features)
    # paths cast to Image/Audio: save_to_disk then embeds the files' bytes in the Arrow files
    return data.cast_column("image", datasets.Image()).cast_column("audio", datasets.Audio())


@pytest.fixture(scope="module")
def hf_store(tmp_path_factory, tiny_weights):  # noqa: F811
    """One saved Dataset with Image, Audio, text and label columns, extracted as `toy` (image and audio)."""
    root = tmp_path_factory.mktemp("hf")
    columns = _columns(root / "media")
    _dataset(columns).save_to_disk(str(root / "saved"))
    store = root / "store"
    base = ["--set", f"path={root / 'saved'}", "--set", "m1=image", "--set", "m2=audio", "--set", "m3=caption",
            "--set", "labels=mood,score:continuous:m2", "--set", "group=speaker", "--name", "toy",
            "--workers", "0", "--batch-size", "4", "--dtype", "float32"]
    for encoder in ("dino", "wav2vec2"):
        result = _invoke(store, "extract", "hf", "--encoder", encoder, "--weights", str(tiny_weights(encoder)), *base)
        assert result.exit_code == 0, result.output
    return root, store, columns


def test_a_saved_dataset_becomes_a_named_manifest_with_its_labels_and_group_split(hf_store):
    root, store, columns = hf_store
    opened = Store.open(store)
    assert opened.datasets() == ["toy"]
    manifest = opened.manifest("toy")
    table = manifest.table
    assert [(m.name, m.kind, m.column) for m in manifest.modalities] == [
        ("m1", "image", "image"), ("m2", "audio", "audio"), ("m3", "text", "caption")]
    assert table["mood"].tolist() == [MOODS[i % 3] for i in range(N)]  # class names, not codes
    assert {(s.name, s.kind, s.owner) for s in manifest.labels} == {("mood", "categorical", "joint"),
                                                                     ("score", "continuous", "m2")}
    assert table["caption"].tolist() == columns["caption"]
    assert table["image"].str.startswith("arrow://").all()  # embedded: no copy of the media anywhere
    assert set(table["split"]) == {"train", "val", "test"} and table.groupby("group")["split"].nunique().max() == 1
    assert "seed 0" in manifest.split_protocol
    assert {e.name for e in opened.feature_entries()} == {"toy.m1.dino", "toy.m2.wav2vec2"}
    # the manifest file reads back as the version the features name
    assert {e.meta["manifest_version"] for e in opened.feature_entries()} == {manifest.version()}


def test_embedded_media_give_the_features_of_the_same_files_read_from_disk(hf_store, tiny_weights):  # noqa: F811
    """The same images and clips as files (the folder dataset) and as Arrow cells give equal embeddings."""
    root, store, columns = hf_store
    pd.DataFrame({"sample_id": [str(i) for i in range(N)], "photo": columns["image"], "clip": columns["audio"],
                  "mood": [MOODS[i % 3] for i in range(N)]}).to_csv(root / "samples.csv", index=False)
    for encoder, modality in (("dino", "photo"), ("wav2vec2", "clip")):
        result = _invoke(store, "extract", "folder", "--data-dir", str(root), "--encoder", encoder,
                         "--weights", str(tiny_weights(encoder)), "--set", "modalities=photo:image,clip:audio",
                         "--name", "files", "--set", f"modality={modality}", "--workers", "0", "--dtype", "float32")
        assert result.exit_code == 0, result.output
    opened = Store.open(store)
    for embedded, files in (("toy.m1.dino", "files.photo.dino"), ("toy.m2.wav2vec2", "files.clip.wav2vec2")):
        a, b = opened.features(embedded).load(), opened.features(files).load()
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), embedded


def test_an_embedded_cell_is_picklable_and_decodes_through_datasets(hf_store):
    root, _, columns = hf_store
    cell = pickle.loads(pickle.dumps(EmbeddedMedia(str(root / "saved"), None, "image", 3)))
    images = datasets.load_from_disk(str(root / "saved")).select_columns(["image"])
    assert np.array_equal(np.asarray(cell.image()), np.asarray(images[3]["image"].convert("RGB")))
    assert cell.audio_length() == 0  # an image cell has no audio header
    clip = EmbeddedMedia(str(root / "saved"), None, "audio", 5)
    assert clip.audio_length() == round((0.2 + 0.1) * 16_000) and clip.audio(16_000).shape == (clip.audio_length(),)


def test_export_of_a_feature_entry_loads_back_with_the_same_values(hf_store, tmp_path):
    root, store, _ = hf_store
    opened = Store.open(store)
    entry = opened.features("toy.m2.wav2vec2")
    manifest = opened.manifest("toy", entry.meta["manifest_version"])
    values = entry.load().float().numpy()
    result = _invoke(store, "export", "toy.m2.wav2vec2", "--format", "hf", "--out", str(tmp_path / "hf"))
    assert result.exit_code == 0, result.output
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(loaded) == {"train", "validation", "test"}
    result = _invoke(store, "export", "toy.m2.wav2vec2", "--format", "parquet", "--out", str(tmp_path / "pq"))
    assert result.exit_code == 0, result.output
    for hf_split, split in (("train", "train"), ("validation", "val"), ("test", "test")):
        rows = np.flatnonzero(manifest.split_mask(split))
        for table in (loaded[hf_split].to_pandas(), pd.read_parquet(tmp_path / "pq" / f"{hf_split}.parquet")):
            assert table["sample_id"].tolist() == manifest.table["sample_id"].iloc[rows].tolist()
            assert set(table["split"]) == {split}
            assert table["mood"].tolist() == manifest.table["mood"].iloc[rows].tolist()
            assert np.allclose(table["score"], manifest.table["score"].iloc[rows])
            assert table["valid"].all()
            assert np.array_equal(np.stack(table["features"].to_numpy()), values[rows])


def test_export_of_a_run_writes_its_components_per_split(tmp_path):
    store = tmp_path / "store"
    for step in (["simulate", "sim1", "--n", "400"],
                 ["fit", "multiloreft", "--dataset", "sim1", "--seeds", "0", "--set", "max_epochs_shared=1",
                  "--set", "max_epochs_private=1", "--set", "max_epochs_joint=1", "--set", "device=cpu"]):
        assert _invoke(store, *step).exit_code == 0
    run = Store.open(store).runs()[0]
    manifest = Store.open(store).manifest("sim1")
    assert _invoke(store, "export", run.run_id[:16], "--out", str(tmp_path / "out")).exit_code == 0
    loaded = datasets.load_from_disk(str(tmp_path / "out"))
    components = run.components()
    rows = np.flatnonzero(manifest.split_mask("test"))
    test = loaded["test"]
    assert test["sample_id"][:] == manifest.table["sample_id"].iloc[rows].tolist()
    for name, values in components.items():
        assert np.array_equal(np.asarray(test[name][:], dtype=np.float32), values.numpy()[rows]), name


def test_an_empty_cell_is_a_masked_row_and_exports_as_null(tmp_path, tiny_weights):  # noqa: F811
    columns = _columns(tmp_path / "media")
    data = _dataset(columns).cast_column("audio", datasets.Audio(decode=False))
    data = data.map(lambda row, i: {"audio": None if i == 4 else row["audio"]}, with_indices=True)
    data.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "saved"))
    store = tmp_path / "store"
    result = _invoke(store, "extract", "hf", "--encoder", "wav2vec2", "--weights", str(tiny_weights("wav2vec2")),
                     "--set", f"path={tmp_path / 'saved'}", "--set", "m1=audio", "--set", "labels=mood",
                     "--workers", "0", "--allow-failures")
    assert result.exit_code == 0 and "no audio in this row" in result.output, result.output
    entry = Store.open(store).features("hf.m1.wav2vec2")
    assert entry.valid().tolist() == [i != 4 for i in range(N)]
    assert _invoke(store, "export", "hf.m1.wav2vec2", "--format", "parquet", "--out", str(tmp_path / "pq")).exit_code == 0
    table = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "pq").glob("*.parquet"))])
    masked = table.set_index("sample_id").loc["4"]
    assert not masked["valid"] and masked["features"] is None


def test_dataset_dict_splits_are_kept_and_a_missing_validation_is_carved_from_train(tmp_path):
    columns = _columns(tmp_path / "media")
    full = datasets.DatasetDict({"train": _dataset(columns, slice(0, 6)), "validation": _dataset(columns, slice(6, 9)),
                                 "test": _dataset(columns, slice(9, 12))})
    full.save_to_disk(str(tmp_path / "full"))
    manifest = HF().manifest(HFConfig(path=str(tmp_path / "full"), m1="image", m2="caption", labels=("mood",)))
    assert manifest.table["split"].tolist() == ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    assert manifest.table["sample_id"].tolist()[:2] == ["train/0", "train/1"]
    assert manifest.split_protocol.startswith("as given")
    datasets.DatasetDict({"train": _dataset(columns, slice(0, 9)), "test": _dataset(columns, slice(9, 12))}
                         ).save_to_disk(str(tmp_path / "two"))
    two = HF().manifest(HFConfig(path=str(tmp_path / "two"), m1="image", labels=("mood",)))
    splits = two.table["split"].tolist()
    assert splits[9:] == ["test"] * 3 and set(splits[:9]) == {"train", "val"} and "val" in two.split_protocol


def test_an_imagefolder_is_read_where_it_lies(tmp_path, tiny_weights):  # noqa: F811
    for split, count in (("train", 8), ("validation", 2), ("test", 2)):
        for i in range(count):
            write_image(tmp_path / "photos" / split / MOODS[i % 2] / f"{split}{i}.png", seed=i)
    config = HFConfig(path=str(tmp_path / "photos"), loader="imagefolder", m1="image", labels=("label",))
    manifest = HF().manifest(config)
    table = manifest.table
    assert table["split"].value_counts().to_dict() == {"train": 8, "val": 2, "test": 2}
    assert all((tmp_path / "photos" / p).is_file() and not p.startswith("/") for p in table["image"])  # relative
    assert set(table["label"]) == {"calm", "angry"}
    store = tmp_path / "store"
    result = _invoke(store, "extract", "hf", "--encoder", "dino", "--weights", str(tiny_weights("dino")),
                     "--set", f"path={tmp_path / 'photos'}", "--set", "loader=imagefolder", "--set", "m1=image",
                     "--set", "labels=label", "--name", "photos", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert Store.open(store).features("photos.m1.dino").valid().all()


def test_bad_inputs_are_refused_in_one_line(hf_store, tmp_path):
    root, store, _ = hf_store
    saved = ["--set", f"path={root / 'saved'}"]
    extract = ("extract", "hf", "--encoder", "dino", "--workers", "0")
    cases = [
        ((*extract, "--set", "m1=image"), ("path=DIR",)),
        ((*extract, "--set", f"path={tmp_path / 'none'}", "--set", "m1=image"), ("not a directory",)),
        ((*extract, "--set", f"path={root / 'media'}", "--set", "m1=image"), ("loader=imagefolder",)),
        ((*extract, *saved), ("m1=",)),
        ((*extract, *saved, "--set", "m1=nope"), ("no column 'nope'",)),
        ((*extract, *saved, "--set", "m1=mood"), ("ClassLabel",)),
        ((*extract, *saved, "--set", "m1=image", "--set", "m2=image"), ("two modalities",)),
        ((*extract, *saved, "--set", "m1=image", "--set", "labels=image"), ("not a label column",)),
        ((*extract, *saved, "--set", "m1=image", "--set", "labels=mood:categorical:m9"), ("owner 'm9'",)),
        ((*extract, *saved, "--set", "m1=image", "--name", "Bad.Name"), ("name",)),
        ((*extract, *saved, "--set", "m1=image", "--name", "cremad"), ("registered dataset",)),
        (("extract", "cremad", "--encoder", "dino", "--name", "mine"), ("fixed name",)),
        (("export", "toy.m1.dino", "--out", str(root)), ("not empty",)),
        (("export", "toy.m1.dino", "--out", str(root / "saved" / "state.json" / "x")), ("is a file",)),
        (("export", "toy.m1.dino", "--format", "csv", "--out", str(tmp_path / "o")), ("--format",)),
        (("export", "toy.m9.dino", "--out", str(tmp_path / "o")), ("toy.m9.dino",)),
        (("export", "nope-123", "--out", str(tmp_path / "o")), ("nope-123",)),
        (("export", "..", "--out", str(tmp_path / "o")), ("neither a run id nor a feature",)),
        (("export", "nope-123", "--fingerprint", "ab", "--out", str(tmp_path / "o")), ("--fingerprint",)),
    ]
    for argv, words in cases:
        _refused(_invoke(store, *argv), *words)
    assert not (tmp_path / "o").exists()
    datasets.DatasetDict({"train": _dataset(_columns(tmp_path / "m"), slice(0, 6)),
                          "extra": _dataset(_columns(tmp_path / "m"), slice(6, 9))}).save_to_disk(str(tmp_path / "odd"))
    _refused(_invoke(store, *extract, "--set", f"path={tmp_path / 'odd'}", "--set", "m1=image"), "extra")


def test_an_audiofolder_is_read_or_refused_for_want_of_torchcodec(tmp_path):
    """datasets builds an audiofolder's Audio column through torchcodec; where that is missing (or
    cannot load FFmpeg) the refusal says so rather than failing inside datasets."""
    for i in range(9):
        write_wav(tmp_path / "clips" / f"c{i}.wav", 0.2, seed=i)
    pd.DataFrame({"file_name": [f"c{i}.wav" for i in range(9)], "mood": [MOODS[i % 3] for i in range(9)]}
                 ).to_csv(tmp_path / "clips" / "metadata.csv", index=False)
    config = HFConfig(path=str(tmp_path / "clips"), loader="audiofolder", m1="audio", labels=("mood",))
    try:
        import torchcodec.encoders  # noqa: F401
    except Exception:  # missing, or installed without the FFmpeg libraries it loads
        with pytest.raises(UserError, match="only through torchcodec"):
            HF().manifest(config)
        return
    manifest = HF().manifest(config)
    assert all((tmp_path / "clips" / p).is_file() for p in manifest.table["audio"])


def test_export_of_a_sequence_entry_keeps_each_rows_valid_steps(tmp_path):
    store = tmp_path / "store"
    assert _invoke(store, "simulate", "simseq", "--n", "120").exit_code == 0
    entry = Store.open(store).features("simseq.audio.simulated")
    manifest = Store.open(store).manifest("simseq")
    values, lengths = entry.load().float().numpy(), entry.lengths().numpy()
    assert _invoke(store, "export", entry.name, "--format", "parquet", "--out", str(tmp_path / "pq")).exit_code == 0
    table = pd.read_parquet(tmp_path / "pq" / "validation.parquet")
    rows = np.flatnonzero(manifest.split_mask("val"))
    assert table["length"].tolist() == lengths[rows].tolist()
    for row, steps in zip(rows, table["features"], strict=True):
        assert np.array_equal(np.stack(steps), values[row, :lengths[row]])
