"""Why does (or doesn't) distillation pay? What a teacher's soft targets carry, split by split.

For each teacher bundle, on the train and validation splits of the seed table (eval
preprocessing, no augmentation, no sub-label dropout):

- accuracy and QWK with its sub-labels, and with none (the image alone);
- confidence: the mean top probability at T=1;
- what distillation adds to the labels: the mean KL divergence from the task's own soft
  ordinal target to the teacher's distribution at --temperature (0 = the teacher only
  repeats the label, so KD is label smoothing at best);
- how far a plain student is from the teacher: the mean KL(teacher_T || student_T) and
  their agreement on the grade.

A teacher that is much better on train than on validation has learnt its training labels;
its soft targets on those same images then carry little beyond the labels. The last line is JSON.

    .venv/bin/python benchmarks/kd_diagnose.py --data runs/seed-data --teacher runs/distill/teacher-s0/bundle \\
        --student runs/distill/plain-s0/bundle
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.bundle import load_bundle  # noqa: E402
from engine.data.dataset import split_records  # noqa: E402
from engine.data.manifest import load_dataset  # noqa: E402
from engine.distill import soft_ordinal_targets  # noqa: E402
from engine.evaluation import make_loader  # noqa: E402
from engine.metrics import compute_metrics  # noqa: E402


@torch.inference_mode()
def outputs(model, card, records, schema, sublabels: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, grades, ordinal targets) of one model over `records`."""
    loader = make_loader(records, schema, card.image_size, card.mean, card.std, False, 64)
    logits, grades, targets = [], [], []
    for b in loader:
        if card.role == "teacher":
            mask = b["sub_mask"] if sublabels else torch.zeros_like(b["sub_mask"])
            out = model(b["image"], b["sublabels"], mask)
        else:
            out = model(b["image"])
        logits.append(out["logits"].float())
        grades.append(b["grade"])
        targets.append(soft_ordinal_targets(b["grade"], 8, b["grade_min"], b["grade_max"]))
    return torch.cat(logits), torch.cat(grades), torch.cat(targets)


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float) -> float:
    """Mean KL(softmax(p/T) || softmax(q/T))."""
    p = F.log_softmax(p_logits / temperature, 1)
    q = F.log_softmax(q_logits / temperature, 1)
    return float((p.exp() * (p - q)).sum(1).mean())


def scores(logits: torch.Tensor, grades: torch.Tensor) -> dict:
    m = compute_metrics(grades.numpy(), torch.softmax(logits, 1).numpy())
    return {"acc": round(m["acc"], 3), "qwk": round(m["qwk"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--teacher", action="append", required=True)
    ap.add_argument("--student", help="a plain student bundle to compare with each teacher")
    ap.add_argument("--temperature", type=float, default=4.0)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    manifest = load_dataset(args.data)
    parts = split_records(manifest.records, seed=0)
    student = load_bundle(args.student) if args.student else None
    report = []
    for path in args.teacher:
        model, card = load_bundle(path, expect_role="teacher")
        for split in ("train", "val"):
            recs = parts[split]
            full, grades, targets = outputs(model, card, recs, manifest.schema, True)
            image_only, _, _ = outputs(model, card, recs, manifest.schema, False)
            t = args.temperature
            soft = F.softmax(full / t, 1)
            label_kl = float((targets * (targets.clamp_min(1e-12).log() - soft.clamp_min(1e-12).log())).sum(1).mean())
            row = {"teacher": card.name, "split": split, "with_sublabels": scores(full, grades),
                   "image_only": scores(image_only, grades),
                   "confidence": round(float(torch.softmax(full, 1).max(1).values.mean()), 3),
                   "kl_label_to_teacher": round(label_kl, 4)}
            if student is not None:
                s_logits, _, _ = outputs(*student, recs, manifest.schema, False)
                row["kl_teacher_to_student"] = round(kl(full, s_logits, t), 4)
                row["student_agrees"] = round(float((s_logits.argmax(1) == full.argmax(1)).float().mean()), 3)
                row["student"] = scores(s_logits, grades)
            report.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"temperature": args.temperature, "rows": report}, default=float))


if __name__ == "__main__":
    main()
