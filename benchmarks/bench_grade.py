"""Grading speed, all measured in one run on the same inputs.

a  bare student forward (inference mode, 224 px tensor): the floor
b  Grader.grade with Grad-CAM (one forward + a head-only backward)
c  the hand-written route: a forward for the grade, then pytorch_grad_cam.GradCAM
   (its own forward and a full backward)
d  batch grading of 256 PNG files from disk vs the bare batched forward on
   preloaded tensors

The last line is a JSON object with the ratios and the raw timings.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.bundle import ModelCard, save_bundle  # noqa: E402
from engine.data.dataset import IMAGENET_MEAN, IMAGENET_STD, preprocess_eval  # noqa: E402
from engine.infer import Grader  # noqa: E402
from engine.models import create_model  # noqa: E402
from engine.schema import DEFAULT_SCHEMA  # noqa: E402


def interleaved(fns: dict, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds per function, calling them in turn so that any load on the
    machine falls on all of them alike (ratios stay honest on a busy machine)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def make_bundle(folder: Path, size: int, arch: str, **extra) -> Path:
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    torch.manual_seed(0)
    model = create_model("student", backbone=arch, image_size=size, sublabel_ranges=ranges, **extra)
    card = ModelCard(
        role="student", name="bench-student", arch=model.arch, arch_config=model.config, image_size=size,
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), grades=list(DEFAULT_SCHEMA.grade_names),
        schema=DEFAULT_SCHEMA.to_dict(), fusion=None, teacher=None, data_fingerprint=None, seed=0, epochs=0,
        metrics={}, notice="benchmark model (untrained)",
    )
    save_bundle(folder, model, card)
    return folder


def sample_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    from engine.synth.sheet import render_sample

    rng = np.random.default_rng(seed)
    return [render_sample(rng, image_size=size).image for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--cam-layer", default="final", choices=["final", "stride16"],
                    help="the student's CAM target layer (stride16: the last stride-16 stage)")
    ap.add_argument("--output-stride", type=int, default=32, choices=[16, 32], help="16 dilates the last stage")
    ap.add_argument("--batch-files", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()
    say = (lambda *a: None) if args.json else print
    from engine.device import DeviceError, pick_device

    try:
        pick_device(args.device)  # --device cuda on a machine without a GPU stops here, with the reason
    except DeviceError as e:
        sys.exit(f"bench_grade: {e}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = make_bundle(tmp / "student", args.size, args.arch, cam_layer=args.cam_layer,
                             output_stride=args.output_stride)
        grader = Grader(bundle, device=args.device)
        model, dev = grader._student, grader.device
        rgb = sample_images(1, args.size)[0]
        x = preprocess_eval(rgb, args.size, IMAGENET_MEAN, IMAGENET_STD)[None].to(dev, memory_format=torch.channels_last)

        def raw_forward():
            with torch.inference_mode():
                model(x)["logits"].argmax(1).cpu()  # .cpu() waits for a GPU, so the time is the forward's

        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        class LogitsOnly(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, t):
                return self.m(t)["logits"]

        wrapped = LogitsOnly(model)
        layer = model.backbone.layer4[-1] if hasattr(model.backbone, "layer4") else list(model.backbone.children())[-2]
        if args.cam_layer == "stride16":
            layer = model.split._trunk[-1]

        def naive():
            model.requires_grad_(True)
            with torch.inference_mode():
                grade = int(wrapped(x).argmax(1))
            with GradCAM(model=wrapped, target_layers=[layer]) as cam:
                cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(grade)])
            model.requires_grad_(False)

        t = interleaved({"a": raw_forward, "b": lambda: grader.grade(rgb), "c": naive}, args.repeats)
        a, b, c = t["a"], t["b"], t["c"]
        say(f"a  bare forward             {a:8.2f} ms")
        say(f"b  Grader.grade + CAM       {b:8.2f} ms")
        say(f"c  forward + GradCAM call   {c:8.2f} ms")

        folder = tmp / "pngs"
        folder.mkdir()
        imgs = sample_images(32, 256, seed=1)
        paths = []
        for i in range(args.batch_files):
            p = folder / f"img{i:04d}.png"
            cv2.imwrite(str(p), cv2.cvtColor(imgs[i % len(imgs)], cv2.COLOR_RGB2BGR))
            paths.append(p)
        tensors = torch.stack([preprocess_eval(imgs[i % len(imgs)], args.size, IMAGENET_MEAN, IMAGENET_STD)
                               for i in range(args.batch_files)]).contiguous(memory_format=torch.channels_last)

        def bare_batched():
            with torch.inference_mode():
                for i in range(0, len(tensors), args.batch_size):
                    model(tensors[i : i + args.batch_size].to(dev))["logits"].argmax(1)

        def batch_grade():
            n = sum(1 for _p, r, _e in grader.grade_files(paths, batch_size=args.batch_size, workers=2) if r)
            assert n == len(paths)

        bare_batched()  # warm-up
        batch_grade()
        td = interleaved({"bare": bare_batched, "files": batch_grade}, 3, warmup=0)
        bare_s, files_s = td["bare"] / 1e3, td["files"] / 1e3
        say(f"d  {args.batch_files} files: {args.batch_files / files_s:.1f} img/s from disk vs "
            f"{args.batch_files / bare_s:.1f} img/s bare batched forward")

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"peak RSS {rss_mb:.0f} MB")
    report = {
        "grade_over_raw": round(b / a, 3),
        "naive_over_grade": round(c / b, 3),
        "batch_over_raw": round((args.batch_files / files_s) / (args.batch_files / bare_s), 3),
        "raw_forward_ms": round(a, 2), "grade_cam_ms": round(b, 2), "naive_cam_ms": round(c, 2),
        "batch_files_img_per_s": round(args.batch_files / files_s, 1),
        "bare_batched_img_per_s": round(args.batch_files / bare_s, 1),
        "peak_rss_mb": round(rss_mb), "device": str(dev), "arch": args.arch, "size": args.size,
        "cam_layer": args.cam_layer, "output_stride": args.output_stride,
        "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
