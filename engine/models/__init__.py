"""Students and fusion teachers behind one `create_model(name, **cfg)` door; `GradingModel` is their contract."""

from engine.models.coattn import CoAttentionTeacher
from engine.models.fusion import FusionBase
from engine.models.image_teacher import ImageTeacher
from engine.models.protocol import GradingModel
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
    "FusionBase",
    "FusionTeacher",
    "GradingModel",
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
