"""Synthetic generator speed: images/s rendered in memory and written to disk, in one process.

Usage: python benchmarks/bench_synth.py [--n 200] [--size 256]. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.synth.sheet import render_sample, write_dataset  # noqa: E402


def in_memory(n: int, size: int, balanced: bool) -> float:
    """Images/s of render_sample alone (natural prior, or aiming at each grade in turn)."""
    start = time.perf_counter()
    for i in range(n):
        render_sample(np.random.default_rng([0, i]), size, target_grade=i % 8 if balanced else None)
    return n / (time.perf_counter() - start)


def to_disk(n: int, size: int) -> float:
    """Images/s of write_dataset with one worker, JPEG files and labels.csv included."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_dataset(Path(tmp) / "ds", n, seed=0, image_size=size, balanced=True)
        return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    render_sample(np.random.default_rng(0), args.size)  # warm the per-size caches
    result = {
        "image_size": args.size,
        "n": args.n,
        "memory_natural_images_per_s": round(in_memory(args.n, args.size, balanced=False), 1),
        "memory_balanced_images_per_s": round(in_memory(args.n, args.size, balanced=True), 1),
        "disk_balanced_images_per_s": round(to_disk(args.n, args.size), 1),
    }
    print(f"in memory, natural prior : {result['memory_natural_images_per_s']:7.1f} images/s")
    print(f"in memory, balanced      : {result['memory_balanced_images_per_s']:7.1f} images/s")
    print(f"to disk (JPEG), balanced : {result['disk_balanced_images_per_s']:7.1f} images/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
