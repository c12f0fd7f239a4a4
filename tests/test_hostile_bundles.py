"""Bundles built to hurt: the store refuses, with a sentence, anything it could not grade with, and lists the rest."""

import hashlib
import json
import pickle
import shutil

import pytest
import safetensors.torch
import torch

import engine.bundle as bundle_mod
from engine.bundle import BundleError, load_bundle, read_card
from engine.cli import main as cli_main
from engine.limits import MAX_IMAGE_SIZE
from engine.model_store import ModelStore, StoreError
from engine.train import TrainConfig, TrainError


@pytest.fixture
def store(tmp_path, tiny_bundles):
    return ModelStore(tmp_path / "store", defaults={"student": tiny_bundles[0], "teacher": tiny_bundles[1]})


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit(path, **changes):
    card = json.loads((path / "card.json").read_text())
    card.update(changes)
    (path / "card.json").write_text(json.dumps(card))


def _rewrite_weights(path, data: bytes) -> None:
    """New weight bytes, with the card's model id made to match them (as a forger would)."""
    (path / "model.safetensors").write_bytes(data)
    _edit(path, model_id=hashlib.sha256(data).hexdigest()[:16])


def _change_tensors(path, change) -> None:
    tensors = safetensors.torch.load_file(str(path / "model.safetensors"))
    change(tensors)
    _rewrite_weights(path, safetensors.torch.save(tensors))


def test_promote_refuses_a_pickle_named_model_safetensors(store, tiny_bundles, tmp_path):
    bad = _copy(tiny_bundles[0], tmp_path / "pickle")
    _rewrite_weights(bad, pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(StoreError, match="model.safetensors is refused: it is not a safetensors file"):
        store.promote(bad)
    assert store.promoted("student") is None


def test_promote_refuses_nan_weights(store, tiny_bundles, tmp_path):
    bad = _copy(tiny_bundles[0], tmp_path / "nan")
    _change_tensors(bad, lambda t: t["head.weight"].fill_(float("nan")))
    with pytest.raises(StoreError, match=r"holds NaN or infinite weights \(head.weight\)"):
        store.promote(bad)


def test_promote_refuses_a_model_whose_scores_overflow(store, tiny_bundles, tmp_path):
    bad = _copy(tiny_bundles[0], tmp_path / "overflow")
    _change_tensors(bad, lambda t: t["head.weight"].fill_(3e38))  # finite weights, infinite logits
    with pytest.raises(StoreError, match="gives NaN or infinite scores for the built-in test photograph"):
        store.promote(bad)


def test_a_card_naming_a_huge_backbone_is_refused_before_it_is_built(tiny_bundles, tmp_path, monkeypatch):
    bad = _copy(tiny_bundles[0], tmp_path / "giant")
    card = json.loads((bad / "card.json").read_text())
    card["arch_config"]["backbone"] = "convnext_xxlarge"  # about 850 million parameters, 3.4 GB in float32
    (bad / "card.json").write_text(json.dumps(card))
    real = bundle_mod.create_model
    devices = []

    def spy(*args, **kwargs):
        devices.append(torch.empty(0).device.type)
        return real(*args, **kwargs)

    monkeypatch.setattr(bundle_mod, "create_model", spy)
    with pytest.raises(BundleError, match="model.safetensors does not fit a student model: .*missing tensors"):
        load_bundle(bad)
    assert devices == ["meta"]  # only the free meta-device build ever ran


def test_weights_whose_header_does_not_account_for_the_file_are_refused(tiny_bundles, tmp_path):
    bad = _copy(tiny_bundles[0], tmp_path / "padded")
    data = (bad / "model.safetensors").read_bytes()
    _rewrite_weights(bad, data + bytes(4096))
    with pytest.raises(BundleError, match=r"is [\d,]+ bytes but its header describes [\d,]+ \(cut off or padded\)"):
        load_bundle(bad)


@pytest.mark.parametrize("change, message", [
    ({"name": 5}, "card field 'name' must be text of 1-200 printable characters, not 5"),
    ({"name": "a\nb"}, "card field 'name' must be text"),
    ({"model_id": 7}, "card field 'model_id' must be a hex digest, not 7"),
    ({"created": ["x"]}, "card field 'created' must be text"),
    ({"grades": [{"g": 1}] * 8}, "card field 'grades' must be a list of names"),
    ({"image_size": 100000}, "card field 'image_size' must be an integer within 16-1024, not 100000"),
    ({"image_size": "64"}, "card field 'image_size' must be an integer within 16-1024, not '64'"),
])
def test_cards_are_held_to_types_and_bounds(tiny_bundles, tmp_path, change, message):
    bad = _copy(tiny_bundles[0], tmp_path / "card")
    _edit(bad, **change)
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_card(bad)


def test_a_deeply_nested_or_huge_card_is_refused_with_a_sentence(tiny_bundles, tmp_path):
    deep = _copy(tiny_bundles[0], tmp_path / "deep")
    (deep / "card.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BundleError, match="is refused: it is nested more than 32 levels deep"):
        read_card(deep)
    card = json.loads((tiny_bundles[0] / "card.json").read_text())
    card["extra"] = json.loads("[" * 40 + "]" * 40)  # valid JSON, 41 levels deep
    (deep / "card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="nested more than 32 levels deep"):
        read_card(deep)
    (deep / "card.json").write_text(" " * (2 << 20) + "{}")
    with pytest.raises(BundleError, match=r"is refused: it is 2,097,154 bytes; a card is at most 1,048,576"):
        read_card(deep)


def test_one_bad_entry_never_breaks_the_listing(store, tiny_bundles, capsys):
    for i, card_text in enumerate(["[" * 200_000 + "]" * 200_000, None, "{"]):
        run = store.new_run_dir(f"bad{i}") / "bundle"
        shutil.copytree(tiny_bundles[0], run)
        if card_text is None:
            _edit(run, name=5)
        else:
            (run / "card.json").write_text(card_text)
    good = store.new_run_dir("good") / "bundle"
    shutil.copytree(tiny_bundles[0], good)
    _edit(good, name="the-good-one")
    problems = []
    names = [c.name for _p, c in store.list_bundles(problems)]
    assert names == ["the-good-one", "tiny-student", "tiny-teacher"]
    assert len(problems) == 3 and all("is left out:" in p for p in problems)
    assert cli_main(["models", "list", "--store", str(store.root)]) == 0
    out = capsys.readouterr()
    assert "the-good-one" in out.out and out.err.count("is left out:") == 3


def test_cards_and_training_share_one_image_size_cap(tiny_dataset, tmp_path):
    TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path), image_size=MAX_IMAGE_SIZE).check()
    with pytest.raises(TrainError, match="--image-size must be <= 1024, not 1025"):
        TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path), image_size=MAX_IMAGE_SIZE + 1).check()


def test_a_copy_that_fails_leaves_the_store_unchanged(store, tiny_bundles, monkeypatch):
    import errno

    import engine.model_store as ms

    def full_disk(src, dst, **kw):
        (dst).mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ms.shutil, "copytree", full_disk)
    outside = tiny_bundles[0].parent / "student"
    with pytest.raises(StoreError, match=r"could not be copied into the store \(No space left on device\); nothing "
                                         "was changed"):
        store._adopt(outside, "student")
    assert list(store.runs_dir.iterdir()) == []
