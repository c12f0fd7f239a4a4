"""The fault-injection cases of issue #17, one function each, shared by tests/test_faults.py and
benchmarks/fault_injection.py (which also runs them against another checkout, for a before/after table).

A case does one hostile or unlucky thing and returns what happened in one line. `outcome()`
turns a refusal into "refused: <sentence>", a crash into "CRASH <type>: ...", and a missing
API (an older checkout) into "n/a". Cases marked long are benchmark-only (big files, real
training runs, real SIGKILLs).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import forge

TESTS = Path(__file__).resolve().parent


def _engine_root() -> Path:
    """The checkout whose engine this process imported (a child process must run that one, too)."""
    import engine

    return Path(engine.__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    family: str
    name: str  # what was tried
    run: Callable[[Ctx], str]
    expect: str  # a piece of the outcome this code must give
    long: bool = False


class Ctx:
    """A scratch folder per case, plus a tiny dataset and bundle built once and copied."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dataset: Path | None = None
        self._bundle: Path | None = None
        self.n = 0

    def tmp(self) -> Path:
        self.n += 1
        path = self.root / f"case{self.n}"
        path.mkdir(parents=True)
        return path

    def dataset(self) -> Path:
        if self._dataset is None:
            from engine.synth.sheet import write_dataset

            self._dataset = write_dataset(self.root / "data", n=16, seed=3, image_size=48, balanced=True)
        return shutil.copytree(self._dataset, self.tmp() / "data")

    def bundle(self) -> Path:
        if self._bundle is None:
            self._bundle = _tiny_bundle(self.root / "bundle")
        return shutil.copytree(self._bundle, self.tmp() / "bundle")


def _tiny_bundle(path: Path) -> Path:
    import torch

    from engine.bundle import ModelCard, save_bundle
    from engine.models import create_model
    from engine.schema import DEFAULT_SCHEMA

    torch.manual_seed(0)
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    model = create_model("student", backbone="resnet18", sublabel_ranges=ranges, image_size=64)
    card = ModelCard(role="student", name="fault-student", arch=model.arch, arch_config=model.config, image_size=64,
                     grades=list(DEFAULT_SCHEMA.grade_names), schema=DEFAULT_SCHEMA.to_dict(), metrics={})
    save_bundle(path, model, card)
    return path


def outcome(case: Case, ctx: Ctx) -> str:
    """Run a case; every way it can end, as one line."""
    try:
        return case.run(ctx)
    except (ImportError, AttributeError) as e:
        if "has no attribute" in str(e) or isinstance(e, ImportError):
            return f"n/a ({type(e).__name__}: {e})"
        return f"CRASH {type(e).__name__}: {e}"
    except ValueError as e:
        return f"refused: {_one_line(e)}"
    except BaseException as e:  # noqa: BLE001  (a crash is an outcome to report, not to hide)
        if isinstance(e, KeyboardInterrupt):
            raise
        return f"CRASH {type(e).__name__}: {_one_line(e)}"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 400 else text[:397] + "..."


# ---- 1 decompression bombs -------------------------------------------------------------------


def _decode(data: bytes, name: str) -> str:
    from engine.io import read_image_bytes

    img = read_image_bytes(data, name)
    return f"decoded {img.shape[1]}x{img.shape[0]}"


def tiff_width_twice(ctx: Ctx, side: int = 20000) -> str:
    if side > 5000:  # the real bomb: a ~390 KB deflated TIFF of side x side pixels
        return _decode(forge.tiff_bomb(side), "bomb.tif")
    page = forge.gray_page(20000, 20000, 64, compression=8) + [(256, forge.LONG, [10]), (257, forge.LONG, [10])]
    return _decode(forge.tiff([page], [bytes(64)]), "bomb.tif")


def tiff_size_in_signed_type(ctx: Ctx) -> str:
    size = [(256, forge.SSHORT, [30000]), (257, forge.SSHORT, [30000])]
    return _decode(forge.tiff([forge.gray_page(30000, 30000, 64, width_entries=size)], [bytes(64)]), "x.tif")


def tiff_huge_second_page(ctx: Ctx) -> str:
    pages = [forge.gray_page(8, 8, 64), forge.gray_page(20000, 20000, 64, compression=8)]
    return _decode(forge.tiff(pages, [bytes(64), bytes(64)]), "x.tif")


def tiff_huge_tiles(ctx: Ctx) -> str:
    page = [e for e in forge.gray_page(16, 16, 64) if e[0] not in (273, 278, 279)]
    page += [(322, forge.LONG, [15000]), (323, forge.LONG, [15000]), (324, forge.LONG, [8]), (325, forge.LONG, [64])]
    return _decode(forge.tiff([page]), "x.tif")


def tiff_tall_strips(ctx: Ctx) -> str:
    return _decode(forge.tiff([forge.gray_page(10000, 1, 64, rows=20000)], [bytes(64)]), "x.tif")


def jpeg_two_frames(ctx: Ctx) -> str:
    import cv2
    import numpy as np

    data = cv2.imencode(".jpg", np.full((20, 40, 3), 99, np.uint8))[1].tobytes()
    sof = data.find(b"\xff\xc0")
    seg = data[sof : sof + 2 + int.from_bytes(data[sof + 2 : sof + 4], "big")]
    return _decode(data[:sof] + seg.replace(b"\x00\x14\x00\x28", b"\x7f\xff\x7f\xff", 1) + data[sof:], "x.jpg")


def misled_header_check(ctx: Ctx) -> str:
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import engine, forge, engine.io as eio\n"
            "from engine.imageheader import Header\n"
            "eio.read_header = lambda data, mp: Header('TIFF', 10, 10)\n"
            "page = forge.gray_page(20000, 20000, 64, compression=8)\n"
            "try:\n    print(eio.read_image_bytes(forge.tiff([page], [bytes(64)]), 'bomb.tif').shape)\n"
            "except ValueError as e:\n    print('refused:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=_engine_root())
    if "ModuleNotFoundError" in proc.stderr:
        return "n/a (no engine.imageheader in this code)"
    return (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1])[:400]


def large_photo_for_the_model(ctx: Ctx, size: tuple[int, int] = (3000, 4000)) -> str:
    import cv2
    import numpy as np

    path = ctx.tmp() / "big.jpg"
    img = cv2.resize(np.random.default_rng(0).integers(0, 255, (48, 36, 3), np.uint8), size)
    assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    from engine.infer import Grader

    grader = Grader(ctx.bundle(), device="cpu")
    import engine.io as eio

    if hasattr(eio, "read_image_reduced"):
        decoded = eio.read_image_reduced(path, eio.min_side_for(64))
        seen = f"decoded at {decoded.rgb.shape[1]}x{decoded.rgb.shape[0]} for the model"
    else:
        seen = "decoded at full size for the model"
    result = grader.grade(path)
    return f"{seen}; heat map {result.cam.shape[1]}x{result.cam.shape[0]}"


# ---- 2 killed training runs ------------------------------------------------------------------


def _linear():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def _save(folder: Path, epoch: int) -> None:
    from engine.checkpoint import save_checkpoint

    model, opt = _linear()
    save_checkpoint(folder, model, opt, {"epoch": epoch, "config": {"job": "student"}})


def _resume(folder: Path) -> str:
    import engine.checkpoint
    from engine.checkpoint import load_checkpoint

    if not folder.exists() and not hasattr(engine.checkpoint, "recover_checkpoint"):
        # This code's run_training resumes only `if cfg.resume and ckpt_dir.exists()`.
        return "no checkpoint/ on disk, so train --resume starts again at epoch 1, silently"
    model, opt = _linear()
    return f"resumes after epoch {load_checkpoint(folder, model, opt)['epoch']}"


def kill_at_step(step: str) -> Callable[[Ctx], str]:
    def run(ctx: Ctx) -> str:
        from engine.fsutil import InjectedKill, inject_faults, kill_at

        ckpt = ctx.tmp() / "checkpoint"
        _save(ckpt, 1)
        try:
            with inject_faults(kill_at(step)):
                _save(ckpt, 2)
        except InjectedKill:
            pass
        left = sorted(p.name for p in ckpt.parent.iterdir())
        resumed = _resume(ckpt)
        _save(ckpt, 3)
        after = sorted(p.name for p in ckpt.parent.iterdir())
        return f"killed with {left} on disk; {resumed}; next save leaves {after}"

    return run


def checkpoint_old_left_behind(ctx: Ctx) -> str:
    """What a kill during the old cleanup left: a half-deleted checkpoint.old beside a good checkpoint."""
    ckpt = ctx.tmp() / "checkpoint"
    _save(ckpt, 1)
    (ckpt.parent / "checkpoint.old").mkdir()
    (ckpt.parent / "checkpoint.old" / "extra.safetensors").write_bytes(b"half")
    _save(ckpt, 2)
    return f"{_resume(ckpt)}; folder holds {sorted(p.name for p in ckpt.parent.iterdir())}"


def killed_between_renames(ctx: Ctx) -> str:
    """What a kill between the two renames left: checkpoint.old (epoch 1) and the complete new temp (epoch 2)."""
    ckpt = ctx.tmp() / "checkpoint"
    _save(ckpt, 1)
    _save(ckpt.parent / "new", 2)
    os.replace(ckpt, ckpt.parent / "checkpoint.old")
    os.replace(ckpt.parent / "new", ckpt.parent / ".checkpoint.k1ll3d.tmp")
    return _resume(ckpt)


def fresh_job_over_foreign_checkpoint(ctx: Ctx, epochs: int = 0) -> str:
    from engine.train import TrainConfig, run_training

    out = ctx.tmp() / "out"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "notes.txt").write_text("someone else's")
    data = ctx.dataset() if epochs else ctx.tmp() / "no-dataset"
    cfg = TrainConfig(job="student", dataset=str(data), out=str(out), epochs=max(epochs, 1), image_size=32,
                      batch_size=16, device="cpu")
    try:
        run_training(cfg)
    finally:
        kept = (out / "checkpoint" / "notes.txt").exists()
    return f"trained; the foreign checkpoint/ was {'kept' if kept else 'deleted'}"


def temps_of_killed_writes(ctx: Ctx) -> str:
    from engine.train import TrainConfig, run_training

    out = ctx.tmp() / "out"
    for name in (".checkpoint.a1b2c3.tmp", ".bundle.d4e5f6.tmp"):
        (out / name).mkdir(parents=True)
    (out / "best.tmp").write_bytes(b"half")
    (out / "log.jsonl").write_text("")
    (out / "run.json").write_text(json.dumps({"format": "cataract-grader-run", "job": "student"}))
    cfg = TrainConfig(job="student", dataset=str(ctx.tmp() / "no-dataset"), out=str(out), epochs=1, device="cpu")
    try:
        run_training(cfg)
    except ValueError:
        pass  # the dataset is missing on purpose: only what the job does to its folder first matters
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
    return f"leftover temp files after the next start: {left or 'none'}"


def resume_with_nothing_to_resume(ctx: Ctx) -> str:
    from engine.train import TrainConfig, run_training

    cfg = TrainConfig(job="student", dataset=str(ctx.dataset()), out=str(ctx.tmp() / "out"), epochs=1, image_size=32,
                      batch_size=16, device="cpu", resume=True)
    result = run_training(cfg)
    return f"--resume trained from epoch 1 to epoch {result.best_epoch} without saying so"


def train_killed_by_sigkill(step: str, nth: int = 1) -> Callable[[Ctx], str]:
    """Long: a real `cataract-grade train` process SIGKILLed at a write step, then `--resume`."""

    def run(ctx: Ctx) -> str:
        import engine.fsutil

        if not hasattr(engine.fsutil, "write_step"):
            return "n/a (no fault hook in this code)"
        data, out = ctx.dataset(), ctx.tmp() / "run"
        cmd = [sys.executable, "-m", "engine", "train", "student", str(data), "--out", str(out), "--epochs", "3",
               "--image-size", "32", "--batch-size", "16", "--device", "cpu", "--progress", "json"]
        env = {**os.environ, "CATARACT_GRADER_FAULT": f"{step}@{nth}:kill"}
        first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=_engine_root())
        killed = "SIGKILLed" if first.returncode == -9 else f"exit {first.returncode} (step never reached)"
        second = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=1200,
                                cwd=_engine_root())
        events = [json.loads(x) for x in second.stdout.splitlines() if x.startswith("{")]
        start = next((e.get("start_epoch") for e in events if e.get("event") == "start"), None)
        if second.returncode == 0:
            return f"{killed}; --resume started at epoch {start} and wrote the bundle"
        error = next((e["message"] for e in events if e.get("event") == "error"), second.stderr.strip()[-300:])
        return f"{killed}; --resume exit {second.returncode}: {error}"

    return run


# ---- 3 the model store -----------------------------------------------------------------------


def _forge_weights(bundle: Path, data: bytes) -> None:
    (bundle / "model.safetensors").write_bytes(data)
    card = json.loads((bundle / "card.json").read_text())
    card["model_id"] = hashlib.sha256(data).hexdigest()[:16]
    (bundle / "card.json").write_text(json.dumps(card))


def _store(ctx: Ctx):
    from engine.model_store import ModelStore

    return ModelStore(ctx.tmp() / "store", defaults={"student": ctx.root / "none-s", "teacher": ctx.root / "none-t"})


def _promote(ctx: Ctx, bundle: Path) -> str:
    card = _store(ctx).promote(bundle)
    return f"promoted {card.name} as the active {card.role}"


def promote_pickle(ctx: Ctx) -> str:
    bundle = ctx.bundle()
    _forge_weights(bundle, pickle.dumps({"weights": [1, 2, 3]}))
    return _promote(ctx, bundle)


def promote_nan_weights(ctx: Ctx) -> str:
    import safetensors.torch

    bundle = ctx.bundle()
    tensors = safetensors.torch.load_file(str(bundle / "model.safetensors"))
    tensors["head.weight"].fill_(float("nan"))
    _forge_weights(bundle, safetensors.torch.save(tensors))
    return _promote(ctx, bundle)


def _edit_card(bundle: Path, **changes) -> None:
    card = json.loads((bundle / "card.json").read_text())
    card.update(changes)
    (bundle / "card.json").write_text(json.dumps(card))


def huge_backbone_card(ctx: Ctx) -> str:
    from engine.bundle import load_bundle

    bundle = ctx.bundle()
    card = json.loads((bundle / "card.json").read_text())
    card["arch_config"]["backbone"] = "convnext_xxlarge"
    (bundle / "card.json").write_text(json.dumps(card))
    load_bundle(bundle)
    return "loaded"


def _listing(ctx: Ctx, damage: Callable[[Path], None]) -> str:
    store = _store(ctx)
    for name, hurt in (("bad", True), ("good", False)):
        bundle = store.new_run_dir(name) / "bundle"
        shutil.copytree(ctx.bundle(), bundle)
        if hurt:
            damage(bundle)
    from engine.cli import main

    code = main(["models", "list", "--store", str(store.root)])
    return f"models list exit {code}, {len(store.list_bundles())} bundle(s) listed"


def list_with_a_card_name_not_text(ctx: Ctx) -> str:
    return _listing(ctx, lambda b: _edit_card(b, name=5))


def list_with_a_deeply_nested_card(ctx: Ctx) -> str:
    return _listing(ctx, lambda b: (b / "card.json").write_text(forge.nested_json(200_000)))


def padded_weights(ctx: Ctx) -> str:
    from engine.bundle import load_bundle

    bundle = ctx.bundle()
    _forge_weights(bundle, (bundle / "model.safetensors").read_bytes() + bytes(4096))
    load_bundle(bundle)
    return "loaded"


def promote_with_a_full_disk(ctx: Ctx) -> str:
    import engine.model_store as ms

    store, source = _store(ctx), ctx.bundle()
    real = ms.shutil.copytree

    def full(src, dst, **kw):
        Path(dst).mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    ms.shutil.copytree = full
    try:
        try:
            store.promote(source)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001
            left = list(store.runs_dir.iterdir()) if store.runs_dir.exists() else []
            return f"CRASH {type(e).__name__}: {e}; {len(left)} half-made run folder(s) left in the store"
    finally:
        ms.shutil.copytree = real
    return "promoted"


# ---- 6, 8, 9 ---------------------------------------------------------------------------------


def truncated_test_image(ctx: Ctx, epochs: int = 1) -> str:
    from engine.data.dataset import split_records
    from engine.data.manifest import load_dataset
    from engine.train import TrainConfig, run_training

    data = ctx.dataset()
    victim = split_records(load_dataset(data).records, val_frac=0.15, test_frac=0.3, seed=1)["test"][0]
    raw = victim.image.read_bytes()
    victim.image.write_bytes(raw[: len(raw) // 2])
    events: list[dict] = []
    cfg = TrainConfig(job="student", dataset=str(data), out=str(ctx.tmp() / "run"), epochs=epochs, image_size=32,
                      batch_size=16, device="cpu", test_frac=0.3, split_seed=1)
    try:
        run_training(cfg, progress=events.append)
    except ValueError as e:
        done = sum(getattr(e2, "kind", None) == "epoch" or (isinstance(e2, dict) and e2.get("event") == "epoch")
                   for e2 in events)
        raise ValueError(f"after {done} epoch(s): {e}") from None
    return "trained and wrote a bundle"


def _labels(ctx: Ctx, cells: list[str]) -> str:
    from engine.data.manifest import validate_dataset
    from engine.schema import DEFAULT_SCHEMA

    root = ctx.tmp()
    import cv2
    import numpy as np

    header = ",".join(["image", "grade", *DEFAULT_SCHEMA.names])
    rows = []
    for i, grade in enumerate(cells):
        cv2.imwrite(str(root / f"{i}.png"), np.full((8, 8, 3), 90, np.uint8))
        rows.append(f"{i}.png,{grade},1,1,1,1,1,1")
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    report = validate_dataset(root, check_images=False)
    accepted = ", ".join(f"{cells[int(r.rel_path[:-4])]!r} as {r.grade}" for r in report.records) or "none"
    refused = "; ".join(str(p) for p in report.problems[:3]) or "nothing"
    return f"rows accepted: {accepted}; refused: {refused}"


def lenient_grades(ctx: Ctx) -> str:
    return _labels(ctx, ["0_7", "٧", "3_0"])


def unterminated_quote(ctx: Ctx) -> str:
    return _labels(ctx, ["1", '"2', "3", "4", "5"])


def card_image_size_100000(ctx: Ctx) -> str:
    from engine.bundle import read_card

    bundle = ctx.bundle()
    card = json.loads((bundle / "card.json").read_text())
    card["image_size"] = card["arch_config"]["image_size"] = 100000
    (bundle / "card.json").write_text(json.dumps(card))
    size = read_card(bundle).image_size
    return f"card read: the model would take {size}x{size} px inputs"


# ---- the table ---------------------------------------------------------------------------------

B, K, S, D, N, H = ("1 decompression bombs", "2 killed training runs", "3 model store", "6 undecoded images",
                    "8 lenient numbers", "9 hostile sizes")
STEPS = ["checkpoint.started", "checkpoint.model-written", "checkpoint.extra-written", "checkpoint.state-written",
         "checkpoint.old-moved", "checkpoint.new-moved", "checkpoint.old-removing"]

CASES: list[Case] = [
    Case(B, "TIFF gives width/height twice (20000 first, 10 last)", tiff_width_twice, "gives its width twice"),
    Case(B, "real 390 KB deflated TIFF bomb, 20000x20000, width twice", lambda c: tiff_width_twice(c, 20000),
         "gives its width twice", long=True),
    Case(B, "TIFF size 30000x30000 in a signed type", tiff_size_in_signed_type, "unreadable type"),
    Case(B, "TIFF page 2 is 20000x20000", tiff_huge_second_page, "page 2 20000x20000"),
    Case(B, "TIFF 16x16 image with 15000x15000 tiles", tiff_huge_tiles, "far larger than the 16x16 image"),
    Case(B, "TIFF 10000x1 image with 20000-row strips", tiff_tall_strips, "far larger than the 10000x1 image"),
    Case(B, "JPEG with two frame headers", jpeg_two_frames, "two frame headers"),
    Case(B, "header check misled: OpenCV's own limit", misled_header_check, "more than the limit of 80,000,000"),
    Case(B, "4000x3000 JPEG graded with a heat map", large_photo_for_the_model, "decoded at 1500x2000 for the model; "
         "heat map 3000x4000"),
]
CASES += [Case(K, f"checkpoint write killed at {s}", kill_at_step(s), "resumes after epoch "
               + ("2" if STEPS.index(s) >= 3 else "1") + "; next save leaves ['checkpoint']") for s in STEPS]
CASES += [
    Case(K, "half-deleted checkpoint.old beside the checkpoint", checkpoint_old_left_behind,
         "resumes after epoch 2; folder holds ['checkpoint']"),
    Case(K, "killed between the renames (old + complete new temp)", killed_between_renames, "resumes after epoch 2"),
    Case(K, "train --out over a checkpoint/ it did not create", fresh_job_over_foreign_checkpoint,
         "which no job of this app made there"),
    Case(K, "same, with a real epoch of training", lambda c: fresh_job_over_foreign_checkpoint(c, 1),
         "which no job of this app made there", long=True),
    Case(K, "temp folders of killed writes, next start", temps_of_killed_writes, "after the next start: none"),
    Case(K, "--resume with no checkpoint", resume_with_nothing_to_resume, "no checkpoint in"),
]
CASES += [Case(K, f"real SIGKILL of `train --epochs 3` at {s} #{n}", train_killed_by_sigkill(s, n), expect, long=True)
          for s, n, expect in [
              ("checkpoint.model-written", 2, "--resume started at epoch 2 "),  # epoch 2's write: epoch 1 kept
              ("checkpoint.state-written", 2, "--resume started at epoch 3 "),  # epoch 2 complete, not yet swapped
              ("checkpoint.old-moved", 1, "--resume started at epoch 3 "),  # the first save has nothing to move
              ("checkpoint.new-moved", 2, "--resume started at epoch 3 "),
              ("checkpoint.old-removing", 1, "--resume started at epoch 3 "),
              ("bundle.files-written", 1, "--resume started at epoch 4 and wrote the bundle"),
              ("atomic.written", 1, "there is no checkpoint in"),  # run.json, before any epoch
          ]]
CASES += [
    Case(S, "promote a pickle named model.safetensors", promote_pickle, "not a safetensors file"),
    Case(S, "promote NaN weights", promote_nan_weights, "holds NaN or infinite weights"),
    Case(S, "card names convnext_xxlarge (3.4 GB) over ResNet-18 weights", huge_backbone_card,
         "does not fit a student model"),
    Case(S, "weights file padded past its header", padded_weights, "cut off or padded"),
    Case(S, "models list with a card whose name is 5", list_with_a_card_name_not_text,
         "models list exit 0, 1 bundle(s) listed"),
    Case(S, "models list with card.json nested 200,000 deep", list_with_a_deeply_nested_card,
         "models list exit 0, 1 bundle(s) listed"),
    Case(S, "promote a bundle from outside onto a full disk", promote_with_a_full_disk,
         "could not be copied into the store (No space left on device); nothing was changed"),
    Case(D, "truncated image in the test split", truncated_test_image, "after 0 epoch(s):"),
    Case(D, "same, 3 epochs", lambda c: truncated_test_image(c, 3), "after 0 epoch(s):", long=True),
    Case(N, "grades 0_7, ٧ and 3_0 in labels.csv", lenient_grades, "rows accepted: none; refused: labels.csv:2: "
         "grade '0_7' is not an integer"),
    Case(N, "unterminated quote on line 3 of labels.csv", unterminated_quote,
         "rows accepted: '1' as 1; refused: labels.csv:3: a quote opens a cell on this line and is never closed"),
    Case(H, "card with image_size 100000", card_image_size_100000, "must be an integer within 16-1024"),
]

RESULTS: list[tuple[str, str, str]] = []  # (family, case, outcome) of the cases run in this process, for the summary
