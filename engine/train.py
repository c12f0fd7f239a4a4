"""One training loop for the three jobs: `teacher`, `student` (plain) and `kd`.

`run_training` prepares a run (data, models, loss, optimiser, resume state), trains and
validates one epoch at a time, keeps the best weights by validation QWK, stops early,
checkpoints for resume, and finally writes the bundle. It reports typed progress events
through a callback and polls a cancel token (no Qt here). The test split, when the
dataset has one, is scored once at the end for the model card and never used to choose
anything. The configuration and its command line live in engine.train_config.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

from engine.fsutil import atomic_write_bytes
from engine.lr_schedule import lr_factor, plateau_step
from engine.preprocess import IMAGENET_MEAN, IMAGENET_STD, LENS, LENS_MARGIN
from engine.progress import (
    BatchEvent,
    CancelToken,
    DoneEvent,
    EpochEvent,
    ProgressCallback,
    ProgressEvent,
    StartEvent,
    no_progress,
)
from engine.train_config import TrainConfig, TrainError

__all__ = ["TrainConfig", "TrainError", "TrainResult", "run_training"]


@dataclass(frozen=True)
class TrainResult:
    bundle: Path
    metrics: dict
    best_epoch: int
    stopped_early: bool


class _Log:
    """Every event goes to the callback and to RUNDIR/log.jsonl."""

    def __init__(self, path: Path, callback: ProgressCallback) -> None:
        self.path, self.callback = path, callback  # path None: a rank above 0 of a distributed job, which logs nothing

    def __call__(self, event: ProgressEvent) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(event.to_json() + "\n")
        self.callback(event)


@dataclass
class _Run:
    """Everything one job holds while it trains; built by _prepare."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    log: _Log
    manifest: Any
    parts: dict
    train_loader: Any
    val_loader: Any
    model: torch.nn.Module
    loss_fn: Any
    opt: torch.optim.Optimizer
    teacher: Any = None
    tcard: Any = None
    teacher_notes: dict = field(default_factory=dict)
    lenses: Any = None  # engine.data.lenses.LensTable with crop "lens", else None
    lens_notes: dict = field(default_factory=dict)
    init: Any = None  # engine.models.pretrained.InitialWeights: where the backbone started
    unlabelled: Any = None  # an endless iterator of unlabelled batches (kd with --unlabelled)
    start_epoch: int = 1
    best: float = -math.inf
    best_epoch: int = 0
    best_loss: float = math.inf
    plateau_scale: float = 1.0  # the plateau schedule's current learning-rate scale
    last_cut: int = 0  # the epoch of its last cut
    world: Any = None  # engine.distributed.World: this process's rank among the job's processes
    net: Any = None  # what the training step calls: the model, or DistributedDataParallel around it
    precision: Any = None  # engine.precision.Precision: the step's autocast and (fp16) gradient scaler

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The normalisation of the initial weights (ImageNet's unless their description says otherwise)."""
        if self.init is not None and self.init.mean:
            return tuple(self.init.mean), tuple(self.init.std)
        return IMAGENET_MEAN, IMAGENET_STD

    @property
    def role(self) -> str:
        return "teacher" if self.cfg.job == "teacher" else "student"

    @property
    def aux(self) -> dict:
        """The loss's own learnable parts (feature projections), checkpointed with the model."""
        return {"loss": self.loss_fn} if isinstance(self.loss_fn, torch.nn.Module) else {}

    @property
    def best_path(self) -> Path:
        return self.out / "best.safetensors"


def run_training(cfg: TrainConfig, progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> TrainResult:
    """Run one job to completion (or early stop); returns the new bundle's path.

    With cfg.nproc > 1 outside torchrun, torchrun is started to run it (engine.dist_launch);
    inside torchrun, this process trains its share (engine.distributed).

    A job that fails in a folder it made (new or empty) and leaves nothing to resume removes that folder.
    """
    cfg.check()
    from engine import distributed

    cancel = cancel or CancelToken()
    out = Path(cfg.out)
    fresh = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    try:
        if cfg.nproc > 1 and not distributed.launched():
            from engine.dist_launch import launch_training

            done = launch_training(cfg, progress, cancel)
            return TrainResult(Path(done.bundle), done.metrics, done.best_epoch, done.stopped_early)
        try:
            return _train(_prepare(cfg, progress), cancel)
        finally:
            distributed.leave()
    except Exception:
        if fresh and distributed.env_world().main:  # rank 0 (or the launcher) alone tidies the folder it made
            from engine.runfolder import remove_if_nothing_to_keep

            remove_if_nothing_to_keep(out)
        raise


def _train(run: _Run, cancel: CancelToken) -> TrainResult:
    """Check the images, find the lenses, train epoch by epoch, write the bundle (rank 0) and report it."""
    from engine import distributed
    from engine.data.preflight import verify_images

    cfg, world = run.cfg, run.world
    run.log(StartEvent(
        job=cfg.job, epochs=cfg.epochs, start_epoch=run.start_epoch, n_train=len(run.parts["train"]),
        n_val=len(run.parts["val"]), n_test=len(run.parts["test"]), device=str(run.device), arch=run.model.arch,
        image_size=cfg.image_size, out=str(run.out), world_size=world.size,
    ))
    if world.main:
        verify_images(run.manifest, run.log)  # every image decoded before the first epoch, with progress events
        if run.lenses is not None:  # every photograph's lens found once, before the first epoch
            from engine.train_gate import locate_lenses

            run.lens_notes = locate_lenses(run.manifest, run.lenses, run.out, run.log)
    distributed.barrier(world)
    if run.lenses is not None and not world.main:
        distributed.load_lenses(run.manifest, run.lenses, run.out)
    stopped_early = False
    for epoch in range(run.start_epoch, cfg.epochs + 1):
        _train_epoch(run, epoch, cancel, run.log.callback)
        if epoch - run.best_epoch >= cfg.patience:
            stopped_early = True
            break
    metrics = {}
    if world.main:
        metrics, card = _write_bundle(run)
        run.log(DoneEvent(bundle=str(run.out / "bundle"), model_id=card.model_id, best_epoch=run.best_epoch,
                          stopped_early=stopped_early, metrics=metrics))
    metrics = distributed.gather_json(world, metrics)[0]  # the other ranks wait for the bundle
    return TrainResult(run.out / "bundle", metrics, run.best_epoch, stopped_early)


# ---- preparing ---------------------------------------------------------------------------------------------
def _prepare(cfg: TrainConfig, progress: ProgressCallback) -> _Run:
    """Run folder, seeds, data, teachers, model, loss and optimiser, in the order that keeps seeded runs identical."""
    from engine import distributed
    from engine.data.dataset import split_records
    from engine.data.manifest import load_dataset
    from engine.device import pick_device
    from engine.evaluation import make_loader
    from engine.precision import Precision
    from engine.runfolder import prepare_run_folder

    out = Path(cfg.out)
    device = pick_device(cfg.device)
    world = distributed.join(device)
    device = distributed.rank_device(device, world)
    cfg = replace(cfg, nproc=world.size) if world.launched else cfg  # the card says how many processes trained
    distributed.check_config(cfg, world)
    precision = Precision(cfg.amp, device)
    if world.main:
        prepare_run_folder(out, cfg.job, cfg.resume)  # refuses a folder that is not this job's; clears killed writes
    distributed.barrier(world)
    log = _Log(out / "log.jsonl" if world.main else None, progress if world.main else no_progress)
    _seed_everything(cfg.seed)
    init = _initial_weights(cfg)
    mean, std = (tuple(init.mean), tuple(init.std)) if init.mean else (IMAGENET_MEAN, IMAGENET_STD)
    manifest = load_dataset(cfg.dataset)
    teacher, tcard, notes = _load_teachers(cfg, manifest.schema, device, mean, std)  # before the student: RNG order
    parts = split_records(manifest.records, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.split_seed)
    if not parts["train"] or not parts["val"]:
        raise TrainError(f"{cfg.dataset} has too few images for a train and a validation split")
    lenses = _lens_table(cfg)
    crop = dict(crop=cfg.crop, lenses=lenses)
    train_loader = make_loader(parts["train"], manifest.schema, cfg.image_size, mean, std, True, cfg.batch_size,
                               cfg.seed, cfg.augment, **crop)
    train_loader = distributed.shard_train_loader(world, train_loader, cfg.seed)
    val_loader = make_loader(parts["val"], manifest.schema, cfg.image_size, mean, std, False, cfg.batch_size, **crop)
    unlabelled = _unlabelled_batches(cfg, manifest.schema, mean, std) if cfg.unlabelled else None
    model = _build_model(cfg, manifest.schema, init.path).to(device, memory_format=_memory_format(cfg))
    tmodel = teacher.model if teacher is not None else None
    loss_fn = _build_loss(cfg, manifest.schema, getattr(model, "feature_dim", 0), getattr(tmodel, "dim", None), tmodel)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn.to(device)
    run = _Run(cfg, out, device, log, manifest, parts, train_loader, val_loader, model, loss_fn,
               _optimiser(cfg, model, loss_fn), teacher, tcard, notes, lenses=lenses, init=init, unlabelled=unlabelled,
               world=world, precision=precision)
    _resume(run)
    distributed.seed_rank(world, cfg.seed, run.start_epoch)
    run.net = distributed.wrap_model(world, model, device)
    return run


def _memory_format(cfg: TrainConfig) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def _lens_table(cfg: TrainConfig):
    """The run's shared table of lens circles for crop "lens" (filled before the first epoch), else None."""
    if cfg.crop != LENS:
        return None
    from engine.data.lenses import LensTable

    return LensTable()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_teachers(cfg: TrainConfig, schema, device: torch.device, mean, std):
    """(teacher, primary card, card notes) for a kd job; (None, None, {}) otherwise."""
    if cfg.job != "kd":
        return None, None, {}
    from engine.bundle import read_card
    from engine.distill import load_teachers

    for path in [cfg.teacher, *cfg.extra_teachers]:
        seen = read_card(path).crop
        if seen != cfg.crop:  # the teacher grades the student's batches: both must see the same part of the photograph
            raise TrainError(f"the teacher {path} was trained on the {seen} crop but this student is trained on the "
                             f"{cfg.crop} crop; train the student with --crop {seen}, or a teacher with --crop {cfg.crop}")

    return load_teachers([cfg.teacher, *cfg.extra_teachers], schema, device, mean, std,
                         attention=cfg.attn_kd > 0, temperature=cfg.kd_temperature)


def _initial_weights(cfg: TrainConfig):
    """Where the backbone starts from (random, the installed ImageNet file, or a clinic's file)."""
    from engine.models.pretrained import InitialWeights, resolve_pretrained

    if cfg.job == "teacher" and cfg.fusion == "mlp":  # no image backbone
        return InitialWeights(None, {"source": "none (no image backbone)"})
    try:
        return resolve_pretrained(cfg.arch, cfg.pretrained)
    except ValueError as e:
        raise TrainError(str(e)) from None


def _unlabelled_batches(cfg: TrainConfig, schema, mean, std):
    """An endless iterator of augmented batches from the unlabelled folder (its grades are never read)."""
    from engine.data.manifest import load_dataset
    from engine.evaluation import make_loader

    records = load_dataset(cfg.unlabelled, schema=schema).records
    loader = make_loader(records, schema, cfg.image_size, mean, std, True, cfg.batch_size, cfg.seed + 1, cfg.augment,
                         crop=cfg.crop)

    def endless():
        while True:
            yield from loader

    return endless()


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
    from engine.distill import DistillLoss, FeatureKD, LogitKD, TaskLoss, map_terms

    mins = [s.minimum for s in schema.sublabels]
    sub_weight = cfg.sub_weight if cfg.job != "teacher" else 0.0
    task = TaskLoss(ordinal=cfg.ordinal, sub_weight=sub_weight, sublabel_mins=mins)
    if cfg.job != "kd":
        return task
    extras = [FeatureKD(student_dim, teacher_dim, weight=cfg.feature_kd)] if cfg.feature_kd > 0 else []
    extras += map_terms(student_dim, teacher_model, cfg.token_kd, cfg.attn_kd, cfg.token_kd_kind)
    return DistillLoss(LogitKD(temperature=cfg.kd_temperature, alpha=cfg.kd_alpha, task=task), extras)


def _optimiser(cfg: TrainConfig, model: torch.nn.Module, loss_fn) -> torch.optim.Optimizer:
    params = list(model.parameters()) + (list(loss_fn.parameters()) if isinstance(loss_fn, torch.nn.Module) else [])
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)


def _resume(run: _Run) -> None:
    """With --resume and a checkpoint: weights, optimiser, RNG and the best-so-far from the last finished epoch."""
    from engine.checkpoint import load_checkpoint

    ckpt = run.out / "checkpoint"
    if not run.cfg.resume:  # the run folder refused a --resume with nothing to resume from
        return
    state = load_checkpoint(ckpt, run.model, run.opt, run.aux)
    run.start_epoch, run.best, run.best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
    run.best_loss = state.get("best_loss", math.inf)
    run.plateau_scale, run.last_cut = state.get("plateau_scale", 1.0), state.get("last_cut", 0)
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))


# ---- one epoch ---------------------------------------------------------------------------------------------
def _train_epoch(run: _Run, epoch: int, cancel: CancelToken, progress: ProgressCallback) -> None:
    """Train one epoch, validate, keep the weights if they are the best so far, checkpoint, log the epoch."""
    from engine import distributed

    cfg, steps = run.cfg, len(run.train_loader)
    distributed.set_epoch(run.train_loader, epoch)
    total, warmup = cfg.epochs * steps, int(cfg.warmup_epochs * steps)
    t0, cpu0, seen, loss_sum, last_report = time.perf_counter(), time.process_time(), 0, 0.0, time.perf_counter()
    run.model.train()
    for i, batch in enumerate(run.train_loader):
        cancel.raise_if_cancelled()
        for g in run.opt.param_groups:
            g["lr"] = cfg.lr * lr_factor((epoch - 1) * steps + i, warmup, total, cfg.lr_schedule, run.plateau_scale)
        loss = _step(run, batch)
        n = batch["image"].shape[0]
        seen, loss_sum = seen + n, loss_sum + loss * n
        if time.perf_counter() - last_report > 1.0:
            last_report = time.perf_counter()
            progress(BatchEvent(epoch=epoch, step=i + 1, steps=steps, loss=loss))
    train_seconds = time.perf_counter() - t0
    seen, loss_sum = distributed.all_sum(run.world, [seen, loss_sum])  # the whole job's, not this rank's
    preds = distributed.predict_split(run.world, run.model, run.role, run.val_loader, run.device)
    m = preds.metrics()
    if m["qwk"] > run.best or (m["qwk"] == run.best and preds.loss < run.best_loss):
        run.best, run.best_epoch, run.best_loss = m["qwk"], epoch, preds.loss
        if run.world.main:
            _save_weights(run.model, run.best_path)
    if cfg.lr_schedule == "plateau":
        run.plateau_scale, run.last_cut = plateau_step(epoch, run.best_epoch, run.last_cut, cfg.patience,
                                                       run.plateau_scale)
    if run.world.main:
        _checkpoint(run, epoch)
    run.log(EpochEvent(
        epoch=epoch, epochs=cfg.epochs, train_loss=loss_sum / max(seen, 1), val_loss=preds.loss, val_acc=m["acc"],
        val_qwk=m["qwk"], val_mae=m["mae"], lr=run.opt.param_groups[0]["lr"], seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - cpu0, images_per_s=seen / max(train_seconds, 1e-9), best_epoch=run.best_epoch,
    ))


def _step(run: _Run, batch: dict) -> float:
    """One optimiser step on one batch; returns its loss."""
    from engine.distill import forward_with_map
    from engine.evaluation import forward_batch

    cfg, device = run.cfg, run.device
    with run.precision.autocast():
        if cfg.job == "kd" and (cfg.token_kd > 0 or cfg.attn_kd > 0):
            out_s = forward_with_map(run.model, batch["image"].to(device, memory_format=_memory_format(cfg)))
        else:
            out_s = forward_batch(run.net, run.role, batch, device, channels_last=cfg.channels_last)
        if run.teacher is not None:
            losses = run.loss_fn(out_s, _teacher_out(run, batch), _to(batch, device))
            if run.unlabelled is not None:
                losses = _add_unlabelled(run, losses)
        else:
            losses = run.loss_fn(out_s, _to(batch, device))
    run.opt.zero_grad(set_to_none=True)
    run.precision.backward_step(losses["loss"], run.opt)
    return float(losses["loss"].detach())


def _teacher_out(run: _Run, batch: dict) -> dict:
    """The frozen teacher on the student's augmented batch, resized to the teacher's input size when one teacher."""
    images = batch["image"].to(run.device, memory_format=torch.channels_last)
    if images.shape[-1] != run.tcard.image_size and not run.cfg.extra_teachers:
        images = F.interpolate(images, size=run.tcard.image_size, mode="bilinear", align_corners=False)
    return run.teacher(images, batch["sublabels"].to(run.device), batch["sub_mask"].to(run.device))


def _add_unlabelled(run: _Run, losses: dict) -> dict:
    """losses + alpha * KD on one unlabelled batch: the teacher's soft targets are its only label."""
    from engine.evaluation import forward_batch

    batch = next(run.unlabelled)
    out_s = forward_batch(run.model, run.role, batch, run.device)
    kd = run.loss_fn.logit.kd_loss(out_s["logits"], _teacher_out(run, batch))
    return {**losses, "loss": losses["loss"] + run.cfg.kd_alpha * kd, "unlabelled_kd": kd}


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, safetensors.torch.save(state))


def _checkpoint(run: _Run, epoch: int) -> None:
    from engine.checkpoint import save_checkpoint

    save_checkpoint(run.out / "checkpoint", run.model, run.opt, {
        "epoch": epoch, "best": run.best, "best_epoch": run.best_epoch, "best_loss": run.best_loss,
        "plateau_scale": run.plateau_scale, "last_cut": run.last_cut,
        "torch_rng": torch.get_rng_state().tolist(), "config": asdict(run.cfg),
    }, run.aux)


# ---- writing the bundle ------------------------------------------------------------------------------------
def _write_bundle(run: _Run):
    """The best weights, calibrated on validation, scored on test, saved as RUNDIR/bundle; (metrics, card)."""
    from engine.bundle import ModelCard, save_bundle
    from engine.data.manifest import dataset_fingerprint
    from engine.evaluation import make_loader, predict_loader
    from engine.metrics import fit_temperature

    cfg, model, schema = run.cfg, run.model, run.manifest.schema
    try:
        model.load_state_dict(safetensors.torch.load_file(str(run.best_path)))
    except (safetensors.SafetensorError, OSError) as e:
        raise TrainError(f"the best weights {run.best_path} could not be read back ({e}); the disk may be full or "
                         "failing; the checkpoint is kept, so --resume can continue once it is fixed") from None
    val_preds = predict_loader(model, run.role, run.val_loader, run.device)
    temperature = fit_temperature(val_preds.logits, val_preds.grades)
    metrics = {"val": val_preds.metrics(temperature)}
    crop = dict(crop=cfg.crop, lenses=run.lenses)
    if run.parts["test"]:
        test_loader = make_loader(run.parts["test"], schema, cfg.image_size, *run.mean_std, False, cfg.batch_size,
                                  **crop)
        metrics["test"] = predict_loader(model, run.role, test_loader, run.device).metrics(temperature)
    ood, ood_notes = _fit_ood(run, **crop)
    tcard = run.tcard
    card = ModelCard(
        role=run.role, name=cfg.name or _default_name(cfg), arch=model.arch,
        arch_config=model.config, image_size=cfg.image_size, mean=list(run.mean_std[0]), std=list(run.mean_std[1]),
        grades=list(schema.grade_names), schema=schema.to_dict(),
        fusion=cfg.fusion if run.role == "teacher" else None,
        teacher={"name": tcard.name, "model_id": tcard.model_id} if tcard else None,
        data_fingerprint=dataset_fingerprint(run.manifest), seed=cfg.seed, epochs=run.best_epoch,
        metrics=metrics, calibration_temperature=temperature, notice=cfg.notice, crop=cfg.crop,
        crop_margin=LENS_MARGIN if cfg.crop == LENS else None,
        extra={"job": cfg.job, "split": {"seed": cfg.split_seed, "val_frac": cfg.val_frac, "test_frac": cfg.test_frac},
               "train_config": {k: v for k, v in asdict(cfg).items() if k not in ("dataset", "out")},
               **({"lens_finder": run.lens_notes} if run.lens_notes else {}), "ood": ood_notes,
               "initial_weights": run.init.provenance,
               **run.teacher_notes, **cfg.extra},
    )
    return metrics, save_bundle(run.out / "bundle", model.cpu(), card, ood=ood)


def _fit_ood(run: _Run, **crop):
    """The best weights' out-of-distribution statistics over the training split, seen as grading sees it."""
    from engine.evaluation import make_loader
    from engine.train_gate import fit_ood

    cfg = run.cfg
    loader = make_loader(run.parts["train"], run.manifest.schema, cfg.image_size, *run.mean_std, False,
                         cfg.batch_size, **crop)
    return fit_ood(run.model, loader, run.device)


def _default_name(cfg: TrainConfig) -> str:
    """A readable model name for lists and status bars; the model id tells versions apart."""
    fusion = "image" if cfg.fusion == "none" else cfg.fusion
    kind = {"teacher": f"{fusion}-teacher", "student": "student", "kd": "distilled-student"}[cfg.job]
    return f"{kind}-{cfg.arch}-{cfg.image_size}px"


def _to(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
