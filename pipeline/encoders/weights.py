"""Where encoder weights come from, and what identifies them in a fingerprint.

Three sources, one rule each:

- ``--weights PATH`` (a directory or a file): used as is; identified by the sha256 of its files,
  so two different local checkpoints never share a cache entry.
- a Hugging Face hub id: resolved to a local snapshot (download unless offline); identified by
  the commit the revision resolves to.
- a torchvision weights enum: its checkpoint file in ``$TORCH_HOME/hub/checkpoints`` (download
  unless offline); identified by the file name, which carries the checkpoint's hash.

Offline mode is ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``), read at call time; missing
weights then raise a `UserError` that names the exact place to put them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from mmpipe.store.errors import UserError

_HUB_FILES = ["*.json", "*.txt", "*.safetensors", "pytorch_model.bin", "*.model"]
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def offline() -> bool:
    return any(os.environ.get(var, "").lower() in {"1", "true", "yes", "on"}
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def local_identity(path: Path) -> dict[str, Any]:
    """sha256 over the (relative name, bytes) of every file under ``path`` (or of the file itself)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"--weights {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"--weights {path} is an empty directory")
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return {"source": "local", "sha256": digest.hexdigest()}


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def hub_snapshot(model_id: str, revision: str) -> Path:
    """Local directory of the checkpoint at ``revision``; downloads it unless offline."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, revision=revision, allow_patterns=_HUB_FILES,
                                      cache_dir=hub_cache_dir(), local_files_only=offline()))
    except Exception as error:  # LocalEntryNotFoundError, HTTP and connection errors alike
        folder = hub_cache_dir() / f"models--{model_id.replace('/', '--')}"
        how = "offline mode is on" if offline() else f"download failed ({type(error).__name__})"
        raise UserError(
            f"weights of {model_id}@{revision} not found and {how}: run `hf download {model_id} --revision {revision}` "
            f"where there is network and copy the cache to {folder}, or pass --weights DIR holding config.json, "
            f"model.safetensors and the tokenizer/preprocessor files") from None


def hub_identity(model_id: str, revision: str) -> dict[str, Any]:
    snapshot = hub_snapshot(model_id, revision)
    return {"source": "hub", "model_id": model_id, "revision": revision, "commit": snapshot.name}


def torchvision_checkpoint(weights_enum: Any) -> Path:
    """Path of a torchvision checkpoint in the torch hub cache; downloads it unless offline."""
    file_name = weights_enum.url.rsplit("/", 1)[-1]
    target = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if target.is_file():
        return target
    message = (f"torchvision weights {weights_enum} not found: put {file_name} (from {weights_enum.url}) in "
               f"{target.parent} (set TORCH_HOME to move it), or pass --weights FILE")
    if offline():
        raise UserError(message + " [offline mode is on]")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights_enum.url, str(target), progress=False)
    except Exception as error:
        raise UserError(f"{message} [download failed: {type(error).__name__}]") from None
    return target


def weight_file(path: Path) -> Path:
    """The single checkpoint file at ``path`` (the path itself, or the only weights file in a directory)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"--weights {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    if len(files) != 1:
        raise UserError(f"--weights {path} must hold exactly one checkpoint file ({', '.join(_WEIGHT_SUFFIXES)}); "
                        f"found {len(files)}")
    return files[0]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    file = weight_file(path)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    return torch.load(file, map_location="cpu", weights_only=True)
