"""The adapter methods, one file each; importing this package registers them all (one import
line per method)."""

from mmpipe.adapters.methods import (  # noqa: F401
    apollo,
    contrastive,
    cross_attention,
    dlf,
    drimu,
    early_fusion,
    inputs,
    late_fusion,
    mult_interactions,
    multiloreft,
    s3,
)
