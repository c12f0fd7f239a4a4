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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", help="image files")
    p.add_argument("--dir", help="grade every image in this folder (recursively)")
    p.add_argument("--model", help="student bundle (default: the shipped one)")
    p.add_argument("--teacher", help="fusion teacher bundle (default: the shipped one, if any)")
    p.add_argument("--sublabels", help="name=value,... (partial is fine): grade with the fusion teacher")
    p.add_argument("--cam-dir", help="write a Grad-CAM overlay PNG per image here")
    p.add_argument("--cam-method", default="gradcam", help="gradcam, hirescam, gradcam++, layercam or eigencam")
    p.add_argument("--cam-target", default="predicted",
                   help="what the heat map explains: predicted (the predicted grade), severity (what raises "
                        "the expected grade) or a grade 0-7")
    p.add_argument("--colormap", default="jet", help="overlay colour map (jet, turbo, inferno, viridis, cividis)")
    p.add_argument("--csv", help="write one row per image to this CSV file")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")


def _parse_sublabels(text: str | None) -> dict[str, str] | None:
    from engine.cli import CommandError

    if text is None:
        return None
    values: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise CommandError(f"--sublabels item {item!r} is not name=value")
        name, value = item.split("=", 1)
        values[name.strip()] = value.strip()
    return values


def _cam_target(text: str) -> int | str | None:
    from engine.cli import CommandError

    text = text.strip().lower()
    if text == "predicted":
        return None
    if text == "severity":
        return text
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise CommandError(f"--cam-target {text!r}: use predicted, severity or a grade 0-7")


def _inputs(args: argparse.Namespace) -> list[str]:
    from engine.cli import CommandError
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
    from engine.cli import CommandError
    from engine.fsutil import atomic_write_text
    from engine.infer import Grader
    from engine.overlay import overlay_cam

    paths = _inputs(args)
    target = _cam_target(args.cam_target)
    sublabels = _parse_sublabels(args.sublabels)
    try:
        grader = Grader(args.model, args.teacher, device=args.device)
        if sublabels is not None:
            grader.schema.validate(sublabels)
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    names = grader.schema.names
    cam = bool(args.cam_dir)
    cam_dir = Path(args.cam_dir) if cam else None
    if cam_dir:
        cam_dir.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0
    try:
        graded = grader.grade_files(paths, args.batch_size, cam, args.workers, sublabels, target, args.cam_method)
    except ValueError as e:
        raise CommandError(str(e)) from None
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
        header = ["file", "grade", "confidence", *[f"p{k}" for k in range(8)], *[f"pred_{n}" for n in names],
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
