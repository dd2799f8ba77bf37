"""`mmpipe extract` on the real dataset layouts (synthetic CREMA-D and Multi30k trees, tiny models),
then `mmpipe fit` on what it stored: missing, known-broken and corrupt media are failures and masked
rows, and moving a data tree is not new data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mmpipe.pipeline.cli import app
from mmpipe.store.root import Store
from tests.media import write_wav
from tests.synthetic_trees import cremad_subset, make_cremad_tree, make_multi30k_tree
from tests.tiny_models import tiny_weights  # noqa: F401

runner = CliRunner()

# cremad_subset(5, 2, seed=0) puts actors 1046/1057/1075 (+1076) in train, 1025 in val, 1029 in test
NO_VIDEO, NO_AUDIO, CORRUPT_AUDIO = "1046_IOM_ANG_XX", "1057_DFA_ANG_XX", "1029_IOM_ANG_XX"
BROKEN_VIDEO_ONLY, BROKEN_BOTH = "1076_MTI_NEU_XX", "1076_MTI_SAD_XX"
VIDEO_FAILURES = {BROKEN_VIDEO_ONLY: "known broken", BROKEN_BOTH: "known broken", NO_VIDEO: "missing"}
AUDIO_FAILURES = {BROKEN_BOTH: "known broken", NO_AUDIO: "missing", CORRUPT_AUDIO: "Error"}
FIT = ["--seeds", "0", "--set", "max_epochs_shared=2", "--set", "max_epochs_private=2",
       "--set", "max_epochs_joint=2", "--set", "minibatch_size=4"]  # the 4 valid train rows


def _invoke(store, *args):
    return runner.invoke(app, ["--store", str(store), *args])


def _extract_cremad(store, data, encoder, weights, *extra):
    return _invoke(store, "extract", "cremad", "--encoder", encoder, "--data-dir", str(data), "--weights",
                   str(weights), "--workers", "0", "--batch-size", "4", *extra)


@pytest.fixture(scope="module")
def cremad(tmp_path_factory, tiny_weights):  # noqa: F811
    """A 12-clip CREMA-D tree with every kind of bad media, extracted once per modality by the CLI.

    The known-broken clips get perfectly good synthetic media: only the manifest can mask them.
    """
    root = tmp_path_factory.mktemp("cremad-extract")
    data, store = root / "CREMA-D", root / "store"
    make_cremad_tree(data, cremad_subset(actors=5, per_actor=2, seed=0) + [BROKEN_VIDEO_ONLY, BROKEN_BOTH],
                     max_seconds=0.6, video_frames=4)
    (data / "VideoFlash" / f"{NO_VIDEO}.flv").unlink()
    (data / "AudioWAV" / f"{NO_AUDIO}.wav").unlink()
    (data / "AudioWAV" / f"{CORRUPT_AUDIO}.wav").write_bytes(b"RIFF\x00\x00not a wave file" * 20)
    results = {name: _extract_cremad(store, data, name, tiny_weights(name)) for name in ("r3d18", "wavlm")}
    return data, store, results


def _by_sample(store, name):
    entry = Store.open(store).features(name)
    manifest = Store.open(store).manifest("cremad", entry.meta["manifest_version"])
    ids = manifest.table["sample_id"].tolist()
    return entry, manifest, dict(zip(ids, entry.valid(), strict=True))


@pytest.mark.parametrize("name, expected", [("cremad.video.r3d18", VIDEO_FAILURES),
                                            ("cremad.audio.wavlm", AUDIO_FAILURES)])
def test_cremad_bad_media_are_failures_and_masked_rows(cremad, name, expected):
    data, store, results = cremad
    result = results[name.split(".")[2]]
    assert result.exit_code == 1, result.output  # failures and no --allow-failures
    assert f"{len(expected)} of 12 clips failed and are masked" in result.output
    entry, manifest, valid = _by_sample(store, name)
    assert entry.key["modality"] == name.split(".")[1]
    assert entry.shape == (12, entry.meta["shape"][1])
    # adapters find entries by the manifest version recorded in meta
    assert entry.meta["manifest_version"] == manifest.version() == entry.key["manifest_version"]
    failures = {f["sample_id"]: f["error"] for f in entry.failures()}
    assert set(failures) == set(expected)
    for sample, kind in expected.items():
        assert kind in failures[sample] and sample in result.output
        assert not valid[sample]
    assert sum(valid.values()) == 12 - len(expected)
    rows = entry.load().float()
    masked = ~entry.valid()
    assert (rows[masked] == 0).all() and (rows[~masked].abs().sum(dim=1) > 0).all()


def test_the_same_command_with_allow_failures_does_nothing_and_exits_0(cremad, tiny_weights):  # noqa: F811
    data, store, _ = cremad
    before = sorted(p.name for p in (store / "features" / "cremad.audio.wavlm").iterdir())
    again = _extract_cremad(store, data, "wavlm", tiny_weights("wavlm"), "--allow-failures")
    assert again.exit_code == 0, again.output
    assert "already stored, nothing to do" in again.output and "3 of 12 clips failed" in again.output
    assert sorted(p.name for p in (store / "features" / "cremad.audio.wavlm").iterdir()) == before


def test_fit_multiloreft_on_extracted_cremad_skips_masked_rows(cremad):
    _, store, _ = cremad
    result = _invoke(store, "fit", "multiloreft", "--dataset", "cremad", "--m1", "r3d18", "--m2", "wavlm", *FIT)
    assert result.exit_code == 0, result.output
    [run] = Store.open(store).runs("multiloreft")
    _, manifest, video_valid = _by_sample(store, "cremad.video.r3d18")
    _, _, audio_valid = _by_sample(store, "cremad.audio.wavlm")
    valid = dict(zip(manifest.table["sample_id"], run.valid(), strict=True))
    assert valid == {s: bool(video_valid[s] and audio_valid[s]) for s in valid}
    assert sum(valid.values()) == 12 - len(set(VIDEO_FAILURES) | set(AUDIO_FAILURES))
    components = run.components(["z_s"])["z_s"].numpy()
    assert np.isfinite(components[run.valid()]).all()


def test_audio_features_given_as_video_are_refused(cremad):
    """Issue #11's bug: `--m1 wavlm --m2 r3d18` put audio where video belongs and every Δ of sex,
    race, ethnicity and age was computed against the wrong component. Now: one line, exit 2."""
    _, store, _ = cremad
    before = [r.run_id for r in Store.open(store).runs()]
    for args in (["--m1", "wavlm", "--m2", "r3d18"], ["--input", "video=wavlm", "--input", "audio=r3d18"]):
        result = _invoke(store, "fit", "multiloreft", "--dataset", "cremad", *args, *FIT)
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == [
            "mmpipe: error: wavlm features of cremad were extracted from audio, not video: they cannot stand in "
            "for video"]
    assert [r.run_id for r in Store.open(store).runs()] == before


def test_moving_the_cremad_tree_is_not_new_data(cremad, tmp_path, tiny_weights):  # noqa: F811
    data, module_store, _ = cremad
    moved, store = tmp_path / "moved" / "crema", tmp_path / "store"
    shutil.copytree(data, moved)
    shutil.copytree(module_store, store)
    stored = Store.open(store).features("cremad.audio.wavlm")
    again = _extract_cremad(store, moved, "wavlm", tiny_weights("wavlm"), "--allow-failures")
    assert again.exit_code == 0 and "already stored, nothing to do" in again.output, again.output
    assert stored.fingerprint in again.output
    # the same clip re-encoded at another length is different data: a new manifest version, a new entry
    write_wav(moved / "AudioWAV" / f"{NO_VIDEO}.wav", 0.3, seed=99)
    changed = _extract_cremad(store, moved, "wavlm", tiny_weights("wavlm"), "--allow-failures")
    assert changed.exit_code == 0 and "written" in changed.output, changed.output
    entries = Store.open(store).feature_entries("cremad.audio.wavlm")
    assert len(entries) == 2 and len({e.meta["manifest_version"] for e in entries}) == 2


@pytest.fixture(scope="module")
def multi30k(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi30k-extract")
    listing = make_multi30k_tree(root / "multi30k", {"train": 4, "val": 2, "test_2016_flickr": 2},
                                 image_dir=root / "flickr30k-images")
    (root / "flickr30k-images" / listing["val"][0]).unlink()
    return root, listing


def _extract_multi30k(store, root, encoder, weights, image_dir, *extra):
    return _invoke(store, "extract", "flickr30k-multi", "--encoder", encoder, "--data-dir", str(root / "multi30k"),
                   "--set", f"image_dir={image_dir}", "--weights", str(weights), "--workers", "1", *extra)


def test_flickr30k_multi_images_and_captions(multi30k, tmp_path, tiny_weights):  # noqa: F811
    root, listing = multi30k
    store = tmp_path / "store"
    images = _extract_multi30k(store, root, "dino", tiny_weights("dino"), root / "flickr30k-images")
    assert images.exit_code == 1 and "1 of 8 clips failed" in images.output, images.output
    captions = _extract_multi30k(store, root, "labse", tiny_weights("labse"), root / "flickr30k-images")
    assert captions.exit_code == 0, captions.output
    image_entry = Store.open(store).features("flickr30k-multi.image.dino")
    text_entry = Store.open(store).features("flickr30k-multi.caption.labse")
    manifest = Store.open(store).manifest("flickr30k-multi")
    assert image_entry.key["modality"] == "image" and text_entry.key["modality"] == "caption"
    assert image_entry.meta["manifest_version"] == text_entry.meta["manifest_version"] == manifest.version()
    missing = manifest.table["image_path"] == listing["val"][0]
    assert image_entry.valid().tolist() == (~missing).tolist() and text_entry.valid().all()
    [failure] = image_entry.failures()
    assert failure["error"].startswith("missing:") and failure["sample_id"].startswith("val/")
    assert set(manifest.table["language"]) == {"en", "fr"}
    # the images moved elsewhere: the same data, nothing to do
    shutil.move(root / "flickr30k-images", tmp_path / "elsewhere")
    try:
        moved = _extract_multi30k(store, root, "dino", tiny_weights("dino"), tmp_path / "elsewhere",
                                  "--allow-failures")
        assert moved.exit_code == 0 and "nothing to do" in moved.output, moved.output
    finally:
        shutil.move(tmp_path / "elsewhere", root / "flickr30k-images")


def test_moving_a_folder_tree_with_relative_paths_is_not_new_data(tmp_path, tiny_weights):  # noqa: F811
    data = tmp_path / "clips"
    for i in range(3):
        write_wav(data / "audio" / f"s{i}.wav", 0.3, seed=i)
    (data / "samples.csv").write_text("sample_id,audio,mood\n" + "".join(f"s{i},audio/s{i}.wav,m{i % 2}\n" for i in range(3)))
    args = ["--encoder", "wavlm", "--weights", str(tiny_weights("wavlm")), "--set", "modalities=audio:audio", "--workers", "0"]
    first = _invoke(tmp_path / "store", "extract", "folder", "--data-dir", str(data), *args)
    assert first.exit_code == 0 and "written" in first.output, first.output
    data.rename(tmp_path / "renamed")
    again = _invoke(tmp_path / "store", "extract", "folder", "--data-dir", str(tmp_path / "renamed"), *args)
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output
    assert Store.open(tmp_path / "store").manifest("folder").table["audio"].tolist() == [f"audio/s{i}.wav" for i in range(3)]


def test_local_weights_are_hashed_once_while_unchanged(tmp_path, tiny_weights, monkeypatch):  # noqa: F811
    from mmpipe.pipeline.encoders import hub

    data = tmp_path / "clips"
    write_wav(data / "a.wav", 0.3)
    (data / "samples.csv").write_text("sample_id,audio\na,a.wav\n")
    weights = tmp_path / "w"
    shutil.copytree(tiny_weights("wavlm"), weights)
    hashed = []
    real = hub.local_identity
    monkeypatch.setattr(hub, "local_identity", lambda path: hashed.append(path) or real(path))
    args = ["extract", "folder", "--encoder", "wavlm", "--data-dir", str(data), "--weights", str(weights),
            "--set", "modalities=audio:audio", "--workers", "0"]
    assert _invoke(tmp_path / "store", *args).exit_code == 0 and len(hashed) == 1
    assert "nothing to do" in _invoke(tmp_path / "store", *args).output and len(hashed) == 1
    (weights / "config.json").write_text((weights / "config.json").read_text() + " ")  # same model, new bytes
    again = _invoke(tmp_path / "store", *args)
    assert len(hashed) == 2 and "written" in again.output  # a changed checkpoint is a new key
