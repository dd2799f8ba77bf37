"""CMU-MOSI: 2,199 opinion clips from 93 YouTube videos, sentiment on [-3, 3] (Zadeh et al., 2016).

Ingested (`mmpipe ingest mosi --data-dir DIR`) from one of its public feature pickles:

==================================  ==========  ====================================================
file                                format      entries (``mosi.<modality>.<feature>``)
==================================  ==========  ====================================================
``mosi_raw.pkl``                    multibench  text ``glove`` (GloVe 840B), audio ``covarep``,
                                                vision ``facet`` (FACET 4.2); front-padded
``mosi_data.pkl``                   mult        text ``glove``, audio ``covarep``, vision ``facet``
``MOSI/Processed/aligned_50.pkl``   mmsa        text ``bert`` (BERT-base tokens), audio ``covarep``,
                                                vision ``facet``; word-aligned, end-padded
``MOSI/Processed/unaligned_50.pkl`` mmsa        the same names; audio and vision at frame rate
==================================  ==========  ====================================================

Label ``sentiment`` (continuous, owner joint): the file's regression label, on [-3, 3]. Splits:
the file's own train/valid/test (MMSA: 1,284 / 229 / 686). MMSA publishes the sha256 of its
files; ingest records whether the file matches.
"""

from __future__ import annotations

from mmpipe.pipeline.datasets.affect import AffectDataset, PublicFile, label_spec
from mmpipe.pipeline.datasets.base import DATASETS

SENTIMENT_FEATURES = {
    "multibench": {"text": "glove", "audio": "covarep", "vision": "facet"},
    "mult": {"text": "glove", "audio": "covarep", "vision": "facet"},
    "mmsa": {"text": "bert", "audio": "covarep", "vision": "facet"},
}


def sentiment_label(dataset: str):
    return label_spec("sentiment", "continuous", f"{dataset} sentiment intensity on [-3, 3] (negative to positive), "
                      "as the file gives it", "sentiment")


@DATASETS.register("mosi")
class Mosi(AffectDataset):
    name = "mosi"
    description = ("CMU-MOSI: 2,199 YouTube opinion clips, sentiment [-3, 3]; text/audio/vision features "
                   "ingested from MultiBench, MulT or MMSA pickles (`mmpipe ingest`)")
    files = (
        PublicFile("mosi_raw.pkl", "multibench"),
        PublicFile("mosi_data.pkl", "mult"),
        PublicFile("MOSI/Processed/aligned_50.pkl", "mmsa",
                   "d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9"),
        PublicFile("MOSI/Processed/unaligned_50.pkl", "mmsa",
                   "78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524"),
    )
    features = SENTIMENT_FEATURES
    label_spec = sentiment_label("CMU-MOSI")
