"""Checks that stand between a bundle on disk and a model in memory.

A card is held to types and bounds before anything is built; a weights file's header must
describe exactly the bytes in the file and exactly the tensors of the model the card names
(built on the meta device, so a card naming a huge backbone costs nothing); parameters must
be finite; and a model that will be made active must answer one built-in photograph with
finite outputs.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from torch import nn

from engine.errors import EngineError
from engine.limits import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

CARD_MAX_BYTES = 1 << 20
CARD_MAX_DEPTH = 32
HEADER_MAX_BYTES = 64 << 20  # the JSON header of a safetensors file
TEXT_MAX = 200
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class CheckError(EngineError):
    """One reason a bundle is refused, as a sentence (bundle.py words it as a BundleError)."""


# ---- card.json -------------------------------------------------------------------------------


def load_card_json(path: Path) -> object:
    """Parse card.json after checking its size and nesting, so a hostile file fails with a sentence, not a crash."""
    size = path.stat().st_size
    if size > CARD_MAX_BYTES:
        raise CheckError(f"it is {size:,} bytes; a card is at most {CARD_MAX_BYTES:,}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except RecursionError:
        raise CheckError(f"it is nested more than {CARD_MAX_DEPTH} levels deep") from None
    if json_depth(data) > CARD_MAX_DEPTH:
        raise CheckError(f"it is nested more than {CARD_MAX_DEPTH} levels deep")
    return data


def json_depth(value: object) -> int:
    """How deeply lists and objects nest in parsed JSON (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in children)
    return deepest


def check_text(name: str, value: object, optional: bool = False, limit: int = TEXT_MAX) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        kind = "text or null" if optional else "text"
        raise CheckError(f"card field {name!r} must be {kind} of 1-{limit} printable characters, not {_short(value)}")


def check_int(name: str, value: object, low: int, high: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CheckError(f"card field {name!r} must be an integer within {low}-{high}, not {_short(value)}")


def check_image_size(value: object) -> None:
    """The same bounds training uses: a card cannot ask for a network input larger than any job could train."""
    check_int("image_size", value, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)


def check_card_fields(card: object) -> None:
    """Types and bounds of the fields every reader of a card relies on (listing, loading, grading)."""
    check_text("name", card.name)
    if card.arch != "":
        check_text("arch", card.arch)
    check_image_size(card.image_size)
    backbone = card.arch_config.get("backbone")
    if backbone is not None:
        check_text("arch_config.backbone", backbone)
    if "image_size" in card.arch_config:
        check_image_size(card.arch_config["image_size"])
    if not isinstance(card.grades, list) or not all(isinstance(g, str) and len(g) <= TEXT_MAX for g in card.grades):
        raise CheckError(f"card field 'grades' must be a list of names, not {_short(card.grades)}")
    check_text("created", card.created)
    for field in ("fusion", "data_fingerprint", "notice"):
        check_text(field, getattr(card, field), optional=True, limit=2000 if field == "notice" else TEXT_MAX)
    if not isinstance(card.model_id, str) or len(card.model_id) > 64 or any(c not in "0123456789abcdef" for c in
                                                                             card.model_id):
        raise CheckError(f"card field 'model_id' must be a hex digest, not {_short(card.model_id)}")
    check_int("seed", card.seed, -(2**63), 2**64 - 1, optional=True)
    check_int("epochs", card.epochs, 0, 10**9)
    if card.teacher is not None and not isinstance(card.teacher, dict):
        raise CheckError("card field 'teacher' must be a JSON object or null")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- model.safetensors -----------------------------------------------------------------------


def read_weights_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) from a safetensors header, after checking it accounts for every byte of the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckError("it is too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n < 2 or n > min(size - 8, HEADER_MAX_BYTES):
            raise CheckError("it is not a safetensors file (its header length does not fit the file)")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckError("it is not a safetensors file (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise CheckError("it is not a safetensors file (its header is not a JSON object)")
    tensors, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, offsets = _tensor_entry(name, info)
        tensors[name] = (dtype, shape)
        spans.append(offsets)
    expected = 0
    for start, end in sorted(spans):
        if start != expected:
            raise CheckError("its header describes tensors that overlap or leave gaps")
        expected = end
    if 8 + n + expected != size:
        raise CheckError(f"it is {size:,} bytes but its header describes {8 + n + expected:,} (cut off or padded)")
    return tensors


def _tensor_entry(name: str, info: object) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    bad = CheckError(f"its header entry for {name!r} is damaged")
    if not isinstance(info, dict):
        raise bad
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _DTYPE_BYTES or not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
        raise bad
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise bad
    if not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets):
        raise bad
    if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
        raise bad
    return dtype, tuple(shape), (offsets[0], offsets[1])


def header_problems(model: nn.Module, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> list[str]:
    """Missing, unexpected and wrongly shaped tensors of a weights header against a (meta) model's state."""
    from engine.models.backbone import summarize_keys

    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    shapes = [f"{k} {tensors[k][1]} vs {own[k]}" for k in own if k in tensors and tensors[k][1] != own[k]]
    out = []
    for what, items in (("{} missing tensors", missing), ("{} unexpected tensors", unexpected),
                        ("{} tensors of the wrong shape", shapes)):
        if items:
            out.append(f"{what.format(len(items))} ({summarize_keys(items)})")
    return out


def nonfinite_parameters(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.is_floating_point() and not torch.isfinite(p).all()]


# ---- one forward on a built-in photograph ----------------------------------------------------


def check_forward(model: nn.Module, card: object) -> None:
    """Grade the shipped sample photograph (sub-labels all known, then all unknown); every output must be finite."""
    from engine.data.transforms import preprocess_eval

    x = preprocess_eval(sample_photo(), card.image_size, card.mean, card.std).unsqueeze(0).repeat(2, 1, 1, 1)
    x = x.to(next(model.parameters()).device)
    schema = card.schema_obj()
    values = torch.tensor([[s.minimum for s in schema.sublabels]] * 2, dtype=torch.long, device=x.device)
    known = torch.tensor([[True] * len(schema), [False] * len(schema)], device=x.device)
    try:
        with torch.inference_mode():
            out = model(x) if card.role == "student" else model(x, values, known)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise CheckError(f"it fails on the built-in test photograph ({type(e).__name__}: {e})") from None
    logits = out.get("logits") if isinstance(out, dict) else None
    if not torch.is_tensor(logits) or tuple(logits.shape) != (2, len(card.grades)):
        raise CheckError("it does not give one score per grade for the built-in test photograph")
    heads = [logits, *(out.get("sub_logits") or [])]
    if not all(torch.isfinite(h.float()).all() for h in heads):
        raise CheckError("it gives NaN or infinite scores for the built-in test photograph")


def sample_photo():
    """The shipped sample photograph, or a rendered synthetic one where the sample is not installed."""
    import numpy as np

    from engine.io import ImageReadError, read_image_reduced
    from engine.resources import resources_dir

    try:
        return read_image_reduced(resources_dir() / "samples" / "eye-sample.jpg", 1024).rgb
    except ImageReadError:
        from engine.synth.sample import render_sample

        return render_sample(np.random.default_rng(0), 256, target_grade=3).image
