"""Registered encoders: importing this package registers every encoder (one import line each)."""

from mmpipe.pipeline.encoders.base import ENCODERS

__all__ = ["ENCODERS"]
