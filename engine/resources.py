"""Where the shipped resources (default models, samples, icons) live, frozen or not."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def default_model_dir(role: str) -> Path:
    """resources/models/<role>: the shipped demo student or teacher bundle."""
    return resources_dir() / "models" / role
