"""Training losses for teachers and students, and the frozen-teacher wrapper for distillation.

Every loss is a small callable that returns a dict of scalar tensors: "loss" (what the
training loop backpropagates) plus each component, for logging. Batches and model
outputs are the dicts described in engine/data and engine/models:
batch = {image, grade, sublabels, sub_mask, grade_min, grade_max};
out = {logits, sub_logits (students), pre_logits, ...}.

The seed's distillation loss (0.1 * CE + 0.9 * KL at T = 6, no T^2 factor) is exactly
`LogitKD(temperature=6, alpha=0.9, t_squared=False)`. The seed writes the KL term as
KL(student/T || teacher/T) after PyTorch's `KLDivLoss(log_softmax(s/T), softmax(t/T))`,
which computes KL(teacher || student); so does `LogitKD`, averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import EngineError
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

    KINDS = ("smooth_l1", "cosine")

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
