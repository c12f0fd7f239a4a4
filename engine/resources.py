"""Where the shipped resources (default models, samples, icons) live, frozen or not, and a bundle's file names."""

from __future__ import annotations

import sys
from pathlib import Path

WEIGHTS_FILE = "model.safetensors"  # a model bundle is a folder holding these two files (engine.bundle)
CARD_FILE = "card.json"


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def default_model_dir(role: str) -> Path:
    """resources/models/<role>: the shipped demo student or teacher bundle."""
    return resources_dir() / "models" / role


def has_card(folder: str | Path) -> bool:
    """True when `folder` holds a bundle's card.json (without reading it, or importing torch)."""
    return (Path(folder) / CARD_FILE).is_file()
