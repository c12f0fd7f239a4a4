"""Data-parallel training and sharded grading with torch.distributed, as torchrun starts them.

`torchrun --standalone --nproc-per-node N -m engine train ...` starts N copies of the same
job; each joins the process group (gloo on CPU, nccl on CUDA), trains on its share of every
global batch (a DistributedSampler, re-shuffled each epoch by set_epoch) with the gradients
averaged by DistributedDataParallel, and scores its share of the validation split; the
shares are gathered so every rank sees the metrics of the whole split and takes the same
decisions (best epoch, early stop). Rank 0 alone writes the run folder, the log, the
checkpoints and the bundle. `--batch-size` stays the global batch, so a run on N processes
takes the same steps as one process given the same sample order. `launch` is the `--nproc N`
shortcut: it starts torchrun as a child process and relays rank 0's JSON events.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from engine.errors import EngineError

TIMEOUT = timedelta(minutes=30)  # a collective that waits longer than this means another rank died


class DistributedError(EngineError):
    """A distributed job that cannot start or go on, with the reason in one sentence."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank `rank` of `size` processes, GPU `local_rank` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (even as its only process): training then uses its sampler

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = World()


def launched() -> bool:
    """True inside a process that torchrun (or another torch.distributed launcher) started."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def env_world() -> World:
    """The world torchrun describes in the environment (one process when not launched)."""
    if not launched():
        return SINGLE
    try:
        return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")),
                     launched=True)
    except ValueError:
        raise DistributedError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None


def max_processes() -> int:
    """How many processes a data-parallel job could use here: the GPUs, else the CPU cores."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpus if gpus > 1 else max(1, os.cpu_count() or 1)


def join(device: torch.device, backend: str | None = None) -> World:
    """Join torchrun's process group (nccl for CUDA, gloo otherwise); the single world when not launched."""
    world = env_world()
    if not world.enabled:
        return world
    if not dist.is_available():
        raise DistributedError("this build of torch has no torch.distributed")
    if not dist.is_initialized():
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend, timeout=TIMEOUT)
    return world


def rank_device(device: torch.device, world: World) -> torch.device:
    """This rank's own GPU (cuda:LOCAL_RANK) for a CUDA job; the device unchanged otherwise."""
    if device.type != "cuda" or not world.enabled:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise DistributedError(f"rank {world.rank} wants GPU {world.local_rank}, but this machine has "
                               f"{torch.cuda.device_count()}; start at most that many processes per node")
    torch.cuda.set_device(world.local_rank)
    return torch.device("cuda", world.local_rank)


def leave() -> None:
    """Leave the process group (at the end of a job, or after its failure)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()


def gather_json(world: World, obj) -> list:
    """Every rank's JSON-able `obj`, in rank order ([obj] in a single process); sent as JSON bytes, never pickled."""
    if not world.enabled:
        return [obj]
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    data = torch.tensor(list(json.dumps(obj).encode("utf-8")), dtype=torch.uint8, device=dev)
    sizes = [torch.zeros(1, dtype=torch.int64, device=dev) for _ in range(world.size)]
    dist.all_gather(sizes, torch.tensor([data.numel()], dtype=torch.int64, device=dev))
    top = max(int(s.item()) for s in sizes)
    padded = torch.zeros(top, dtype=torch.uint8, device=dev)
    padded[: data.numel()] = data
    bufs = [torch.zeros(top, dtype=torch.uint8, device=dev) for _ in range(world.size)]
    dist.all_gather(bufs, padded)
    return [json.loads(bytes(b[: int(s.item())].cpu().tolist()).decode("utf-8")) for b, s in zip(bufs, sizes)]


def all_sum(world: World, values: Sequence[float]) -> list[float]:
    """Element-wise sums over ranks, in float64 and rank order, so every rank gets the very same totals."""
    if not world.enabled:
        return list(values)
    return [float(v) for v in np.sum(np.array(gather_json(world, [float(v) for v in values]), np.float64), axis=0)]


def seed_rank(world: World, seed: int, epoch: int) -> None:
    """Ranks above 0 draw augmentation from streams of their own (rank 0 keeps the one-process stream)."""
    if world.rank:
        s = seed + 7919 * world.rank + epoch
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)


def load_lenses(manifest, table, run_dir) -> None:
    """Fill a rank's LensTable from the cache rank 0 wrote (the dataset folder's, else the run folder's)."""
    from engine.data.lenses import CACHE_FILE

    root, records = Path(manifest.root), list(manifest.records)
    for f in (root / CACHE_FILE, Path(run_dir) / CACHE_FILE):
        table.load(f, root, records)


# ---- training ----------------------------------------------------------------------------------------------
def check_config(cfg, world: World) -> None:
    """Refuse a job that data-parallel training cannot run exactly, with the reason."""
    from engine.train_config import TrainError

    if not world.enabled:
        return
    if cfg.batch_size % world.size:
        raise TrainError(f"--batch-size {cfg.batch_size} is the global batch and must split evenly over "
                         f"{world.size} processes")
    if cfg.job == "kd" and (cfg.feature_kd > 0 or cfg.token_kd > 0 or cfg.attn_kd > 0 or cfg.unlabelled):
        raise TrainError("feature, token and attention distillation and --unlabelled train parts outside the "
                         "student (or a second forward pass), which data-parallel training does not synchronise yet; "
                         "run them in one process")


def shard_train_loader(world: World, loader, seed: int):
    """The training loader with a DistributedSampler: 1/size of each global batch per rank.

    Under torchrun even one process uses it, so `--nproc-per-node 1` is the one-process run
    whose sample order N processes share (a plain run keeps its own shuffling).
    """
    if not world.launched:
        return loader
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(loader.dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed,
                                 drop_last=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size // world.size, sampler=sampler, drop_last=False)


def set_epoch(loader, epoch: int) -> None:
    """Re-shuffle a DistributedSampler for `epoch` (the same permutation on every rank, a new one per epoch)."""
    from torch.utils.data import DistributedSampler

    if isinstance(getattr(loader, "sampler", None), DistributedSampler):
        loader.sampler.set_epoch(epoch)


def wrap_model(world: World, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DistributedDataParallel around `model` (SyncBatchNorm on CUDA)."""
    if not world.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":  # SyncBatchNorm runs on GPUs only; on CPU each rank normalises its own share
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def predict_split(world: World, model: torch.nn.Module, role: str, loader, device: torch.device):
    """engine.evaluation.predict_loader over the whole split: each rank scores every size-th image, all gather.

    The gathered logits are put back in the split's order, so the metrics equal a single
    process's on every rank (and so do the decisions taken from them).
    """
    from engine.evaluation import Predictions, predict_loader

    if not world.enabled:
        return predict_loader(model, role, loader, device)
    from torch.utils.data import DataLoader, Subset

    n = len(loader.dataset)
    mine = list(range(world.rank, n, world.size))
    part = predict_loader(model, role, DataLoader(Subset(loader.dataset, mine), batch_size=loader.batch_size), device)
    shares = gather_json(world, [mine, part.logits.tolist(), part.grades.tolist(), part.loss * len(mine) if mine else 0.0])
    logits = np.zeros((n, part.logits.shape[1]), np.float32)
    grades = np.zeros((n,), np.int64)
    for idx, lg, gr, _ in shares:
        if idx:  # float32 -> JSON -> float32 is exact, so these are the very logits each rank computed
            logits[idx], grades[idx] = np.array(lg, np.float32), np.array(gr, np.int64)
    loss = float(np.sum([s[3] for s in shares], dtype=np.float64)) / max(n, 1)
    return Predictions(logits, grades, loss if n else float("nan"))


# ---- the --nproc shortcut ----------------------------------------------------------------------------------
def torchrun_command(nproc: int, engine_args: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m engine ARGS` (one node, a free port)."""
    if getattr(sys, "frozen", False):
        raise DistributedError("the packaged app runs a job in one process; start several with torchrun from a "
                               "Python installation (docs/scaling.md)")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "engine", *engine_args]


def child_env() -> dict[str, str]:
    """The workers' environment: unbuffered, one thread each unless told otherwise, no inherited world."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([root, *filter(None, env.get("PYTHONPATH", "").split(
        os.pathsep))]))
    return env
