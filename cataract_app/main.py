"""Entry point of `cataract-grader`: the GUI, or an engine subcommand in a frozen build.

The order matters: freeze_support() first; stdout/stderr made safe for windowed frozen
builds; an engine subcommand (train, predict, ...) dispatched before any Qt import so the
frozen executable can serve the retrain panel's child processes; torch imported before
PySide6 (the two clash over DLLs on Windows with torch >= 2.9).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Sequence

from engine.cli import COMMANDS

ENGINE_SUBCOMMANDS = tuple(COMMANDS)  # engine.cli's own list; importing it loads no torch and no Qt


def guard_stdio() -> None:
    """A windowed frozen app has no sys.stdout/sys.stderr: give prints somewhere to go."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115  (lives as long as the app)


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    parser = argparse.ArgumentParser(
        prog="cataract-grader",
        description="Grade cortical cataract (0-7) in retro-illumination photographs.",
        epilog=f"Engine subcommands ({', '.join(ENGINE_SUBCOMMANDS)}) are passed on to cataract-grade.",
    )
    parser.add_argument("image", nargs="?", help="image to open and grade once the model is ready")
    parser.add_argument("--screenshot", metavar="PNG", help="grade IMAGE, save a picture of the window to PNG and exit")
    parser.add_argument("--model", metavar="BUNDLE", help="student model bundle (default: the shipped demo model)")
    parser.add_argument("--teacher", metavar="BUNDLE", help="fusion teacher bundle (default: the shipped one, if any)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument(
        "--sublabels", metavar="NAME=VALUE,...",
        help="after the first grade, enter these sub-labels and grade again with the fusion teacher",
    )
    parser.add_argument(
        "--self-test", action="store_true",
        help="check this installation offscreen (grade the bundled sample, open the window, train one tiny epoch) and exit",
    )
    parser.add_argument("--measure-startup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app (or an engine subcommand); returns the process exit code."""
    multiprocessing.freeze_support()
    guard_stdio()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in ENGINE_SUBCOMMANDS:
        from engine.cli import main as engine_main

        return engine_main(args_list)
    args = build_parser().parse_args(args_list)
    if args.screenshot and not args.image:
        print("error: --screenshot needs an IMAGE to grade", file=sys.stderr)
        return 2
    import torch  # noqa: F401  (before PySide6: DLL clash on Windows with torch >= 2.9)

    if args.self_test:
        from cataract_app.selftest import run_self_test

        return run_self_test(args.model, args.teacher, args.device)
    from cataract_app.app import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
