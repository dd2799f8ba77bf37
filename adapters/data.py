"""Cached features of a dataset's named modalities, loaded for adapter training, checked.

The inputs of a fit are a mapping modality → feature entry of one dataset, in the order the user
chose (for a two-modality method, its modality 1 and modality 2). Rows follow the manifest order.
Rows whose media failed in any chosen modality (``valid`` False) are excluded from training and
flagged in every run's components; they are never zero-filled inputs.

A feature entry is named ``<dataset>.<modality>.<feature>`` and its key names the modality it was
extracted from, so a feature is never accepted for another modality: asking for it is refused
with a line naming both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from mmpipe.adapters.pooling import POOLINGS, pool
from mmpipe.store.errors import UserError
from mmpipe.store.features import FeatureEntry
from mmpipe.store.manifest import SPLITS, Manifest
from mmpipe.store.ranges import check_split_rows
from mmpipe.store.root import Store


@dataclass(frozen=True)
class ModalityInput:
    """One modality's features: pooled rows (N, D), or sequences (N, T, D) with their lengths."""

    modality: str
    entry: FeatureEntry
    values: torch.Tensor  # (N, D) or (N, T, D) float32, all rows
    lengths: torch.Tensor | None = None  # (N,) valid steps per row, for sequences
    pooled_by: str | None = None  # "mean" / "last" when a stored sequence was pooled to (N, D)

    @property
    def kind(self) -> str:
        return "sequence" if self.lengths is not None else "pooled"

    @property
    def dim(self) -> int:
        return int(self.values.shape[-1])


@dataclass(frozen=True)
class MultimodalFeatures:
    dataset: str
    manifest: Manifest
    manifest_version: str
    inputs: tuple[ModalityInput, ...]  # in the order the method sees them
    valid: torch.Tensor  # (N,) bool: every chosen modality present
    split_index: dict[str, torch.Tensor]  # split -> (n_split,) row indices of valid rows

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(i.modality for i in self.inputs)

    @property
    def dims(self) -> dict[str, int]:
        return {i.modality: i.dim for i in self.inputs}

    @property
    def kinds(self) -> dict[str, str]:
        return {i.modality: i.kind for i in self.inputs}

    @property
    def values(self) -> dict[str, torch.Tensor]:
        """modality → all rows (N, D) or (N, T, D)."""
        return {i.modality: i.values for i in self.inputs}

    @property
    def lengths(self) -> dict[str, torch.Tensor] | None:
        """modality → (N,) valid steps of each sequence input; None when every input is pooled."""
        stored = {i.modality: i.lengths for i in self.inputs if i.lengths is not None}
        return stored or None

    def split(self, name: str) -> dict[str, torch.Tensor]:
        """modality → the valid rows of one split."""
        index = self.split_index[name]
        return {i.modality: i.values[index] for i in self.inputs}

    def to(self, device: torch.device) -> MultimodalFeatures:
        inputs = tuple(replace(i, values=i.values.to(device),
                               lengths=None if i.lengths is None else i.lengths.to(device)) for i in self.inputs)
        return replace(self, inputs=inputs, valid=self.valid.to(device),
                       split_index={k: v.to(device) for k, v in self.split_index.items()})


def feature_name(dataset: str, modality: str, feature: str) -> str:
    return f"{dataset}.{modality}.{feature}"


def features_of(store: Store, dataset: str, version: str) -> dict[str, list[FeatureEntry]]:
    """modality → the entries stored for this manifest version, every feature."""
    prefix = f"{dataset}."
    found: dict[str, list[FeatureEntry]] = {}
    for name in store.feature_names():
        if name.startswith(prefix):
            for entry in store.feature_entries(name):
                if entry.meta.get("manifest_version") == version:
                    found.setdefault(entry.key.get("modality", ""), []).append(entry)
    return found


def choose_entry(stored: Mapping[str, list[FeatureEntry]], manifest: Manifest, version: str, modality: str,
                 feature: str | None) -> FeatureEntry:
    """The entry of ``feature`` (an encoder name, or None for the only one stored) for ``modality``,
    among the ``stored`` entries of this manifest version (`features_of`).

    Refused in one line: an unknown modality; a feature stored only for another modality (naming
    both); no feature, or several when none was named.
    """
    dataset = manifest.dataset
    manifest.modality(modality)  # an unknown modality names the valid ones
    entries = stored.get(modality, [])
    if feature is not None:
        entries = [e for e in entries if e.name == feature_name(dataset, modality, feature)]
        if not entries:
            elsewhere = sorted(m for m, es in stored.items() if m != modality
                               and any(e.name == feature_name(dataset, m, feature) for e in es))
            if elsewhere:
                raise UserError(f"{feature} features of {dataset} were extracted from {', '.join(elsewhere)}, "
                                f"not {modality}: they cannot stand in for {modality}")
            have = sorted({e.name.rsplit('.', 1)[-1] for e in stored.get(modality, [])})
            raise UserError(f"no cached {feature} features of {dataset} {modality} for manifest {version} "
                            f"(stored for {modality}: {', '.join(have) or 'none'}); create them with "
                            f"`mmpipe extract {dataset} --encoder {feature} --set modality={modality}`")
    if not entries:
        raise UserError(f"no cached features of {dataset} {modality} for manifest {version}; create them with "
                        f"`mmpipe {'simulate' if dataset.startswith('sim') else 'extract'} {dataset}`")
    names = sorted({e.name for e in entries})
    if len(names) > 1:
        choices = ", ".join(n.rsplit(".", 1)[-1] for n in names)
        raise UserError(f"{dataset} {modality} has several features ({choices}); choose one with "
                        f"--input {modality}=FEATURE")
    if len(entries) > 1:
        listed = ", ".join(e.fingerprint[:12] for e in entries)
        raise UserError(f"several {names[0]} entries for manifest {version} ({listed}); remove the stale ones")
    return entries[0]


def resolve_version(store: Store, dataset: str, version: str | None) -> Manifest:
    versions = store.manifest_versions(dataset)
    if not versions:
        raise UserError(f"the store holds no {dataset} data; create it with "
                        f"`mmpipe {'simulate' if dataset.startswith('sim') else 'extract'} {dataset}`")
    if version is None and len(versions) > 1:
        with_features = [v for v in versions if features_of(store, dataset, v)]
        if len(with_features) != 1:
            raise UserError(f"{dataset} has several manifest versions ({', '.join(versions)}); "
                            "choose one with --data-version")
        version = with_features[0]
    return store.manifest(dataset, version)


def load_features(store: Store, dataset: str, inputs: Mapping[str, str | None],
                  version: str | None = None, pooling: str | None = None) -> MultimodalFeatures:
    """Load the chosen features (modality → feature name, or None for the only one stored) of one
    manifest version, with input checks.

    A sequence entry loads as (N, T, D) values with their lengths; rows without a step are
    invalid. With ``pooling`` ("mean" or "last", `adapters/pooling.py`) every sequence entry is
    pooled to (N, D) instead, and the input says how.

    Errors (UserError): no manifest or no features (naming the command that creates them); a
    feature of another modality; entries whose row count differs from the manifest's; NaN/Inf
    in valid rows (how many rows, which split); a train or val split of fewer than MIN_SPLIT_ROWS
    valid rows.
    """
    if not inputs:
        raise UserError(f"choose the inputs of {dataset}, e.g. --input MODALITY=FEATURE")
    if pooling is not None and pooling not in POOLINGS:
        raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    manifest = resolve_version(store, dataset, version)
    version = manifest.version()
    stored = features_of(store, dataset, version)  # one scan of the store for every modality
    loaded = []
    valid = torch.ones(len(manifest), dtype=torch.bool)
    for modality, feature in inputs.items():
        entry = choose_entry(stored, manifest, version, modality, feature)
        if entry.shape[0] != len(manifest):
            raise UserError(f"{entry.name} has {entry.shape[0]} rows but the {dataset} manifest has {len(manifest)}")
        values = entry.load(dtype=torch.float32)  # (N, D) or (N, T, D), converted chunk by chunk
        valid &= torch.from_numpy(entry.valid())
        lengths, pooled_by = entry.lengths(), None
        if lengths is not None:
            valid &= lengths > 0
            if pooling is not None:
                # a row without steps pools to zero here; ``valid`` already says it has no features
                values, lengths, pooled_by = pool(values, lengths.clamp_min(1), pooling), None, pooling
        loaded.append(ModalityInput(modality, entry, values, lengths, pooled_by))
    split_index = {}
    for split in SPLITS:
        mask = torch.from_numpy(manifest.split_mask(split)) & valid
        rows = mask.nonzero().squeeze(1)
        for item in loaded:
            bad = (~torch.isfinite(item.values[rows])).flatten(1).any(dim=1)
            if bad.any():
                raise UserError(f"{item.entry.name}: {int(bad.sum())} valid {split} rows hold NaN or Inf, which no "
                                f"mmpipe command stores: the entry {item.entry.path} is damaged; `mmpipe verify "
                                "--repair` moves it aside, then re-run the command that created it")
        split_index[split] = rows
    check_split_rows({s: len(split_index[s]) for s in ("train", "val")}, f"{dataset} (valid rows)",
                     "a fit needs more rows there")
    return MultimodalFeatures(dataset, manifest, version, tuple(loaded), valid, split_index)
