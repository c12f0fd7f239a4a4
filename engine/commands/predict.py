"""Grade images with the student (or, with --sublabels, the fusion teacher).

With no --model, the default bundle shipped in resources/models/ is used. Batch
mode (--dir or several images) decodes on a thread pool overlapped with batched
compute; an unreadable file becomes a row with an error, never an aborted batch.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
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
    p.add_argument("--cam-dir", help="write a Grad-CAM overlay PNG per image here")
    p.add_argument("--cam-method", default="gradcam", help=f"{', '.join(CAM_METHODS)} (default gradcam)")
    p.add_argument("--cam-target", default="predicted",
                   help="what the heat map explains: predicted (the predicted grade), severity (what raises "
                        "the expected grade) or a grade 0-7")
    p.add_argument("--colormap", default="jet", help=f"overlay colour map: {', '.join(COLORMAPS)} "
                   f"({' and '.join(COLORBLIND_SAFE)} are colour-blind safe)")
    p.add_argument("--csv", help="write one row per image to this CSV file")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
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


def _inputs(args: argparse.Namespace) -> list[str]:
    from engine.commands import CommandError
    from engine.io import SUPPORTED_EXTENSIONS

    paths = list(args.images)
    if args.dir:
        folder = Path(args.dir)
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")
        paths += sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS)
    if not paths:
        raise CommandError("no images given: pass image files or --dir FOLDER")
    return paths


def run(args: argparse.Namespace) -> int:
    from engine.commands import CommandError
    from engine.fsutil import atomic_write_text
    from engine.infer import Grader
    from engine.overlay import overlay_cam
    from engine.schema import GRADES

    paths, target = _inputs(args), _target(args)
    try:
        sublabels = None if args.sublabels is None else parse_sublabels(args.sublabels)
        grader = Grader(args.model, args.teacher, device=args.device)
        request = grader.request(sublabels=sublabels, cam=bool(args.cam_dir), target=target, cam_method=args.cam_method)
        graded = grader.grade_files(paths, request, args.batch_size, args.workers)
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    names = grader.schema.names
    cam_dir = Path(args.cam_dir) if request.cam else None
    if cam_dir:
        cam_dir.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0
    for path, result, error in graded:
        if result is None:
            failures += 1
            rows.append({"file": path, "error": error})
            print(f"{path}: error: {error}", file=sys.stderr)
            continue
        row = result.csv_row(names)
        rows.append(row)
        if cam_dir is not None and result.cam is not None:
            import cv2

            from engine.io import read_image

            blended = overlay_cam(read_image(path), result.cam, args.colormap)
            cv2.imwrite(str(cam_dir / (Path(path).stem + "_cam.png")), cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
        if args.json:
            print(json.dumps({**row, "expected_grade": round(result.expected_grade, 3),
                              "model": result.model.name if result.model else None, "device": result.device}))
        elif not args.csv:
            print(f"{path}: grade {result.grade} (confidence {result.confidence:.2f}, {result.model.role} "
                  f"{result.model.name})")
    if args.csv:
        header = ["file", "grade", "confidence", *[f"p{k}" for k in GRADES], *[f"pred_{n}" for n in names],
                  "model_id", "error"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(args.csv, buf.getvalue())
        print(f"{len(rows)} rows written to {args.csv} ({failures} unreadable)", file=sys.stderr)
    if failures == len(rows):
        raise CommandError("no image could be read")
    return 0
