"""Subspace sizes of the baselines (MultiLoReFT paper §5.1 and Appendix A.2.1, Table 4).

A baseline's sizes are (r_s, r_k for each modality k, in the method's modality order). By default
(``size="learned"``) they are the ranks MultiLoReFT learned on the same inputs and seed, which the
fit workflow reads from the published MultiLoReFT run and writes into the config
(`mmpipe.pipeline.sizes`) before the run key is computed, so they are part of its fingerprint;
``size="input"`` fixes every size to MultiLoReFT's initial rank, the smallest input width (the
"initial input dimensionality" of Table 4). Sizes given explicitly win. This module only checks
them: a method never looks up other runs itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmpipe.store.errors import UserError


def input_sizes(dims: Mapping[str, int]) -> tuple[int, ...]:
    """``size="input"``: every subspace as wide as the narrowest input, (r0, r0, ..., r0)."""
    r0 = min(dims.values())
    return (r0,) * (1 + len(dims))


def check_sizes(config: Any, dims: Mapping[str, int]) -> tuple[int, ...]:
    """The (r_s, r_k, ...) a model is built with; ``size="input"`` needs no lookup."""
    if config.sizes is None:
        if config.size == "input":
            return input_sizes(dims)
        raise UserError("sizes are not resolved: fit through `mmpipe fit` (which reads the MultiLoReFT ranks "
                        "from the store), or set sizes=R_S,R_M1,R_M2 or size=input")
    wanted = 1 + len(dims)
    if len(config.sizes) != wanted or min(config.sizes) < 1:
        raise UserError(f"sizes must be {wanted} positive integers (r_s, then one per modality: "
                        f"{', '.join(dims)}), not {config.sizes}")
    widest = max(dims.values())
    if max(config.sizes) > widest:
        raise UserError(f"sizes {','.join(map(str, config.sizes))}: a subspace is wider than the widest input "
                        f"({widest}); give sizes of at most {widest}")
    return tuple(int(s) for s in config.sizes)
