"""Train a fusion teacher, a plain student, or a student distilled from a teacher (kd).

Writes RUNDIR/bundle/ (model.safetensors + card.json) and RUNDIR/log.jsonl. With
--progress json, stdout carries one JSON object per line: start, batch, epoch, done
or error events, for the GUI's retrain panel.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", choices=["teacher", "student", "kd"], help="what to train")
    p.add_argument("dataset", help="dataset folder with labels.csv")
    p.add_argument("--out", required=True, help="run folder (created)")
    p.add_argument("--teacher", action="append", metavar="BUNDLE",
                   help="teacher bundle to distil from (kd); repeat it for a multi-teacher weighted by validation QWK")
    p.add_argument("--arch", default="resnet18", help="timm backbone name (default resnet18)")
    p.add_argument("--fusion", default="concat",
                   help="teacher fusion: concat (default), coattn (co-attention), mlp (sub-labels only) "
                        "or none (image only)")
    p.add_argument("--token-layout", default="grid", choices=["grid", "zones"], help="teacher image tokens")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    p.add_argument("--lr-schedule", default="cosine", choices=["cosine", "plateau"],
                   help="cosine decay over --epochs, or plateau: constant, cut x0.3 when validation stalls for "
                        "half the patience (then --epochs is only a ceiling)")
    p.add_argument("--augment", default="realistic", choices=["realistic", "basic", "none"],
                   help="training augmentation: realistic (geometry, colour and camera effects: resolution, "
                        "noise, blur, JPEG), basic (geometry and colour) or none")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the patient-level split")
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--test-frac", type=float, default=0.15)
    p.add_argument("--no-ordinal", action="store_true", help="hard cross-entropy instead of soft ordinal targets")
    p.add_argument("--sub-weight", type=float, default=0.3, help="weight of the student's sub-label head loss")
    p.add_argument("--kd-temperature", type=float, default=4.0)
    p.add_argument("--kd-alpha", type=float, default=0.7, help="weight of the distillation term")
    p.add_argument("--feature-kd", type=float, default=0.0, help="weight of feature distillation (0 = off)")
    p.add_argument("--token-kd", type=float, default=0.0,
                   help="weight of token distillation: student map vs the teacher's image tokens (0 = off)")
    p.add_argument("--token-kd-kind", default="smooth_l1", choices=["smooth_l1", "cosine"],
                   help="distance of token distillation")
    p.add_argument("--attn-kd", type=float, default=0.0,
                   help="weight of attention-map distillation against the teacher's CLS attention (0 = off)")
    p.add_argument("--unlabelled", metavar="FOLDER",
                   help="kd: a dataset folder whose images add the teacher's soft targets only (its grades are "
                        "ignored; its sub-labels, where filled in, go to the teacher)")
    p.add_argument("--pretrained", metavar="imagenet|FILE",
                   help="initial backbone weights: 'imagenet' (the installed file for --arch) or a local "
                        ".safetensors file; never downloaded (default: random weights)")
    p.add_argument("--name", help="model name written in its card")
    p.add_argument("--notice", help="notice written in the card (e.g. for demo models)")
    p.add_argument("--resume", action="store_true", help="continue from RUNDIR/checkpoint")
    p.add_argument("--progress", default="text", choices=["text", "json"])


def _printer(mode: str):
    def emit_json(event: dict) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    def emit_text(event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            print(f"{event['job']}: {event['n_train']} train / {event['n_val']} val / {event['n_test']} test images, "
                  f"{event['arch']} at {event['image_size']} px on {event['device']}", flush=True)
        elif kind == "epoch":
            print(f"epoch {event['epoch']}/{event['epochs']}  loss {event['train_loss']:.4f}  "
                  f"val acc {event['val_acc']:.3f}  qwk {event['val_qwk']:.3f}  "
                  f"{event['images_per_s']:.0f} img/s  {event['seconds']:.1f}s", flush=True)
        elif kind == "done":
            print(f"bundle: {event['bundle']} (best epoch {event['best_epoch']})", flush=True)
            print(json.dumps(event["metrics"], indent=1), flush=True)

    return emit_json if mode == "json" else emit_text


def run(args: argparse.Namespace) -> int:
    from engine.train import TrainConfig, run_training

    emit = _printer(args.progress)
    cfg = TrainConfig(
        job=args.job, dataset=args.dataset, out=args.out, arch=args.arch,
        teacher=args.teacher[0] if args.teacher else None, extra_teachers=list(args.teacher or [])[1:],
        fusion=args.fusion, token_layout=args.token_layout, epochs=args.epochs, image_size=args.image_size,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, patience=args.patience,
        device=args.device, seed=args.seed, split_seed=args.split_seed, val_frac=args.val_frac,
        test_frac=args.test_frac, resume=args.resume, ordinal=not args.no_ordinal, sub_weight=args.sub_weight,
        kd_temperature=args.kd_temperature, kd_alpha=args.kd_alpha, feature_kd=args.feature_kd,
        token_kd=args.token_kd, token_kd_kind=args.token_kd_kind, attn_kd=args.attn_kd,
        pretrained=args.pretrained, name=args.name, notice=args.notice, lr_schedule=args.lr_schedule,
        augment=args.augment, unlabelled=args.unlabelled,
    )
    try:
        run_training(cfg, progress=emit)
    except KeyboardInterrupt:
        emit({"event": "error", "message": "training was interrupted; resume with --resume"})
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        # Dataset, bundle, image and device errors all derive from ValueError with a sentence.
        message = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        if args.progress == "json":
            emit({"event": "error", "message": message})
        else:
            print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
