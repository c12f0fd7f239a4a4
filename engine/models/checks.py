"""The config validators every model shares: each returns the value in JSON-safe form or raises ModelConfigError."""

from __future__ import annotations

from engine.choices import TOKEN_LAYOUTS
from engine.models.registry import ModelConfigError


def check_sublabel_ranges(ranges: object, required: bool = False) -> list[list[int]]:
    """Validate [[min, max], ...] and return it as plain lists of ints (JSON-safe)."""
    if not isinstance(ranges, (list, tuple)):
        raise ModelConfigError(f"sublabel_ranges must be a list of [min, max] pairs, not {ranges!r}")
    if required and not ranges:
        raise ModelConfigError("this model needs at least one sub-label range")
    out = []
    for i, pair in enumerate(ranges):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
        if not ok or pair[1] <= pair[0]:
            raise ModelConfigError(f"sub-label range #{i + 1} must be [min, max] integers with max > min, not {pair!r}")
        out.append([int(pair[0]), int(pair[1])])
    return out


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ModelConfigError(f"{name} must be an integer of at least {minimum}, not {value!r}")
    return value


def check_rate(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ModelConfigError(f"{name} must be a probability in [0, 1], not {value!r}")
    return float(value)


def check_fusion_config(**cfg) -> dict:
    """A fusion teacher's options, checked; the returned dict is its JSON-safe `config`."""
    cfg["sublabel_ranges"] = check_sublabel_ranges(
        [] if cfg["sublabel_ranges"] is None else cfg["sublabel_ranges"], required=True
    )
    if cfg["token_layout"] not in TOKEN_LAYOUTS:
        raise ModelConfigError(f"token_layout must be one of {', '.join(TOKEN_LAYOUTS)}, not {cfg['token_layout']!r}")
    for key, low in (("num_grades", 2), ("grid", 1), ("dim", 1), ("depth", 1), ("heads", 1)):
        check_positive_int(key, cfg[key], low)
    if cfg["dim"] % cfg["heads"]:
        raise ModelConfigError(f"dim {cfg['dim']} must be a multiple of heads {cfg['heads']}")
    mlp = cfg["mlp_ratio"]
    if not isinstance(mlp, (int, float)) or isinstance(mlp, bool) or not mlp > 0:
        raise ModelConfigError(f"mlp_ratio must be a positive number, not {mlp!r}")
    cfg["mlp_ratio"] = float(mlp)
    cfg["dropout"] = check_rate("dropout", cfg["dropout"])
    cfg["sub_dropout"] = check_rate("sub_dropout", cfg["sub_dropout"])
    return cfg
