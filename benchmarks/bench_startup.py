"""Start-up of the app against the bare cost of what it must import and run, in one run.

Each measurement is a fresh Python process started with CATARACT_GRADER_T0 (the
launcher's clock), so every figure is "seconds since the process was launched":

  bare_import    python -c "import torch, PySide6.QtWidgets"
  stack_forward  import torch, Qt, timm, grad-cam and the engine, load the models, grade once (with CAM)
  app            cataract-grader IMAGE --measure-startup: window shown, model ready, first grade on screen
  frozen         with --frozen EXE: the same, started from the PyInstaller build (dist/CataractGrader/CataractGrader)

The ratios on the last line (JSON) say what the app adds: window / bare_import is how
close the window comes to the import floor, first_grade / stack_forward what the GUI,
threads and drawing cost on top of the work itself. Repeats alternate the three so that
machine noise hits them alike; medians are reported.

With --frozen the ratios add frozen_vs_source_window and frozen_vs_source_first_grade (goal: at most 1.1).

Usage: python benchmarks/bench_startup.py [--repeats 3] [--model BUNDLE --teacher BUNDLE] [--image IMG] [--frozen EXE]
Without --model the shipped bundles are used if present, else tiny untrained ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
T0_ENV = "CATARACT_GRADER_T0"

BARE = "import os, time; import torch, PySide6.QtWidgets; print(time.time() - float(os.environ['{env}']))"
STACK = """
import os, sys, time
import torch
import PySide6.QtWidgets
import engine.compat, timm
from engine.infer import Grader
g = Grader(student=sys.argv[1], teacher=sys.argv[2] or None, device="cpu")
g.grade(sys.argv[3])
print(time.time() - float(os.environ['{env}']))
"""


def tiny_bundles(folder: Path) -> tuple[str, str]:
    """Untrained 64 px student and teacher bundles, as the tests build them."""
    import torch

    import engine.compat  # noqa: F401
    from engine.bundle import DEMO_NOTICE, ModelCard, save_bundle
    from engine.models import create_model
    from engine.schema import DEFAULT_SCHEMA

    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    out = []
    for role, arch, cfg in (("student", "student", {}), ("teacher", "teacher_concat", {"dim": 32, "depth": 1, "heads": 2})):
        torch.manual_seed(0)
        model = create_model(arch, sublabel_ranges=ranges, image_size=64, backbone="resnet18", **cfg)
        card = ModelCard(role=role, name=f"tiny-{role}", arch=model.arch, arch_config=model.config, image_size=64,
                         schema=DEFAULT_SCHEMA.to_dict(), fusion="concat" if role == "teacher" else None,
                         notice=DEMO_NOTICE)
        save_bundle(folder / role, model, card)
        out.append(str(folder / role))
    return out[0], out[1]


def pick_bundles(args: argparse.Namespace, scratch: Path) -> tuple[str, str, str]:
    if args.model:
        return args.model, args.teacher or "", "given"
    from engine.resources import default_model_dir

    student, teacher = default_model_dir("student"), default_model_dir("teacher")
    if (student / "card.json").is_file():
        return str(student), str(teacher) if (teacher / "card.json").is_file() else "", "default"
    return (*tiny_bundles(scratch), "tiny")


def make_image(path: Path) -> str:
    import cv2
    import numpy as np

    from engine.synth.sheet import render_sample

    rgb = render_sample(np.random.default_rng(0), image_size=512, target_grade=3).image
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def run_child(cmd: list[str], env: dict) -> str:
    """Run `cmd` launched now; its last stdout line is its own report."""
    env = {**env, T0_ENV: repr(time.time())}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model")
    parser.add_argument("--teacher")
    parser.add_argument("--image")
    parser.add_argument("--frozen", help="the frozen executable, measured side by side with the source app")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        student, teacher, kind = pick_bundles(args, Path(tmp))
        image = args.image or make_image(Path(tmp) / "eye.png")
        app_cmd = [py, "-m", "cataract_app", image, "--model", student, "--device", "cpu", "--measure-startup"]
        app_cmd += ["--teacher", teacher] if teacher else []
        frozen_cmd = [args.frozen, *app_cmd[3:]] if args.frozen else None
        samples: dict[str, list[float]] = {}
        for i in range(args.repeats):
            bare = float(run_child([py, "-c", BARE.format(env=T0_ENV)], env))
            stack = float(run_child([py, "-c", STACK.format(env=T0_ENV), student, teacher, image], env))
            app = json.loads(run_child(app_cmd, env))
            row = {"bare_import_s": bare, "stack_forward_s": stack, **{f"app_{k}": v for k, v in app.items()}}
            if frozen_cmd:
                row.update({f"frozen_{k}": v for k, v in json.loads(run_child(frozen_cmd, env)).items()})
            for key, value in row.items():
                samples.setdefault(key, []).append(value)
            print(f"run {i + 1}: " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    report = {
        "bundles": kind,
        "repeats": args.repeats,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "ratios": {
            "window_vs_bare_import": round(med["app_window_s"] / med["bare_import_s"], 3),
            "first_grade_vs_stack_forward": round(med["app_first_grade_s"] / med["stack_forward_s"], 3),
            "window_vs_first_grade": round(med["app_window_s"] / med["app_first_grade_s"], 3),
        },
    }
    if args.frozen:
        report["ratios"]["frozen_vs_source_window"] = round(med["frozen_window_s"] / med["app_window_s"], 3)
        report["ratios"]["frozen_vs_source_first_grade"] = round(med["frozen_first_grade_s"] / med["app_first_grade_s"], 3)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
