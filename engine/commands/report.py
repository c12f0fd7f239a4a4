"""Write a PDF report: one page per case (or image), one PDF for a selection.

A TARGET is a case id, or an image file: the case of that photograph when the case log holds
it, else the image is graded for the report only and not recorded (`cases add` records it).
Each page's heat map is drawn by re-grading the photograph with the active student (the case
log keeps no heat maps); --no-cam leaves it out and needs no model for recorded cases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.choices import CAM_METHODS, COLORMAPS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="CASE_ID|IMAGE", help="case ids and/or image files (.dcm too)")
    p.add_argument("--pdf", required=True, metavar="OUT.pdf", help="the PDF to write (replaced atomically)")
    p.add_argument("--patient", action="append", default=[], metavar="ID",
                   help="add every case of this patient, in visit order (repeat for several)")
    p.add_argument("--db", metavar="PATH", help="case database (default: the app's)")
    p.add_argument("--model", help="student bundle for the heat maps and for images not in the log "
                                   "(default: the active one)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-cam", action="store_true", help="no heat maps (no re-grading)")
    p.add_argument("--cam-target", default="severity",
                   help="what the heat map explains: severity (default, as in the app), predicted or a grade 0-7")
    p.add_argument("--cam-method", default="gradcam", help=f"{', '.join(CAM_METHODS)} (default gradcam)")
    p.add_argument("--colormap", default="jet", help=f"{', '.join(COLORMAPS)}")


def _targets(args: argparse.Namespace) -> list[int | str]:
    """Case ids as ints, image paths as strings, refused before anything is loaded."""
    from engine.commands import CommandError

    out: list[int | str] = []
    for t in args.targets:
        if t.strip().isdigit() and not Path(t).is_file():
            out.append(int(t))
        elif Path(t).is_file():
            out.append(t)
        else:
            raise CommandError(f"{t!r} is neither a case id nor an image file")
    if not out and not args.patient:
        raise CommandError("nothing to report: give case ids, image files or --patient ID")
    return out


def run(args: argparse.Namespace) -> int:
    from engine.cases import CaseLogError
    from engine.commands import CommandError
    from engine.report import ReportError, report_items, write_pdf

    targets = _targets(args)
    try:
        log = _open_log(args, targets)
        try:
            for pid in args.patient:
                visits = log.history(pid).visits
                if not visits:
                    raise CommandError(f"there is no case of patient {pid!r} in {log.path}")
                targets += [v.case_id for v in visits]
            grader = _grader(args, need=any(isinstance(t, str) and (log is None or log.find_image(t) is None)
                                            for t in targets))
            items = report_items(targets, log=log, grader=grader, cam_target=_cam_target(args),
                                 cam_method=args.cam_method)
            out = write_pdf(args.pdf, items, colormap=args.colormap)
        finally:
            if log is not None:
                log.close()
    except (CaseLogError, ReportError, ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    for number, item in enumerate(items, 1):
        for warning in item.warnings:
            print(f"note: page {number} ({Path(item.source).name}): {warning}", file=sys.stderr)
    print(f"{len(items)} page{'s' if len(items) != 1 else ''} written to {out}")
    return 0


def _open_log(args: argparse.Namespace, targets: list[int | str]):
    """The case log; for images alone, only when it exists already (a report creates no database)."""
    from engine.cases import CaseLog, default_db_path

    needed = args.patient or any(isinstance(t, int) for t in targets)
    path = Path(args.db) if args.db else default_db_path()
    if needed or path.is_file():
        log = CaseLog.open(path)
        for notice in log.notices:
            print(f"note: {notice}", file=sys.stderr)
        return log
    return None


def _cam_target(args: argparse.Namespace):
    from engine.commands import CommandError
    from engine.request import GraderError, cam_target

    try:
        return cam_target(args.cam_target.strip().lower())
    except GraderError as e:
        raise CommandError(f"--cam-target {args.cam_target!r}: {e}") from None


def _grader(args: argparse.Namespace, need: bool):
    """The active student (or --model); None with --no-cam when no image must be graded."""
    from engine.commands import CommandError
    from engine.infer import Grader
    from engine.model_store import ModelStore, default_store_root

    if args.no_cam and not need:
        return None
    student = args.model or str(ModelStore(default_store_root()).active("student"))
    try:
        return Grader(student, None, device=args.device)
    except (ValueError, OSError) as e:
        if need:
            raise CommandError(f"an image not in the case log is graded for the report, and no model loads: {e}") from None
        print(f"note: no heat maps: the model does not load ({e})", file=sys.stderr)
        return None
