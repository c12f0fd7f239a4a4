"""Every registered model: shapes, backward, CAM maps, rebuild from config; teacher fusion; local weights."""

import json

import pytest
import safetensors.torch
import torch

from engine.models import FusionTeacher, ModelConfigError, Student, count_parameters, create_model, list_models
from engine.models.backbone import create_backbone
from engine.schema import DEFAULT_SCHEMA, NUM_GRADES

RANGES = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
SIZE = 64
TINY_TEACHER = dict(dim=32, depth=1, heads=2)
# Small options for each model; a model not listed here must accept COMMON.
COMMON = dict(backbone="resnet18", image_size=SIZE, sublabel_ranges=RANGES)
CONFIGS = {"teacher_concat": {**COMMON, **TINY_TEACHER}, "teacher_mlp": dict(image_size=SIZE, sublabel_ranges=RANGES)}
STUDENT_BACKBONES = [("resnet18", 64), ("resnet34", 64), ("efficientnet_lite0", 64), ("vit_tiny_patch16_224", 32)]


def small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **CONFIGS.get(name, COMMON))


def images(size: int = SIZE, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def sublabels(batch: int = 2) -> torch.Tensor:
    return torch.stack([torch.tensor([lo + (hi - lo) * (i + 1) // batch for lo, hi in RANGES]) for i in range(batch)])


def param_shapes(model: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_cam_protocol(model: torch.nn.Module, x: torch.Tensor, *head_args) -> torch.Tensor:
    """The grader's path: features without grad, then head-only backward to the features."""
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
    feats.requires_grad_(True)
    out = model.forward_head(feats, *head_args)
    (grads,) = torch.autograd.grad(out["logits"][:, 3].sum(), feats)
    acts = model.cam_activations(feats)
    assert acts.dim() == 4 and acts.shape[:2] == (x.shape[0], model.feature_dim)
    assert model.cam_activations(grads).shape == acts.shape
    assert model.cam_activations(grads).abs().sum() > 0
    return grads


def test_registry_lists_the_models():
    assert {"student", "teacher_concat"} <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_and_rebuilds_from_its_config(name):
    model = small(name)
    assert model.arch == name
    model.train()
    out = model(images())
    assert out["logits"].shape == (2, NUM_GRADES) and torch.isfinite(out["logits"]).all()
    assert out["pre_logits"].dim() == 2 and out["pre_logits"].shape[0] == 2
    loss = out["logits"].logsumexp(1).mean() + sum(s.sum() for s in out.get("sub_logits", []))
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith(("backbone.", "head.")))
    assert model.head.weight.grad.abs().sum() > 0
    if hasattr(model, "backbone"):  # models that see the image support the grader's CAM path
        first = next(p for n, p in model.named_parameters() if n.startswith("backbone."))
        assert first.grad.abs().sum() > 0
        check_cam_protocol(model, images())
    config = json.loads(json.dumps(model.config))
    assert "pretrained_path" not in config
    rebuilt = create_model(model.arch, **config)
    assert param_shapes(rebuilt) == param_shapes(model) and rebuilt.config == model.config
    assert count_parameters(rebuilt) == count_parameters(model) > 0


@pytest.mark.parametrize("backbone,size", STUDENT_BACKBONES)
def test_student_on_each_backbone(backbone, size):
    torch.manual_seed(0)
    model = create_model("student", backbone=backbone, image_size=size, sublabel_ranges=RANGES, drop_rate=0.1)
    out = model(images(size))
    assert out["logits"].shape == (2, NUM_GRADES)
    assert [tuple(s.shape) for s in out["sub_logits"]] == [(2, hi - lo + 1) for lo, hi in RANGES]
    assert out["pre_logits"].shape == (2, model.feature_dim)
    (out["logits"].sum() + sum(s.sum() for s in out["sub_logits"])).backward()
    grads = check_cam_protocol(model, images(size))
    if backbone.startswith("vit"):
        assert model.num_prefix_tokens == 1
        assert model.cam_activations(model.forward_features(images(size))).shape == (2, 192, 2, 2)
        # The head pools patch tokens, so the CLS token gets no gradient and the CAM sees every patch.
        assert grads[:, 0].abs().sum() == 0 and (grads[:, 1:].abs().sum(-1) > 0).all()
    else:
        assert model.num_prefix_tokens == 0


def test_student_without_sub_labels_has_no_aux_head():
    model = create_model("student", image_size=SIZE)
    assert model.config["sublabel_ranges"] == [] and model(images())["sub_logits"] == []
    assert isinstance(model, Student) and model.feature_dim == 512


def test_teacher_uses_all_some_and_no_sub_labels():
    for layout in ("grid", "zones"):
        model = create_model("teacher_concat", **COMMON, **TINY_TEACHER, token_layout=layout).eval()
        x, subs = images(), sublabels()
        some = torch.tensor([[True, False, True, False, True, False]] * 2)
        with torch.no_grad():
            outs = [model(x, subs)["logits"], model(x, subs, some)["logits"], model(x)["logits"]]
        for o in outs:
            assert o.shape == (2, NUM_GRADES) and torch.isfinite(o).all()
        assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
        n_img = 9 if layout == "grid" else 8
        full = model(x, subs)
        assert full["image_tokens"].shape == (2, n_img, 32)
        assert full["tokens"].shape == (2, 1 + n_img + len(RANGES), 32)
        assert torch.equal(full["pre_logits"], full["tokens"][:, 0])
        check_cam_protocol(model, x, subs, some)


def test_teacher_ignores_values_in_blank_cells():
    model = create_model("teacher_concat", **COMMON, **TINY_TEACHER).eval()
    x, subs = images(), sublabels()
    mask = torch.tensor([[True, True, False, False, True, False]] * 2)
    garbage = torch.where(mask, subs, torch.full_like(subs, -7))
    with torch.no_grad():
        assert torch.equal(model(x, subs, mask)["logits"], model(x, garbage, mask)["logits"])


def test_sub_label_dropout_only_in_training():
    torch.manual_seed(0)
    model = create_model("teacher_concat", **COMMON, **TINY_TEACHER, dropout=0.0, sub_dropout=1.0)
    x, subs = images(), sublabels()
    with torch.no_grad():
        model.train()  # every known token is dropped: same as giving none
        assert torch.allclose(model(x, subs)["logits"], model(x)["logits"], atol=1e-6)
        model.eval()
        assert not torch.allclose(model(x, subs)["logits"], model(x)["logits"], atol=1e-4)


def test_teacher_on_a_vit_backbone_gives_a_feature_map():
    model = create_model("teacher_concat", **{**COMMON, "backbone": "vit_tiny_patch16_224", "image_size": 32},
                         **TINY_TEACHER)
    assert isinstance(model, FusionTeacher) and model.dim == 32
    assert model.forward_features(images(32)).shape == (2, 192, 2, 2)
    check_cam_protocol(model, images(32), sublabels())


def test_teacher_refuses_bad_sub_label_input():
    model = create_model("teacher_concat", **COMMON, **TINY_TEACHER).eval()
    with pytest.raises(ValueError, match=r"shape \(2, 6\)"):
        model(images(), torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize(
    "name,cfg,message",
    [
        ("nope", {}, "unknown model 'nope'; the known models are student"),
        ("student", {"colour": 3}, "cannot be built with these options"),
        ("student", {"backbone": "no_such_net"}, "unknown backbone 'no_such_net'"),
        ("student", {"sublabel_ranges": [[3, 1]]}, "sub-label range #1"),
        ("student", {"backbone": "vit_tiny_patch16_224", "image_size": 40}, "not a multiple of its patch size 16"),
        ("teacher_concat", {}, "at least one sub-label range"),
        ("teacher_concat", {"sublabel_ranges": RANGES, "token_layout": "ring"}, "token_layout must be one of"),
        ("teacher_concat", {"sublabel_ranges": RANGES, "dim": 30, "heads": 4}, "multiple of heads"),
    ],
)
def test_bad_configs_raise_model_config_error(name, cfg, message):
    with pytest.raises(ModelConfigError, match=message):
        create_model(name, **cfg)


def test_pretrained_path_loads_local_safetensors(tmp_path):
    torch.manual_seed(3)
    source, _ = create_backbone("resnet18", SIZE)
    path = tmp_path / "resnet18.safetensors"
    tensors = {k: v.contiguous() for k, v in source.state_dict().items()}
    tensors["fc.weight"] = torch.zeros(10, 512)  # a classifier head is ignored
    safetensors.torch.save_file(tensors, str(path))
    model = create_model("student", image_size=SIZE, pretrained_path=str(path))
    for k, v in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert "pretrained_path" not in model.config
    # A whole model's state dict (keys under 'backbone.') works too: retraining from a trained student.
    whole = tmp_path / "student.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(whole))
    teacher = create_model("teacher_concat", **COMMON, **TINY_TEACHER, pretrained_path=whole)
    assert torch.equal(teacher.backbone.conv1.weight, source.conv1.weight)


def test_pretrained_path_refuses_other_weights(tmp_path):
    other, _ = create_backbone("resnet34", SIZE)
    path = tmp_path / "resnet34.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path))
    with pytest.raises(ModelConfigError, match=r"do not fit this backbone: .*unexpected tensors \(layer1\.2\."):
        create_model("student", image_size=SIZE, pretrained_path=str(path))
    with pytest.raises(ModelConfigError, match="no such file"):
        create_model("student", image_size=SIZE, pretrained_path=str(tmp_path / "absent.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01 not a tensor file")
    with pytest.raises(ModelConfigError, match="not a readable safetensors file"):
        create_model("student", image_size=SIZE, pretrained_path=str(tmp_path / "junk.safetensors"))


@pytest.mark.parametrize("name", list_models())
def test_every_model_keeps_the_grading_contract(name):
    from engine.models import GradingModel

    model = small(name)
    assert isinstance(model, GradingModel)
    assert isinstance(model.feature_dim, int) and model.feature_dim > 0 and isinstance(model.config, dict)
