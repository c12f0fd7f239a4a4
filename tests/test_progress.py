"""Typed progress events and their JSON-lines wire format (the contract with the child training process)."""

import json

from engine.progress import (
    EVENT_TYPES,
    BatchEvent,
    DoneEvent,
    EpochEvent,
    ErrorEvent,
    ImagesEvent,
    StartEvent,
    parse_event,
    parse_line,
)


def test_the_wire_format_keeps_its_keys_in_order():
    start = StartEvent(job="kd", epochs=3, start_epoch=1, n_train=20, n_val=5, n_test=4, device="cpu",
                       arch="student", image_size=64, out="/run")
    assert list(json.loads(start.to_json())) == ["event", "job", "epochs", "start_epoch", "n_train", "n_val", "n_test",
                                                 "device", "arch", "image_size", "out", "world_size"]
    epoch = EpochEvent(epoch=1, epochs=3, train_loss=1.0, val_loss=1.1, val_acc=0.5, val_qwk=0.4, val_mae=0.9, lr=1e-3,
                       seconds=2.0, images_per_s=10.0, best_epoch=1)
    assert list(epoch.to_dict()) == ["event", "epoch", "epochs", "train_loss", "val_loss", "val_acc", "val_qwk",
                                     "val_mae", "lr", "seconds", "images_per_s", "best_epoch", "cpu_seconds"]
    assert json.loads(ErrorEvent(message="no labels").to_json()) == {"event": "error", "message": "no labels"}
    assert set(EVENT_TYPES) == {"start", "images", "lenses", "batch", "epoch", "done", "error"}


def test_every_event_round_trips_through_a_json_line():
    events = [StartEvent(job="teacher", epochs=2), ImagesEvent(checked=3, total=9, unreadable=1),
              BatchEvent(epoch=1, step=3, steps=9, loss=0.5),
              EpochEvent(epoch=2, train_loss=1.0, val_loss=0.9, val_acc=0.5, val_qwk=0.4, val_mae=0.8),
              DoneEvent(bundle="/b", model_id="abc", best_epoch=2, metrics={"val": {"qwk": 0.7}}), ErrorEvent(message="x")]
    for event in events:
        assert parse_line(event.to_json() + "\n") == event


def test_readers_ignore_unknown_keys_and_other_lines():
    later = parse_line('{"event": "start", "job": "kd", "epochs": 4, "gpu_name": "H100"}')  # a field added later
    assert later == StartEvent(job="kd", epochs=4)
    assert parse_line('{"event": "start", "job": "kd", "world_size": 8}').world_size == 8
    assert parse_line('{"event": "start", "job": "kd"}').world_size == 1  # a stream from before world_size
    assert parse_event({"event": "epoch", "epoch": 3}).epoch == 3  # missing keys take their defaults
    for line in ["Downloading nothing", '{"event": "rain"}', "{not json", "[1, 2]", '{"no": "event"}']:
        assert parse_line(line) is None
