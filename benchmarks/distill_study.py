"""Does distillation pay at the seed's data size? Every attempt, with the pretrained student.

Teachers and students share the ImageNet-initialised backbone (tf_efficientnet_lite0)
and the seed table's 2,000 images and patient-level split. Rows: plain students with
and without the auxiliary sub-label head (so a gain can be traced to the teacher, not
to the head), fusion teachers that drop their sub-labels at 0.3 (today) or 0.7 (they
must read the image), and students distilled at today's settings (T=4, alpha 0.7),
the seed's own weighting, softer targets, token KD, a two-teacher ensemble and extra
unlabelled images. Validation QWK chose every best epoch; the test split and the
held-out sets (seed 31337, 256 and 128 px) were only scored. Resumable.

    .venv/bin/python benchmarks/distill_study.py --seeds 0 1 2
    .venv/bin/python benchmarks/distill_study.py --table-only
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from reproduce_seed import ensure_seed_data  # noqa: E402
from studylib import Run, ensure_heldout, replace_section, run_all, table  # noqa: E402

T, D7 = ("teacher",), ("teacher-d7",)
# The seed's 0.1 * CE + 0.9 * KL at T=6 has no T^2 factor; with LogitKD's T^2 the same CE:KL ratio
# (1 : 9) is alpha = 9 / (9 + 36) = 0.2, up to an overall scale that AdamW does not see.
DISTILL: dict[str, Run] = {
    "plain": Run("Plain student, auxiliary sub-label head (weight 0.3)", "student"),
    "plain-noaux": Run("Plain student, no auxiliary head", "student", {"sub_weight": 0.0}),
    "teacher": Run("Fusion teacher, concat, sub-label dropout 0.3", "teacher"),
    "teacher-d7": Run("Fusion teacher, concat, sub-label dropout 0.7", "teacher", {"sub_dropout": 0.7}),
    "kd": Run("KD from the 0.3 teacher, T=4, alpha 0.7 (today's default)", "kd", {}, T),
    "kd-seed": Run("KD from the 0.3 teacher, the seed's weighting (T=6, CE:KL 1:9)", "kd",
                   {"kd_temperature": 6.0, "kd_alpha": 0.2}, T),
    "kd-t2": Run("KD from the 0.3 teacher, T=2, alpha 0.5", "kd", {"kd_temperature": 2.0, "kd_alpha": 0.5}, T),
    "kd-d7": Run("KD from the 0.7 teacher, T=4, alpha 0.7", "kd", {}, D7),
    "kd-d7-t2": Run("KD from the 0.7 teacher, T=2, alpha 0.5", "kd", {"kd_temperature": 2.0, "kd_alpha": 0.5}, D7),
    "kd-token": Run("KD from the 0.7 teacher, T=4, alpha 0.7, + token KD (1.0)", "kd", {"token_kd": 1.0}, D7),
    "kd-ens": Run("KD from both teachers (QWK-weighted), T=4, alpha 0.7", "kd", {}, ("teacher", "teacher-d7")),
    "kd-extra": Run("KD from the 0.7 teacher + 2,000 extra unlabelled images", "kd", {"unlabelled": "@extra"}, D7),
    "kd-extra-sub": Run("KD from the 0.7 teacher + 2,000 extra images with sub-labels only", "kd",
                        {"unlabelled": "@extra-sub"}, D7),
}

TEMPLATE = """## Distillation at the seed's data size, pretrained student ({date})

tf_efficientnet_lite0 with ImageNet weights for every image branch, {size} px, the seed table's
2,000 images and split (train 1400, val 300, test 300), up to {epochs} epochs, early stopping
after {patience} epochs without a better validation QWK, CPU. Students distil from the
teacher(s) of the same seed. "held-256" / "held-128": 800 images from seed 31337, label noise
0.1, rendered at 256 and 128 px. Mean ± sd over the seeds listed.

{table}

Reproduce (resumable): `{cmd}`"""


def ensure_extra(folder: Path, keep_sublabels: bool, n: int = 2000) -> Path:
    """2,000 more synthetic images (seed 4242) whose grades a kd job ignores; sub-labels kept or blanked."""
    if (folder / "labels.csv").exists():
        return folder
    from engine.synth.sheet import write_dataset

    write_dataset(folder, n=n, seed=4242, image_size=256, label_noise=0.1, workers=2)
    if not keep_sublabels:
        from engine.fsutil import atomic_write_text
        from engine.schema import DEFAULT_SCHEMA

        with open(folder / "labels.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            for name in DEFAULT_SCHEMA.names:
                r[name] = ""
        lines = [",".join(rows[0].keys())] + [",".join(r.values()) for r in rows]
        atomic_write_text(folder / "labels.csv", "\n".join(lines) + "\n")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "runs" / "seed-data"))
    ap.add_argument("--heldout", default=str(ROOT / "runs" / "heldout"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "distill"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", choices=list(DISTILL), default=list(DISTILL))
    ap.add_argument("--arch", default="tf_efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--lr-schedule", default="cosine", choices=["cosine", "plateau"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()

    data, runs, held = Path(args.data), Path(args.runs), Path(args.heldout)
    ensure_seed_data(data)
    heldout = {"held-256": ensure_heldout(held / "s31337-256", 256), "held-128": ensure_heldout(held / "s31337-128", 128)}
    extras = {"@extra": ensure_extra(held.parent / "extra-unlabelled", False),
              "@extra-sub": ensure_extra(held.parent / "extra-sublabels", True)}
    study = {k: Run(r.label, r.job, {f: str(extras.get(v, v)) if f == "unlabelled" else v for f, v in r.fields.items()},
                    r.teachers, r.data) for k, r in DISTILL.items()}
    base = dict(arch=args.arch, pretrained="imagenet", image_size=args.image_size, epochs=args.epochs,
                patience=args.patience, lr_schedule=args.lr_schedule, device=args.device)
    if not args.table_only:
        run_all(study, [(n, s) for s in args.seeds for n in args.only], base, {"seed": data}, runs)
    text = TEMPLATE.format(
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), size=args.image_size, epochs=args.epochs,
        patience=args.patience, table=table(study, sorted({0, 1, 2, *args.seeds}), runs, heldout),
        cmd=f"python benchmarks/distill_study.py --image-size {args.image_size} --epochs {args.epochs} "
            f"--patience {args.patience} --seeds 0 1 2",
    )
    replace_section(Path(args.out), "distill-table", text)
    print(text)


if __name__ == "__main__":
    main()
