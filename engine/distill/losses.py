"""Every training loss, as a small callable returning a dict of scalar tensors.

"loss" is what the training loop backpropagates; every component is in the dict too,
for logging. Batches and model outputs are the dicts described in engine/data and
engine/models: batch = {image, grade, sublabels, sub_mask, grade_min, grade_max};
out = {logits, sub_logits (students), pre_logits, feature_map (with forward_with_map), ...}.

- `TaskLoss`: the supervised grade loss (hard or soft-ordinal) plus the sub-label heads.
- `LogitKD`: Hinton distillation on the teacher's softened grades.
- `FeatureKD`, `TokenKD`, `AttentionKD`: extra terms on features, image tokens and
  attention maps, combined with the logit loss by `DistillLoss`.

The seed's distillation loss (0.1 * CE + 0.9 * KL at T = 6, no T^2 factor) is exactly
`LogitKD(temperature=6, alpha=0.9, t_squared=False)`. The seed writes the KL term as
KL(student/T || teacher/T) after PyTorch's `KLDivLoss(log_softmax(s/T), softmax(t/T))`,
which computes KL(teacher || student); so does `LogitKD`, averaged over the batch.
`TokenKD` follows TKD-Net (student map pooled to the teacher's token layout, projected,
matched to the teacher's final image tokens); `AttentionKD` is attention transfer
(the channel mean of squared activations against the teacher's CLS -> image attention).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.choices import DISTANCES, TOKEN_LAYOUTS
from engine.errors import EngineError
from engine.models.tokens import CENTRE_CELLS, PERIPHERY_CELLS
from engine.schema import NUM_GRADES


class DistillError(EngineError):
    """A loss or teacher configured or fed in a way that cannot work."""


def soft_ordinal_targets(grade: Tensor, num_classes: int = NUM_GRADES, grade_min: Tensor | None = None,
                         grade_max: Tensor | None = None) -> Tensor:
    """Soft targets exp(-d(k, [min, max])^2), normalised per row (TKD-Net's ordinal label uncertainty).

    d is the distance from class k to the graders' range (0 inside it); without a range
    the range is the grade itself, giving exp(-|k - y|^2).
    """
    low = (grade if grade_min is None else grade_min).to(torch.float32)
    high = (grade if grade_max is None else grade_max).to(torch.float32)
    if bool((low > high).any()):
        raise DistillError("grade_min exceeds grade_max for at least one sample")
    k = torch.arange(num_classes, device=grade.device, dtype=torch.float32)
    distance = torch.clamp(low[:, None] - k, min=0) + torch.clamp(k - high[:, None], min=0)
    weights = torch.exp(-distance**2)
    return weights / weights.sum(dim=1, keepdim=True)


def _soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class TaskLoss:
    """Supervised loss: grade CE (hard or soft-ordinal) plus a masked sub-label CE weighted by sub_weight.

    sub_loss is the mean cross-entropy over all KNOWN (sample, sub-label) cells of the
    student's sub-label heads; unknown cells are ignored and it is 0 when none is known.
    A head's class index is value - sublabel_mins[k].
    """

    def __init__(self, ordinal: bool = False, sub_weight: float = 0.0, sublabel_mins: Sequence[int] | None = None,
                 label_smoothing: float = 0.0) -> None:
        if sub_weight < 0:
            raise DistillError(f"sub_weight must be non-negative, got {sub_weight}")
        if sub_weight > 0 and sublabel_mins is None:
            raise DistillError("sub_weight > 0 needs sublabel_mins to turn sub-label values into class indices")
        if not 0.0 <= label_smoothing < 1.0:
            raise DistillError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.ordinal = ordinal
        self.sub_weight = float(sub_weight)
        self.sublabel_mins = None if sublabel_mins is None else [int(m) for m in sublabel_mins]
        self.label_smoothing = float(label_smoothing)

    def grade_loss(self, logits: Tensor, batch: dict) -> Tensor:
        """CE of the grade logits against hard grades, or against soft ordinal targets."""
        if not self.ordinal:
            return F.cross_entropy(logits, batch["grade"], label_smoothing=self.label_smoothing)
        targets = soft_ordinal_targets(batch["grade"], logits.shape[1], batch.get("grade_min"), batch.get("grade_max"))
        if self.label_smoothing:
            targets = (1.0 - self.label_smoothing) * targets + self.label_smoothing / logits.shape[1]
        return _soft_cross_entropy(logits, targets)

    def sub_loss(self, out: dict, batch: dict) -> Tensor:
        """Mean CE over the known sub-label cells; 0 when there are no sub-label heads or no known cell."""
        heads = out.get("sub_logits")
        zero = out["logits"].new_zeros(())
        if not heads or self.sublabel_mins is None:
            if self.sub_weight > 0:
                raise DistillError("sub_weight > 0 but the model output has no 'sub_logits'")
            return zero
        if len(heads) != len(self.sublabel_mins):
            raise DistillError(
                f"the model has {len(heads)} sub-label heads but {len(self.sublabel_mins)} minima were given"
            )
        mask = batch["sub_mask"].bool()
        total, count = zero, mask.sum()
        for k, (head, minimum) in enumerate(zip(heads, self.sublabel_mins, strict=True)):
            index = batch["sublabels"][:, k] - minimum
            known = mask[:, k]
            bad = known & ((index < 0) | (index >= head.shape[1]))
            if bool(bad.any()):
                raise DistillError(f"sub-label {k} has known values outside {minimum}-{minimum + head.shape[1] - 1}")
            cells = F.cross_entropy(head, index.clamp(0, head.shape[1] - 1), reduction="none")
            total = total + (cells * known).sum()
        return total / count.clamp(min=1)

    def __call__(self, out: dict, batch: dict) -> dict[str, Tensor]:
        task = self.grade_loss(out["logits"], batch)
        sub = self.sub_loss(out, batch)
        loss = task + self.sub_weight * sub if self.sub_weight else task
        return {"loss": loss, "task_loss": task, "sub_loss": sub}


class LogitKD:
    """Hinton KD: (1 - alpha) * task + alpha * KL(softmax(t/T) || softmax(s/T)) [* T^2] + the task's sub term.

    The teacher may give "soft_targets" (probabilities already at temperature T, e.g.
    from `multi_teacher_targets`) instead of "logits". T^2 keeps the soft term's
    gradient scale independent of T (Hinton et al. 2015); the seed left it out.
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9, t_squared: bool = True,
                 task: TaskLoss | None = None) -> None:
        if temperature <= 0:
            raise DistillError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise DistillError(f"alpha must be in [0, 1], got {alpha}")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.t_squared = t_squared
        self.task = task if task is not None else TaskLoss()

    def kd_loss(self, student_logits: Tensor, teacher_out: dict) -> Tensor:
        """Batch-mean KL divergence from the teacher's softened distribution to the student's."""
        if "soft_targets" in teacher_out:
            targets = teacher_out["soft_targets"].detach()
        else:
            targets = F.softmax(teacher_out["logits"].detach() / self.temperature, dim=1)
        if targets.shape != student_logits.shape:
            raise DistillError(
                f"teacher gives {tuple(targets.shape)} targets for student logits {tuple(student_logits.shape)}"
            )
        log_student = F.log_softmax(student_logits / self.temperature, dim=1)
        kd = F.kl_div(log_student, targets, reduction="batchmean")
        return kd * self.temperature**2 if self.t_squared else kd

    def __call__(self, student_out: dict, teacher_out: dict, batch: dict) -> dict[str, Tensor]:
        parts = self.task(student_out, batch)
        kd = self.kd_loss(student_out["logits"], teacher_out)
        loss = (1.0 - self.alpha) * parts["task_loss"] + self.alpha * kd
        if self.task.sub_weight:
            loss = loss + self.task.sub_weight * parts["sub_loss"]
        return {"loss": loss, "task_loss": parts["task_loss"], "kd_loss": kd, "sub_loss": parts["sub_loss"]}


class FeatureKD(nn.Module):
    """FitNets-style term: a learnable linear map of the student's pre_logits onto the teacher's, weighted.

    Returns {"feat_loss": weight * distance}; "smooth_l1" compares values, "cosine"
    uses 1 - cosine similarity (scale-free). The teacher's features are detached.
    """

    KINDS = DISTANCES

    def __init__(self, student_dim: int, teacher_dim: int, weight: float = 1.0, kind: str = "smooth_l1") -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise DistillError(f"feature distillation kind {kind!r} is not one of {self.KINDS}")
        self.proj = nn.Linear(student_dim, teacher_dim)
        self.weight = float(weight)
        self.kind = kind

    def forward(self, student_out: dict, teacher_out: dict) -> dict[str, Tensor]:
        student, teacher = student_out["pre_logits"], teacher_out["pre_logits"].detach()
        if student.shape[-1] != self.proj.in_features or teacher.shape[-1] != self.proj.out_features:
            raise DistillError(
                f"feature distillation expects {self.proj.in_features}-d student and {self.proj.out_features}-d "
                f"teacher features, got {student.shape[-1]} and {teacher.shape[-1]}"
            )
        mapped = self.proj(student)
        if self.kind == "cosine":
            distance = (1.0 - F.cosine_similarity(mapped, teacher, dim=-1)).mean()
        else:
            distance = F.smooth_l1_loss(mapped, teacher)
        return {"feat_loss": self.weight * distance}


class DistillLoss(nn.Module):
    """LogitKD plus extra terms (FeatureKD, later attention/token terms): the hook for feature distillation.

    Each extra term is an nn.Module called as term(student_out, teacher_out) that returns
    a dict of already weighted scalar losses with names of its own; all are added to the
    logit loss. The terms are registered submodules, so `DistillLoss.parameters()` holds
    their learnable parts (e.g. FeatureKD's projection) for the optimizer.
    """

    def __init__(self, logit: LogitKD, extra: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.logit = logit
        self.extra = nn.ModuleList(extra)

    def forward(self, student_out: dict, teacher_out: dict, batch: dict) -> dict[str, Tensor]:
        result = dict(self.logit(student_out, teacher_out, batch))
        loss = result["loss"]
        for term in self.extra:
            for name, value in term(student_out, teacher_out).items():
                if name in result:
                    raise DistillError(f"two distillation terms both report {name!r}")
                result[name] = value
                loss = loss + value
        result["loss"] = loss
        return result


def layout_cells(fmap: Tensor, layout: str = "grid", grid: int = 3) -> Tensor:
    """(B, C, h, w) -> (B, N, C) cells laid out as a teacher's image tokens (grid x grid, or 4 + 4 zones)."""
    if layout == "grid":
        return F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)
    if layout != "zones":
        raise DistillError(f"token layout {layout!r} is not one of {', '.join(TOKEN_LAYOUTS)}")
    cells = F.adaptive_avg_pool2d(fmap, 4).flatten(2).transpose(1, 2)
    centre = cells[:, list(CENTRE_CELLS)]
    periphery = torch.stack([cells[:, list(group)].mean(dim=1) for group in PERIPHERY_CELLS], dim=1)
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
