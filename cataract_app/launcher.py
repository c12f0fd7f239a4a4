"""How the app starts an engine subcommand as a child process: one launcher for retraining and the self-test.

A frozen app is its own engine (`CataractGrader train ...`, dispatched by cataract_app.main
before any Qt import); from source it is `python -m engine` (or `-m cataract_app`, to go
through the app's entry point as the frozen build does). No Qt here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def project_root() -> Path:
    """The folder holding the engine package (for `python -m engine` in development)."""
    import engine

    return Path(engine.__file__).resolve().parents[1]


def engine_command(args: Sequence[str], module: str = "engine") -> list[str]:
    """The full command line of engine subcommand `args`: the frozen executable itself, or python -m `module`."""
    if is_frozen():
        return [sys.executable, *args]
    return [sys.executable, "-m", module, *args]


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: unbuffered output and, in development, the engine on its import path."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if not is_frozen():
        paths = [str(project_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env
