"""Paths of the app's own resources (icons), frozen or not."""

from __future__ import annotations

from pathlib import Path

from engine.resources import resources_dir

ICON_NAME = "cataract-grader"


def app_icon_path() -> Path | None:
    """The 256 px PNG icon (the SVG where the PNG is missing), or None if neither ships."""
    folder = resources_dir() / "icons"
    for name in (f"{ICON_NAME}-256.png", f"{ICON_NAME}.svg"):
        if (folder / name).is_file():
            return folder / name
    return None
