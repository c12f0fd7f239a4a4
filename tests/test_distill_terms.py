"""Distillation beyond logit KD: token and attention terms against hand values, multi-teacher averaging,
one KD step with every term, and multi-teacher token and attention KD through the CLI."""

from __future__ import annotations

import math

import pytest
import torch
from model_builders import FAST, MINS, RANGES, STATS, TINY, batch_for, images, subs

from engine.bundle import read_card
from engine.cli import main
from engine.distill.losses import (
    AttentionKD,
    DistillError,
    DistillLoss,
    LogitKD,
    TaskLoss,
    TokenKD,
    forward_with_map,
    layout_cells,
    map_terms,
)
from engine.distill.teachers import AttentionTeacher, FrozenTeacher, MultiTeacher, qwk_weights
from engine.models import create_model
from engine.progress import parse_line


def test_vit_small_teaches_vit_tiny_with_every_term():
    torch.manual_seed(0)
    tmodel = create_model("teacher_image", backbone="vit_small_patch16_224", image_size=32, sublabel_ranges=RANGES)
    student = create_model("student", backbone="vit_tiny_patch16_224", image_size=32, sublabel_ranges=RANGES)
    teacher = AttentionTeacher(tmodel, *STATS, *STATS)
    terms = map_terms(student.feature_dim, tmodel, token_weight=1.0, attn_weight=1.0)
    assert [type(t) for t in terms] == [TokenKD, AttentionKD] and terms[0].proj.out_features == 384
    loss_fn = DistillLoss(LogitKD(task=TaskLoss(sub_weight=0.3, sublabel_mins=MINS)), terms)
    x = images()
    parts = loss_fn(forward_with_map(student, x), teacher(x, subs(), None), batch_for())
    parts["loss"].backward()
    assert all(torch.isfinite(v) for v in parts.values()) and parts["token_loss"] > 0 and parts["attn_loss"] > 0
    assert student.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tmodel.parameters())


# ---- token and attention terms: hand values --------------------------------------
def test_layout_cells_grid_and_zones():
    fmap = torch.arange(16.0).view(1, 1, 4, 4)
    assert layout_cells(fmap, "grid", 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    zones = layout_cells(fmap, "zones").flatten().tolist()
    assert zones == pytest.approx([5, 6, 9, 10, 5 / 3, 4, 11, 40 / 3])
    with pytest.raises(DistillError, match="token layout"):
        layout_cells(fmap, "ring")


def identity_token_kd(kind: str, weight: float) -> TokenKD:
    term = TokenKD(2, 2, weight=weight, kind=kind, grid=1)
    with torch.no_grad():
        term.proj.weight.copy_(torch.eye(2))
        term.proj.bias.zero_()
    return term


def test_token_kd_hand_values():
    fmap = torch.stack([torch.ones(2, 2), torch.tensor([[0.0, 0.0], [0.0, 2.0]])]).unsqueeze(0)  # cells (1, 0.5)
    student = {"feature_map": fmap}
    smooth = identity_token_kd("smooth_l1", 2.0)(student, {"image_tokens": torch.tensor([[[1.5, 2.5]]])})
    assert smooth["token_loss"].item() == pytest.approx(2.0 * (0.5 * 0.5**2 + (2.0 - 0.5)) / 2)
    cosine = identity_token_kd("cosine", 1.0)
    assert cosine(student, {"image_tokens": torch.tensor([[[2.0, 1.0]]])})["token_loss"].item() == pytest.approx(0.0,
                                                                                                                 abs=1e-6)
    got = cosine(student, {"image_tokens": torch.tensor([[[0.0, 1.0]]])})["token_loss"].item()
    assert got == pytest.approx(1 - 0.5 / math.sqrt(1.25), rel=1e-6)
    # An image-only teacher: its own feature map, pooled the same way.
    assert cosine(student, {"feature_map": 3 * fmap})["token_loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_token_kd_gradients_and_refusals():
    term = TokenKD(4, 6, layout="zones")
    fmap = torch.randn(2, 4, 5, 5, requires_grad=True)
    tokens = torch.randn(2, 8, 6, requires_grad=True)
    term({"feature_map": fmap}, {"image_tokens": tokens})["token_loss"].backward()
    assert fmap.grad.abs().sum() > 0 and term.proj.weight.grad.abs().sum() > 0 and tokens.grad is None
    with pytest.raises(DistillError, match="8 cells but the teacher has 9"):
        term({"feature_map": fmap}, {"image_tokens": torch.randn(2, 9, 6)})
    with pytest.raises(DistillError, match="no 'feature_map'"):
        term({"logits": torch.zeros(2, 8)}, {"image_tokens": tokens})


def test_attention_kd_hand_value():
    fmap = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 2.0]]]).unsqueeze(0)  # AT map [1, 0, 0, 2]
    got = AttentionKD(weight=3.0, grid=2)({"feature_map": fmap}, {"cls_attention": torch.full((1, 4), 0.25)})
    s = [1 / math.sqrt(5), 0.0, 0.0, 2 / math.sqrt(5)]
    assert got["attn_loss"].item() == pytest.approx(3.0 * sum((v - 0.5) ** 2 for v in s), rel=1e-6)
    same = AttentionKD(grid=2)({"feature_map": fmap}, {"feature_map": 2 * fmap})  # image-only teacher: scale-free
    assert same["attn_loss"].item() == pytest.approx(0.0, abs=1e-7)


def test_map_terms_need_a_teacher_that_sees_the_image():
    mlp = create_model("teacher_mlp", sublabel_ranges=RANGES)
    assert map_terms(512, mlp) == []
    with pytest.raises(DistillError, match="sees the image"):
        map_terms(512, mlp, token_weight=1.0)
    zones = create_model("teacher_coattn", **TINY, token_layout="zones")
    token, attn = map_terms(512, zones, 1.0, 0.5, "cosine")
    assert (token.layout, token.kind, token.proj.out_features, attn.weight) == ("zones", "cosine", 32, 0.5)


# ---- multi-teacher -------------------------------------------------------------
def test_qwk_weights_are_normalised():
    assert qwk_weights([{"val": {"qwk": 0.6}}, {"val": {"qwk": 0.2}}], ["a", "b"]) == pytest.approx([0.75, 0.25])
    assert qwk_weights([{"val": {"qwk": 0.5}}, {"val": {"qwk": -0.1}}], ["a", "b"]) == [1.0, 0.0]
    assert qwk_weights([{"val": {"qwk": 0.0}}, {"val": {"qwk": -0.3}}], ["a", "b"]) == [0.5, 0.5]
    with pytest.raises(DistillError, match="'b' has no validation QWK"):
        qwk_weights([{"val": {"qwk": 0.5}}, {}], ["a", "b"])


class FixedTeacher(torch.nn.Module):
    """Gives fixed logits and records the image size it saw."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor([logits]))
        self.seen: list[int] = []

    def forward(self, x, sublabels=None, mask=None):
        self.seen.append(x.shape[-1])
        return {"logits": self.logits.expand(x.shape[0], -1), "pre_logits": x.mean(dim=(2, 3))}


def test_multi_teacher_soft_targets_and_sizes():
    a, b = FixedTeacher([0.0, 0.0]), FixedTeacher([math.log(3.0), 0.0])
    multi = MultiTeacher([FrozenTeacher(m, *STATS, *STATS) for m in (a, b)], [32, 16], [0.25, 0.75], 1.0)
    out = multi(images(), subs(), None)
    expected = [0.25 * 0.5 + 0.75 * 0.75, 0.25 * 0.5 + 0.75 * 0.25]
    assert out["soft_targets"][0].tolist() == pytest.approx(expected)
    assert a.seen == [32] and b.seen == [16] and out["pre_logits"].shape == (2, 3) and multi.model is a
    student = {"logits": torch.zeros(2, 2, requires_grad=True)}
    parts = LogitKD(temperature=1.0, alpha=1.0)(student, out, {"grade": torch.tensor([0, 1])})
    kl = sum(p * math.log(p / 0.5) for p in expected)
    assert parts["kd_loss"].item() == pytest.approx(kl, rel=1e-5)


@pytest.mark.parametrize("arch", ["teacher_concat", "teacher_coattn", "teacher_image"])
def test_one_kd_step_with_token_and_attention_terms(arch):
    torch.manual_seed(0)
    cfg = TINY if arch != "teacher_image" else dict(backbone="resnet18", image_size=32, sublabel_ranges=RANGES)
    tmodel = create_model(arch, **cfg)
    student = create_model("student", backbone="resnet18", image_size=32, sublabel_ranges=RANGES).train()
    teacher = AttentionTeacher(tmodel, *STATS, *STATS)
    loss_fn = DistillLoss(LogitKD(task=TaskLoss(sub_weight=0.3, sublabel_mins=MINS)),
                          map_terms(student.feature_dim, tmodel, 1.0, 1.0))
    opt = torch.optim.AdamW(list(student.parameters()) + list(loss_fn.parameters()), lr=1e-3)
    x = images(batch=4)
    parts = loss_fn(forward_with_map(student, x), teacher(x, subs(4), None), batch_for(4))
    parts["loss"].backward()
    assert {"token_loss", "attn_loss", "kd_loss"} <= set(parts) and all(torch.isfinite(v) for v in parts.values())
    assert student.backbone.conv1.weight.grad.abs().sum() > 0 and loss_fn.extra[0].proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tmodel.parameters())
    opt.step()


# ---- through the CLI ------------------------------------------------------------
def _events(text: str) -> list:
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def test_cli_kd_with_two_teachers_token_and_attention_terms(tiny_dataset, teachers, tmp_path, capsys):
    bundles = [str(t / "bundle") for t in teachers]
    capsys.readouterr()
    assert main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"), "--teacher", bundles[0],
                 "--teacher", bundles[1], "--token-kd", "1", "--attn-kd", "1", *FAST]) == 0
    events = _events(capsys.readouterr().out)
    assert events[-1].kind == "done" and math.isfinite(next(e for e in events if e.kind == "epoch").train_loss)
    card = read_card(tmp_path / "k" / "bundle")
    config = card.extra["train_config"]
    assert (config["token_kd"], config["attn_kd"], config["extra_teachers"]) == (1.0, 1.0, bundles[1:])
    listed = card.extra["teachers"]
    assert [t["model_id"] for t in listed] == [read_card(b).model_id for b in bundles]
    assert sum(t["weight"] for t in listed) == pytest.approx(1.0)
    assert card.teacher["model_id"] == listed[0]["model_id"]  # the primary teacher


def test_cli_refuses_two_teachers_outside_kd_and_negative_weights(tiny_dataset, teachers, tmp_path, capsys):
    bundle = str(teachers[0] / "bundle")
    capsys.readouterr()
    code = main(["train", "student", str(tiny_dataset), "--out", str(tmp_path / "s"), "--teacher", bundle,
                 "--teacher", bundle, *FAST])
    assert code == 2 and "only used by a kd job" in _events(capsys.readouterr().out)[-1].message
    code = main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"), "--teacher", bundle,
                 "--token-kd", "-1", *FAST])
    assert code == 2 and "must be >= 0" in _events(capsys.readouterr().out)[-1].message
