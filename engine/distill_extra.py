"""Token and attention-map distillation, attention-reading and multi-teacher wrappers.

- `TokenKD` (TKD-Net): the student's final feature map, pooled to the teacher's
  image-token layout and linearly projected, is matched to the teacher's final
  image-token states (or, for an image-only teacher, its own pooled feature map).
- `AttentionKD` (attention transfer, TeachFormer's attention term): the student's
  spatial attention, the channel mean of its squared activations, is matched to the
  teacher's CLS -> image-token attention of its last block (an image-only teacher
  gives its own activation-based map instead). Both are L2-normalised per sample.
- `AttentionTeacher`: a FrozenTeacher whose output also carries "cls_attention".
- `MultiTeacher`: several frozen teachers whose softened predictions are averaged with
  weights from their validation QWK (`soft_targets` for LogitKD); the features that
  token, feature and attention terms read come from the first (primary) teacher.

Both new terms follow DistillLoss's extra-term protocol: term(student_out, teacher_out)
returns a dict of already weighted scalars ("token_loss", "attn_loss").
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.distill import DistillError, FrozenTeacher, multi_teacher_targets
from engine.models.teacher import _CENTRE_CELLS, _PERIPHERY_CELLS, TOKEN_LAYOUTS, FusionTeacher

DISTANCES = ("smooth_l1", "cosine")


def layout_cells(fmap: Tensor, layout: str = "grid", grid: int = 3) -> Tensor:
    """(B, C, h, w) -> (B, N, C) cells laid out as a teacher's image tokens (grid x grid, or 4 + 4 zones)."""
    if layout == "grid":
        return F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)
    if layout != "zones":
        raise DistillError(f"token layout {layout!r} is not one of {', '.join(TOKEN_LAYOUTS)}")
    cells = F.adaptive_avg_pool2d(fmap, 4).flatten(2).transpose(1, 2)
    centre = cells[:, list(_CENTRE_CELLS)]
    periphery = torch.stack([cells[:, list(group)].mean(dim=1) for group in _PERIPHERY_CELLS], dim=1)
    return torch.cat([centre, periphery], dim=1)


def spatial_attention(fmap: Tensor) -> Tensor:
    """Attention transfer's map: the channel mean of squared activations, (B, C, h, w) -> (B, 1, h, w)."""
    return fmap.float().pow(2).mean(dim=1, keepdim=True)


def _feature_map(out: dict, who: str) -> Tensor:
    fmap = out.get("feature_map")
    if fmap is None:
        raise DistillError(f"the {who} output has no 'feature_map'; token and attention distillation need one")
    return fmap


class TokenKD(nn.Module):
    """Student feature map -> layout cells -> linear map -> matched to the teacher's image tokens, weighted."""

    def __init__(self, student_dim: int, teacher_dim: int, weight: float = 1.0, kind: str = "smooth_l1",
                 layout: str = "grid", grid: int = 3) -> None:
        super().__init__()
        if kind not in DISTANCES:
            raise DistillError(f"token distillation kind {kind!r} is not one of {DISTANCES}")
        if layout not in TOKEN_LAYOUTS:
            raise DistillError(f"token layout {layout!r} is not one of {', '.join(TOKEN_LAYOUTS)}")
        self.proj = nn.Linear(student_dim, teacher_dim)
        self.weight, self.kind, self.layout, self.grid = float(weight), kind, layout, int(grid)

    def teacher_tokens(self, teacher_out: dict) -> Tensor:
        """The teacher's final image-token states, or its feature map in the same layout (image-only teacher)."""
        tokens = teacher_out.get("image_tokens")
        if tokens is None:
            tokens = layout_cells(_feature_map(teacher_out, "teacher"), self.layout, self.grid)
        return tokens.detach()

    def forward(self, student_out: dict, teacher_out: dict) -> dict[str, Tensor]:
        cells = layout_cells(_feature_map(student_out, "student"), self.layout, self.grid)
        teacher = self.teacher_tokens(teacher_out)
        if cells.shape[-1] != self.proj.in_features or teacher.shape[-1] != self.proj.out_features:
            raise DistillError(
                f"token distillation expects {self.proj.in_features}-d student and {self.proj.out_features}-d "
                f"teacher tokens, got {cells.shape[-1]} and {teacher.shape[-1]}"
            )
        if cells.shape[1] != teacher.shape[1]:
            raise DistillError(f"the student gives {cells.shape[1]} cells but the teacher has {teacher.shape[1]} "
                               f"image tokens; the token layout does not match the teacher's")
        mapped = self.proj(cells.to(self.proj.weight.dtype))
        if self.kind == "cosine":
            distance = (1.0 - F.cosine_similarity(mapped, teacher, dim=-1)).mean()
        else:
            distance = F.smooth_l1_loss(mapped, teacher)
        return {"token_loss": self.weight * distance}


class AttentionKD(nn.Module):
    """weight * mean_b || a_s/|a_s| - a_t/|a_t| ||^2 over the teacher's image-token cells (attention transfer)."""

    def __init__(self, weight: float = 1.0, layout: str = "grid", grid: int = 3) -> None:
        super().__init__()
        if layout not in TOKEN_LAYOUTS:
            raise DistillError(f"token layout {layout!r} is not one of {', '.join(TOKEN_LAYOUTS)}")
        self.weight, self.layout, self.grid = float(weight), layout, int(grid)

    def cells(self, fmap: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, N) spatial attention over the layout's cells."""
        return layout_cells(spatial_attention(fmap), self.layout, self.grid).squeeze(-1)

    def forward(self, student_out: dict, teacher_out: dict) -> dict[str, Tensor]:
        student = self.cells(_feature_map(student_out, "student"))
        teacher = teacher_out.get("cls_attention")
        teacher = self.cells(_feature_map(teacher_out, "teacher")) if teacher is None else teacher
        teacher = teacher.detach().float()
        if student.shape != teacher.shape:
            raise DistillError(f"student attention over {tuple(student.shape)} cells cannot match the teacher's "
                               f"{tuple(teacher.shape)}")
        diff = F.normalize(student, dim=1) - F.normalize(teacher, dim=1)
        return {"attn_loss": self.weight * diff.pow(2).sum(dim=1).mean()}


def forward_with_map(model: nn.Module, images: Tensor) -> dict:
    """The student's usual output plus 'feature_map' (its CAM map), from one pass without hooks."""
    feats = model.forward_features(images)
    out = dict(model.forward_head(feats))
    out.setdefault("feature_map", model.cam_activations(feats))
    return out


def teacher_kind(model: nn.Module) -> str | None:
    """'tokens' (a transformer-fusion teacher), 'map' (an image-only teacher) or None (no image input)."""
    if isinstance(getattr(model, "image_tokens", None), nn.Module):
        return "tokens"
    if getattr(model, "arch", "") == "teacher_image":
        return "map"
    return None


@contextmanager
def _capture_input(module: nn.Module):
    """Record the first positional input of `module` during the block; the hook is always removed."""
    seen: dict[str, Tensor] = {}
    handle = module.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0]))
    try:
        yield seen
    finally:
        handle.remove()


def _concat_teacher_attention(model: FusionTeacher, images: Tensor, sublabels: Tensor | None,
                              mask: Tensor | None) -> dict:
    """The concat teacher's output plus its last layer's CLS -> image-token attention (head-averaged)."""
    layer = model.encoder.layers[-1]
    with _capture_input(layer) as seen:
        out = model(images, sublabels, mask)
    x = seen["x"]
    h = layer.norm1(x) if layer.norm_first else x
    _, weights = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=True)
    n_image = out["image_tokens"].shape[1]
    return {**out, "cls_attention": weights[:, 0, 1 : 1 + n_image]}


def teacher_forward(model: nn.Module, images: Tensor, sublabels: Tensor | None, mask: Tensor | None,
                    attention: bool = False) -> dict:
    """model(images, sublabels, mask), with 'cls_attention' added for transformer teachers when asked."""
    if not attention or teacher_kind(model) != "tokens":
        return model(images, sublabels, mask)
    if isinstance(model, FusionTeacher):
        return _concat_teacher_attention(model, images, sublabels, mask)
    return model(images, sublabels, mask, return_attention=True)


class AttentionTeacher(FrozenTeacher):
    """A FrozenTeacher whose output also carries the last block's CLS -> image-token attention."""

    def __call__(self, images: Tensor, sublabels: Tensor, mask: Tensor) -> dict:
        with torch.no_grad():
            self.model.eval()
            return teacher_forward(self.model, self.normalise(images), sublabels, mask, attention=True)


def qwk_weights(metrics: Sequence[dict], names: Sequence[str]) -> list[float]:
    """Teacher weights from each card's metrics['val']['qwk'], clipped at 0; all equal when none is positive."""
    values = []
    for m, name in zip(metrics, names, strict=True):
        qwk = (m.get("val") or {}).get("qwk") if isinstance(m, dict) else None
        if not isinstance(qwk, (int, float)) or isinstance(qwk, bool) or qwk != qwk:
            raise DistillError(f"teacher {name!r} has no validation QWK in its card, so it cannot be weighted")
        values.append(max(float(qwk), 0.0))
    total = sum(values)
    if total <= 0:
        return [1.0 / len(values)] * len(values)
    return [v / total for v in values]


class MultiTeacher:
    """Frozen teachers -> QWK-weighted average of softmax(logits / T) as 'soft_targets'; features of the first."""

    def __init__(self, teachers: Sequence[FrozenTeacher], image_sizes: Sequence[int], weights: Sequence[float],
                 temperature: float) -> None:
        if not teachers or not len(teachers) == len(image_sizes) == len(weights):
            raise DistillError("a multi-teacher needs one image size and one weight per teacher")
        self.teachers, self.image_sizes = list(teachers), [int(s) for s in image_sizes]
        self.weights, self.temperature = [float(w) for w in weights], float(temperature)

    def __call__(self, images: Tensor, sublabels: Tensor, mask: Tensor) -> dict:
        outs = []
        for teacher, size in zip(self.teachers, self.image_sizes, strict=True):
            x = images if images.shape[-1] == size else F.interpolate(images, size=size, mode="bilinear",
                                                                       align_corners=False)
            outs.append(teacher(x, sublabels, mask))
        targets = multi_teacher_targets([o["logits"] for o in outs], self.weights, self.temperature)
        return {**outs[0], "soft_targets": targets, "teacher_outputs": outs}

    def train(self, mode: bool = True) -> MultiTeacher:
        return self

    def eval(self) -> MultiTeacher:
        return self

    def to(self, *args, **kwargs) -> MultiTeacher:
        for teacher in self.teachers:
            teacher.to(*args, **kwargs)
        return self

    @property
    def model(self) -> nn.Module:
        """The primary teacher's model (its width and layout set up the feature terms)."""
        return self.teachers[0].model


def map_terms(student_dim: int, teacher_model: nn.Module | None, token_weight: float = 0.0,
              attn_weight: float = 0.0, token_kind: str = "smooth_l1") -> list[nn.Module]:
    """The TokenKD / AttentionKD terms that are switched on, laid out like the teacher's image tokens."""
    if token_weight <= 0 and attn_weight <= 0:
        return []
    if teacher_model is None or teacher_kind(teacher_model) is None:
        arch = getattr(teacher_model, "arch", "none")
        raise DistillError(f"token and attention distillation need a teacher that sees the image "
                           f"(concat, coattn or image-only), not {arch}")
    tcfg = getattr(teacher_model, "config", {})
    layout, grid = tcfg.get("token_layout", "grid"), tcfg.get("grid", 3)
    terms: list[nn.Module] = []
    if token_weight > 0:
        terms.append(TokenKD(student_dim, teacher_model.dim, token_weight, token_kind, layout, grid))
    if attn_weight > 0:
        terms.append(AttentionKD(attn_weight, layout, grid))
    return terms


def load_teachers(paths: Sequence[str], schema, device: torch.device, student_mean: Sequence[float],
                  student_std: Sequence[float], attention: bool = False, temperature: float = 4.0):
    """(teacher, primary card, card notes): one FrozenTeacher, or a QWK-weighted MultiTeacher for several bundles."""
    from engine.bundle import load_bundle

    frozen, cards = [], []
    for i, path in enumerate(paths):
        model, card = load_bundle(path, expect_role="teacher", schema=schema, device=str(device))
        model.to(device, memory_format=torch.channels_last)
        wrapper = AttentionTeacher if attention and i == 0 else FrozenTeacher
        frozen.append(wrapper(model, card.mean, card.std, student_mean, student_std))
        cards.append(card)
    if len(frozen) == 1:
        return frozen[0], cards[0], {}
    weights = qwk_weights([c.metrics for c in cards], [c.name for c in cards])
    teacher = MultiTeacher(frozen, [c.image_size for c in cards], weights, temperature)
    notes = {"teachers": [{"name": c.name, "model_id": c.model_id, "weight": w}
                          for c, w in zip(cards, weights, strict=True)]}
    return teacher, cards[0], notes
