"""Score a model bundle on a dataset split (the split it was trained with)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="model bundle folder")
    p.add_argument("dataset", help="dataset folder with labels.csv")
    p.add_argument("--split", default="val", choices=["train", "val", "test", "all"])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from engine.commands import CommandError
    from engine.evaluation import evaluate_bundle

    try:
        m = evaluate_bundle(args.bundle, args.dataset, args.split, args.device, args.batch_size)
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None
    if args.json:
        print(json.dumps(m))
        return 0
    print(f"{m['bundle']} on the {m['split']} split (n={m['n']})")
    print(f"accuracy {m['acc']:.4f}  qwk {m['qwk']:.4f}  mae {m['mae']:.4f}  within-one {m['within1']:.4f}")
    print("confusion (rows true 0-7, columns predicted 0-7):")
    for g, row in enumerate(m["confusion"]):
        print(f"  {g}: " + " ".join(f"{c:4d}" for c in row))
    return 0
