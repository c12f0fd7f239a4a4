"""The engine's one error family: callers map failures by type, never by module name.

Every error the engine raises for bad input or a refused request derives from
`EngineError`, and its message is one sentence a user can read. It is a ValueError,
so code that already catches ValueError keeps working.
"""

from __future__ import annotations


class EngineError(ValueError):
    """Bad input or a refused request, with the reason in one sentence."""
