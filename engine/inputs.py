"""A photograph's way into a model and back: the input gate, the crop, and the heat map placed inside the lens.

`prepare` runs before the forward pass: the input gate's checks (engine.gate.check_image,
with the clinician's circle when the request has one), the lens circle the crop uses (the
given one, else the found one when the finder is confident, else none: the centred
square), and the model's input. After the forward pass the grader adds the
out-of-distribution check on the pooled features of that same pass (`finish`), and
`place_heat` lays the crop's heat map back onto the photograph, zero outside the lens.
`InputCheck` is what a GradeResult carries: plain data, and `to_dict` is the gate dict
the case log stores and the report reads (its keys are listed in docs/input-gate.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.gate import GateConfig, GateResult, Problem, check_image, with_ood
from engine.roi import Circle, CropBox, find_lens, paste_back

FOUND, GIVEN = "found", "given"  # where the lens circle came from
GATE_DICT_VERSION = 1


def _num(v: float | None, digits: int = 4) -> float | None:
    """A finite float rounded for storage, else None (JSON has no NaN)."""
    return round(float(v), digits) if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class InputCheck:
    """The input gate's answer for one graded photograph, and the lens and crop the model used.

    ok is None when the request skipped the checks (check_input False). circle is in pixels
    of the photograph; source says whether it was found or given (None: no lens, so the
    model saw the centred square). crop_box is (x0, y0, side) of the square the model saw.
    """

    checked: bool
    ok: bool | None
    problems: tuple[Problem, ...] = ()
    circle: Circle | None = None
    source: str | None = None
    confidence: float | None = None  # the finder's (None when the circle was given)
    ood_score: float | None = None
    ood_threshold: float | None = None  # None: the model carries no out-of-distribution statistics
    crop: str = "centre"
    crop_box: tuple[int, int, int] = (0, 0, 0)
    measures: dict[str, float | None] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """The problems as sentences for the user."""
        return [p.reason for p in self.problems]

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def to_dict(self, graded_anyway: bool = False) -> dict[str, Any]:
        """The stable gate dict (version GATE_DICT_VERSION) the case log stores and the report reads.

        graded_anyway: the clinician chose to grade a photograph with problems.
        """
        c = self.circle
        return {
            "version": GATE_DICT_VERSION,
            "checked": self.checked,
            "ok": self.ok,
            "problems": [{"code": p.code, "reason": p.reason, "value": _num(p.value), "limit": _num(p.limit)}
                         for p in self.problems],
            "circle": None if c is None else {"cx": _num(c.cx, 2), "cy": _num(c.cy, 2), "r": _num(c.r, 2)},
            "circle_source": self.source,
            "lens_confidence": _num(self.confidence),
            "ood_score": _num(self.ood_score),
            "ood_threshold": _num(self.ood_threshold),
            "crop": self.crop,
            "crop_box": list(self.crop_box),
            "measures": {k: _num(v) for k, v in self.measures.items()},
            "graded_anyway": bool(graded_anyway),
        }


@dataclass(frozen=True, eq=False)
class Prepared:
    """One photograph ready for the forward pass: the model's input and what the gate and the crop decided."""

    x: Any  # the (3, H, W) input tensor
    shape: tuple[int, int]  # the photograph's (height, width)
    gate: GateResult | None
    circle: Circle | None
    source: str | None
    box: CropBox


def lens_for_crop(gate: GateResult, config: GateConfig) -> tuple[Circle | None, str | None]:
    """(circle, source) the crop uses after the checks: the given circle, or the found one when confident."""
    if gate.lens is None:
        return gate.circle, GIVEN if gate.circle is not None else None
    if gate.circle is not None and gate.lens.confidence >= config.min_confidence:
        return gate.circle, FOUND
    return None, None


def prepare(rgb: np.ndarray, transform, lens: Circle | None, check: bool, config: GateConfig = GateConfig(),
            full_size: tuple[int, int] | None = None) -> Prepared:
    """Check the photograph (unless check is False), choose the lens circle, crop it as the model expects.

    full_size: the photograph's (height, width) when `rgb` was decoded at a reduced scale; the given
    lens is in full-size pixels, and the Prepared's circle, box and shape are too, so the heat map
    and the reported circle refer to the photograph itself.
    """
    pre = transform.cfg
    h, w = rgb.shape[:2]
    scale = 1.0 if full_size is None or full_size[0] == h else full_size[0] / h
    if lens is not None and scale != 1.0:
        lens = Circle(lens.cx / scale, lens.cy / scale, lens.r / scale)
    gate = None
    if check:
        gate = check_image(rgb, circle=lens, config=config)
        circle, source = lens_for_crop(gate, config)
    elif lens is not None:
        circle, source = lens, GIVEN
    elif pre.uses_lens:  # no checks, but the lens crop still needs the lens
        fit = find_lens(rgb)
        ok = fit.circle is not None and fit.confidence >= config.min_confidence
        circle, source = (fit.circle, FOUND) if ok else (None, None)
    else:
        circle, source = None, None
    x0, y0, side = pre.crop_box(h, w, circle)
    x = transform(rgb, circle)
    if scale != 1.0:
        fh, fw = full_size
        box = CropBox(round(x0 * scale), round(y0 * scale), round(side * scale), pre.size)
        if circle is not None:
            circle = Circle(circle.cx * scale, circle.cy * scale, circle.r * scale)
        return Prepared(x, (fh, fw), gate, circle, source, box)
    return Prepared(x, (h, w), gate, circle, source, CropBox(x0, y0, side, pre.size))


def finish(prep: Prepared, crop: str, features: np.ndarray | None, ood) -> InputCheck:
    """The InputCheck of a graded photograph: the checks, with the OOD score of the forward pass's features added."""
    gate = prep.gate
    box = (prep.box.x0, prep.box.y0, prep.box.side)
    if gate is None:
        return InputCheck(False, None, circle=prep.circle, source=prep.source, crop=crop, crop_box=box,
                          ood_threshold=None if ood is None else float(ood.threshold))
    if ood is not None and features is not None:
        gate = with_ood(gate, features, ood)
    m = gate.measures
    return InputCheck(
        True, gate.ok, gate.problems, prep.circle, prep.source,
        confidence=None if gate.lens is None else float(gate.lens.confidence),
        ood_score=float(m.ood) if math.isfinite(m.ood) else None,
        ood_threshold=None if ood is None else float(ood.threshold), crop=crop, crop_box=box,
        measures={"bright": m.bright, "blown": m.blown, "blur": m.blur}, timings_ms=dict(gate.timings_ms),
    )


def place_heat(raw: np.ndarray, box: CropBox, height: int, width: int, circle: Circle | None) -> np.ndarray:
    """ReLU, scale to [0, 1], lay onto the photograph where the model's square was, zero outside the lens disc."""
    raw = np.maximum(raw, 0).astype(np.float32)
    top = float(raw.max())
    raw = raw / top if top > 0 else raw
    heat = paste_back(raw, box, height, width)
    if circle is not None:  # only the model's square can hold heat: mask that part
        ya, yb = max(box.y0, 0), min(box.y0 + box.side, height)
        xa, xb = max(box.x0, 0), min(box.x0 + box.side, width)
        if yb > ya and xb > xa:
            inside = heat[ya:yb, xa:xb]
            inside *= disc_mask(yb - ya, xb - xa, Circle(circle.cx - xa, circle.cy - ya, circle.r))
    return np.clip(heat, 0.0, 1.0)


def disc_mask(height: int, width: int, circle: Circle) -> np.ndarray:
    """float32 (height, width): 1 on the pixels whose centres lie inside the disc, 0 elsewhere."""
    ys = np.arange(height, dtype=np.float32)[:, None] - np.float32(circle.cy)
    xs = np.arange(width, dtype=np.float32)[None, :] - np.float32(circle.cx)
    return (xs * xs + ys * ys <= np.float32(circle.r * circle.r)).astype(np.float32)
