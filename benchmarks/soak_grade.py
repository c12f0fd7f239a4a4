"""Soak: many grades in one process leave no hooks, no gradients and no memory growth.

The long variant of tests/test_infer.py's short soak (which grades 30 times in `make test`).
It grades one photograph N times with a heat map (default 300, after 20 warm-up calls)
and prints peak RSS before and after, the growth per 100 calls, the hooks left on the
model and whether any parameter holds a gradient. Exit status 1 when hooks or gradients
are left or peak RSS grew by 30 MB or more.

    python benchmarks/soak_grade.py [--calls 300] [--model BUNDLE]   (default: a tiny untrained ResNet-18)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _tiny_bundle(path: Path) -> Path:
    import torch

    from engine.bundle import ModelCard, save_bundle
    from engine.models import create_model
    from engine.schema import DEFAULT_SCHEMA

    torch.manual_seed(0)
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    model = create_model("student", backbone="resnet18", sublabel_ranges=ranges, image_size=64)
    card = ModelCard(role="student", name="soak-student", arch=model.arch, arch_config=model.config, image_size=64,
                     grades=list(DEFAULT_SCHEMA.grade_names), schema=DEFAULT_SCHEMA.to_dict(), metrics={})
    save_bundle(path, model, card)
    return path


def _photo():
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    img = np.zeros((90, 120, 3), np.uint8)
    cv2.circle(img, (60, 45), 30, (200, 80, 40), -1)
    return np.clip(img.astype(int) + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--model", help="student bundle (default: a tiny untrained one)")
    args = ap.parse_args(argv)

    import engine.compat  # noqa: F401
    from engine.infer import Grader

    with tempfile.TemporaryDirectory() as tmp:
        grader = Grader(args.model or _tiny_bundle(Path(tmp) / "student"), device="cpu")
        img, model = _photo(), grader._student
        for _ in range(20):
            grader.grade(img)
        before, t0 = _peak_mb(), time.perf_counter()
        for _ in range(args.calls):
            grader.grade(img)
        seconds, after = time.perf_counter() - t0, _peak_mb()
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())
    grads = sum(p.grad is not None or p.requires_grad for p in model.parameters())
    grown = after - before
    result = {"calls": args.calls, "seconds": round(seconds, 1), "peak_rss_before_mb": round(before, 1),
              "peak_rss_after_mb": round(after, 1), "growth_mb_per_100_calls": round(grown / args.calls * 100, 2),
              "hooks_left": hooks, "parameters_with_grad": grads}
    print(f"{args.calls} grades in {seconds:.1f} s; peak RSS {before:.0f} -> {after:.0f} MB "
          f"({grown:+.1f} MB); hooks left {hooks}; parameters with a gradient {grads}")
    print(json.dumps(result))
    return 0 if hooks == 0 and grads == 0 and grown < 30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
