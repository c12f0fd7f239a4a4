"""Grade images with the student (or, with --sublabels, the fusion teacher).

With no --model, the default bundle shipped in resources/models/ is used. Batch
mode (--dir or several images) decodes on a thread pool overlapped with batched
compute; an unreadable file becomes a row with an error, never an aborted batch.
Every file in --dir gets a row (a file of a type that cannot be read says so), and
with --json, an object. Heat maps (--cam-dir) mirror the input's path relative to
--dir, so two inputs never share an output file. A write that fails (a full disk)
is reported and the exit status is non-zero; rows already written are kept.
Each photograph passes the input gate first: one with problems is still graded, and
its row says input_ok false with the problems as sentences (--no-input-check skips
the checks, for research). --lens cx,cy,r gives the lens circle of one photograph.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.choices import CAM_METHODS, COLORBLIND_SAFE, COLORMAPS
from engine.schema import parse_sublabels


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", help="image files")
    p.add_argument("--dir", help="grade every image in this folder (recursively)")
    p.add_argument("--model", help="student bundle (default: the shipped one)")
    p.add_argument("--teacher", help="fusion teacher bundle (default: the shipped one, if any)")
    p.add_argument("--sublabels", metavar="NAME=VALUE,...",
                   help="grade with the fusion teacher; partial is fine, a blank or ? value means unknown")
    p.add_argument("--cam-dir", help="write each image's heat map here, named after its path relative to --dir "
                   "(a/x.png -> a/x.png_cam.png)")
    p.add_argument("--cam-format", default="png", choices=["png", "npy", "both"],
                   help="png: the overlay; npy: the float map (H x W, 0-1, at the image's resolution); both")
    p.add_argument("--cam-method", default="gradcam", help=f"{', '.join(CAM_METHODS)} (default gradcam)")
    p.add_argument("--cam-target", default="predicted",
                   help="what the heat map explains: predicted (the predicted grade), severity (what raises "
                        "the expected grade) or a grade 0-7")
    p.add_argument("--colormap", default="jet", help=f"overlay colour map: {', '.join(COLORMAPS)} "
                   f"({' and '.join(COLORBLIND_SAFE)} are colour-blind safe)")
    p.add_argument("--csv", help="write one row per image to this CSV file (rows go to FILE.partial as they come; "
                   "FILE appears when all are done)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--lens", metavar="CX,CY,R",
                   help="the lens circle in pixels of the photograph (one image only): the finder is skipped")
    p.add_argument("--no-input-check", action="store_true",
                   help="grade without the input gate's checks (research use; input_ok is then empty)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")


def _target(args: argparse.Namespace):
    """--cam-target as a CamTarget, refused before any model is loaded."""
    from engine.commands import CommandError
    from engine.request import GraderError, cam_target

    try:
        return cam_target(args.cam_target.strip().lower())
    except GraderError as e:
        raise CommandError(f"--cam-target {args.cam_target!r}: {e}") from None


def parse_lens(text: str | None):
    """--lens "cx,cy,r" as a Circle, refused before any model is loaded (None when not given)."""
    from engine.commands import CommandError
    from engine.request import GraderError, lens_circle

    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        return lens_circle(tuple(float(p) for p in parts))
    except (ValueError, GraderError) as e:
        detail = str(e) if isinstance(e, GraderError) else "three numbers are needed"
        raise CommandError(f"--lens {text!r}: {detail} (for example --lens 320,240,150)") from None


def _inputs(args: argparse.Namespace) -> list[str]:
    """Every file to grade: the ones given (each must exist) and every file in --dir but hidden ones."""
    from engine.commands import CommandError

    missing = [p for p in args.images if not Path(p).is_file()]
    if len(missing) == 1:
        what = "is not a file" if Path(missing[0]).exists() else "does not exist"
        raise CommandError(f"{missing[0]} {what}; nothing was graded")
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise CommandError(f"{shown} are not files; nothing was graded")
    paths = list(args.images)
    if args.dir:
        folder = Path(args.dir)
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")
        paths += sorted(str(p) for p in folder.rglob("*")
                        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not paths:
        raise CommandError("no images given: pass image files or --dir FOLDER")
    return paths


def run(args: argparse.Namespace) -> int:
    from engine.batch import csv_header, grade_batch
    from engine.commands import CommandError
    from engine.infer import Grader
    from engine.outputs import CsvStream, OutputError, output_names

    paths, target, lens = _inputs(args), _target(args), parse_lens(args.lens)
    if lens is not None and len(paths) != 1:
        raise CommandError(f"--lens is the circle of one photograph, but {len(paths)} images were given")
    try:
        sublabels = None if args.sublabels is None else parse_sublabels(args.sublabels)
        grader = Grader(args.model, args.teacher, device=args.device)
        request = grader.request(sublabels=sublabels, cam=bool(args.cam_dir), target=target, cam_method=args.cam_method,
                                 lens=lens, check_input=not args.no_input_check)
        graded = grade_batch(grader, paths, request, batch_size=args.batch_size, workers=args.workers)
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    names = output_names(paths, args.dir) if request.cam else {}
    try:
        sink = CsvStream(args.csv, csv_header(grader.schema.names)) if args.csv else None
    except OutputError as e:
        raise CommandError(str(e)) from None
    failures, write_errors, n = 0, [], 0
    try:
        for item in graded:
            n += 1
            if sink:
                sink.write(item.row)
            for note in item.notes:
                print(f"note: {item.path}: {note}", file=sys.stderr)
            if item.result is None:
                failures += 1
                print(f"{item.path}: error: {item.error}", file=sys.stderr)
            written = _heat_maps(item, args, names, write_errors) if item.result is not None else []
            _show(item, args, written)
        if sink:
            sink.close()
    except (ValueError, OSError) as e:  # a write that failed (OutputError), or a request the models refuse
        if sink:
            sink.abort()  # the rows so far stay in the .partial file
        graded.close()
        raise CommandError(str(e)) from None
    except BaseException:
        if sink:
            sink.abort()
        raise
    if sink:
        print(f"{n} rows written to {args.csv} ({failures} could not be graded)", file=sys.stderr)
    if write_errors:
        raise CommandError(f"{len(write_errors)} heat map file(s) could not be written; the first: {write_errors[0]}")
    if failures == n:
        raise CommandError("no image could be graded" if n > 1 else "the image could not be graded")
    return 0


def _heat_maps(item, args: argparse.Namespace, names: dict[str, str], errors: list[str]) -> list[str]:
    """Write one image's heat-map files; a failed write goes to `errors` (and stderr), never stops the batch."""
    from engine.outputs import heat_map_files, write_heat_map

    if not args.cam_dir or item.result.cam is None:
        return []
    files = heat_map_files(args.cam_dir, names[item.path], args.cam_format)

    def overlay():
        from engine.io import read_image
        from engine.overlay import overlay_cam

        return overlay_cam(read_image(item.path), item.result.cam, args.colormap)

    try:
        write_heat_map(files, item.result.cam, overlay)
    except (ValueError, OSError) as e:  # also: the photograph could not be read again for the overlay
        errors.append(str(e))
        print(f"{item.path}: error: {e}", file=sys.stderr)
        return []
    return [str(f) for f in files]


def _show(item, args: argparse.Namespace, written: list[str]) -> None:
    """One answered file: its JSON line or its line of text (a failed file's JSON says why)."""
    from engine.outputs import json_line

    result = item.result
    if args.json:
        if result is None:
            print(json_line({"file": item.path, "grade": None, "error": item.error}), flush=True)
            return
        print(json_line({**item.row, "input_ok": result.input_ok, "input_problems": result.input_problems,
                         "expected_grade": round(result.expected_grade, 3),
                         "model": result.model.name if result.model else None, "device": result.device,
                         "cam_files": written}), flush=True)
    elif result is not None:
        flagged = "" if result.input_ok is not False else " - input problems: " + " ".join(result.input_problems)
        print(f"{item.path}: grade {result.grade} (confidence {result.confidence:.2f}, {result.model.role} "
              f"{result.model.name}){flagged}", flush=True)
