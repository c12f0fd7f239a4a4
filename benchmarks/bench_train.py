"""Training speed: the training loop's images/s beside a bare forward + backward of the same model, and
the minutes a retrain takes to reach a validation QWK of 0.95 (teacher plus student).

a  bare step: the model's forward, cross-entropy, backward and an AdamW step on one preloaded batch
   (no data loading, augmentation, sub-label loss or teacher), median over steps, measured before
   and after (b) and averaged, so load on a shared machine falls on both alike;
b  the training loop (`engine.train.run_training`) for one epoch of --n images: decoding,
   augmentation, the full loss, the frozen teacher for kd, validation excluded;
c  time to QWK: for each run folder given with --run (a finished training run), the wall and
   CPU seconds of its epochs (validation included) until validation QWK first reached --qwk.

The last line is JSON.

    .venv/bin/python benchmarks/bench_train.py --arch tf_efficientnet_lite0 --size 96
    .venv/bin/python benchmarks/bench_train.py --skip-loop --run runs/distill/teacher-s0 --run runs/distill/kd-s0
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.device import DeviceError, pick_device  # noqa: E402
from engine.models import create_model  # noqa: E402
from engine.precision import Precision  # noqa: E402
from engine.schema import DEFAULT_SCHEMA  # noqa: E402
from engine.train import TrainConfig, run_training  # noqa: E402


def bare_img_per_s(arch: str, size: int, batch: int, steps: int, role: str, device: str = "cpu",
                   amp: str = "auto") -> float:
    """Median images/s of forward + CE + backward + AdamW step on one random batch (student or teacher)."""
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    name = "student" if role == "student" else "teacher_concat"
    extra = {} if role == "student" else {"dim": 192, "depth": 2}
    model = create_model(name, backbone=arch, image_size=size, sublabel_ranges=ranges, **extra).train()
    dev = torch.device(device)
    model = model.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    precision = Precision(amp, dev)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 8, (batch,), device=dev)
    args = () if role == "student" else (torch.zeros(batch, len(ranges), dtype=torch.long, device=dev),
                                         torch.ones(batch, len(ranges), dtype=torch.bool, device=dev))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(model(x, *args)["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        precision.backward_step(loss, opt)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def loop_img_per_s(cfg: TrainConfig) -> float:
    """Training images/s of the loop's one epoch (its own measurement, validation excluded)."""
    from engine.progress import EpochEvent

    events = []
    run_training(cfg, progress=events.append)
    return next(e.images_per_s for e in events if isinstance(e, EpochEvent))


def time_to_qwk(run: Path, qwk: float) -> dict:
    """Wall and CPU seconds (validation included) until a run's validation QWK first reached `qwk`."""
    lines = (run / "log.jsonl").read_text().splitlines()
    epochs = [e for e in map(json.loads, lines) if e["event"] == "epoch"]
    wall = cpu = 0.0
    for e in epochs:
        wall += e["seconds"]
        cpu += e.get("cpu_seconds", float("nan"))
        if e["val_qwk"] >= qwk:
            return {"run": run.name, "epoch": e["epoch"], "wall_min": round(wall / 60, 1),
                    "cpu_min": round(cpu / 60, 1), "images_per_s": round(statistics.median(
                        x["images_per_s"] for x in epochs[: e["epoch"]]), 1)}
    return {"run": run.name, "epoch": None, "best_val_qwk": max(x["val_qwk"] for x in epochs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tf_efficientnet_lite0")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n", type=int, default=192, help="training images for the loop's epoch")
    ap.add_argument("--steps", type=int, default=6, help="bare steps per measurement")
    ap.add_argument("--skip-loop", action="store_true", help="only (c)")
    ap.add_argument("--run", action="append", default=[], help="finished run folder for (c) (repeatable)")
    ap.add_argument("--qwk", type=float, default=0.95)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a missing GPU is refused before any work)")
    ap.add_argument("--amp", default="auto", help="auto, bf16, fp16 or off (engine.precision)")
    args = ap.parse_args()
    try:  # --device cuda without a GPU stops here, with the reason
        dev = str(pick_device(args.device))
    except DeviceError as e:
        sys.exit(f"bench_train: {e}")
    report: dict = {"device": dev, "amp": args.amp, "arch": args.arch, "size": args.size, "batch": args.batch_size,
                    "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__}
    if not args.skip_loop:
        from engine.synth.sheet import write_dataset

        with tempfile.TemporaryDirectory() as tmp:
            data = write_dataset(Path(tmp) / "data", n=round(args.n / 0.7), seed=99, image_size=256, label_noise=0.1)
            common = dict(dataset=str(data), arch=args.arch, image_size=args.size, batch_size=args.batch_size,
                          epochs=1, device=dev, amp=args.amp, pretrained="imagenet")
            for job in ("student", "teacher", "kd"):
                role = "teacher" if job == "teacher" else "student"
                before = bare_img_per_s(args.arch, args.size, args.batch_size, args.steps, role, dev, args.amp)
                teacher = str(Path(tmp) / "teacher" / "bundle") if job == "kd" else None
                loop = loop_img_per_s(TrainConfig(job=job, out=str(Path(tmp) / job), teacher=teacher, **common))
                after = bare_img_per_s(args.arch, args.size, args.batch_size, args.steps, role, dev, args.amp)
                bare = (before + after) / 2
                report[job] = {"loop_img_per_s": round(loop, 1), "bare_img_per_s": round(bare, 1),
                               "loop_over_bare": round(loop / bare, 3)}
                print(f"{job:>8}: loop {loop:6.1f} img/s, bare forward+backward {bare:6.1f} img/s "
                      f"(before {before:.1f}, after {after:.1f}): x{loop / bare:.2f}", flush=True)
    report["to_qwk"] = [time_to_qwk(Path(r), args.qwk) for r in args.run]
    for t in report["to_qwk"]:
        print(f"{t['run']}: " + (f"val QWK >= {args.qwk} at epoch {t['epoch']}, {t['wall_min']} wall min, "
                                 f"{t['cpu_min']} CPU min" if t["epoch"] else f"never reached {args.qwk} "
                                 f"(best {t['best_val_qwk']:.3f})"), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
