"""Check a dataset folder (labels.csv, images, schema.json) and list every problem, one per line.

Exit status 0 when the dataset is clean, 2 when anything is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="dataset folder holding labels.csv")
    parser.add_argument("--no-images", action="store_true", help="skip decoding the images (much faster)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args: argparse.Namespace) -> int:
    from engine.data.manifest import validate_dataset

    progress = _progress if (not args.json and sys.stderr.isatty()) else None
    report = validate_dataset(args.dir, check_images=not args.no_images, progress=progress)
    if args.json:
        problems = [{"file": p.file, "line": p.line, "message": p.message} for p in report.problems]
        print(json.dumps({"ok": report.ok, "problems": problems, "summary": report.summary}))
    elif len(report.problems) == 1 and report.problems[0].line == 0 and not report.records:
        print(report.problems[0].message)  # no folder or no labels.csv: a summary of zeros would say nothing more
    else:
        for p in report.problems:
            print(p)
        print(format_summary(report.summary, len(report.problems)))
    return 0 if report.ok else 2


def format_summary(summary: dict, n_problems: int) -> str:
    """A few lines of counts: images, patients, per grade, per split, and the verdict."""
    grades = "  ".join(f"{g}:{n}" for g, n in summary["per_grade"].items())
    splits = "  ".join(f"{s}:{n}" for s, n in summary["per_split"].items())
    known = "  ".join(f"{s}:{n}" for s, n in summary["sublabels_known"].items())
    verdict = "ok" if n_problems == 0 else f"{n_problems} problem{'s' if n_problems != 1 else ''}"
    return "\n".join(
        [
            f"{summary['images']} valid images, {summary['patients']} patients",
            f"per grade   {grades}",
            f"per split   {splits}",
            f"sub-labels known  {known}",
            verdict,
        ]
    )


def _progress(done: int, total: int) -> None:
    if done != total and done % max(1, total // 100):
        return
    end = "\n" if done == total else ""
    print(f"\rchecking images {done}/{total}", end=end, file=sys.stderr, flush=True)
