"""Students and fusion teachers behind one `create_model(name, **cfg)` door."""

from engine.models.coattn import CoAttentionTeacher
from engine.models.image_teacher import ImageTeacher
from engine.models.registry import (
    ModelConfigError,
    count_parameters,
    create_model,
    is_model,
    list_models,
    register_model,
)
from engine.models.student import Student
from engine.models.sublabel_mlp import SubLabelMLP
from engine.models.teacher import FusionTeacher

__all__ = [
    "CoAttentionTeacher",
    "FusionTeacher",
    "ImageTeacher",
    "ModelConfigError",
    "Student",
    "SubLabelMLP",
    "count_parameters",
    "create_model",
    "is_model",
    "list_models",
    "register_model",
]
