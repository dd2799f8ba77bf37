"""MUStARD: utterances from TV sitcoms, sarcastic or not (Castro et al., 2019).

Ingested (`mmpipe ingest mustard --data-dir DIR`) from MultiBench's ``sarcasm.pkl``: entries
``mustard.text.glove``, ``mustard.audio.covarep`` and ``mustard.vision.openface`` (the feature set
MultiBench extracted for it, as for UR-FUNNY), front-padded. Label ``sarcasm`` (categorical 0/1,
owner joint): 1 where the file's label is positive (MultiBench's rule); the file's label must be
0/1 or -1/1. Splits: the file's own train/valid/test.
"""

from __future__ import annotations

from mmpipe.pipeline.datasets.affect import AffectDataset, PublicFile, label_spec
from mmpipe.pipeline.datasets.base import DATASETS
from mmpipe.pipeline.datasets.urfunny import OPENFACE_FEATURES


@DATASETS.register("mustard")
class Mustard(AffectDataset):
    name = "mustard"
    description = ("MUStARD: sitcom utterances, sarcasm yes/no; text/audio/vision features ingested from "
                   "MultiBench's sarcasm.pkl (`mmpipe ingest`)")
    files = (PublicFile("sarcasm.pkl", "multibench"),)
    features = OPENFACE_FEATURES
    label_spec = label_spec("sarcasm", "categorical", "1: the utterance is sarcastic (MUStARD), 0: not", "binary")
