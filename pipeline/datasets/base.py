"""The dataset contract and its registry.

A dataset builds a manifest (see `mmpipe.store.manifest`) from a frozen config; it never touches
the network. A *simulation* also generates its two modality feature arrays directly, which
`mmpipe simulate` writes to the store as ``<name>.m1`` and ``<name>.m2``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmpipe.store.manifest import Manifest
from mmpipe.store.registry import Registry


class Dataset(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]  # a frozen dataclass; every field has a default
    # what m1 and m2 are, e.g. {"m1": "video", "m2": "audio"}
    modalities: ClassVar[dict[str, str]]

    @abstractmethod
    def manifest(self, config: Any) -> Manifest:
        """Build the manifest for ``config``."""

    def media_root(self, config: Any, modality: str) -> Path | None:
        """The directory that relative media paths of ``modality`` are relative to (None: the cwd).

        Manifests store media paths relative to this root, never absolute ones, so moving a data
        tree leaves the manifest version, hence every feature fingerprint, unchanged.
        """
        data_dir = getattr(config, "data_dir", "")
        return Path(data_dir).expanduser() if data_dir else None

    def unusable_media(self, manifest: Manifest, modality: str) -> dict[int, str]:
        """Rows whose ``modality`` media is known to be absent or broken -> why.

        The extraction engine records these rows as failures and masks them without decoding.
        It must read only the manifest (whose version is in the feature key), so the same
        manifest always masks the same rows.
        """
        return {}


class Simulation(Dataset):
    @abstractmethod
    def generate(self, config: Any) -> tuple[Manifest, dict[str, np.ndarray]]:
        """The manifest and the modality arrays {"m1": (n, d1), "m2": (n, d2)}, row-aligned."""

    def manifest(self, config: Any) -> Manifest:
        return self.generate(config)[0]


DATASETS: Registry[type[Dataset]] = Registry("dataset")
