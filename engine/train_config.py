"""The training configuration, defined once: each TrainConfig field is also a `cataract-grade train` option.

A field's metadata (`option(...)`) holds its help, bounds, choices and the jobs that read
it. From that one place `add_arguments` builds the command line's options, `from_args`
reads them back, `to_arguments` writes a config as the command line the app's retrain
panel starts, and `TrainConfig.check` refuses values outside the bounds. A new option is
one field. This module imports no torch, so `--help` and the app's forms stay fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from engine.choices import (
    AMPS,
    AUGMENTS,
    CROPS,
    DISTANCES,
    FUSIONS,
    JOBS,
    LENS,
    LR_SCHEDULES,
    OPTIMIZERS,
    TOKEN_LAYOUTS,
)
from engine.errors import EngineError
from engine.limits import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

SEED_MAX = 2**31 - 1


class TrainError(EngineError):
    """A job that cannot start or go on, with the reason in one sentence."""


@dataclass(frozen=True)
class Option:
    """How a TrainConfig field appears on the command line and in forms."""

    help: str
    low: float | None = None  # inclusive bounds, checked by TrainConfig.check
    high: float | None = None
    choices: tuple[str, ...] | None = None
    jobs: tuple[str, ...] = JOBS  # the jobs that read the field; the app passes it only to those
    positional: bool = False
    required: bool = False  # on the command line (the dataclass default is a placeholder)
    metavar: str | None = None
    omit_default: bool = False  # to_arguments leaves the option out at its default (not only at an "off" one)


def option(default: Any, help: str, **how: Any) -> Any:
    """A dataclass field that is also a command-line option (see Option)."""
    meta = {"option": Option(help, **how)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


KD, TEACHER = ("kd",), ("teacher",)


@dataclass
class TrainConfig:
    """One training job: what to train, on what, and how."""

    job: str = option("student", "what to train", choices=JOBS, positional=True)
    dataset: str = option("", "dataset folder with labels.csv", positional=True)
    out: str = option("", "run folder (created)", required=True, metavar="RUNDIR")
    arch: str = option("tf_efficientnet_lite0", "timm backbone name")
    teacher: str | None = option(None, "teacher bundle to distil from; repeat --teacher for a multi-teacher "
                                 "weighted by validation QWK", jobs=KD, metavar="BUNDLE")
    fusion: str = option("concat", "teacher fusion: concat, coattn (co-attention), mlp (sub-labels only) or none "
                         "(image only)", choices=FUSIONS, jobs=TEACHER)
    token_layout: str = option("grid", "teacher image tokens", choices=TOKEN_LAYOUTS, jobs=TEACHER)
    epochs: int = option(20, "training epochs", low=1, high=10_000)
    image_size: int = option(128, "network input size in pixels", low=MIN_IMAGE_SIZE, high=MAX_IMAGE_SIZE)
    crop: str = option(LENS, "what the model sees: lens (a square around the lens the finder sees, as grading "
                       "crops it) or centre (the centred square of the short side, as bundles before the lens crop)",
                       choices=CROPS)
    batch_size: int = option(32, "images per step", low=1, high=4096)
    lr: float = option(1e-3, "peak learning rate", low=1e-6, high=1.0)
    weight_decay: float = option(0.05, "weight decay", low=0.0, high=1.0)
    optimizer: str = option("adamw", "optimizer", choices=OPTIMIZERS)
    warmup_epochs: float = option(1.0, "epochs of linear learning-rate warm-up before the cosine decay", low=0.0)
    patience: int = option(8, "early-stopping patience in epochs", low=1, high=10_000)
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    seed: int = option(0, "seed of initialisation, augmentation and batch order", low=0, high=SEED_MAX)
    split_seed: int = option(0, "seed of the patient-level split", low=0, high=SEED_MAX)
    val_frac: float = option(0.15, "share of patients for validation", low=0.0, high=0.9)
    test_frac: float = option(0.15, "share of patients for the test split", low=0.0, high=0.9)
    resume: bool = option(False, "continue from RUNDIR/checkpoint")
    ordinal: bool = option(True, "soft ordinal targets (--no-ordinal: hard cross-entropy)")
    sub_weight: float = option(0.3, "weight of the student's sub-label head loss", low=0.0, high=10.0,
                               jobs=("student", "kd"))
    kd_temperature: float = option(4.0, "distillation temperature", low=0.5, high=20.0, jobs=KD)
    kd_alpha: float = option(0.7, "weight of the distillation term", low=0.0, high=1.0, jobs=KD)
    feature_kd: float = option(0.0, "weight of feature distillation (0 = off)", low=0.0, high=10.0, jobs=KD)
    teacher_dim: int = option(192, "width of the teacher's fusion transformer", low=1, jobs=TEACHER)
    teacher_depth: int = option(2, "blocks of the teacher's fusion transformer", low=1, jobs=TEACHER)
    sub_dropout: float = option(0.3, "share of sub-labels the teacher hides while training", low=0.0, high=1.0,
                                jobs=TEACHER)
    pretrained: str | None = option("auto", "initial backbone weights: 'imagenet' (the installed file for --arch), "
                                    "'auto' (that file where one is installed for --arch, else random), 'none' "
                                    "(random) or a local .safetensors file; never downloaded", metavar="auto|imagenet|none|FILE")
    name: str | None = option(None, "model name written in its card")
    notice: str | None = option(None, "notice written in the card (e.g. for demo models)")
    extra: dict = option({}, "more card fields, as a JSON object", metavar="JSON")
    token_kd: float = option(0.0, "weight of token distillation: student map vs the teacher's image tokens (0 = off)",
                             low=0.0, high=10.0, jobs=KD)
    token_kd_kind: str = option("smooth_l1", "distance of token distillation", choices=DISTANCES, jobs=KD)
    attn_kd: float = option(0.0, "weight of attention-map distillation against the teacher's CLS attention (0 = off)",
                            low=0.0, high=10.0, jobs=KD)
    extra_teachers: list[str] = option([], "more teachers (the second and later --teacher): a QWK-weighted ensemble",
                                       jobs=KD)
    lr_schedule: str = option("cosine", "cosine decay over --epochs, or plateau: constant, cut x0.3 when validation "
                              "stalls for half the patience (--epochs is then only a ceiling)", choices=LR_SCHEDULES)
    augment: str = option("realistic", "training augmentation: realistic (geometry, colour and camera effects: "
                          "resolution, noise, blur, JPEG), basic (geometry and colour) or none", choices=AUGMENTS)
    unlabelled: str | None = option(None, "a dataset folder whose images add the teacher's soft targets only (its "
                                    "grades are ignored; its sub-labels, where filled in, go to the teacher)", jobs=KD,
                                    metavar="FOLDER")
    nproc: int = option(1, "data-parallel processes (one per GPU, or CPU processes): started through torchrun, "
                        "with --batch-size as the global batch (docs/scaling.md)", low=1, high=256,
                        omit_default=True)
    amp: str = option("auto", "mixed precision: auto (bf16 on a CUDA GPU that has it, else fp16 with a gradient "
                      "scaler; none on CPU), bf16, fp16 (CUDA only) or off", choices=AMPS)
    channels_last: bool = option(True, "channels-last memory layout for the convolutions (--no-channels-last: NCHW)")

    def check(self) -> None:
        """Refuse a job that cannot run, with the reason in one sentence."""
        for f in fields(self):
            check_value(f, getattr(self, f.name))
        for name in ("dataset", "out"):
            if not getattr(self, name):
                raise TrainError(f"a training job needs {'a dataset folder' if name == 'dataset' else '--out RUNDIR'}")
        if self.job == "kd" and not self.teacher:
            raise TrainError("a kd job needs --teacher BUNDLE (a trained fusion teacher)")
        if self.extra_teachers and self.job != "kd":
            raise TrainError("more than one teacher is only used by a kd job")
        if self.unlabelled and self.job != "kd":
            raise TrainError("unlabelled images are only used by a kd job (the teacher labels them)")
        if self.val_frac + self.test_frac >= 1:
            raise TrainError(f"--val-frac {self.val_frac} and --test-frac {self.test_frac} leave no training split")


def option_of(name: str) -> Option:
    """The Option of TrainConfig field `name` (help, bounds and choices for the app's forms)."""
    return FIELDS[name].metadata["option"]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_value(f: Field, value: Any) -> None:
    """Refuse a value outside its field's choices or bounds."""
    opt: Option = f.metadata["option"]
    if opt.choices is not None and value not in opt.choices:
        raise TrainError(f"unknown {f.name.replace('_', ' ')} {value!r}; choose one of {', '.join(opt.choices)}")
    if opt.low is None and opt.high is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TrainError(f"{flag(f.name)} must be a number, not {value!r}")
    if opt.low is not None and value < opt.low:
        raise TrainError(f"{flag(f.name)} must be >= {opt.low:g}, not {value:g}")
    if opt.high is not None and value > opt.high:
        raise TrainError(f"{flag(f.name)} must be <= {opt.high:g}, not {value:g}")


FIELDS: dict[str, Field] = {f.name: f for f in fields(TrainConfig)}
_SHARED = {"extra_teachers": "teacher"}  # filled by a later --teacher, not by a flag of its own


def _default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option (or positional) per TrainConfig field, from its metadata."""
    for f in fields(TrainConfig):
        if f.name in _SHARED:
            continue
        opt, default = f.metadata["option"], _default(f)
        shown = default not in (None, "", {}) and not isinstance(default, bool) and not opt.positional
        bounds = "" if opt.low is None else f", {opt.low:g}-{opt.high:g}" if opt.high is not None else f", >= {opt.low:g}"
        kwargs: dict[str, Any] = {"help": opt.help + bounds + (" (default %(default)s)" if shown else "")}
        if isinstance(default, bool):
            kwargs.update(action=argparse.BooleanOptionalAction, default=default)
        elif f.name == "teacher":
            kwargs.update(action="append", default=None, metavar=opt.metavar)
        elif isinstance(default, dict):
            kwargs.update(type=_json_object, default=None, metavar=opt.metavar)
        else:
            kwargs.update(type=type(default) if default is not None else str, metavar=opt.metavar, choices=opt.choices)
            if not opt.positional:
                kwargs["default"] = default
        if opt.positional:
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument(flag(f.name), dest=f.name, required=opt.required, **kwargs)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig a parsed `train` command line asks for (the first --teacher is the main one)."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in _SHARED}
    teachers = list(values.pop("teacher") or [])
    values["extra"] = values["extra"] or {}
    return TrainConfig(**values, teacher=teachers[0] if teachers else None, extra_teachers=teachers[1:])


def to_arguments(cfg: TrainConfig) -> list[str]:
    """The `train` command line for `cfg`: positionals, then every option its job reads.

    An option left at an "off" default (0, False, None, empty) is left out, so the line
    stays readable; from_args(parse(to_arguments(cfg))) gives cfg back for every field the
    job reads.
    """
    out = [cfg.job, str(cfg.dataset), "--out", str(cfg.out)]
    for f in fields(TrainConfig):
        opt, value = f.metadata["option"], getattr(cfg, f.name)
        if opt.positional or f.name == "out" or cfg.job not in opt.jobs:
            continue
        if f.name == "teacher":
            teachers = [t for t in [value, *cfg.extra_teachers] if t]
            out += [a for t in dict.fromkeys(map(str, teachers)) for a in ("--teacher", t)]
        elif f.name in _SHARED or (not value or opt.omit_default) and value == _default(f) or value is None:
            continue
        elif isinstance(value, bool):
            out.append(flag(f.name) if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, dict):
            out += [flag(f.name), json.dumps(value)]
        else:
            out += [flag(f.name), repr(float(value)) if isinstance(value, float) else str(value)]
    return out
