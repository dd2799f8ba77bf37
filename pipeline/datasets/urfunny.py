"""UR-FUNNY: punchlines from TED talks, humorous or not (Hasan et al., 2019).

Ingested (`mmpipe ingest urfunny --data-dir DIR`) from MultiBench's ``humor.pkl``: entries
``urfunny.text.glove`` (GloVe), ``urfunny.audio.covarep`` (COVAREP) and ``urfunny.vision.openface``
(OpenFace), each front-padded as MultiBench distributes them. Label ``humor`` (categorical 0/1,
owner joint): 1 where the file's label is positive; the file's label must be 0/1 or -1/1. The
file carries no sentiment score. Splits: the file's own train/valid/test.
"""

from __future__ import annotations

from mmpipe.pipeline.datasets.affect import AffectDataset, PublicFile, label_spec
from mmpipe.pipeline.datasets.base import DATASETS

OPENFACE_FEATURES = {"multibench": {"text": "glove", "audio": "covarep", "vision": "openface"}}


@DATASETS.register("urfunny")
class UrFunny(AffectDataset):
    name = "urfunny"
    description = ("UR-FUNNY: TED-talk punchlines, humor yes/no; text/audio/vision features ingested from "
                   "MultiBench's humor.pkl (`mmpipe ingest`)")
    files = (PublicFile("humor.pkl", "multibench"),)
    features = OPENFACE_FEATURES
    label_spec = label_spec("humor", "categorical", "1: the punchline is humorous (UR-FUNNY), 0: not", "binary")
