"""One door for every model: a name -> factory registry in timm's shape.

A model built here carries `arch` (its registered name) and `config` (a JSON-safe
dict), so `create_model(m.arch, **m.config)` rebuilds the same architecture. That is
what lets a bundle's card.json rebuild its own model without guessing.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from engine.errors import EngineError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


class ModelConfigError(EngineError):
    """An unknown model name, a bad model option or unusable backbone weights."""


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a factory under `name`; a second factory with the same name is a bug."""

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def is_model(name: str) -> bool:
    return name in _REGISTRY


def create_model(name: str, **cfg) -> nn.Module:
    """Build the registered model `name` with options `cfg`, or raise ModelConfigError."""
    if not isinstance(name, str) or name not in _REGISTRY:
        known = ", ".join(list_models()) or "none"
        raise ModelConfigError(f"unknown model {name!r}; the known models are {known}")
    try:
        model = _REGISTRY[name](**cfg)
    except TypeError as e:
        if "argument" not in str(e):
            raise
        raise ModelConfigError(f"model {name!r} cannot be built with these options: {e}") from None
    model.arch = name
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
