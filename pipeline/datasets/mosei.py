"""CMU-MOSEI: 23,453 annotated clips from 1,000 speakers, sentiment on [-3, 3] (Zadeh et al., 2018).

Ingested (`mmpipe ingest mosei --data-dir DIR`) from one of its public feature pickles:

===================================  ==========  ===================================================
file                                 format      entries (``mosei.<modality>.<feature>``)
===================================  ==========  ===================================================
``mosei_raw.pkl``                    multibench  text ``glove``, audio ``covarep``, vision ``facet``
``mosei_senti_data.pkl``             mult        text ``glove``, audio ``covarep``, vision ``facet``
``MOSEI/Processed/aligned_50.pkl``   mmsa        text ``bert``, audio ``covarep``, vision ``facet``
``MOSEI/Processed/unaligned_50.pkl`` mmsa        the same names; audio and vision at frame rate
===================================  ==========  ===================================================

Label ``sentiment`` (continuous, owner joint) on [-3, 3]. Splits: the file's own (MMSA:
16,326 / 1,871 / 4,659). The MMSA aligned file is about 4.7 GB; ingest reads it row block by row
block and never holds a whole modality in memory.
"""

from __future__ import annotations

from mmpipe.pipeline.datasets.affect import AffectDataset, PublicFile
from mmpipe.pipeline.datasets.base import DATASETS
from mmpipe.pipeline.datasets.mosi import SENTIMENT_FEATURES, sentiment_label


@DATASETS.register("mosei")
class Mosei(AffectDataset):
    name = "mosei"
    description = ("CMU-MOSEI: ~23k clips, 1,000 speakers, sentiment [-3, 3]; text/audio/vision features "
                   "ingested from MultiBench, MulT or MMSA pickles (`mmpipe ingest`)")
    files = (
        PublicFile("mosei_raw.pkl", "multibench"),
        PublicFile("mosei_senti_data.pkl", "mult"),
        PublicFile("MOSEI/Processed/aligned_50.pkl", "mmsa",
                   "45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791"),
        PublicFile("MOSEI/Processed/unaligned_50.pkl", "mmsa",
                   "ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f"),
    )
    features = SENTIMENT_FEATURES
    label_spec = sentiment_label("CMU-MOSEI")
