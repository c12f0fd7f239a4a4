"""Model bundles: a folder with `model.safetensors` (weights only) and `card.json`.

The card carries everything needed to rebuild and use the model (arch + config, input
size, normalisation, grades, sub-label schema, provenance), so nothing is guessed at
load time. Weights are read with safetensors only: nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from safetensors.torch import load as load_safetensors_bytes
from torch import nn

from engine.bundle_check import (
    CheckError,
    check_card_fields,
    header_problems,
    load_card_json,
    nonfinite_parameters,
    read_weights_header,
)
from engine.errors import EngineError
from engine.fsutil import InjectedKill, fsync_dir, remove_tree, stale_temps, write_file_synced, write_step
from engine.models import ModelConfigError, create_model, is_model, list_models
from engine.models.backbone import cast_like, state_dict_problems, summarize_keys
from engine.ood import OodError, card_entry, entry_problem, load_for_bundle
from engine.preprocess import CENTRE, CROPS, IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig, PreprocessError
from engine.resources import CARD_FILE, WEIGHTS_FILE
from engine.schema import GRADES, NUM_GRADES, Schema, SchemaError

FORMAT_VERSION = 1
ROLES = ("student", "teacher")
DTYPES = ("float32", "float16")
DEMO_NOTICE = "Demo model trained on synthetic images - not for clinical use."
REQUIRED_FIELDS = ("format_version", "role", "name", "arch", "arch_config", "image_size", "mean", "std", "grades", "schema")


class BundleError(EngineError):
    """A model bundle that cannot be written, read or used, with the reason in one sentence."""


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _floats3(name: str, value: object, positive: bool = False) -> list[float]:
    try:
        out = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        out = []
    if len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        raise BundleError(f"card field {name!r} must be 3 finite{' positive' if positive else ''} numbers, not {value!r}")
    return out


@dataclass(kw_only=True)
class ModelCard:
    """What card.json says about a bundle's model; enough to rebuild and use it."""

    format_version: int = FORMAT_VERSION
    role: str
    name: str
    arch: str = ""
    arch_config: dict = field(default_factory=dict)
    image_size: int
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    grades: list[str] = field(default_factory=list)  # empty: the schema's grade names
    schema: dict
    fusion: str | None = None
    teacher: dict | None = None
    data_fingerprint: str | None = None
    seed: int | None = None
    epochs: int = 0
    created: str = field(default_factory=_utc_now)
    metrics: dict = field(default_factory=dict)
    calibration_temperature: float = 1.0
    notice: str | None = None
    model_id: str = ""
    dtype: str = "float32"
    crop: str = CENTRE  # the part of the photograph the model sees (engine.preprocess)
    crop_margin: float | None = None  # crop "lens": its half side in lens radii (None: engine.roi.LENS_MARGIN)
    ood: dict | None = None  # the out-of-distribution statistics shipped beside the weights (engine.ood), or None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.format_version, int) or isinstance(self.format_version, bool):
            raise BundleError(f"card format_version must be an integer, not {self.format_version!r}")
        if self.role not in ROLES:
            raise BundleError(f"card role must be 'student' or 'teacher', not {self.role!r}")
        if not isinstance(self.arch_config, dict):
            raise BundleError("card arch_config must be a JSON object")
        self.mean = _floats3("mean", self.mean)
        self.std = _floats3("std", self.std, positive=True)
        schema = self.schema_obj()
        self.grades = list(self.grades or schema.grade_names) if isinstance(self.grades, (list, tuple)) else self.grades
        try:
            check_card_fields(self)
        except CheckError as e:
            raise BundleError(str(e)) from None
        if len(self.grades) != NUM_GRADES:
            raise BundleError(f"card lists {len(self.grades)} grades; a model grades {NUM_GRADES} ({GRADES[0]}-{GRADES[-1]})")
        if self.crop not in CROPS:
            raise BundleError(f"card crop must be one of {', '.join(CROPS)}, not {self.crop!r}")
        try:
            PreprocessConfig.from_card(self)
        except (PreprocessError, TypeError, ValueError) as e:
            raise BundleError(f"card crop_margin is not usable ({e})") from None
        problem = entry_problem(self.ood)
        if problem:
            raise BundleError(problem)
        if self.dtype not in DTYPES:
            raise BundleError(f"card dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        t = self.calibration_temperature
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not (math.isfinite(t) and t > 0):
            raise BundleError(f"card calibration_temperature must be a positive number, not {t!r}")
        self.calibration_temperature = float(t)
        for name in ("metrics", "extra"):
            if not isinstance(getattr(self, name), dict):
                raise BundleError(f"card field {name!r} must be a JSON object")

    def schema_obj(self) -> Schema:
        """The sub-label schema this model was trained on."""
        if not isinstance(self.schema, Mapping):
            raise BundleError("card schema must be a JSON object")
        try:
            return Schema.from_dict(self.schema)
        except SchemaError as e:
            raise BundleError(f"card schema is not valid: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ModelCard:
        """Card from parsed JSON; unknown keys of this format are ignored, missing required ones refused."""
        if not isinstance(data, Mapping):
            raise BundleError("card.json must hold a JSON object")
        version = data.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise BundleError(
                f"the card has format version {version}, newer than this app reads ({FORMAT_VERSION}); update the app"
            )
        missing = [k for k in REQUIRED_FIELDS if k not in data]
        if missing:
            raise BundleError(f"card.json lacks the required field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in known})


def _json_default(obj: object) -> object:
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def check_card_fits(card: ModelCard) -> None:
    """Refuse a card whose arch_config contradicts its own image size, grades or schema."""
    cfg = card.arch_config
    if "image_size" in cfg and cfg["image_size"] != card.image_size:
        raise BundleError(f"card image_size {card.image_size} differs from the model's image_size {cfg['image_size']}")
    if "num_grades" in cfg and cfg["num_grades"] != len(card.grades):
        raise BundleError(f"the model predicts {cfg['num_grades']} grades but the card lists {len(card.grades)}")
    ranges = cfg.get("sublabel_ranges") or []
    expected = [[s.minimum, s.maximum] for s in card.schema_obj().sublabels]
    if ranges and [list(r) for r in ranges] != expected:
        raise BundleError(f"the model's sub-label ranges {ranges} do not match the card's schema {expected}")


def schema_differences(trained: Schema, active: Schema) -> list[str]:
    """Human-readable differences between the schema a model was trained on and the active one."""
    ours = {s.name: s for s in trained.sublabels}
    theirs = {s.name: s for s in active.sublabels}
    diffs = [f"{n} (only in the model's schema)" for n in ours if n not in theirs]
    diffs += [f"{n} (only in the active schema)" for n in theirs if n not in ours]
    for n, s in ours.items():
        o = theirs.get(n)
        if o is not None and (s.kind, s.minimum, s.maximum) != (o.kind, o.minimum, o.maximum):
            diffs.append(f"{n} ({s.kind} {s.minimum}-{s.maximum} in the model, {o.kind} {o.minimum}-{o.maximum} active)")
    if not diffs and trained.names != active.names:
        diffs.append(f"the same sub-labels in another order ({', '.join(trained.names)})")
    return diffs


def _state_for_saving(model: nn.Module, half: bool) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if half and v.dtype == torch.float32:
            v = v.half()
        out[k] = v.contiguous().clone()  # clone: safetensors refuses tensors that share memory
    return out


def _replaceable(path: Path) -> bool:
    return path.is_dir() and ((path / CARD_FILE).is_file() or not any(path.iterdir()))


def _publish(path: Path, files: dict[str, bytes]) -> None:
    """Write `files` into a temp folder beside `path`, then swap it in; an old bundle goes last.

    A kill at any step leaves the old bundle or the new one in place, or the old one moved aside
    as .NAME.*.old (a run folder puts it back when the job resumes); temp folders of writes
    killed over an hour ago are removed here.
    """
    if path.exists() and not _replaceable(path):
        raise BundleError(f"{path} exists and is not a model bundle, so it will not be replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in stale_temps(path.parent, path.name, older_than=3600):
        remove_tree(leftover)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        for name, data in files.items():
            write_file_synced(tmp / name, data)
        write_step("bundle.files-written")
        if path.exists():
            old = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.old"
            os.replace(path, old)
            write_step("bundle.old-moved")
            try:
                os.replace(tmp, path)
            except Exception:
                os.replace(old, path)
                raise
            write_step("bundle.new-moved")
            remove_tree(old)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        if not isinstance(e, InjectedKill):
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_bundle(path: str | Path, model: nn.Module, card: ModelCard, half: bool = False, ood=None) -> ModelCard:
    """Write model weights + card atomically; returns the card with arch, config, dtype and model_id filled in.

    ood: the model's engine.ood.OodScorer, saved beside the weights (ood.safetensors + ood.json) and
    described in the card, so grading with this bundle checks for out-of-distribution photographs.
    """
    path = Path(path)
    arch, config = getattr(model, "arch", ""), getattr(model, "config", None)
    if not is_model(arch) or not isinstance(config, dict):
        raise BundleError("only models built by engine.models.create_model can be saved, as the card must rebuild them")
    if card.arch and card.arch != arch:
        raise BundleError(f"the card names arch {card.arch!r} but the model is a {arch!r}")
    data = safetensors.torch.save(_state_for_saving(model, half), metadata={"format": "pt", "arch": arch})
    ood_files = ood.to_files() if ood is not None else {}
    card = replace(
        card,
        arch=arch,
        arch_config=copy.deepcopy(config),
        model_id=hashlib.sha256(data).hexdigest()[:16],
        dtype="float16" if half else "float32",
        ood=card_entry(ood, ood_files) if ood is not None else None,
    )
    check_card_fits(card)
    try:
        text = json.dumps(card.to_dict(), indent=2, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BundleError(f"the card cannot be written as JSON ({e})") from None
    _publish(path, {WEIGHTS_FILE: data, CARD_FILE: (text + "\n").encode("utf-8"), **ood_files})
    return card


def read_card(path: str | Path) -> ModelCard:
    """Read a bundle's card.json without touching its weights."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p}: no such model bundle")
    if not p.is_dir():
        raise BundleError(f"{p} is a file, but a model bundle is a folder holding {WEIGHTS_FILE} and {CARD_FILE}")
    card_path = p / CARD_FILE
    if not card_path.is_file():
        inner = p / "bundle"
        if (inner / CARD_FILE).is_file():  # a training run folder: its model is RUNDIR/bundle
            raise BundleError(f"{p} is a training run folder, not a model bundle; its model is {inner} "
                              f"(pass {inner})")
        raise BundleError(f"{p} has no {CARD_FILE}, so it is not a model bundle")
    try:
        data = load_card_json(card_path)
    except CheckError as e:
        raise BundleError(f"{card_path} is refused: {e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{card_path} is not valid JSON ({e})") from None
    except OSError as e:
        raise BundleError(f"{card_path} cannot be read ({e.strerror})") from None
    try:
        return ModelCard.from_dict(data)
    except BundleError as e:
        raise BundleError(f"{card_path}: {e}") from None


def _weights_header(p: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    weights = p / WEIGHTS_FILE
    if not weights.is_file():
        raise BundleError(f"{p} has no {WEIGHTS_FILE}, so its model cannot be loaded")
    try:
        return read_weights_header(weights)
    except CheckError as e:
        raise BundleError(f"{weights} is refused: {e}") from None
    except OSError as e:
        raise BundleError(f"{weights} cannot be read ({e.strerror})") from None


def _read_weights(p: Path) -> tuple[dict[str, torch.Tensor], str]:
    weights = p / WEIGHTS_FILE
    try:
        data = weights.read_bytes()
        tensors = load_safetensors_bytes(data)
    except OSError as e:
        raise BundleError(f"{weights} cannot be read ({e.strerror})") from None
    except safetensors.SafetensorError as e:
        raise BundleError(f"{weights} is damaged or not a safetensors file ({e})") from None
    return tensors, hashlib.sha256(data).hexdigest()[:16]


def _build(p: Path, card: ModelCard, meta: bool = False) -> nn.Module:
    """The card's model; on the meta device (no memory) for checking a weights header against it."""
    cfg = {k: v for k, v in card.arch_config.items() if k != "pretrained_path"}
    try:
        if meta:
            with torch.device("meta"):
                return create_model(card.arch, **cfg)
        return create_model(card.arch, **cfg)
    except (ModelConfigError, TypeError, ValueError, RuntimeError, AssertionError, KeyError, IndexError) as e:
        raise BundleError(f"{p}: the card's model cannot be built ({e})") from None


def read_ood(path: str | Path, card: ModelCard, dim: int | None = None):
    """The bundle's engine.ood.OodScorer as its card describes it, or None when the card describes none."""
    try:
        return load_for_bundle(path, card.ood, dim)
    except OodError as e:
        raise BundleError(str(e)) from None


def load_bundle(
    path: str | Path, expect_role: str | None = None, schema: Schema | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelCard]:
    """Rebuild a bundle's model from its card and load its weights (safetensors only); eval mode."""
    p = Path(path)
    card = read_card(p)
    if expect_role is not None and card.role != expect_role:
        raise BundleError(f"{p}: this is a {card.role} bundle; a {expect_role} was expected")
    if schema is not None and card.schema_obj().fingerprint() != schema.fingerprint():
        diffs = "; ".join(schema_differences(card.schema_obj(), schema))
        raise BundleError(f"{p}: the model was trained on another sub-label schema than the active one: {diffs}")
    if not is_model(card.arch):
        raise BundleError(f"{p}: unknown model arch {card.arch!r}; this app knows {', '.join(list_models())}")
    try:
        check_card_fits(card)
    except BundleError as e:
        raise BundleError(f"{p}: {e}") from None
    # Header against the model the card names, built on the meta device: nothing is allocated or read before it fits.
    problems = header_problems(_build(p, card, meta=True), _weights_header(p))
    if problems:
        raise BundleError(f"{p}: {WEIGHTS_FILE} does not fit a {card.arch} model: {'; '.join(problems)}")
    model = _build(p, card)
    tensors, digest = _read_weights(p)
    own = model.state_dict()
    problems = state_dict_problems(own, tensors)
    if problems:
        raise BundleError(f"{p}: {WEIGHTS_FILE} does not fit a {card.arch} model: {'; '.join(problems)}")
    if card.model_id and digest != card.model_id:
        raise BundleError(f"{p}: {WEIGHTS_FILE} is not the file its card describes (model id {digest}, card says {card.model_id})")
    model.load_state_dict(cast_like(own, tensors), strict=True)
    bad = nonfinite_parameters(model)
    if bad:
        raise BundleError(f"{p}: {WEIGHTS_FILE} holds NaN or infinite weights ({summarize_keys(bad)})")
    model.preprocess_cfg = PreprocessConfig.from_card(card)  # as timm attaches pretrained_cfg
    model.ood_scorer = read_ood(p, card, getattr(model, "feature_dim", None))  # None: no out-of-distribution check
    return model.to(device).eval(), card
