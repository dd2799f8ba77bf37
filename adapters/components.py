"""Names of the components adapter methods produce, for datasets with named modalities.

One rule for every method, so the evaluator can find "the component of modality k" without
knowing the method:

    z_s          the shared component (for a per-modality method, the mean of its parts z_s_<k>)
    z_s_<k>      modality k's view of the shared component
    z_<k>        the component specific to modality k            (z_m1 / z_m2 on Sim I and II)
    fused        the method's joint representation
    <prefix>_<k> any other per-modality component (phi_<k>, h_<k>, c_<k>, e_<k>, u_<k>)

Modality names are lower-case identifiers and never ``s`` (`mmpipe.store.manifest.Modality`), so
``z_<k>`` never collides with ``z_s``.
"""

from __future__ import annotations

from collections.abc import Sequence

SHARED = "z_s"
FUSED = "fused"


def specific(modality: str) -> str:
    """The component specific to ``modality``: ``z_<modality>``."""
    return f"z_{modality}"


def shared_part(modality: str) -> str:
    """``modality``'s view of the shared component: ``z_s_<modality>``."""
    return f"z_s_{modality}"


def per_modality(prefix: str, modality: str) -> str:
    return f"{prefix}_{modality}"


def decoupled(modalities: Sequence[str]) -> tuple[str, ...]:
    """The components of a method that splits every modality into a shared and a specific part:
    z_s_<k> for each k, z_<k> for each k, then z_s and fused."""
    return (*(shared_part(m) for m in modalities), *(specific(m) for m in modalities), SHARED, FUSED)
