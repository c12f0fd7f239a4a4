"""Train a fusion teacher, a plain student, or a student distilled from a teacher (kd).

Writes RUNDIR/bundle/ (model.safetensors + card.json) and RUNDIR/log.jsonl. With
--progress json, stdout carries one JSON object per line: start, batch, epoch, done
or error events (engine.progress), and with the lens crop, lenses events before the first epoch, for the GUI's retrain panel. Every option below is a
field of engine.train_config.TrainConfig. --nproc N trains on N processes through torchrun
(or run `torchrun --standalone --nproc-per-node N -m engine train ...` yourself; docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.progress import DoneEvent, EpochEvent, ErrorEvent, LensesEvent, ProgressEvent, StartEvent
from engine.train_config import add_arguments as add_config_arguments
from engine.train_config import from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--progress", default="text", choices=["text", "json"],
                   help="text lines for people, or one JSON event per line for the app")


def _printer(mode: str):
    def emit_json(event: ProgressEvent) -> None:
        sys.stdout.write(event.to_json() + "\n")
        sys.stdout.flush()

    def emit_text(event: ProgressEvent) -> None:
        if isinstance(event, StartEvent):
            print(f"{event.job}: {event.n_train} train / {event.n_val} val / {event.n_test} test images, "
                  f"{event.arch} at {event.image_size} px on {event.device}", flush=True)
        elif isinstance(event, LensesEvent) and event.done == event.total:
            print(f"lens found in {event.found} of {event.total} photographs (the rest are cropped to the centred "
                  "square)", flush=True)
        elif isinstance(event, EpochEvent):
            print(f"epoch {event.epoch}/{event.epochs}  loss {event.train_loss:.4f}  "
                  f"val acc {event.val_acc:.3f}  qwk {event.val_qwk:.3f}  "
                  f"{event.images_per_s:.0f} img/s  {event.seconds:.1f}s", flush=True)
        elif isinstance(event, DoneEvent):
            print(f"bundle: {event.bundle} (best epoch {event.best_epoch})", flush=True)
            print(json.dumps(event.metrics, indent=1), flush=True)

    return emit_json if mode == "json" else emit_text


def run(args: argparse.Namespace) -> int:
    from engine.distributed import env_world
    from engine.train import run_training

    emit, world = _printer(args.progress), env_world()
    json_errors = args.progress == "json" and world.main  # under torchrun, rank 0 alone speaks on stdout
    try:
        run_training(from_args(args), progress=emit)
    except KeyboardInterrupt:
        if world.main:
            emit(ErrorEvent(message="training was interrupted; resume with --resume"))
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        # Dataset, bundle, image and device errors are EngineErrors (ValueErrors) with a sentence.
        message = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        if json_errors:
            emit(ErrorEvent(message=message))
        else:
            print(f"error{f' (rank {world.rank})' if world.enabled else ''}: {message}", file=sys.stderr)
        return 2
    return 0
