"""The training recipe, measured: backbone variant, ImageNet weights, image size, augmentation, schedule.

Plain students (image only, with the auxiliary sub-label head) on the seed table's
2,000 images and patient-level split, scored on the test split and on 800 held-out
images from an unseen seed rendered at 256 px and at 128 px (the same eyes at half
the resolution). Validation QWK chose every best epoch; nothing here looked at the
test or held-out figures to choose anything. Resumable: finished runs are not
trained again, killed runs resume from their checkpoint.

    .venv/bin/python benchmarks/recipe_study.py                       # every run, seed 0
    .venv/bin/python benchmarks/recipe_study.py --only tfl0 l0 --seeds 0 1 2
    .venv/bin/python benchmarks/recipe_study.py --table-only
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from reproduce_seed import ensure_seed_data  # noqa: E402
from studylib import Run, ensure_heldout, replace_section, run_all, table  # noqa: E402

TF0, L0 = "tf_efficientnet_lite0", "efficientnet_lite0"
IMAGENET = {"pretrained": "imagenet"}

RECIPE: dict[str, Run] = {
    "tfl0": Run("tf_efficientnet_lite0 (TF padding, BN eps 1e-3), ImageNet, 96 px, realistic augmentation", "student",
                {"arch": TF0, **IMAGENET}),
    "l0": Run("efficientnet_lite0 (symmetric padding, BN eps 1e-5), ImageNet, 96 px", "student",
              {"arch": L0, **IMAGENET}),
    "tfl0-basic": Run("tf_efficientnet_lite0, ImageNet, 96 px, basic augmentation (no camera effects)", "student",
                      {"arch": TF0, "augment": "basic", **IMAGENET}),
    "tfl0-128": Run("tf_efficientnet_lite0, ImageNet, 128 px", "student", {"arch": TF0, "image_size": 128, **IMAGENET}),
    "tfl0-plateau": Run("tf_efficientnet_lite0, ImageNet, 96 px, plateau schedule (ceiling 40 epochs)", "student",
                        {"arch": TF0, "lr_schedule": "plateau", "epochs": 40, **IMAGENET}),
    "tfl1": Run("tf_efficientnet_lite1, ImageNet, 96 px", "student", {"arch": "tf_efficientnet_lite1", **IMAGENET}),
    "l2": Run("efficientnet_lite2, ImageNet, 96 px", "student", {"arch": "efficientnet_lite2", **IMAGENET}),
    "tfl0-scratch": Run("tf_efficientnet_lite0, random initial weights, 96 px", "student", {"arch": TF0}),
}

TEMPLATE = """## The training recipe, measured ({date})

Plain students on the seed table's 2,000 images (split {{train 1400, val 300, test 300}},
split seed 0), up to {epochs} epochs with early stopping after {patience} epochs without a
better validation QWK, batch {batch}, AdamW lr {lr}, CPU (2 shared cores). "held-256" and
"held-128": {n} images from seed 31337 (never used to train or choose), label noise 0.1,
rendered at 256 px and at 128 px. Mean ± sd over the seeds listed.

{table}

Reproduce (resumable): `{cmd}`"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "runs" / "seed-data"))
    ap.add_argument("--heldout", default=str(ROOT / "runs" / "heldout"), help="folder for the held-out sets")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "recipe"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--only", nargs="+", choices=list(RECIPE), default=list(RECIPE))
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--table-only", action="store_true", help="write the table from the runs that exist")
    args = ap.parse_args()

    data, runs, held = Path(args.data), Path(args.runs), Path(args.heldout)
    ensure_seed_data(data)
    heldout = {"held-256": ensure_heldout(held / "s31337-256", 256), "held-128": ensure_heldout(held / "s31337-128", 128)}
    base = dict(image_size=args.image_size, epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                lr=args.lr, device=args.device)
    if not args.table_only:
        run_all(RECIPE, [(n, s) for s in args.seeds for n in args.only], base, {"seed": data}, runs)
    seeds = sorted({0, 1, 2, *args.seeds})
    text = TEMPLATE.format(
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), epochs=args.epochs, patience=args.patience,
        batch=args.batch_size, lr=args.lr, n=800, table=table(RECIPE, seeds, runs, heldout),
        cmd=f"python benchmarks/recipe_study.py --image-size {args.image_size} --epochs {args.epochs} "
            f"--patience {args.patience} --seeds 0 1 2",
    )
    replace_section(Path(args.out), "recipe-table", text)
    print(text)


if __name__ == "__main__":
    main()
