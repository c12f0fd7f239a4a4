"""Grade images with the student (or, with --sublabels, the fusion teacher).

With no --model, the default bundle shipped in resources/models/ is used. Batch
mode (--dir or several images) decodes on a thread pool overlapped with batched
compute; an unreadable file becomes a row with an error, never an aborted batch.
Each photograph passes the input gate first: one with problems is still graded, and
its row says input_ok false with the problems as sentences (--no-input-check skips
the checks, for research). --lens cx,cy,r gives the lens circle of one photograph.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--lens", metavar="CX,CY,R",
                   help="the lens circle in pixels of the photograph (one image only): the finder is skipped")
    p.add_argument("--no-input-check", action="store_true",
                   help="grade without the input gate's checks (research use; input_ok is then empty)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--nproc", type=int, default=1,
                   help="grade on N processes through torchrun (one per GPU, or CPU processes): the files are "
                        "split across them and the CSV and output stay in input order (docs/scaling.md)")


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
    from engine import distributed
    from engine.batch import csv_text
    from engine.commands import CommandError
    from engine.fsutil import atomic_write_text

    paths, target, lens = _inputs(args), _target(args), parse_lens(args.lens)
    if lens is not None and len(paths) != 1:
        raise CommandError(f"--lens is the circle of one photograph, but {len(paths)} images were given")
    if args.nproc < 1:
        raise CommandError(f"--nproc must be at least 1, not {args.nproc}")
    if args.nproc > 1 and not distributed.launched():
        from engine.dist_launch import launch_command

        return launch_command(args.nproc, ["predict", *_arguments(args)])
    import torch

    try:
        world = distributed.join(torch.device("cpu"), backend="gloo")  # rows only: gloo carries them for CPU and GPU
        device = _rank_device(args.device, world)
        mine = list(range(world.rank, len(paths), world.size))
        rows, names = _grade_share(args, [paths[i] for i in mine], target, lens, device)
        shares = distributed.gather_json(world, [mine, rows])
    finally:
        distributed.leave()
    if not world.main:
        return 0
    merged: list = [None] * len(paths)
    for idx, share in shares:
        for i, graded in zip(idx, share):
            merged[i] = graded
    failures = 0
    for _row, line, failed in merged:
        failures += failed
        if line is not None:
            print(line)
    rows = [row for row, _, _ in merged]
    if args.csv:
        atomic_write_text(args.csv, csv_text(rows, names))
        print(f"{len(rows)} rows written to {args.csv} ({failures} unreadable)", file=sys.stderr)
    if failures == len(rows):
        raise CommandError("no image could be read")
    return 0


def _rank_device(name: str, world) -> str:
    """The device this rank grades on: --device as given, but a CUDA job's rank r on GPU r of its node."""
    from engine import distributed
    from engine.commands import CommandError
    from engine.device import pick_device

    if not world.enabled:
        return name
    try:
        return str(distributed.rank_device(pick_device(name), world))
    except ValueError as e:
        raise CommandError(str(e)) from None


def _grade_share(args: argparse.Namespace, paths: list[str], target, lens, device: str) -> tuple[list, list[str]]:
    """Grade these files: ([row, output line or None, 1 if unreadable] per file, sub-label names); notes to stderr."""
    from engine.batch import grade_batch
    from engine.commands import CommandError
    from engine.infer import Grader

    try:
        sublabels = None if args.sublabels is None else parse_sublabels(args.sublabels)
        grader = Grader(args.model, args.teacher, device=device)
        request = grader.request(sublabels=sublabels, cam=bool(args.cam_dir), target=target, cam_method=args.cam_method,
                                 lens=lens, check_input=not args.no_input_check)
        graded = grade_batch(grader, paths, request, batch_size=args.batch_size, workers=args.workers) if paths else []
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    cam_dir = Path(args.cam_dir) if request.cam else None
    if cam_dir:
        cam_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for item in graded:
        for note in item.notes:
            print(f"note: {item.path}: {note}", file=sys.stderr)
        if item.result is None:
            print(f"{item.path}: error: {item.error}", file=sys.stderr)
            out.append([item.row, None, 1])
            continue
        out.append([item.row, _show(item.path, item.result, item.row, args, cam_dir), 0])
    return out, list(grader.schema.names)


def _arguments(args: argparse.Namespace) -> list[str]:
    """The predict command line of `args`, without --nproc (what each torchrun worker runs)."""
    out = list(args.images) + (["--dir", args.dir] if args.dir else [])
    for name, value in vars(args).items():
        if name in ("images", "dir", "nproc", "command") or name.startswith("_") or value is None or value is False:
            continue
        out += ["--" + name.replace("_", "-")] + ([] if value is True else [str(value)])
    return out


def _show(path: str, result, row: dict, args: argparse.Namespace, cam_dir: Path | None) -> str | None:
    """One graded image: its overlay PNG, and its JSON line or its line of text (None when only a CSV is asked)."""
    if cam_dir is not None and result.cam is not None:
        import cv2

        from engine.io import read_image
        from engine.overlay import overlay_cam

        blended = overlay_cam(read_image(path), result.cam, args.colormap)
        cv2.imwrite(str(cam_dir / (Path(path).stem + "_cam.png")), cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
    if args.json:
        return json.dumps({**row, "input_ok": result.input_ok, "input_problems": result.input_problems,
                           "expected_grade": round(result.expected_grade, 3),
                           "model": result.model.name if result.model else None, "device": result.device})
    if not args.csv:
        flagged = "" if result.input_ok is not False else " - input problems: " + " ".join(result.input_problems)
        return (f"{path}: grade {result.grade} (confidence {result.confidence:.2f}, {result.model.role} "
                f"{result.model.name}){flagged}")
    return None
