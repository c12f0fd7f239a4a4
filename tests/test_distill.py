"""Distillation losses and the frozen teacher: every loss against a hand-computed value."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.distill import (
    DistillError,
    DistillLoss,
    FeatureKD,
    FrozenTeacher,
    LogitKD,
    TaskLoss,
    multi_teacher_targets,
    soft_ordinal_targets,
)


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def make_batch(grade, **extra) -> dict:
    return {"grade": torch.tensor(grade), **extra}


def test_soft_ordinal_targets_point_label():
    weights = [math.exp(-((k - 2) ** 2)) for k in range(8)]
    expected = [w / sum(weights) for w in weights]
    got = soft_ordinal_targets(torch.tensor([2]))
    assert got.shape == (1, 8)
    assert got[0].tolist() == pytest.approx(expected, abs=1e-7)
    assert got[0, 2].item() == pytest.approx(1 / (1 + 2 * math.exp(-1) + 2 * math.exp(-4) + math.exp(-9)
                                                  + math.exp(-16) + math.exp(-25)), abs=1e-7)


def test_soft_ordinal_targets_grader_range():
    distances = [2, 1, 0, 0, 0, 1, 2, 3]  # range [2, 4]
    weights = [math.exp(-d * d) for d in distances]
    got = soft_ordinal_targets(torch.tensor([3]), grade_min=torch.tensor([2]), grade_max=torch.tensor([4]))
    assert got[0].tolist() == pytest.approx([w / sum(weights) for w in weights], abs=1e-7)
    with pytest.raises(DistillError, match="grade_min"):
        soft_ordinal_targets(torch.tensor([3]), grade_min=torch.tensor([5]), grade_max=torch.tensor([4]))


def test_task_loss_hard_cross_entropy():
    out = {"logits": torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])}
    parts = TaskLoss()(out, make_batch([0, 2]))
    expected = ((math.log(math.e**2 + math.e + 1) - 2) + math.log(3)) / 2
    assert parts["task_loss"].item() == pytest.approx(expected, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert parts["sub_loss"].item() == 0.0


def test_task_loss_label_smoothing():
    out = {"logits": torch.tensor([[2.0, 1.0, 0.0]])}
    logp = [math.log(p) for p in softmax([2.0, 1.0, 0.0])]
    expected = 0.9 * -logp[0] + 0.1 * -sum(logp) / 3
    assert TaskLoss(label_smoothing=0.1)(out, make_batch([0]))["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_task_loss_ordinal_soft_targets():
    out = {"logits": torch.tensor([[1.0, 0.0, -1.0]])}
    weights = [math.exp(-1), 1.0, math.exp(-1)]
    targets = [w / sum(weights) for w in weights]
    logp = [math.log(p) for p in softmax([1.0, 0.0, -1.0])]
    expected = -sum(t * lp for t, lp in zip(targets, logp, strict=True))
    parts = TaskLoss(ordinal=True)(out, make_batch([1], grade_min=torch.tensor([1]), grade_max=torch.tensor([1])))
    assert parts["task_loss"].item() == pytest.approx(expected, rel=1e-6)


def sub_example(sub_logits):
    out = {"logits": torch.zeros(2, 8), "sub_logits": sub_logits}
    batch = make_batch([0, 0], sublabels=torch.tensor([[2, 1], [0, 0]]),
                       sub_mask=torch.tensor([[True, True], [False, False]]))
    return out, batch


def test_sub_loss_ignores_unknown_cells():
    loss = TaskLoss(sub_weight=0.5, sublabel_mins=[0, 1])
    heads = [torch.tensor([[0.0, 0.0, 0.0], [5.0, -5.0, 9.0]]), torch.tensor([[1.0, 0.0], [3.0, 3.0]])]
    parts = loss(*sub_example(heads))
    # known cells: sample 0 head 0 (class 2), sample 0 head 1 (value 1 - min 1 = class 0)
    expected_sub = (math.log(3) + (math.log(math.e + 1) - 1)) / 2
    assert parts["sub_loss"].item() == pytest.approx(expected_sub, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(math.log(8) + 0.5 * expected_sub, rel=1e-6)
    changed = [heads[0].clone(), heads[1].clone()]
    changed[0][1] = torch.tensor([-30.0, 40.0, 0.0])
    changed[1][1] = torch.tensor([9.0, -9.0])
    assert loss(*sub_example(changed))["sub_loss"].item() == pytest.approx(expected_sub, rel=1e-6)


def test_sub_loss_is_zero_when_nothing_known_and_rejects_out_of_range_values():
    loss = TaskLoss(sub_weight=1.0, sublabel_mins=[0, 1])
    out, batch = sub_example([torch.randn(2, 3), torch.randn(2, 2)])
    batch["sub_mask"] = torch.zeros(2, 2, dtype=torch.bool)
    assert loss(out, batch)["sub_loss"].item() == 0.0
    batch["sub_mask"] = torch.tensor([[False, False], [False, True]])  # sample 1 head 1: value 0 < min 1
    with pytest.raises(DistillError, match="sub-label 1"):
        loss(out, batch)
    with pytest.raises(DistillError, match="sublabel_mins"):
        TaskLoss(sub_weight=1.0)


def test_logit_kd_hand_value_and_t_squared():
    student = {"logits": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])}
    teacher = {"logits": torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])}
    batch = make_batch([0, 1])
    kl_row0 = kl(softmax([1.0, 0.0, 0.0]), softmax([0.5, 0.0, 0.0]))  # T = 2; row 1 is uniform for both
    plain = LogitKD(temperature=2.0, alpha=1.0, t_squared=False)(student, teacher, batch)
    assert plain["kd_loss"].item() == pytest.approx(kl_row0 / 2, rel=1e-5)
    scaled = LogitKD(temperature=2.0, alpha=1.0, t_squared=True)(student, teacher, batch)
    assert scaled["kd_loss"].item() == pytest.approx(4 * kl_row0 / 2, rel=1e-5)
    assert scaled["loss"].item() == pytest.approx(scaled["kd_loss"].item(), rel=1e-6)


def test_seed_configuration_is_point_one_ce_plus_point_nine_kl_at_t6():
    s_row, t_row = [1.0, -1.0, 0.5], [3.0, 0.0, -2.0]
    student = {"logits": torch.tensor([s_row])}
    teacher = {"logits": torch.tensor([t_row])}
    ce = -math.log(softmax(s_row)[2])
    kd = kl(softmax([v / 6 for v in t_row]), softmax([v / 6 for v in s_row]))
    parts = LogitKD(temperature=6, alpha=0.9, t_squared=False)(student, teacher, make_batch([2]))
    assert parts["task_loss"].item() == pytest.approx(ce, rel=1e-6)
    assert parts["kd_loss"].item() == pytest.approx(kd, rel=1e-5)
    assert parts["loss"].item() == pytest.approx(0.1 * ce + 0.9 * kd, rel=1e-5)


def test_logit_kd_adds_the_task_sub_term_and_never_backpropagates_into_the_teacher():
    heads = [torch.tensor([[0.0, 0.0, 0.0], [5.0, -5.0, 9.0]]), torch.tensor([[1.0, 0.0], [3.0, 3.0]])]
    out, batch = sub_example(heads)
    out["logits"] = torch.randn(2, 8, requires_grad=True)
    teacher = {"logits": torch.randn(2, 8, requires_grad=True)}
    kd = LogitKD(temperature=3.0, alpha=0.7, task=TaskLoss(sub_weight=0.5, sublabel_mins=[0, 1]))
    parts = kd(out, teacher, batch)
    expected = 0.3 * parts["task_loss"] + 0.7 * parts["kd_loss"] + 0.5 * parts["sub_loss"]
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    parts["loss"].backward()
    assert out["logits"].grad is not None and teacher["logits"].grad is None


def test_multi_teacher_targets_weighted_average():
    t1, t2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    probs = multi_teacher_targets([t1, t2], [1.0, 3.0], temperature=1.0)
    assert probs[0].tolist() == pytest.approx([0.25 * 0.5 + 0.75 * 0.75, 0.25 * 0.5 + 0.75 * 0.25])
    with pytest.raises(DistillError, match="one weight per teacher"):
        multi_teacher_targets([t1], [1.0, 2.0], 1.0)


def test_single_teacher_soft_targets_equal_the_logit_path():
    student = {"logits": torch.tensor([[0.3, -0.2, 1.0]])}
    t = torch.tensor([[1.0, 2.0, -1.0]])
    kd = LogitKD(temperature=4.0)
    via_logits = kd(student, {"logits": t}, make_batch([0]))["loss"]
    via_probs = kd(student, {"soft_targets": multi_teacher_targets([t], [2.0], 4.0)}, make_batch([0]))["loss"]
    assert via_probs.item() == pytest.approx(via_logits.item(), rel=1e-6)


def identity_feature_kd(kind: str, weight: float) -> FeatureKD:
    term = FeatureKD(2, 2, weight=weight, kind=kind)
    with torch.no_grad():
        term.proj.weight.copy_(torch.eye(2))
        term.proj.bias.zero_()
    return term


def test_feature_kd_hand_values():
    smooth = identity_feature_kd("smooth_l1", 2.0)
    got = smooth({"pre_logits": torch.zeros(1, 2)}, {"pre_logits": torch.tensor([[0.5, 2.0]])})
    assert got["feat_loss"].item() == pytest.approx(2.0 * (0.5 * 0.25 + (2.0 - 0.5)) / 2)
    cosine = identity_feature_kd("cosine", 1.0)
    got = cosine({"pre_logits": torch.tensor([[1.0, 0.0]])}, {"pre_logits": torch.tensor([[1.0, 1.0]])})
    assert got["feat_loss"].item() == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)


def test_feature_kd_gradients_reach_projection_and_student_but_not_teacher():
    term = FeatureKD(4, 6)
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 6, requires_grad=True)
    term({"pre_logits": student}, {"pre_logits": teacher})["feat_loss"].backward()
    assert term.proj.weight.grad is not None and term.proj.weight.grad.abs().sum() > 0
    assert student.grad is not None and teacher.grad is None
    with pytest.raises(DistillError, match="4-d student and 6-d"):
        term({"pre_logits": torch.randn(3, 5)}, {"pre_logits": teacher})


def test_distill_loss_sums_terms_and_exposes_the_projection():
    feat = identity_feature_kd("smooth_l1", 2.0)
    loss = DistillLoss(LogitKD(temperature=2.0, alpha=0.5), [feat])
    student = {"logits": torch.tensor([[1.0, 0.0, 0.0]]), "pre_logits": torch.zeros(1, 2)}
    teacher = {"logits": torch.tensor([[2.0, 0.0, 0.0]]), "pre_logits": torch.tensor([[0.5, 2.0]])}
    parts = loss(student, teacher, make_batch([0]))
    assert set(parts) == {"loss", "task_loss", "kd_loss", "sub_loss", "feat_loss"}
    assert parts["feat_loss"].item() == pytest.approx(1.625)
    expected = 0.5 * parts["task_loss"].item() + 0.5 * parts["kd_loss"].item() + 1.625
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert {id(p) for p in loss.parameters()} == {id(feat.proj.weight), id(feat.proj.bias)}


class EchoTeacher(nn.Module):
    """Returns the image it was given; a Dropout shows whether it runs in train mode."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 8)
        self.drop = nn.Dropout(p=0.9)

    def forward(self, images, sublabels, mask):
        pooled = images.mean(dim=(2, 3))
        return {"logits": self.head(self.drop(pooled)), "seen": images}


def test_frozen_teacher_stays_in_eval_and_gives_no_gradients():
    model = EchoTeacher()
    teacher = FrozenTeacher(model, [0.5] * 3, [0.25] * 3, [0.5] * 3, [0.25] * 3)
    assert teacher.train() is teacher and not model.training
    model.train()  # even a direct call on the model is undone before the forward pass
    images = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = teacher(images, torch.zeros(2, 6, dtype=torch.long), torch.zeros(2, 6, dtype=torch.bool))
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert not out["logits"].requires_grad
    assert out["seen"] is images  # same statistics: no re-normalisation
    again = teacher(images, None, None)["logits"]
    assert torch.equal(out["logits"], again)  # dropout is off


def test_frozen_teacher_renormalises_the_student_batch():
    raw = torch.rand(1, 3, 4, 4)
    s_mean, s_std = [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]
    t_mean, t_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    student_view = (raw - torch.tensor(s_mean).view(1, 3, 1, 1)) / torch.tensor(s_std).view(1, 3, 1, 1)
    teacher_view = (raw - torch.tensor(t_mean).view(1, 3, 1, 1)) / torch.tensor(t_std).view(1, 3, 1, 1)
    teacher = FrozenTeacher(EchoTeacher(), t_mean, t_std, s_mean, s_std)
    seen = teacher(student_view, None, None)["seen"]
    assert torch.allclose(seen, teacher_view, atol=1e-5)
