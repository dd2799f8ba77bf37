"""The dataset contract and its registry.

A dataset builds a manifest (see `mmpipe.store.manifest`) from a frozen config; it never touches
the network. It declares its **named modalities** (any number, in order), each with a kind (audio,
video, image, text or features); its manifest carries them with the column that holds each one's
media path or text. A label is owned by ``shared``, ``joint`` or one of these modality names.

A *simulation* also generates its modality feature arrays directly (kind ``features``, no media
column), which `mmpipe simulate` writes to the store as ``<name>.<modality>.simulated``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmpipe.store.errors import UserError
from mmpipe.store.manifest import Manifest, Modality
from mmpipe.store.registry import Registry


class Dataset(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type]  # a frozen dataclass; every field has a default
    # the named modalities in order, each with its kind and no column (the manifest adds the column),
    # e.g. (Modality("video", "video"), Modality("audio", "audio")); a dataset whose modalities
    # come from its config (folder) declares its defaults here
    modalities: ClassVar[tuple[Modality, ...]]

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

    def media_sources(self, config: Any, manifest: Manifest, modality: str) -> list[Any] | None:
        """What the encoder's preparer reads for each row of ``modality`` when that is not the
        manifest's path (relative to `media_root`) or text, e.g. an `EmbeddedMedia` cell of a
        saved Hugging Face dataset; None (the default): the manifest's paths and texts."""
        return None

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
        """The manifest and one array per modality, e.g. {"m1": (n, d1), "m2": (n, d2)}, row-aligned."""

    def manifest(self, config: Any) -> Manifest:
        return self.generate(config)[0]


DATASETS: Registry[type[Dataset]] = Registry("dataset")
_CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def check_custom_name(name: str, registered_as: str) -> None:
    """A custom dataset's own name (``--name``) names its manifests and features
    (``<name>.<modality>.<feature>``): no dots, and not another registered dataset's name."""
    if not _CUSTOM_NAME.match(name):
        raise UserError(f"{registered_as}: name {name!r} must be lower-case letters, digits, _ and -, starting with "
                        "a letter")
    if name != registered_as and name in DATASETS.names():
        raise UserError(f"{registered_as}: name {name!r} is a registered dataset; choose another (--name)")
