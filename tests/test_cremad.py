import fnmatch
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import soundfile

from mmpipe.pipeline.datasets import DATASETS
from mmpipe.pipeline.datasets.cremad import (
    CLIP_NAME,
    EMOTIONS,
    KNOWN_BROKEN,
    LABELS,
    LEVELS,
    METADATA_DIR,
    SENTENCES,
    Cremad,
    CremadConfig,
)
from mmpipe.store.errors import UserError
from mmpipe.store.manifest import Modality, read_manifest, write_manifest
from tests.media import write_wav
from tests.synthetic_trees import cremad_meta_dir, cremad_subset, make_cremad_tree

BROKEN_IN_TREE = ["1076_MTI_SAD_XX", "1064_IEO_DIS_MD"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crema-d")
    make_cremad_tree(root, cremad_subset(actors=6, per_actor=6) + BROKEN_IN_TREE)
    return root


@pytest.fixture
def small_tree(tmp_path) -> Path:
    """Three actors, two clips each, 0.1 s of audio: for the error cases that damage a tree."""
    make_cremad_tree(tmp_path, cremad_subset(actors=3, per_actor=2, seed=1), max_seconds=0.1, video_frames=2)
    return tmp_path


def _manifest(root: Path, **changes):
    return Cremad().manifest(CremadConfig(data_dir=str(root), **changes))


def test_registered_with_paper_modalities():
    assert DATASETS.get("cremad") is Cremad
    assert Cremad.modalities == (Modality("video", "video"), Modality("audio", "audio"))  # the paper's M1, M2


def test_shipped_metadata_is_the_whole_real_dataset():
    names = pd.read_csv(METADATA_DIR / "SentenceFilenames.csv")["Filename"].astype(str)
    assert len(names) == 7442 and names.is_unique
    for name in names:
        match = CLIP_NAME.match(name)
        assert match and match[2] in SENTENCES and match[3] in EMOTIONS and match[4] in LEVELS, name
    assert (names.str.split("_").str[3] == "XX").sum() == 6077  # the module docstring's count
    sizes = pd.read_csv(METADATA_DIR / "AudioWAV_sizes.tsv", sep="\t")
    assert list(sizes.columns) == ["file", "bytes"]
    assert set(sizes["file"]) == {f"{name}.wav" for name in names} and (sizes["bytes"] > 44).all()
    demographics = pd.read_csv(METADATA_DIR / "VideoDemographics.csv")
    assert list(demographics.columns) == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    assert len(demographics) == 91 and set(demographics["ActorID"].astype(str)) == set(names.str[:4])


def test_shipped_metadata_is_package_data():
    """A non-editable install carries every file of METADATA_DIR: pyproject's package-data covers it."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mmpipe.pipeline.datasets"]
    shipped = sorted(p.name for p in METADATA_DIR.iterdir() if p.is_file())
    assert shipped == ["AudioWAV_sizes.tsv", "SentenceFilenames.csv", "VideoDemographics.csv"]
    for name in shipped:
        assert any(fnmatch.fnmatch(f"{METADATA_DIR.name}/{name}", pattern) for pattern in patterns), name
    # modest: the three files are well under a megabyte together
    assert sum((METADATA_DIR / name).stat().st_size for name in shipped) < 1_000_000


def test_synthetic_tree_has_real_names_durations_and_demographics(tree):
    real_sizes = pd.read_csv(cremad_meta_dir() / "AudioWAV_sizes.tsv", sep="\t").set_index("file")["bytes"]
    wavs = sorted((tree / "AudioWAV").glob("*.wav"))
    assert len(wavs) == 38
    for wav in wavs:
        # 16 kHz mono 16-bit of the real duration ⇔ the real file size, byte for byte
        assert wav.stat().st_size == real_sizes[wav.name]
        info = soundfile.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    assert {p.stem for p in (tree / "VideoFlash").glob("*.flv")} == {p.stem for p in wavs}
    assert (tree / "VideoDemographics.csv").read_bytes() == (cremad_meta_dir() / "VideoDemographics.csv").read_bytes()


def test_labels_come_from_file_names_and_the_real_demographics(tree):
    manifest = _manifest(tree)
    assert manifest.modalities == (Modality("video", "video", "video_path"), Modality("audio", "audio", "audio_path"))
    table = manifest.table.set_index("sample_id")
    assert len(table) == 38 and table.index.is_unique
    clip = table.loc["1076_MTI_SAD_XX"]
    assert (clip["group"], clip["sentence"], clip["emotion"], clip["emotion_level"]) == ("1076", "MTI", "SAD", "XX")
    demographics = pd.read_csv(cremad_meta_dir() / "VideoDemographics.csv").set_index("ActorID")
    for sample_id, row in table.iterrows():
        actor = int(sample_id[:4])
        assert row["group"] == sample_id[:4]
        assert (row["sex"], row["race"], row["ethnicity"]) == tuple(demographics.loc[actor, ["Sex", "Race", "Ethnicity"]])
        assert row["age"] == float(demographics.loc[actor, "Age"])
        assert row["video_path"] == f"VideoFlash/{sample_id}.flv" and (tree / row["video_path"]).is_file()
        assert row["audio_path"] == f"AudioWAV/{sample_id}.wav" and (tree / row["audio_path"]).is_file()
    assert set(table["emotion"]) == {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}


def test_label_owners_follow_the_paper():
    assert {spec.name: (spec.kind, spec.owner) for spec in LABELS} == {
        "emotion": ("categorical", "shared"), "emotion_level": ("categorical", "shared"),
        "sentence": ("categorical", "audio"),  # §5: best captured by audio
        "sex": ("categorical", "video"), "ethnicity": ("categorical", "video"),  # §5: primarily video
        "race": ("categorical", "video"), "age": ("continuous", "video"),
    }


def test_known_broken_clips_are_flagged_not_dropped(tree):
    table = _manifest(tree).table.set_index("sample_id")
    assert set(table.index[table["known_broken"]]) == set(BROKEN_IN_TREE)
    assert "no audio" in table.loc["1076_MTI_SAD_XX", "known_issue"]
    assert (table.loc[~table["known_broken"], "known_issue"] == "").all()
    assert set(KNOWN_BROKEN) == {"1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD"}


def test_default_split_is_actor_disjoint_seeded_and_reported(tree):
    manifest = _manifest(tree)
    table = manifest.table
    assert table.groupby("group")["split"].nunique().max() == 1
    assert set(table["split"]) == {"train", "val", "test"}
    assert manifest.split_protocol == "actor-disjoint 70/15/15 by actor (6/1/1 actors), seed 0"
    assert _manifest(tree).version() == manifest.version()
    other = _manifest(tree, seed=1)
    assert not other.table["split"].equals(table["split"])
    assert other.split_protocol.endswith("seed 1")


def test_stratified_option_keeps_emotion_mix_and_says_so(tree):
    manifest = _manifest(tree, split="stratified")
    assert manifest.split_protocol == "stratified random by emotion 70/15/15, seed 0 (actors span splits)"
    counts = pd.crosstab(manifest.table["emotion"], manifest.table["split"])
    for _, row in counts.iterrows():
        n = row.sum()
        assert row["train"] == round(n * 0.7) and row["val"] == round(n * 0.15)
    assert manifest.table.groupby("group")["split"].nunique().max() > 1
    by_sentence = _manifest(tree, split="stratified", stratify_by="sentence")
    assert "by sentence" in by_sentence.split_protocol


def test_version_survives_moving_the_tree_and_a_parquet_round_trip(tree, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(tree, moved)
    manifest = _manifest(tree)
    assert _manifest(moved).version() == manifest.version()
    write_manifest(tmp_path / "m.parquet", manifest)
    assert read_manifest(tmp_path / "m.parquet").version() == manifest.version()


def test_a_clip_missing_one_modality_is_kept_and_marked(small_tree):
    victim = sorted((small_tree / "VideoFlash").glob("*.flv"))[0]
    victim.unlink()
    write_wav(small_tree / "AudioWAV" / "1091_TSI_HAP_XX.wav", 0.1)  # audio only, a real name
    table = _manifest(small_tree).table.set_index("sample_id")
    assert not table.loc[victim.stem, "has_video"] and table.loc[victim.stem, "has_audio"]
    assert table.loc["1091_TSI_HAP_XX", "has_audio"] and not table.loc["1091_TSI_HAP_XX", "has_video"]
    assert table["has_video"].sum() == len(table) - 2


@pytest.mark.parametrize("damage, message", [
    (lambda root: shutil.rmtree(root / "AudioWAV"), r"expected the folder AudioWAV/ in .*AudioWAV/, VideoFlash/"),
    (lambda root: shutil.rmtree(root / "VideoFlash"), "expected the folder VideoFlash/"),
    (lambda root: (root / "VideoDemographics.csv").unlink(), "expected VideoDemographics.csv"),
    (lambda root: [p.rename(p.with_suffix(".mp4")) for p in (root / "VideoFlash").iterdir()],
     r"expected \*\.flv files in .*VideoFlash \(found only \.mp4 files\)"),
    (lambda root: [p.unlink() for p in (root / "AudioWAV").iterdir()], r"AudioWAV \(it is empty\)"),
    (lambda root: (root / "AudioWAV" / "1001_XYZ_ANG_XX.wav").write_bytes(b"RIFF"), "1001_XYZ_ANG_XX is not a CREMA-D clip"),
    (lambda root: (root / "AudioWAV" / "notes.wav").write_bytes(b"RIFF"), "notes is not a CREMA-D clip name"),
    (lambda root: (root / "AudioWAV" / "9999_DFA_ANG_XX.wav").write_bytes(b"RIFF"), "actors 9999 have clips but no row"),
    (lambda root: (root / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 72862\n"), "git-lfs pointer stubs"),
    (lambda root: (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex\n1001,51,Male\n"),
     "lacks the columns Ethnicity, Race"),
])
def test_mislaid_trees_raise_one_clear_user_error(small_tree, damage, message):
    damage(small_tree)
    with pytest.raises(UserError, match=message):
        _manifest(small_tree)


def test_hidden_files_are_not_clips(small_tree):
    clip = sorted((small_tree / "AudioWAV").glob("*.wav"))[0]
    (small_tree / "AudioWAV" / f"._{clip.name}").write_bytes(b"\x00\x05\x16\x07")
    assert len(_manifest(small_tree)) == 6


def test_folders_from_different_datasets_share_no_clip(small_tree):
    for wav in (small_tree / "AudioWAV").iterdir():
        wav.unlink()
    write_wav(small_tree / "AudioWAV" / "1091_TSI_HAP_XX.wav", 0.1)
    with pytest.raises(UserError, match="share no clip name"):
        _manifest(small_tree)


def test_converted_videos_are_read_with_video_ext(small_tree):
    for flv in (small_tree / "VideoFlash").iterdir():
        flv.rename(flv.with_suffix(".mp4"))
    table = _manifest(small_tree, video_ext="mp4").table
    assert table["video_path"].str.endswith(".mp4").all() and table["has_video"].all()


def test_missing_or_wrong_data_dir(tmp_path):
    with pytest.raises(UserError, match="cremad needs data_dir"):
        Cremad().manifest(CremadConfig())
    with pytest.raises(UserError, match="is not a directory"):
        _manifest(tmp_path / "nope")


def test_unusable_media_per_modality(small_tree):
    clips = sorted(p.stem for p in (small_tree / "VideoFlash").glob("*.flv"))
    (small_tree / "VideoFlash" / f"{clips[0]}.flv").unlink()
    for clip in ("1076_MTI_NEU_XX", "1076_MTI_SAD_XX"):
        write_wav(small_tree / "AudioWAV" / f"{clip}.wav", 0.1)
        shutil.copyfile(small_tree / "VideoFlash" / f"{clips[1]}.flv", small_tree / "VideoFlash" / f"{clip}.flv")
    manifest = _manifest(small_tree)
    ids = manifest.table["sample_id"].tolist()
    video = {ids[row]: why for row, why in Cremad().unusable_media(manifest, "video").items()}
    audio = {ids[row]: why for row, why in Cremad().unusable_media(manifest, "audio").items()}
    assert set(video) == {clips[0], "1076_MTI_NEU_XX", "1076_MTI_SAD_XX"}
    assert video[clips[0]].startswith("missing: no VideoFlash/") and "known broken" in video["1076_MTI_SAD_XX"]
    assert audio == {"1076_MTI_SAD_XX": "known broken (CREMA-D README): audio: no audio, very short"}
    assert all(kind in ("video", "audio") for issues in KNOWN_BROKEN.values() for kind in issues)
