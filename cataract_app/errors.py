"""How the app words a failure: one readable sentence per exception, mapped by type."""

from __future__ import annotations

import sys
import traceback

from engine.errors import EngineError


class AppError(Exception):
    """A failure of the app itself (no model loaded, ...), already worded for the user."""


def user_message(exc: BaseException) -> str:
    """One readable sentence for an exception; the engine's own errors already are one."""
    if isinstance(exc, (EngineError, AppError, OSError, ValueError)):
        text = str(exc) or type(exc).__name__
    elif isinstance(exc, MemoryError):
        text = "Not enough memory for this image or model."
    else:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        text = f"Unexpected error ({type(exc).__name__}): {exc}"
    return text[0].upper() + text[1:] if text else text
