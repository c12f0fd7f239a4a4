"""The teachers beyond concat: co-attention, its attention read-out, the image-only teacher (KDViT), ViT students.

Each is built, trained for a step, served by the grader with a heat map, and trained through the CLI.
"""

from __future__ import annotations

import json

import pytest
import torch
from model_builders import RANGES, TINY, batch_for, coattn, images, subs

from engine.bundle import read_card
from engine.distill.losses import TaskLoss, forward_with_map
from engine.distill.teachers import teacher_forward
from engine.models import ImageTeacher, create_model
from engine.schema import DEFAULT_SCHEMA, NUM_GRADES


# ---- co-attention teacher ------------------------------------------------------
@pytest.mark.parametrize("layout,n_img", [("grid", 9), ("zones", 8)])
def test_coattn_uses_all_some_and_no_sub_labels(layout, n_img):
    model = coattn(layout, dropout=0.0, sub_dropout=0.0)
    x, some = images(), torch.tensor([[True, False, True, False, True, False]] * 2)
    model.train()
    out = model(x, subs(), some)
    assert out["image_tokens"].shape == (2, n_img, 32) and out["tokens"].shape == (2, 1 + n_img + 1 + 6, 32)
    out["logits"].logsumexp(1).mean().backward()
    for name in ("backbone.conv1.weight", "blocks.0.image_cross.attn.in_proj_weight",
                 "blocks.0.sub_cross.attn.in_proj_weight", "sub_tokens.weight", "head.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        outs = [model(x, subs())["logits"], model(x, subs(), some)["logits"], model(x)["logits"]]
    assert all(o.shape == (2, NUM_GRADES) and torch.isfinite(o).all() for o in outs)
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    rebuilt = create_model("teacher_coattn", **json.loads(json.dumps(model.config)))
    assert rebuilt.config == model.config and rebuilt.config["token_layout"] == layout


def test_coattn_streams_exchange_information():
    model = coattn().eval()
    x = images()
    with torch.no_grad():
        low, high = model(x, subs(high=False)), model(x, subs(high=True))
        other_image = model(images(seed=5), subs(high=False))
    # One block: the image stream sees the sub-labels only through cross-attention, and vice versa.
    assert not torch.allclose(low["tokens"][:, 0], high["tokens"][:, 0], atol=1e-5)
    assert not torch.allclose(low["image_tokens"], high["image_tokens"], atol=1e-5)
    sub_cls = 1 + low["image_tokens"].shape[1]
    assert not torch.allclose(low["tokens"][:, sub_cls], other_image["tokens"][:, sub_cls], atol=1e-5)
    assert torch.allclose(low["pre_logits"], 0.5 * (low["tokens"][:, 0] + low["tokens"][:, sub_cls]))


def test_coattn_attention_is_optional_and_changes_nothing_else():
    model = coattn().eval()
    with torch.no_grad():
        plain = model(images(), subs())
        full = model(images(), subs(), return_attention=True)
    assert "cls_attention" not in plain and torch.equal(plain["logits"], full["logits"])
    attn = full["cls_attention"]
    assert attn.shape == (2, 9) and (attn > 0).all() and (attn.sum(1) < 1).all()  # CLS also attends to itself


def test_concat_teacher_attention_matches_a_manual_pass_and_leaves_no_hook():
    torch.manual_seed(0)
    model = create_model("teacher_concat", **TINY).eval()
    x, s = images(), subs()
    with torch.no_grad():
        out = teacher_forward(model, x, s, None, attention=True)
        feats = model.forward_features(x)
        _, known = model.known_mask(feats, s, None)
        seq = torch.cat([model.cls_token.expand(2, -1, -1), model.image_tokens(feats) + model.type_embed[0],
                         model.sub_tokens(s, known) + model.type_embed[1]], dim=1)
        layer = model.encoder.layers[0]
        h = layer.norm1(seq)
        _, weights = layer.self_attn(h, h, h, need_weights=True)
    assert torch.allclose(out["cls_attention"], weights[:, 0, 1:10], atol=1e-6)
    assert torch.allclose(out["logits"], model(x, s)["logits"], atol=1e-5)
    assert not layer._forward_pre_hooks


# ---- image-only teacher (KDViT) --------------------------------------------------
def test_image_teacher_ignores_sub_labels_and_rebuilds():
    torch.manual_seed(0)
    model = create_model("teacher_image", backbone="resnet18", image_size=32, sublabel_ranges=RANGES).eval()
    assert isinstance(model, ImageTeacher) and model.dim == model.feature_dim == 512 and not model.sub_heads
    x = images()
    with torch.no_grad():
        plain, given = model(x), model(x, subs(high=False), torch.zeros(2, 6, dtype=torch.bool))
    assert torch.equal(plain["logits"], given["logits"]) and torch.equal(plain["logits"], model(x, subs())["logits"])
    assert plain["feature_map"].shape == (2, 512, 1, 1) and plain["sub_logits"] == []
    assert create_model("teacher_image", **json.loads(json.dumps(model.config))).config == model.config


@pytest.mark.parametrize("size", [32, 64, 96, 224])
def test_vit_student_at_sizes_that_divide_by_the_patch(size):
    torch.manual_seed(0)
    model = create_model("student", backbone="vit_tiny_patch16_224", image_size=size, sublabel_ranges=RANGES).eval()
    with torch.no_grad():
        out = forward_with_map(model, images(size, batch=1))
    assert out["logits"].shape == (1, NUM_GRADES) and torch.isfinite(out["logits"]).all()
    assert out["feature_map"].shape == (1, 192, size // 16, size // 16)


# ---- one training step ---------------------------------------------------------
@pytest.mark.parametrize("arch", ["teacher_coattn", "teacher_image"])
def test_one_teacher_training_step(arch):
    torch.manual_seed(0)
    cfg = TINY if arch == "teacher_coattn" else dict(backbone="resnet18", image_size=32, sublabel_ranges=RANGES)
    model = create_model(arch, **cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.head.weight.detach().clone()
    loss = TaskLoss(ordinal=True)(model(images(batch=4), subs(4), None), batch_for(4))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    assert not torch.equal(before, model.head.weight)


# ---- the grader serves the new teachers ------------------------------------------
@pytest.mark.parametrize("arch", ["teacher_coattn", "teacher_image"])
def test_grader_routes_sub_labels_to_a_new_teacher_with_a_cam(arch, tiny_bundles, tmp_path):
    import numpy as np

    from engine.bundle import ModelCard, save_bundle
    from engine.infer import Grader

    torch.manual_seed(0)
    cfg = {**TINY, "image_size": 64} if arch == "teacher_coattn" else dict(backbone="resnet18", image_size=64)
    model = create_model(arch, **{**cfg, "sublabel_ranges": RANGES})
    fusion = {"teacher_coattn": "coattn", "teacher_image": "none"}[arch]
    card = ModelCard(role="teacher", name=arch, image_size=64, schema=DEFAULT_SCHEMA.to_dict(), fusion=fusion)
    save_bundle(tmp_path / arch, model, card)
    grader = Grader(tiny_bundles[0], tmp_path / arch, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    full = grader.grade(img, grader.request(sublabels={n: 1 for n in grader.schema.names}))
    part = grader.grade(img, grader.request(sublabels={"sectors_involved": 4}))
    assert full.model.role == "teacher" and full.cam.shape == (48, 64) and np.isfinite(full.cam).all()
    assert (full.probabilities != part.probabilities) == (arch == "teacher_coattn")


# ---- through the CLI ------------------------------------------------------------
def test_cli_trains_coattn_and_image_only_teachers(teachers):
    co, img = (read_card(t / "bundle") for t in teachers)
    assert (co.arch, co.fusion, co.arch_config["token_layout"]) == ("teacher_coattn", "coattn", "zones")
    assert (img.arch, img.fusion, img.role) == ("teacher_image", "none", "teacher")
    assert 0.0 <= co.metrics["val"]["acc"] <= 1.0 and "qwk" in img.metrics["val"]
