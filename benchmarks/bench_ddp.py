"""Data-parallel training throughput: the same job on 1 and on N processes, side by side in one run.

Each measurement trains one epoch of --n synthetic images through torchrun (engine.dist_launch),
with --batch-size as the global batch, and reads the job's own figures: training images/s of
the epoch (validation excluded; summed over ranks) and the wall seconds of the whole job
(start-up, image check, lens finding, validation and the bundle included). The runs alternate
(1, N, 1, N, ...) so load on a shared machine falls on both alike. On CPU every process gets
OMP_NUM_THREADS threads (1 unless set): N processes need N free cores to scale.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ddp.py --nproc 2 --n 96 --size 64
    .venv/bin/python benchmarks/bench_ddp.py --device cuda --nproc 8 --size 224 --batch-size 256

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine.compat  # noqa: E402,F401
from engine.device import DeviceError, pick_device  # noqa: E402
from engine.dist_launch import launch_training  # noqa: E402
from engine.progress import EpochEvent  # noqa: E402
from engine.train import TrainConfig  # noqa: E402


def one_job(cfg: TrainConfig) -> dict:
    """(train images/s, wall seconds) of one job of cfg.nproc processes."""
    events: list = []
    t0 = time.perf_counter()
    launch_training(cfg, events.append)
    wall = time.perf_counter() - t0
    epoch = next(e for e in events if isinstance(e, EpochEvent))
    return {"img_per_s": epoch.images_per_s, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="the global batch")
    ap.add_argument("--n", type=int, default=96, help="training images (about)")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    ap.add_argument("--amp", default="auto")
    args = ap.parse_args()
    try:  # --device cuda without a GPU stops here, with the reason
        device = pick_device(args.device)
    except DeviceError as e:
        sys.exit(f"bench_ddp: {e}")
    from engine.synth.sheet import write_dataset

    report: dict = {"arch": args.arch, "size": args.size, "batch": args.batch_size, "device": str(device),
                    "omp_threads": os.environ.get("OMP_NUM_THREADS", "1"), "cpus": os.cpu_count(),
                    "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data", n=round(args.n / 0.7), seed=99, image_size=128)
        base = TrainConfig(job="student", dataset=str(data), arch=args.arch, image_size=args.size, epochs=1,
                           batch_size=args.batch_size, device=args.device, amp=args.amp, augment="none")
        seen: dict[int, list] = {1: [], args.nproc: []}
        for r in range(args.repeats):
            for n in (1, args.nproc):
                out = Path(tmp) / f"run-{n}-{r}"
                m = one_job(TrainConfig(**{**base.__dict__, "out": str(out), "nproc": n}))
                seen[n].append(m)
                print(f"{n} process{'es' if n > 1 else ''}: {m['img_per_s']:.1f} train img/s, "
                      f"job {m['wall_s']:.1f} s", flush=True)
    for n, ms in seen.items():
        report[f"nproc{n}"] = {"img_per_s": round(statistics.median(m["img_per_s"] for m in ms), 1),
                               "wall_s": round(statistics.median(m["wall_s"] for m in ms), 1)}
    one, many = report["nproc1"], report[f"nproc{args.nproc}"]
    report["speedup_img_per_s"] = round(many["img_per_s"] / one["img_per_s"], 2)
    report["speedup_wall"] = round(one["wall_s"] / many["wall_s"], 2)
    print(f"x{report['speedup_img_per_s']} training images/s, x{report['speedup_wall']} job wall time with "
          f"{args.nproc} processes")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
