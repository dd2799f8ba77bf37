"""Paired cached features for adapter training: two modality entries of one dataset, checked.

Rows follow the manifest order. Rows whose media failed in either modality (``valid`` False) are
excluded from training and flagged in every run's components; they are never zero-filled inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmpipe.store.errors import UserError
from mmpipe.store.features import FeatureEntry
from mmpipe.store.manifest import SPLITS, Manifest
from mmpipe.store.root import Store


@dataclass(frozen=True)
class PairedFeatures:
    dataset: str
    manifest: Manifest
    manifest_version: str
    m1: FeatureEntry
    m2: FeatureEntry
    h1: torch.Tensor  # (N, d1) float32, all rows
    h2: torch.Tensor  # (N, d2) float32
    valid: torch.Tensor  # (N,) bool: both modalities present
    split_index: dict[str, torch.Tensor]  # split -> (n_split,) row indices of valid rows

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.split_index[name]
        return self.h1[index], self.h2[index]

    def to(self, device: torch.device) -> PairedFeatures:
        return PairedFeatures(self.dataset, self.manifest, self.manifest_version, self.m1, self.m2,
                              self.h1.to(device), self.h2.to(device), self.valid.to(device),
                              {k: v.to(device) for k, v in self.split_index.items()})


def feature_name(dataset: str, feature: str) -> str:
    return f"{dataset}.{feature}"


def _entry(store: Store, dataset: str, feature: str, version: str) -> FeatureEntry:
    name = feature_name(dataset, feature)
    candidates = [e for e in store.feature_entries(name) if e.meta.get("manifest_version") == version]
    if not candidates:
        hint = f"mmpipe simulate {dataset}" if feature in ("m1", "m2") else \
            f"mmpipe extract {dataset} --encoder {feature}"
        raise UserError(f"no cached features {name} for {dataset} manifest {version}; create them with `{hint}`")
    if len(candidates) > 1:
        listed = ", ".join(e.fingerprint[:12] for e in candidates)
        raise UserError(f"several {name} entries for manifest {version} ({listed}); remove the stale ones")
    return candidates[0]


def load_paired(store: Store, dataset: str, m1: str, m2: str, version: str | None = None) -> PairedFeatures:
    """Load both modalities of ``dataset`` for one manifest version, with input checks.

    Errors (UserError): no manifest or no features (naming the command that creates them);
    modalities with different sample counts or sample ids; NaN/Inf in valid rows (how many rows,
    which split).
    """
    versions = store.manifest_versions(dataset)
    if not versions:
        raise UserError(f"the store holds no {dataset} data; create it with "
                        f"`mmpipe {'simulate' if dataset.startswith('sim') else 'extract'} {dataset}`")
    if version is None and len(versions) > 1:
        with_both = [v for v in versions if all(
            any(e.meta.get("manifest_version") == v for e in store.feature_entries(feature_name(dataset, f)))
            for f in (m1, m2))]
        if len(with_both) != 1:
            raise UserError(f"{dataset} has several manifest versions ({', '.join(versions)}); "
                            "choose one with --data-version")
        version = with_both[0]
    manifest = store.manifest(dataset, version)
    version = manifest.version()
    entry1, entry2 = _entry(store, dataset, m1, version), _entry(store, dataset, m2, version)
    for entry in (entry1, entry2):
        if entry.shape[0] != len(manifest):
            raise UserError(f"{entry.name} has {entry.shape[0]} rows but the {dataset} manifest has {len(manifest)}")
    h1, h2 = entry1.load().float(), entry2.load().float()
    valid = torch.from_numpy(entry1.valid() & entry2.valid())
    split_index = {}
    for split in SPLITS:
        mask = torch.from_numpy(manifest.split_mask(split)) & valid
        rows = mask.nonzero().squeeze(1)
        for entry, h in ((entry1, h1), (entry2, h2)):
            bad = (~torch.isfinite(h[rows])).any(dim=1)
            if bad.any():
                raise UserError(f"{entry.name}: {int(bad.sum())} {split} rows contain NaN or Inf")
        split_index[split] = rows
    if len(split_index["train"]) < 2 or len(split_index["val"]) < 1:
        raise UserError(f"{dataset}: too few valid train/val rows to fit ({len(split_index['train'])}, "
                        f"{len(split_index['val'])})")
    return PairedFeatures(dataset, manifest, version, entry1, entry2, h1, h2, valid, split_index)

