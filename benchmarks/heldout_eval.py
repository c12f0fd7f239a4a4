"""Score model bundles the way the issue's goals read: held-out data, half resolution, black pupils.

For each --model bundle: exact grade, QWK, within-one and per-grade recall on every image of
the held-out set (a synthetic set from a seed nobody trained or chose on, label noise 0.1:
`cataract-grade synth DIR --seed 31337 --label-noise 0.1`), the same on the set rendered at
half the resolution and the QWK lost there, and the black-pupil check: photographs whose
pupil is covered by dense opacity all round (true grade 7) must never be graded below 5.
Students grade from the image; a teacher also reads the sub-labels in labels.csv. The last
line is JSON.

    .venv/bin/python benchmarks/heldout_eval.py --model resources/models/student \\
        --held /tmp/held-256 --half /tmp/held-128
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.bundle import read_card  # noqa: E402

BLACK_FLOOR = 5  # a (nearly) black pupil is never graded below this


def scores(bundle: Path, folder: Path) -> dict:
    """Every image of `folder` graded by `bundle` (the project's evaluate path, split "all")."""
    from engine.evaluation import evaluate_on_split

    m = evaluate_on_split(bundle, folder, {"seed": 0}, split="all", device="cpu")
    return {k: m[k] for k in ("n", "acc", "qwk", "within1", "mae", "recall", "confusion")}


def black_pupils(n: int, seed: int = 4242, size: int = 256) -> list:
    """n photographs whose pupil is shadowed all round by dense, overlapping spokes (each one's true grade is 7)."""
    from engine.synth.geometry import Spoke
    from engine.synth.sample import render_sample

    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        spokes = [Spoke(angle=a + float(rng.uniform(0, 30)), half_width=28, reach=1.0, density=0.97)
                  for a in range(0, 360, 30)]
        out.append(render_sample(rng, size, spokes=spokes))
    return out


def black_pupil_grades(bundle: Path, samples: list) -> dict:
    """The grades the bundle gives the black-pupil photographs (the gate's verdict is ignored: it is not the model)."""
    from engine.infer import Grader

    role = read_card(bundle).role
    grader = Grader(bundle, device="cpu") if role == "student" else None
    if grader is None:
        from engine.resources import default_model_dir

        grader = Grader(default_model_dir("student"), bundle, device="cpu")
    grades = []
    for s in samples:
        request = grader.request(cam=False, check_input=False, **(
            {"sublabels": s.true_sublabels} if role == "teacher" else {}))
        grades.append(int(grader.grade(s.image, request).grade))
    return {"n": len(grades), "true": sorted({int(s.true_grade) for s in samples}), "grades": grades,
            "min": min(grades), "below_floor": sum(g < BLACK_FLOOR for g in grades)}


def row(name: str, full: dict, half: dict | None, black: dict) -> str:
    recall = " ".join(f"{r:.2f}" for r in full["recall"])
    cells = [name, f"{full['n']}", f"{100 * full['acc']:.1f}", f"{full['qwk']:.3f}", f"{100 * full['within1']:.1f}",
             recall, f"{min(full['recall']):.2f}"]
    if half:
        cells += [f"{100 * half['acc']:.1f}", f"{half['qwk']:.3f}", f"{full['qwk'] - half['qwk']:+.3f}"]
    cells += [f"{black['below_floor']} of {black['n']} (lowest {black['min']})"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="bundle folder (repeat)")
    ap.add_argument("--held", required=True, help="held-out dataset folder (the training resolution)")
    ap.add_argument("--half", help="the same held-out set rendered at half the resolution")
    ap.add_argument("--black-n", type=int, default=24, help="black-pupil photographs (default 24)")
    ap.add_argument("--json-out", help="also write the figures here, as benchmarks/make_default_models.py reads them")
    args = ap.parse_args()
    samples = black_pupils(args.black_n)
    head = ["model", "n", "exact %", "QWK", "within-one %", "recall 0-7", "lowest recall"]
    if args.half:
        head += ["half-res exact %", "half-res QWK", "QWK lost"]
    head += ["black pupils graded < 5"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    result = {}
    for model in args.model:
        bundle = Path(model)
        full = scores(bundle, Path(args.held))
        half = scores(bundle, Path(args.half)) if args.half else None
        black = black_pupil_grades(bundle, samples)
        name = read_card(bundle).name or bundle.name
        lines.append(row(name, full, half, black))
        result[str(bundle)] = {"held": {"folder": args.held, **full},
                               "half": half and {"folder": args.half, **half}, "black": black}
        print(lines[-1], flush=True)
    print("\n".join(lines))
    print(json.dumps(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
