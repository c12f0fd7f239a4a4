"""How long jobs talk to whoever runs them: typed progress events, a callback, a cancel token.

The engine knows nothing of Qt. A training job reports `StartEvent`, `BatchEvent`,
`EpochEvent`, `DoneEvent` (or the CLI's `ErrorEvent`) to a callback; the CLI prints
them as JSON lines (`{"event": "epoch", ...}`), the app's retrain panel reads those
lines back with `parse_line`. That wire format is the contract with the child process:
`to_dict` writes the keys in field order after "event"; `parse_event` ignores keys it
does not know and fills missing ones with defaults, so a field added later (the start
event's world size for distributed training) is one line here and breaks no reader.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class ProgressEvent:
    """One event of a job; `kind` is its "event" key on the wire."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}

    def to_json(self) -> str:
        """Strict JSON: a non-finite number (a diverged loss) is written as null, read back as NaN."""
        from engine.outputs import json_line

        return json_line(self.to_dict())


@dataclass(frozen=True, kw_only=True)
class StartEvent(ProgressEvent):
    """The data and the model are ready; training starts at `start_epoch` (> 1 when resumed)."""

    kind: ClassVar[str] = "start"
    job: str = ""
    epochs: int = 1
    start_epoch: int = 1
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    device: str = ""
    arch: str = ""
    image_size: int = 0
    out: str = ""


@dataclass(frozen=True, kw_only=True)
class ImagesEvent(ProgressEvent):
    """Before the first epoch, every image is decoded once: `checked` of `total` so far, `unreadable` of them bad."""

    kind: ClassVar[str] = "images"
    checked: int = 0
    total: int = 0
    unreadable: int = 0


@dataclass(frozen=True, kw_only=True)
class LensesEvent(ProgressEvent):
    """Before the first epoch of a lens-crop job: the lens looked for in `done` of `total` photographs, `found` found."""

    kind: ClassVar[str] = "lenses"
    done: int = 0
    total: int = 0
    found: int = 0


@dataclass(frozen=True, kw_only=True)
class BatchEvent(ProgressEvent):
    """At most about once a second within an epoch: the loss of the latest step."""

    kind: ClassVar[str] = "batch"
    epoch: int = 1
    step: int = 0
    steps: int = 1
    loss: float = float("nan")


@dataclass(frozen=True, kw_only=True)
class EpochEvent(ProgressEvent):
    """One epoch trained and validated."""

    kind: ClassVar[str] = "epoch"
    epoch: int = 1
    epochs: int = 1
    train_loss: float = float("nan")
    val_loss: float = float("nan")
    val_acc: float = float("nan")
    val_qwk: float = float("nan")
    val_mae: float = float("nan")
    lr: float = 0.0
    seconds: float = 0.0
    images_per_s: float = 0.0
    best_epoch: int = 0
    cpu_seconds: float = 0.0  # this process's CPU time for the epoch (all threads); added last, readers may lack it


@dataclass(frozen=True, kw_only=True)
class DoneEvent(ProgressEvent):
    """The bundle is written; `metrics` holds its validation (and test) scores."""

    kind: ClassVar[str] = "done"
    bundle: str = ""
    model_id: str = ""
    best_epoch: int = 0
    stopped_early: bool = False
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(ProgressEvent):
    """The job failed or was interrupted; `message` is one sentence."""

    kind: ClassVar[str] = "error"
    message: str = "the job failed"


EVENT_TYPES: dict[str, type[ProgressEvent]] = {c.kind: c for c in (StartEvent, ImagesEvent, LensesEvent, BatchEvent,
                                                                     EpochEvent,
                                                                     DoneEvent, ErrorEvent)}
ProgressCallback = Callable[[ProgressEvent], None]


def parse_event(data: Mapping[str, Any]) -> ProgressEvent | None:
    """The typed event of a decoded JSON object, or None when it names no known event."""
    cls = EVENT_TYPES.get(data.get("event")) if isinstance(data, Mapping) else None
    if cls is None:
        return None
    floats = {f.name for f in fields(cls) if isinstance(f.default, float)}
    known = {f.name for f in fields(cls)}
    return cls(**{k: float("nan") if v is None and k in floats else v for k, v in data.items() if k in known})


def parse_line(line: str) -> ProgressEvent | None:
    """The event one JSON line carries, or None for any other line (a log message, a warning)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        return parse_event(json.loads(text))
    except (json.JSONDecodeError, TypeError):
        return None


class Cancelled(Exception):
    """Raised inside a job when its cancel token was set."""


class CancelToken:
    """A thread-safe flag a job polls between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("the job was stopped")


def no_progress(_event: ProgressEvent) -> None:
    """The default callback: ignore events."""
