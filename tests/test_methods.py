"""The other seeds' methods: co-attention teacher, image-only (ViT) teacher, token/attention KD, multi-teacher."""

from __future__ import annotations

import json
import math

import pytest
import torch

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
from engine.distill.teachers import AttentionTeacher, FrozenTeacher, MultiTeacher, qwk_weights, teacher_forward
from engine.models import CoAttentionTeacher, ImageTeacher, create_model
from engine.schema import DEFAULT_SCHEMA, NUM_GRADES

RANGES = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
MINS = [lo for lo, _ in RANGES]
TINY = dict(backbone="resnet18", image_size=32, sublabel_ranges=RANGES, dim=32, depth=1, heads=2)
STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
# The CLI runs only check wiring, so they use timm's small resnet10t backbone.
FAST = ["--epochs", "1", "--image-size", "64", "--batch-size", "16", "--device", "cpu", "--progress", "json",
        "--arch", "resnet10t"]


def images(size: int = 32, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def subs(batch: int = 2, high: bool = True) -> torch.Tensor:
    return torch.tensor([[hi if high else lo for lo, hi in RANGES]] * batch)


def coattn(layout: str = "grid", **extra) -> CoAttentionTeacher:
    torch.manual_seed(0)
    return create_model("teacher_coattn", **TINY, token_layout=layout, **extra)


def batch_for(n: int = 2) -> dict:
    return {"grade": torch.arange(n) % NUM_GRADES, "sublabels": subs(n), "sub_mask": torch.ones(n, 6, dtype=torch.bool)}


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


# ---- one training step per new model and loss -----------------------------------
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


# ---- end to end through the CLI -------------------------------------------------
def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def teachers(tiny_dataset, tmp_path_factory):
    """(co-attention teacher run, image-only teacher run), one epoch each at 64 px."""
    root = tmp_path_factory.mktemp("teachers")
    assert main(["train", "teacher", str(tiny_dataset), "--out", str(root / "co"), "--fusion", "coattn",
                 "--token-layout", "zones", *FAST]) == 0
    assert main(["train", "teacher", str(tiny_dataset), "--out", str(root / "img"), "--fusion", "none", *FAST]) == 0
    return root / "co", root / "img"


def test_cli_trains_coattn_and_image_only_teachers(teachers):
    co, img = (read_card(t / "bundle") for t in teachers)
    assert (co.arch, co.fusion, co.arch_config["token_layout"]) == ("teacher_coattn", "coattn", "zones")
    assert (img.arch, img.fusion, img.role) == ("teacher_image", "none", "teacher")
    assert 0.0 <= co.metrics["val"]["acc"] <= 1.0 and "qwk" in img.metrics["val"]


def test_cli_kd_with_two_teachers_token_and_attention_terms(tiny_dataset, teachers, tmp_path, capsys):
    bundles = [str(t / "bundle") for t in teachers]
    capsys.readouterr()
    assert main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"), "--teacher", bundles[0],
                 "--teacher", bundles[1], "--token-kd", "1", "--attn-kd", "1", *FAST]) == 0
    events = _events(capsys.readouterr().out)
    assert events[-1]["event"] == "done" and math.isfinite(next(e for e in events if e["event"] == "epoch")["train_loss"])
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
    assert code == 2 and "only used by a kd job" in _events(capsys.readouterr().out)[-1]["message"]
    code = main(["train", "kd", str(tiny_dataset), "--out", str(tmp_path / "k"), "--teacher", bundle,
                 "--token-kd", "-1", *FAST])
    assert code == 2 and "must be >= 0" in _events(capsys.readouterr().out)[-1]["message"]
