"""One training loop for the three jobs: `teacher`, `student` (plain) and `kd`.

The loop validates every epoch, keeps the best weights by validation QWK, stops
early, checkpoints for resume, and reports through a callback and a cancel token
(no Qt here). The test split, when the dataset has one, is scored once at the end
for the model card and never used to choose anything.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engine.data.transforms import AUGMENTS
from engine.progress import CancelToken, ProgressCallback, no_progress

JOBS = ("teacher", "student", "kd")
FUSIONS = ("concat", "mlp", "coattn", "none")  # none: an image-only teacher
TOKEN_KD_KINDS = ("smooth_l1", "cosine")
LR_SCHEDULES = ("cosine", "plateau")
PLATEAU_FACTOR = 0.3  # "plateau": the learning rate is multiplied by this when validation stalls


class TrainError(ValueError):
    """A job that cannot start or go on, with the reason in one sentence."""


@dataclass
class TrainConfig:
    job: str
    dataset: str
    out: str
    arch: str = "resnet18"
    teacher: str | None = None
    fusion: str = "concat"
    token_layout: str = "grid"
    epochs: int = 20
    image_size: int = 128
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"
    warmup_epochs: float = 1.0
    patience: int = 8
    device: str = "auto"
    seed: int = 0
    split_seed: int = 0
    val_frac: float = 0.15
    test_frac: float = 0.15
    resume: bool = False
    ordinal: bool = True
    sub_weight: float = 0.3
    kd_temperature: float = 4.0
    kd_alpha: float = 0.7
    feature_kd: float = 0.0
    teacher_dim: int = 192
    teacher_depth: int = 2
    sub_dropout: float = 0.3
    pretrained: str | None = None  # "imagenet" (the installed weights for arch), a .safetensors path, or None
    name: str | None = None
    notice: str | None = None
    extra: dict = field(default_factory=dict)
    token_kd: float = 0.0  # weight of token distillation (TKD-Net), 0 = off
    token_kd_kind: str = "smooth_l1"
    attn_kd: float = 0.0  # weight of attention-map distillation, 0 = off
    extra_teachers: list[str] = field(default_factory=list)  # more teachers: a QWK-weighted ensemble
    lr_schedule: str = "cosine"  # cosine over `epochs`, or plateau: constant, cut when validation stalls
    augment: str = "realistic"  # training augmentation: realistic (camera effects), basic or none
    unlabelled: str | None = None  # kd: a dataset folder whose images add teacher targets only (grades ignored)

    def check(self) -> None:
        if self.job not in JOBS:
            raise TrainError(f"unknown job {self.job!r}; choose one of {', '.join(JOBS)}")
        if self.job == "kd" and not self.teacher:
            raise TrainError("a kd job needs --teacher BUNDLE (a trained fusion teacher)")
        if self.fusion not in FUSIONS:
            raise TrainError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.epochs < 1 or self.batch_size < 1 or not 16 <= self.image_size <= 1024:
            raise TrainError("epochs and batch size must be >= 1 and the image size within 16-1024 px")
        if self.lr <= 0 or self.optimizer not in ("adamw", "sgd"):
            raise TrainError("the learning rate must be > 0 and the optimizer adamw or sgd")
        if self.token_kd < 0 or self.attn_kd < 0 or self.token_kd_kind not in TOKEN_KD_KINDS:
            raise TrainError(f"token and attention distillation weights must be >= 0 and the token distance one of "
                             f"{', '.join(TOKEN_KD_KINDS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of "
                             f"{', '.join(LR_SCHEDULES)}")
        if self.augment not in AUGMENTS:
            raise TrainError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTS)}")
        if self.unlabelled and self.job != "kd":
            raise TrainError("unlabelled images are only used by a kd job (the teacher labels them)")
        if self.extra_teachers and self.job != "kd":
            raise TrainError("more than one teacher is only used by a kd job")


@dataclass(frozen=True)
class TrainResult:
    bundle: Path
    metrics: dict
    best_epoch: int
    stopped_early: bool


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", plateau_scale: float = 1.0) -> float:
    """Linear warm-up, then a cosine decay to 0 at `total` steps, or the plateau schedule's current scale."""
    if step < warmup:
        return (step + 1) / warmup * (plateau_scale if schedule == "plateau" else 1.0)
    if schedule == "plateau":
        return plateau_scale
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def plateau_step(epoch: int, best_epoch: int, last_cut: int, patience: int, scale: float) -> tuple[float, int]:
    """(scale, last_cut) after an epoch: cut the scale when neither a new best nor a cut came for patience // 2 epochs."""
    wait = max(1, patience // 2)
    if epoch - max(best_epoch, last_cut) >= wait:
        return scale * PLATEAU_FACTOR, epoch
    return scale, last_cut


class _Log:
    """Every event goes to the callback and to RUNDIR/log.jsonl."""

    def __init__(self, path: Path, callback: ProgressCallback) -> None:
        self.path, self.callback = path, callback

    def __call__(self, event: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
        self.callback(event)


def _initial_weights(cfg: TrainConfig):
    """Where the backbone starts from (random, the installed ImageNet file, or a clinic's file)."""
    from engine.models.pretrained import InitialWeights, resolve_pretrained

    if cfg.job == "teacher" and cfg.fusion == "mlp":  # no image backbone
        return InitialWeights(None, {"source": "none (no image backbone)"})
    try:
        return resolve_pretrained(cfg.arch, cfg.pretrained)
    except ValueError as e:
        raise TrainError(str(e)) from None


def _build_model(cfg: TrainConfig, schema, pretrained_path: str | None = None):
    from engine.models import create_model

    ranges = [[s.minimum, s.maximum] for s in schema.sublabels]
    common = dict(backbone=cfg.arch, image_size=cfg.image_size, sublabel_ranges=ranges, pretrained_path=pretrained_path)
    if cfg.job == "teacher":
        if cfg.fusion == "mlp":
            return create_model("teacher_mlp", sublabel_ranges=ranges, image_size=cfg.image_size)
        if cfg.fusion == "none":
            return create_model("teacher_image", **common)
        extra = dict(dim=cfg.teacher_dim, depth=cfg.teacher_depth, sub_dropout=cfg.sub_dropout)
        if cfg.fusion in ("concat", "coattn"):
            extra["token_layout"] = cfg.token_layout
        return create_model(f"teacher_{cfg.fusion}", **common, **extra)
    return create_model("student", **common)


def _build_loss(cfg: TrainConfig, schema, student_dim: int, teacher_dim: int | None, teacher_model=None):
    from engine.distill import DistillLoss, FeatureKD, LogitKD, TaskLoss
    from engine.distill_extra import map_terms

    mins = [s.minimum for s in schema.sublabels]
    sub_weight = cfg.sub_weight if cfg.job != "teacher" else 0.0
    task = TaskLoss(ordinal=cfg.ordinal, sub_weight=sub_weight, sublabel_mins=mins)
    if cfg.job != "kd":
        return task
    extras = [FeatureKD(student_dim, teacher_dim, weight=cfg.feature_kd)] if cfg.feature_kd > 0 else []
    extras += map_terms(student_dim, teacher_model, cfg.token_kd, cfg.attn_kd, cfg.token_kd_kind)
    return DistillLoss(LogitKD(temperature=cfg.kd_temperature, alpha=cfg.kd_alpha, task=task), extras)


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)


def run_training(cfg: TrainConfig, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> TrainResult:
    """Run one job to completion (or early stop); returns the new bundle's path."""
    from engine.bundle import ModelCard, save_bundle
    from engine.checkpoint import load_checkpoint, save_checkpoint
    from engine.data.dataset import IMAGENET_MEAN, IMAGENET_STD, split_records
    from engine.data.manifest import dataset_fingerprint, load_dataset
    from engine.device import pick_device
    from engine.distill_extra import forward_with_map, load_teachers
    from engine.evaluation import autocast_for, forward_batch, make_loader, predict_loader
    from engine.metrics import fit_temperature

    cfg.check()
    cancel = cancel or CancelToken()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir, best_path = out / "checkpoint", out / "best.safetensors"
    if not cfg.resume:
        (out / "log.jsonl").unlink(missing_ok=True)
    log = _Log(out / "log.jsonl", progress)
    _seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    init = _initial_weights(cfg)

    manifest = load_dataset(cfg.dataset)
    schema = manifest.schema
    teacher, tcard, teacher_notes = None, None, {}
    mean, std = (init.mean, init.std) if init.mean else (IMAGENET_MEAN, IMAGENET_STD)
    if cfg.job == "kd":
        teacher, tcard, teacher_notes = load_teachers(
            [cfg.teacher, *cfg.extra_teachers], schema, device, mean, std,
            attention=cfg.attn_kd > 0, temperature=cfg.kd_temperature,
        )
    need_map = cfg.job == "kd" and (cfg.token_kd > 0 or cfg.attn_kd > 0)
    parts = split_records(manifest.records, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.split_seed)
    if not parts["train"] or not parts["val"]:
        raise TrainError(f"{cfg.dataset} has too few images for a train and a validation split")
    train_loader = make_loader(parts["train"], schema, cfg.image_size, mean, std, True, cfg.batch_size, cfg.seed,
                               cfg.augment)
    val_loader = make_loader(parts["val"], schema, cfg.image_size, mean, std, False, cfg.batch_size)

    unlabelled = _unlabelled_batches(cfg, schema, mean, std) if cfg.unlabelled else None
    model = _build_model(cfg, schema, init.path).to(device, memory_format=torch.channels_last)
    role = "teacher" if cfg.job == "teacher" else "student"
    tdim = getattr(teacher.model, "dim", None) if teacher else None
    loss_fn = _build_loss(cfg, schema, getattr(model, "feature_dim", 0), tdim, teacher.model if teacher else None)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    params = list(model.parameters()) + (list(loss_fn.parameters()) if isinstance(loss_fn, torch.nn.Module) else [])
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    steps_per_epoch = len(train_loader)
    total_steps, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    aux = {"loss": loss_fn} if isinstance(loss_fn, torch.nn.Module) else {}

    start_epoch, best, best_epoch, history_best_loss = 1, -math.inf, 0, math.inf
    plateau_scale, last_cut = 1.0, 0
    if cfg.resume and ckpt_dir.exists():
        state = load_checkpoint(ckpt_dir, model, opt, aux)
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        history_best_loss = state.get("best_loss", math.inf)
        plateau_scale, last_cut = state.get("plateau_scale", 1.0), state.get("last_cut", 0)
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))

    log({
        "event": "start", "job": cfg.job, "epochs": cfg.epochs, "start_epoch": start_epoch,
        "n_train": len(parts["train"]), "n_val": len(parts["val"]), "n_test": len(parts["test"]),
        "device": str(device), "arch": model.arch, "image_size": cfg.image_size, "out": str(out),
    })
    stopped_early = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0, cpu0, model_seen, loss_sum = time.perf_counter(), time.process_time(), 0, 0.0
        model.train()
        last_report = t0
        for i, batch in enumerate(train_loader):
            cancel.raise_if_cancelled()
            step = (epoch - 1) * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(step, warmup, total_steps, cfg.lr_schedule, plateau_scale)
            with autocast_for(device):
                if need_map:
                    out_s = forward_with_map(model, batch["image"].to(device, memory_format=torch.channels_last))
                else:
                    out_s = forward_batch(model, role, batch, device)
                if teacher is not None:
                    out_t = _teacher_out(teacher, tcard, cfg, batch, device)
                    losses = loss_fn(out_s, out_t, _to(batch, device))
                    if unlabelled is not None:
                        losses = _add_unlabelled(losses, model, role, teacher, tcard, cfg, loss_fn, unlabelled, device)
                else:
                    losses = loss_fn(out_s, _to(batch, device))
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            n = batch["image"].shape[0]
            model_seen += n
            loss_sum += float(losses["loss"].detach()) * n
            now = time.perf_counter()
            if now - last_report > 1.0:
                last_report = now
                progress({"event": "batch", "epoch": epoch, "step": i + 1, "steps": steps_per_epoch,
                          "loss": float(losses["loss"].detach())})
        train_seconds = time.perf_counter() - t0
        preds = predict_loader(model, role, val_loader, device)
        m = preds.metrics()
        improved = m["qwk"] > best or (m["qwk"] == best and preds.loss < history_best_loss)
        if improved:
            best, best_epoch, history_best_loss = m["qwk"], epoch, preds.loss
            _save_weights(model, best_path)
        if cfg.lr_schedule == "plateau":
            plateau_scale, last_cut = plateau_step(epoch, best_epoch, last_cut, cfg.patience, plateau_scale)
        save_checkpoint(ckpt_dir, model, opt, {
            "epoch": epoch, "best": best, "best_epoch": best_epoch, "best_loss": history_best_loss,
            "plateau_scale": plateau_scale, "last_cut": last_cut,
            "torch_rng": torch.get_rng_state().tolist(), "config": asdict(cfg),
        }, aux)
        log({
            "event": "epoch", "epoch": epoch, "epochs": cfg.epochs, "train_loss": loss_sum / max(model_seen, 1),
            "val_loss": preds.loss, "val_acc": m["acc"], "val_qwk": m["qwk"], "val_mae": m["mae"],
            "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
            "images_per_s": model_seen / max(train_seconds, 1e-9), "best_epoch": best_epoch,
        })
        if epoch - best_epoch >= cfg.patience:
            stopped_early = True
            break

    model.load_state_dict(load_file(str(best_path)))
    val_preds = predict_loader(model, role, val_loader, device)
    temperature = fit_temperature(val_preds.logits, val_preds.grades)
    metrics = {"val": val_preds.metrics(temperature)}
    if parts["test"]:
        test_loader = make_loader(parts["test"], schema, cfg.image_size, mean, std, False, cfg.batch_size)
        metrics["test"] = predict_loader(model, role, test_loader, device).metrics(temperature)
    card = ModelCard(
        role=role, name=cfg.name or _default_name(cfg), arch=model.arch,
        arch_config=model.config, image_size=cfg.image_size, mean=list(mean), std=list(std),
        grades=list(schema.grade_names), schema=schema.to_dict(),
        fusion=cfg.fusion if role == "teacher" else None,
        teacher={"name": tcard.name, "model_id": tcard.model_id} if tcard else None,
        data_fingerprint=dataset_fingerprint(manifest), seed=cfg.seed, epochs=best_epoch,
        metrics=metrics, calibration_temperature=temperature, notice=cfg.notice,
        extra={"job": cfg.job, "split": {"seed": cfg.split_seed, "val_frac": cfg.val_frac, "test_frac": cfg.test_frac},
               "train_config": {k: v for k, v in asdict(cfg).items() if k not in ("dataset", "out")},
               "initial_weights": init.provenance,
               **teacher_notes, **cfg.extra},
    )
    card = save_bundle(out / "bundle", model.cpu(), card)
    log({"event": "done", "bundle": str(out / "bundle"), "model_id": card.model_id, "best_epoch": best_epoch,
         "stopped_early": stopped_early, "metrics": metrics})
    return TrainResult(out / "bundle", metrics, best_epoch, stopped_early)


def _teacher_out(teacher, tcard, cfg: TrainConfig, batch: dict, device: torch.device) -> dict:
    """The frozen teacher on the student's augmented batch, resized to the teacher's input size when one teacher."""
    images = batch["image"].to(device, memory_format=torch.channels_last)
    if images.shape[-1] != tcard.image_size and not cfg.extra_teachers:
        images = F.interpolate(images, size=tcard.image_size, mode="bilinear", align_corners=False)
    return teacher(images, batch["sublabels"].to(device), batch["sub_mask"].to(device))


def _unlabelled_batches(cfg: TrainConfig, schema, mean, std):
    """An endless iterator of augmented batches from the unlabelled folder (its grades are never read)."""
    from engine.data.manifest import load_dataset
    from engine.evaluation import make_loader

    records = load_dataset(cfg.unlabelled, schema=schema).records
    loader = make_loader(records, schema, cfg.image_size, mean, std, True, cfg.batch_size, cfg.seed + 1, cfg.augment)

    def endless():
        while True:
            yield from loader

    return endless()


def _add_unlabelled(losses: dict, model, role, teacher, tcard, cfg: TrainConfig, loss_fn, batches, device) -> dict:
    """losses + alpha * KD on one unlabelled batch: the teacher's soft targets are its only label."""
    from engine.evaluation import forward_batch

    batch = next(batches)
    out_s = forward_batch(model, role, batch, device)
    kd = loss_fn.logit.kd_loss(out_s["logits"], _teacher_out(teacher, tcard, cfg, batch, device))
    return {**losses, "loss": losses["loss"] + cfg.kd_alpha * kd, "unlabelled_kd": kd}


def _default_name(cfg: TrainConfig) -> str:
    """A readable model name for lists and status bars; the model id tells versions apart."""
    fusion = "image" if cfg.fusion == "none" else cfg.fusion
    kind = {"teacher": f"{fusion}-teacher", "student": "student", "kd": "distilled-student"}[cfg.job]
    return f"{kind}-{cfg.arch}-{cfg.image_size}px"


def _to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
