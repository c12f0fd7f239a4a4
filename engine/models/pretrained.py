"""Initial backbone weights: the ImageNet files installed under resources/backbones, or a clinic's own file.

`resolve_pretrained(arch, value)` turns what a user typed (`imagenet`, `auto`, a path,
or nothing) into a local .safetensors path and a provenance note that the model card
keeps, so every trained model says where its initial weights came from. Nothing is
downloaded; the installed files were made once by packaging/convert_imagenet_weights.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from engine.models.registry import ModelConfigError
from engine.resources import resources_dir

IMAGENET = "imagenet"
AUTO = "auto"  # the ImageNet file where one is installed for the backbone, else random weights (the default)
SUFFIX = ".imagenet.safetensors"


@dataclass(frozen=True)
class InitialWeights:
    """Where a training run's backbone weights come from, and what input they expect."""

    path: str | None  # a local .safetensors file, or None for random initial weights
    provenance: dict  # JSON-safe: source (random | imagenet | file), file, sha256, origin, licence
    mean: tuple[float, ...] | None = None  # the normalisation the weights were trained with, when known
    std: tuple[float, ...] | None = None


def backbones_dir() -> Path:
    """resources/backbones: converted ImageNet weights with their licence notices."""
    return resources_dir() / "backbones"


def installed_imagenet() -> dict[str, Path]:
    """{timm backbone name: weights file} for every installed ImageNet backbone."""
    folder = backbones_dir()
    if not folder.is_dir():
        return {}
    return {p.name[: -len(SUFFIX)]: p for p in sorted(folder.glob(f"*{SUFFIX}"))}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _imagenet(arch: str) -> InitialWeights:
    files = installed_imagenet()
    path = files.get(arch)
    if path is None:
        have = ", ".join(files) or "none"
        raise ModelConfigError(
            f"no ImageNet weights are installed for {arch!r} (installed: {have}); train it from random "
            f"weights (--pretrained none) or pass your own .safetensors file"
        )
    meta_path = path.with_name(path.name[: -len(".safetensors")] + ".json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelConfigError(
            f"the ImageNet weights {path.name} have no readable description {meta_path.name}: {e}"
        ) from None
    provenance = {
        "source": IMAGENET, "file": f"backbones/{path.name}", "sha256": sha256_file(path),
        "origin": meta.get("origin"), "licence": meta.get("licence"),
    }
    return InitialWeights(str(path), provenance, tuple(meta["mean"]), tuple(meta["std"]))


def resolve_pretrained(arch: str, value: str | Path | None) -> InitialWeights:
    """'imagenet' -> the installed file for `arch`; 'auto' -> that file where installed, else random weights;
    a path -> that file; None, '', 'none' or 'random' -> random weights."""
    if value is None or str(value).strip() in ("", "none", "random"):
        return InitialWeights(None, {"source": "random"})
    if str(value).strip().lower() == AUTO:
        if arch in installed_imagenet():
            return _imagenet(arch)
        return InitialWeights(None, {"source": "random", "note": f"no ImageNet weights are installed for {arch}"})
    if str(value).strip().lower() == IMAGENET:
        return _imagenet(arch)
    path = Path(value).expanduser()
    if not path.is_file():
        raise ModelConfigError(f"backbone weights {path}: no such file (use 'imagenet' for the installed weights)")
    return InitialWeights(str(path), {"source": "file", "file": path.name, "sha256": sha256_file(path)})
