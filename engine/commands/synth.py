"""Write a synthetic retro-illumination dataset: OUT/images/*.jpg, OUT/labels.csv, OUT/schema.json.

Two eyes (OD, OS) per patient; the same seed always gives the same images and labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.commands import CommandError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="dataset folder to write")
    parser.add_argument("--n", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=int, default=256, metavar="PX", help="image side in px, 32-2048")
    parser.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        metavar="P",
        help="probability that each label moves one step, as graders disagree (default 0)",
    )
    parser.add_argument("--balanced", action="store_true", help="draw each grade 0-7 equally often")
    parser.add_argument("--workers", type=int, default=1, help="processes to render with (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")


def _check(args: argparse.Namespace) -> None:
    """Refuse bad arguments with a sentence before any work starts."""
    if args.n < 1:
        raise CommandError(f"--n must be at least 1 image, not {args.n}")
    if not 32 <= args.image_size <= 2048:
        raise CommandError(f"--image-size must be from 32 to 2048 px, not {args.image_size}")
    if not 0.0 <= args.label_noise <= 1.0:
        raise CommandError(f"--label-noise is a probability from 0 to 1, not {args.label_noise}")
    if args.seed < 0:
        raise CommandError(f"--seed must be 0 or more, not {args.seed}")
    if not 1 <= args.workers <= 256:
        raise CommandError(f"--workers must be from 1 to 256, not {args.workers}")
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"{args.out} is a file; give a folder to write the dataset into")
    if (args.out / "labels.csv").exists() and not args.overwrite:
        raise CommandError(f"{args.out} already holds a dataset (labels.csv); pass --overwrite to replace it")


def run(args: argparse.Namespace) -> int:
    import csv
    import time
    from collections import Counter

    from engine.schema import GRADES
    from engine.synth.sheet import SynthError, write_dataset

    _check(args)
    start = time.perf_counter()
    try:
        out = write_dataset(
            args.out,
            args.n,
            args.seed,
            args.image_size,
            args.label_noise,
            args.balanced,
            args.workers,
            overwrite=args.overwrite,
        )
    except (SynthError, OSError) as e:
        raise CommandError(f"could not write the dataset: {e}") from None
    seconds = time.perf_counter() - start
    with open(out / "labels.csv", newline="", encoding="utf-8") as fh:
        grades = Counter(int(row["grade"]) for row in csv.DictReader(fh))
    spread = " ".join(f"{g}:{grades.get(g, 0)}" for g in GRADES)
    print(f"wrote {args.n} images to {out} in {seconds:.1f} s ({args.n / seconds:.0f} images/s); grades {spread}")
    return 0
