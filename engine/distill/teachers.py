"""Teachers during distillation: frozen, attention-reading and several at once, and loading them from bundles.

- `FrozenTeacher`: eval mode, no gradients, the student's batch re-normalised to its mean/std.
- `AttentionTeacher`: a FrozenTeacher whose output also carries "cls_attention".
- `MultiTeacher`: several frozen teachers whose softened predictions are averaged with
  weights from their validation QWK (`soft_targets` for LogitKD); the features that
  token, feature and attention terms read come from the first (primary) teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.distill.losses import DistillError, teacher_kind
from engine.models.teacher import FusionTeacher


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


class FrozenTeacher:
    """A teacher that never trains: eval mode, no gradients, the student's batch re-normalised to its mean/std.

    The teacher sees the same augmented image as the student; only the normalisation
    differs: x_teacher = (x * student_std + student_mean - teacher_mean) / teacher_std.
    `train()` and `eval()` are accepted and ignored so a training loop cannot unfreeze it.
    """

    def __init__(self, model: nn.Module, teacher_mean: Sequence[float], teacher_std: Sequence[float],
                 student_mean: Sequence[float], student_std: Sequence[float]) -> None:
        stats = [[float(v) for v in s] for s in (teacher_mean, teacher_std, student_mean, student_std)]
        if len({len(s) for s in stats}) != 1:
            raise DistillError("teacher and student mean/std must have one value per image channel each")
        if any(v <= 0 for v in stats[1] + stats[3]):
            raise DistillError("normalisation std values must be positive")
        t_mean, t_std, s_mean, s_std = (torch.tensor(s, dtype=torch.float64) for s in stats)
        self._scale = s_std / t_std
        self._shift = (s_mean - t_mean) / t_std
        self.renormalises = not (torch.allclose(self._scale, torch.ones_like(self._scale))
                                 and torch.allclose(self._shift, torch.zeros_like(self._shift)))
        self.model = model.eval()
        for param in model.parameters():
            param.requires_grad_(False)

    def normalise(self, images: Tensor) -> Tensor:
        """Map images normalised with the student's mean/std to the teacher's normalisation."""
        if not self.renormalises:
            return images
        if images.shape[1] != len(self._scale):
            raise DistillError(f"images have {images.shape[1]} channels but the normalisation has {len(self._scale)}")
        view = (1, -1) + (1,) * (images.dim() - 2)
        scale = self._scale.to(images.device, images.dtype).view(view)
        shift = self._shift.to(images.device, images.dtype).view(view)
        return images * scale + shift

    def __call__(self, images: Tensor, sublabels: Tensor, mask: Tensor) -> dict:
        with torch.no_grad():
            self.model.eval()
            return self.model(self.normalise(images), sublabels, mask)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return self

    def eval(self) -> FrozenTeacher:
        return self

    def to(self, *args, **kwargs) -> FrozenTeacher:
        self.model.to(*args, **kwargs)
        return self


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


def multi_teacher_targets(teacher_logits: Sequence[Tensor], weights: Sequence[float], temperature: float) -> Tensor:
    """Weighted average of softmax(t / T) over teachers (weights normalised to sum 1), for LogitKD soft_targets."""
    if not teacher_logits or len(teacher_logits) != len(weights):
        raise DistillError(
            f"got {len(teacher_logits)} teachers and {len(weights)} weights; need one weight per teacher"
        )
    if temperature <= 0:
        raise DistillError(f"temperature must be positive, got {temperature}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise DistillError("teacher weights must be non-negative with a positive sum")
    total = float(sum(weights))
    probs = [w / total * F.softmax(t.detach() / temperature, dim=1)
             for t, w in zip(teacher_logits, weights, strict=True)]
    return torch.stack(probs).sum(dim=0)


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
