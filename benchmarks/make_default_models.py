"""Build the shipped demo models in resources/models/{teacher,student}.

From scratch (the seed table's synthetic data and split, seed 0, 128 px, up to 15 epochs,
a teacher and a distilled student):

    .venv/bin/python benchmarks/make_default_models.py

or from runs that benchmarks/reproduce_seed.py already trained:

    .venv/bin/python benchmarks/make_default_models.py --from-runs runs/seed

or from any two finished bundles, with the held-out figures that benchmarks/heldout_eval.py
measured on them (its --json-out file) written into each card under extra["heldout"]:

    .venv/bin/python benchmarks/make_default_models.py --student RUN/s/bundle --teacher RUN/t/bundle \
        --heldout heldout.json --student-name demo-student

The installed demo models were made this last way (a plain student, --cam-layer stride16);
docs/results.md says how they were trained and what they scored.

The bundles are stored in fp16 (outputs checked against fp32 before installing),
and their cards say plainly that they are demo models, not for clinical use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.bundle import DEMO_NOTICE, load_bundle, save_bundle  # noqa: E402
from engine.resources import default_model_dir  # noqa: E402

NAMES = {"teacher": "demo-fusion-teacher", "student": "demo-distilled-student"}


def train(data: Path, runs: Path, image_size: int, epochs: int) -> dict[str, Path]:
    from reproduce_seed import ensure_seed_data

    from engine.train import TrainConfig, run_training

    ensure_seed_data(data)
    common = dict(dataset=str(data), image_size=image_size, epochs=epochs, patience=5, seed=0, split_seed=0)
    teacher = runs / "teacher-s0"
    if not (teacher / "bundle" / "card.json").exists():
        run_training(TrainConfig(job="teacher", out=str(teacher), **common))
    student = runs / "kd-s0"
    if not (student / "bundle" / "card.json").exists():
        run_training(TrainConfig(job="kd", out=str(student), teacher=str(teacher / "bundle"), **common))
    return {"teacher": teacher / "bundle", "student": student / "bundle"}


def check_fp16(fp32: Path, fp16: Path, role: str) -> float:
    """Largest probability difference between the fp32 and fp16 bundles on a few images."""
    from engine.data.transforms import preprocess_eval
    from engine.synth.sheet import render_sample

    m32, card = load_bundle(fp32, expect_role=role)
    m16, _ = load_bundle(fp16, expect_role=role)
    rng = np.random.default_rng(0)
    x = torch.stack([preprocess_eval(render_sample(rng, 256).image, card.image_size, card.mean, card.std)
                     for _ in range(8)])
    with torch.inference_mode():
        p32 = torch.softmax(m32(x)["logits"], 1)
        p16 = torch.softmax(m16(x)["logits"], 1)
    return float((p32 - p16).abs().max())


def with_cam_layer(src: Path, layer: str, data: Path, tmp: Path) -> Path:
    """A copy of student bundle `src` whose heat map is taken at `layer`, its OOD statistics refitted on the
    training split of `data` (the check pools the CAM layer's features, so they change with it)."""
    from engine.data.dataset import split_records
    from engine.data.lenses import CACHE_FILE, LensTable
    from engine.data.manifest import load_dataset
    from engine.evaluation import make_loader
    from engine.train_gate import fit_ood

    dst = tmp / f"{src.name}-{layer}"
    shutil.copytree(src, dst)
    card_file = dst / "card.json"
    raw = json.loads(card_file.read_text())
    raw["arch_config"]["cam_layer"] = layer
    for name in ("ood.safetensors", "ood.json"):
        (dst / name).unlink(missing_ok=True)
    raw.pop("ood", None)
    card_file.write_text(json.dumps(raw, indent=2))
    model, card = load_bundle(dst, expect_role="student")
    manifest = load_dataset(data, schema=card.schema_obj())
    split = {"seed": card.seed or 0, **card.extra.get("split", {})}
    train = split_records(manifest.records, split.get("val_frac", 0.15), split.get("test_frac", 0.15),
                          split.get("seed", 0))["train"]
    lenses = LensTable()
    lenses.load(Path(data) / CACHE_FILE, Path(data), train)
    loader = make_loader(train, manifest.schema, card.image_size, card.mean, card.std, False, 32, crop=card.crop,
                         lenses=lenses, margin=card.crop_margin)
    ood, notes = fit_ood(model, loader, torch.device("cpu"))
    extra = {**card.extra, "ood": notes, "cam_layer_moved": f"{layer} after training (same weights)"}
    save_bundle(dst, model, replace(card, extra=extra), ood=ood)
    return dst


def install(bundles: dict[str, Path], names: dict[str, str] = NAMES, heldout: dict | None = None) -> None:
    """Install each bundle as the default of its role, fp16, renamed, with the demo notice (and held-out figures)."""
    for role, src in bundles.items():
        model, card = load_bundle(src, expect_role=role)
        extra = dict(card.extra)
        if heldout and str(src) in heldout:
            extra["heldout"] = heldout[str(src)]
        card = replace(card, name=names[role], notice=DEMO_NOTICE, extra=extra)
        dest = default_model_dir(role)
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / role
            save_bundle(staged, model, card, half=True, ood=getattr(model, "ood_scorer", None))  # keep the OOD check
            diff = check_fp16(src, staged, role)
            if diff > 0.01:
                raise SystemExit(f"{role}: fp16 probabilities differ from fp32 by {diff:.4f}; not installed")
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(staged, dest)
            dest.chmod(0o755)  # staged in a private temp folder; the shipped copy is world-readable
        size = sum(f.stat().st_size for f in dest.iterdir()) / 1e6
        print(f"{role}: {dest} ({size:.1f} MB, fp16 max prob diff {diff:.5f}), test metrics {card.metrics.get('test')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-runs", help="take teacher-s0/ and kd-s0/ from this folder instead of training")
    ap.add_argument("--data", default=str(ROOT / "runs" / "seed-data"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "default-models"))
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--student", help="install this student bundle (with --teacher) instead of training")
    ap.add_argument("--teacher", help="install this teacher bundle (with --student)")
    ap.add_argument("--student-name", default=NAMES["student"], help="the installed student's name")
    ap.add_argument("--cam-layer", default="final", choices=["final", "stride16"],
                    help="take the student's heat map here (stride16: OOD statistics refitted on --data's training split)")
    ap.add_argument("--heldout", help="benchmarks/heldout_eval.py --json-out file: figures for the cards")
    args = ap.parse_args()
    names = {**NAMES, "student": args.student_name}
    heldout = json.loads(Path(args.heldout).read_text()) if args.heldout else None
    if args.student or args.teacher:
        if not (args.student and args.teacher):
            raise SystemExit("give both --student and --teacher")
        student = Path(args.student)
        with tempfile.TemporaryDirectory() as tmp:
            if args.cam_layer != "final":
                student = with_cam_layer(student, args.cam_layer, Path(args.data), Path(tmp))
                if heldout and args.student in heldout:  # the same weights, so the same grades
                    heldout[str(student)] = heldout[args.student]
            install({"teacher": Path(args.teacher), "student": student}, names, heldout)
        return
    if args.from_runs:
        runs = Path(args.from_runs)
        bundles = {"teacher": runs / "teacher-s0" / "bundle", "student": runs / "kd-s0" / "bundle"}
    else:
        bundles = train(Path(args.data), Path(args.runs), args.image_size, args.epochs)
    install(bundles)


if __name__ == "__main__":
    main()
