"""Train a fusion teacher, a plain student, or a student distilled from a teacher (kd).

Writes RUNDIR/bundle/ (model.safetensors + card.json) and RUNDIR/log.jsonl. In text mode a
progress bar per epoch shows the ETA and a short summary ends the job. With
--progress json, stdout carries one JSON object per line: start, batch, epoch, done
or error events (engine.progress), and with the lens crop, lenses events before the first epoch, for the GUI's retrain panel. Every option below is a
field of engine.train_config.TrainConfig.
"""

from __future__ import annotations

import argparse
import sys

from engine.progress import (
    BatchEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    ImagesEvent,
    LensesEvent,
    ProgressEvent,
    StartEvent,
)
from engine.train_config import add_arguments as add_config_arguments
from engine.train_config import from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--progress", default="text", choices=["text", "json"],
                   help="text lines for people, or one JSON event per line for the app")


class _TextProgress:
    """Text mode for people: a tqdm bar per epoch (and for the image check) with an ETA, a line per epoch, a summary."""

    def __init__(self, dataset: str = "", mininterval: float = 0.5) -> None:
        self.bar = None
        self.dataset = dataset
        self.mininterval = mininterval  # seconds between redraws of the bar

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if isinstance(event, StartEvent):
            print(f"{event.job}: {event.n_train} train / {event.n_val} val / {event.n_test} test images, "
                  f"{event.arch} at {event.image_size} px on {event.device}", flush=True)
        elif isinstance(event, (ImagesEvent, LensesEvent)):
            done, total = (event.checked, event.total) if isinstance(event, ImagesEvent) else (event.done, event.total)
            what = "checking images" if isinstance(event, ImagesEvent) else "finding lenses"
            self._bar(what, total, done)
            if done >= total:
                self._close()
                if isinstance(event, LensesEvent):
                    tqdm.write(f"lens found in {event.found} of {event.total} photographs (the rest are cropped to "
                               "the centred square)")
        elif isinstance(event, BatchEvent):
            self._bar(f"epoch {event.epoch}", event.steps, event.step, loss=event.loss)
        elif isinstance(event, EpochEvent):
            self._close()
            print(f"epoch {event.epoch}/{event.epochs}  loss {event.train_loss:.4f}  val acc {event.val_acc:.3f}  "
                  f"qwk {event.val_qwk:.3f}  {event.images_per_s:.0f} img/s  {event.seconds:.1f}s"
                  + ("  (best so far)" if event.best_epoch == event.epoch else ""), flush=True)
        elif isinstance(event, DoneEvent):
            self._close()
            print(summary(event, self.dataset), flush=True)
        elif isinstance(event, ErrorEvent):
            self._close()
            print(f"error: {event.message}", file=sys.stderr, flush=True)

    def _bar(self, desc: str, total: int, n: int, loss: float | None = None) -> None:
        from tqdm import tqdm

        if self.bar is None or self.bar.desc != desc or self.bar.total != total:
            self._close()
            self.bar = tqdm(total=total, desc=desc, unit="batch" if desc.startswith("epoch") else "img",
                            leave=False, dynamic_ncols=True, file=sys.stderr, mininterval=self.mininterval)
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self.bar.update(max(n - self.bar.n, 0))

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def summary(event: DoneEvent, dataset: str = "DATASET") -> str:
    """A few lines at the end of a job: where the bundle is, how it scored, and what to do with it next."""
    lines = [f"done: {event.bundle} (best epoch {event.best_epoch}{', stopped early' if event.stopped_early else ''})"]
    for split in ("val", "test"):
        m = event.metrics.get(split) if isinstance(event.metrics, dict) else None
        if isinstance(m, dict):
            lines.append(f"  {split:4s} accuracy {_pct(m.get('acc'))}  QWK {_num(m.get('qwk'))}  "
                         f"within one grade {_pct(m.get('within1'))}  (n={m.get('n', '?')})")
    lines.append(f"  evaluate: cataract-grade evaluate {event.bundle} {dataset or 'DATASET'} --split test")
    lines.append(f"  use it:   cataract-grade models promote {event.bundle}")
    return "\n".join(lines)


def _pct(v) -> str:
    return f"{100 * v:.1f} %" if isinstance(v, (int, float)) else "-"


def _num(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def _emit_json(event: ProgressEvent) -> None:
    sys.stdout.write(event.to_json() + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from safetensors import SafetensorError

    from engine.train import run_training

    cfg = from_args(args)
    emit = _emit_json if args.progress == "json" else _TextProgress(str(cfg.dataset))
    try:
        run_training(cfg, progress=emit)
    except KeyboardInterrupt:
        emit(ErrorEvent(message="training was interrupted; resume with --resume"))
        return 130
    except Exception as e:  # noqa: BLE001  (whatever ends the job, the app gets an error event with a sentence)
        if isinstance(e, ValueError):  # dataset, bundle, image and device errors: EngineErrors with a sentence
            message = str(e)
        elif isinstance(e, SafetensorError):
            message = f"a weights file could not be read or written ({e}); the disk may be full or the file damaged"
        elif isinstance(e, OSError):
            message = f"a file could not be read or written: {e.strerror or e}" + (f" ({e.filename})" if e.filename
                                                                                    else "")
        else:
            message = f"{type(e).__name__}: {e}"
        emit(ErrorEvent(message=message))
        return 2
    return 0
