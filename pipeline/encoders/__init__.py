"""Registered encoders: importing this package registers every encoder (one import line each)."""

from mmpipe.pipeline.encoders import bert, dino, labse, mvit, r3d18, wav2vec2, wavlm  # noqa: F401
from mmpipe.pipeline.encoders.base import ENCODERS, Encoder, EncoderOutput, EncoderSpec

__all__ = ["ENCODERS", "Encoder", "EncoderOutput", "EncoderSpec"]
