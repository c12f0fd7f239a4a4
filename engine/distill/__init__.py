"""Distillation by concept: the losses (engine.distill.losses) and the teachers (engine.distill.teachers)."""

from engine.distill.losses import (
    AttentionKD,
    DistillError,
    DistillLoss,
    FeatureKD,
    LogitKD,
    TaskLoss,
    TokenKD,
    forward_with_map,
    layout_cells,
    map_terms,
    soft_ordinal_targets,
    spatial_attention,
)
from engine.distill.teachers import (
    AttentionTeacher,
    FrozenTeacher,
    MultiTeacher,
    load_teachers,
    multi_teacher_targets,
    qwk_weights,
    teacher_forward,
)

__all__ = [
    "AttentionKD",
    "AttentionTeacher",
    "DistillError",
    "DistillLoss",
    "FeatureKD",
    "FrozenTeacher",
    "LogitKD",
    "MultiTeacher",
    "TaskLoss",
    "TokenKD",
    "forward_with_map",
    "layout_cells",
    "load_teachers",
    "map_terms",
    "multi_teacher_targets",
    "qwk_weights",
    "soft_ordinal_targets",
    "spatial_attention",
    "teacher_forward",
]
