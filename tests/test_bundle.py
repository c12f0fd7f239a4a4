"""Bundles: exact round trips, fp16 storage, atomic replacement and every refusal with its reason."""

import hashlib
import json
import pickle
import shutil
from dataclasses import replace

import pytest
import safetensors.torch
import torch

from engine.bundle import (
    DEMO_NOTICE,
    FORMAT_VERSION,
    BundleError,
    ModelCard,
    load_bundle,
    read_card,
    save_bundle,
)
from engine.models import create_model
from engine.schema import DEFAULT_SCHEMA, Schema, SubLabel

RANGES = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
SIZE = 32
TINY = dict(backbone="test_resnet", image_size=SIZE, sublabel_ranges=RANGES)


def make_model(role: str = "student", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if role == "teacher":
        model = create_model("teacher_concat", **TINY, dim=32, depth=1, heads=2)
    else:
        model = create_model("student", **TINY)
    model.train()
    with torch.no_grad():  # move the BatchNorm statistics off their defaults so buffers matter
        model(torch.randn(4, 3, SIZE, SIZE) * 3 + 1)
    return model.eval()


def make_card(role: str = "student", **kw) -> ModelCard:
    return ModelCard(role=role, name=f"tiny-{role}", image_size=SIZE, schema=DEFAULT_SCHEMA.to_dict(),
                     fusion="concat" if role == "teacher" else None, seed=0, epochs=3,
                     metrics={"val": {"acc": 0.5}}, notice=DEMO_NOTICE, **kw)


def outputs(model: torch.nn.Module, role: str) -> torch.Tensor:
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    subs = torch.tensor([[1, 2, 3, 1, 2, 3], [0, 5, 8, 3, 0, 1]])
    with torch.no_grad():
        return model(x, subs)["logits"] if role == "teacher" else model(x)["logits"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A student bundle and its model, saved once; tests copy it before damaging it."""
    path = tmp_path_factory.mktemp("b") / "student"
    model = make_model()
    card = save_bundle(path, model, make_card())
    return path, model, card


def copy_of(saved, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(saved[0], dst)
    return dst


def edit_card(path, **changes):
    data = json.loads((path / "card.json").read_text())
    data.update(changes)
    (path / "card.json").write_text(json.dumps(data))


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_fp32_round_trip_is_exact(tmp_path, role):
    model = make_model(role)
    card = save_bundle(tmp_path / role, model, make_card(role))
    loaded, loaded_card = load_bundle(tmp_path / role, expect_role=role, schema=DEFAULT_SCHEMA)
    assert not loaded.training and loaded_card == card
    assert torch.equal(outputs(loaded, role), outputs(model, role))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_card_is_filled_in_and_read_back(saved):
    path, model, card = saved
    assert card.model_id == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert card.arch == "student" and card.arch_config == model.config and card.dtype == "float32"
    assert card.format_version == FORMAT_VERSION and card.grades == [str(g) for g in range(8)]
    assert card.created.endswith("+00:00") and card.notice == DEMO_NOTICE
    assert read_card(path) == card and card.schema_obj() == DEFAULT_SCHEMA
    assert sorted(p.name for p in path.iterdir()) == ["card.json", "model.safetensors"]


def test_fp16_storage_loads_back_as_float32(tmp_path, saved):
    _, model, _ = saved
    card = save_bundle(tmp_path / "half", model, make_card(), half=True)
    assert card.dtype == "float16"
    stored = safetensors.torch.load_file(str(tmp_path / "half" / "model.safetensors"))
    assert stored["head.weight"].dtype == torch.float16
    assert stored["backbone.bn1.num_batches_tracked"].dtype == torch.int64
    loaded, _ = load_bundle(tmp_path / "half")
    assert loaded.head.weight.dtype == torch.float32
    assert torch.allclose(outputs(loaded, "student"), outputs(model, "student"), atol=1e-2)


def test_saving_replaces_an_old_bundle_and_leaves_no_temp_folders(tmp_path):
    path = tmp_path / "bundle"
    first = save_bundle(path, make_model(seed=1), make_card())
    second = save_bundle(path, make_model(seed=2), make_card())
    assert first.model_id != second.model_id and read_card(path).model_id == second.model_id
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_saving_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "eye.png").write_bytes(b"x")
    with pytest.raises(BundleError, match="exists and is not a model bundle"):
        save_bundle(tmp_path / "photos", make_model(), make_card())
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["eye.png"]


def test_saving_refuses_models_the_card_cannot_rebuild(tmp_path):
    with pytest.raises(BundleError, match="only models built by engine.models.create_model"):
        save_bundle(tmp_path / "b", torch.nn.Linear(2, 2), make_card())
    with pytest.raises(BundleError, match="card names arch 'teacher_concat' but the model is a 'student'"):
        save_bundle(tmp_path / "b", make_model(), make_card(arch="teacher_concat"))
    with pytest.raises(BundleError, match="card image_size 64 differs"):
        save_bundle(tmp_path / "b", make_model(), replace(make_card(), image_size=64))
    assert not (tmp_path / "b").exists()


def test_loader_needs_only_safetensors_and_json(tmp_path, monkeypatch):
    model = make_model()
    path = tmp_path / "handmade"
    path.mkdir()
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                str(path / "model.safetensors"))
    card = {"format_version": 1, "role": "student", "name": "handmade", "arch": "student",
            "arch_config": model.config, "image_size": SIZE, "mean": [0.5] * 3, "std": [0.25] * 3,
            "grades": list("01234567"), "schema": DEFAULT_SCHEMA.to_dict(), "from_a_later_minor_release": True}
    (path / "card.json").write_text(json.dumps(card))

    def refuse(*a, **k):
        raise AssertionError("the loader tried to unpickle")

    for target, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(target, name, refuse)
    loaded, loaded_card = load_bundle(path)
    assert loaded_card.mean == [0.5] * 3 and loaded_card.model_id == ""
    assert torch.equal(outputs(loaded, "student"), outputs(model, "student"))


def test_refuses_missing_paths_files_and_folders_without_a_card(tmp_path, saved):
    with pytest.raises(BundleError, match="no such model bundle"):
        load_bundle(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is a file, but a model bundle is a folder"):
        load_bundle(tmp_path / "file")
    path = copy_of(saved, tmp_path)
    (path / "card.json").unlink()
    with pytest.raises(BundleError, match="has no card.json, so it is not a model bundle"):
        read_card(path)


def test_refuses_a_card_that_is_not_json_or_lacks_fields(tmp_path, saved):
    path = copy_of(saved, tmp_path)
    (path / "card.json").write_text("{not json")
    with pytest.raises(BundleError, match="card.json is not valid JSON"):
        load_bundle(path)
    data = saved[2].to_dict()
    del data["arch"], data["schema"]
    (path / "card.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="lacks the required fields arch, schema"):
        read_card(path)


def test_refuses_a_newer_format(tmp_path, saved):
    path = copy_of(saved, tmp_path)
    edit_card(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleError, match=f"format version {FORMAT_VERSION + 1}, newer than this app reads"):
        load_bundle(path)


def test_refuses_the_wrong_role(saved):
    with pytest.raises(BundleError, match="this is a student bundle; a teacher was expected"):
        load_bundle(saved[0], expect_role="teacher")


def test_refuses_another_schema_naming_the_differences(saved):
    subs = list(DEFAULT_SCHEMA.sublabels)
    subs[2] = SubLabel("sectors_involved", "count", 0, 12, "twelve sectors")
    subs[5] = SubLabel("spoke_count", "count", 0, 9, "spokes")
    other = Schema(sublabels=tuple(subs), name="clinic")
    with pytest.raises(BundleError) as err:
        load_bundle(saved[0], schema=other)
    msg = str(err.value)
    assert "trained on another sub-label schema" in msg
    assert "sectors_involved (count 0-8 in the model, count 0-12 active)" in msg
    assert "morphology (only in the model's schema)" in msg and "spoke_count (only in the active schema)" in msg


def test_refuses_an_unknown_arch(tmp_path, saved):
    path = copy_of(saved, tmp_path)
    edit_card(path, arch="teacher_hypernet")
    with pytest.raises(BundleError, match="unknown model arch 'teacher_hypernet'; this app knows student"):
        load_bundle(path)


def test_refuses_missing_or_damaged_weights(tmp_path, saved):
    path = copy_of(saved, tmp_path)
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"model.safetensors is refused: it is [\d,]+ bytes but its header "
                                          r"describes [\d,]+ \(cut off or padded\)"):
        load_bundle(path)
    weights.write_bytes(b"\xff" * 64)
    with pytest.raises(BundleError, match="is refused: it is not a safetensors file"):
        load_bundle(path)
    weights.unlink()
    with pytest.raises(BundleError, match="has no model.safetensors"):
        load_bundle(path)


def resave(path, change):
    """Rewrite a bundle's weights through `change(tensors)`, keeping the card but not its model id."""
    weights = path / "model.safetensors"
    tensors = safetensors.torch.load_file(str(weights))
    change(tensors)
    safetensors.torch.save_file(tensors, str(weights))
    edit_card(path, model_id="")


def test_refuses_missing_unexpected_and_misshapen_tensors(tmp_path, saved):
    path = copy_of(saved, tmp_path)
    resave(path, lambda t: (t.pop("head.weight"), t.pop("head.bias")))
    with pytest.raises(BundleError, match=r"does not fit a student model: 2 missing tensors \(head.weight, head.bias\)"):
        load_bundle(path)
    resave(path, lambda t: t.update({"head.weight": torch.zeros(8, 96), "head.bias": torch.zeros(8),
                                     "extra.weight": torch.zeros(1)}))
    with pytest.raises(BundleError, match=r"1 unexpected tensors \(extra.weight\)"):
        load_bundle(path)
    resave(path, lambda t: (t.pop("extra.weight"), t.update({"head.weight": torch.zeros(7, 96)})))
    with pytest.raises(BundleError, match=r"tensors of the wrong shape \(head.weight \(7, 96\) vs \(8, 96\)\)"):
        load_bundle(path)


def test_refuses_weights_that_are_not_the_ones_the_card_describes(tmp_path, saved):
    path = copy_of(saved, tmp_path)
    save_bundle(tmp_path / "other", make_model(seed=9), make_card())
    shutil.copy(tmp_path / "other" / "model.safetensors", path / "model.safetensors")
    with pytest.raises(BundleError, match="is not the file its card describes"):
        load_bundle(path)


def test_card_validation_and_unknown_keys():
    with pytest.raises(BundleError, match="role must be 'student' or 'teacher'"):
        make_card(role="reviewer")
    with pytest.raises(BundleError, match="'mean' must be 3 finite numbers"):
        make_card(mean=[0.5, 0.5])
    data = make_card().to_dict() | {"future_field": {"x": 1}}
    assert ModelCard.from_dict(data) == make_card(created=data["created"])
    with pytest.raises(BundleError, match="card.json must hold a JSON object"):
        ModelCard.from_dict([1, 2])
