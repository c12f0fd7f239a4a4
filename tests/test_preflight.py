"""A training job decodes every image before its first epoch, and says which ones it cannot read."""

import shutil

import pytest

from engine.data.manifest import DatasetError, load_dataset
from engine.data.preflight import verify_images
from engine.train import TrainConfig, run_training


@pytest.fixture
def damaged_dataset(tiny_dataset, tmp_path):
    """The tiny dataset with one image cut in half (the decoder, not the file check, finds it)."""
    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    manifest = load_dataset(data)
    victim = manifest.records[-1]
    raw = victim.image.read_bytes()
    victim.image.write_bytes(raw[: len(raw) // 2])
    return data, victim


def test_every_image_is_decoded_with_progress(tiny_dataset):
    events = []
    verify_images(load_dataset(tiny_dataset), events.append, every_s=0.0)
    assert [e.checked for e in events] == list(range(1, 33))
    assert events[-1].to_dict() == {"event": "images", "checked": 32, "total": 32, "unreadable": 0}


def test_an_unreadable_image_stops_the_job_before_the_first_epoch(damaged_dataset, tmp_path):
    data, victim = damaged_dataset
    events = []
    cfg = TrainConfig(job="student", dataset=str(data), out=str(tmp_path / "run"), epochs=1, image_size=32,
                      batch_size=16, device="cpu", test_frac=0.3)
    with pytest.raises(DatasetError) as info:
        run_training(cfg, progress=events.append)
    message = str(info.value)
    assert f"labels.csv:{victim.line}: image '{victim.rel_path}': the file is truncated" in message
    assert events[0].kind == "start" and all(e.kind == "images" for e in events[1:])
    assert events[-1].unreadable == 1 and events[-1].checked == 32
    assert not (tmp_path / "run" / "checkpoint").exists()
