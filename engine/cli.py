"""`cataract-grade <subcommand>`: the command-line twin of every GUI action.

Each subcommand lives in `engine.commands.<name>` and exposes `add_arguments(parser)`
and `run(args) -> int`. Command modules keep their top level light (no torch import)
so that `--help` and argument errors answer at once; heavy imports go inside `run`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine import __version__
from engine.commands import CommandError

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("engine.commands.synth", "write a synthetic retro-illumination dataset"),
    "validate": ("engine.commands.validate", "check a dataset folder and report every problem"),
    "train": ("engine.commands.train", "train a teacher, a student, or a distilled student (kd)"),
    "evaluate": ("engine.commands.evaluate", "score a model bundle on a dataset split"),
    "predict": ("engine.commands.predict", "grade images (student, or fusion teacher with --sublabels)"),
    "models": ("engine.commands.models", "list trained models, show the active ones, promote or switch back"),
    "cases": ("engine.commands.cases", "the case log: record graded images, review them, export the reviewed ones"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cataract-grade", description="Cortical cataract grading (0-7).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CommandError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
