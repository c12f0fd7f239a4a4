"""One module per `cataract-grade` subcommand, each with `add_arguments(parser)` and `run(args) -> int`."""

from engine.errors import EngineError


class CommandError(EngineError):
    """A user-facing failure: printed as one sentence, exit code 2."""
