"""Fault cases on what jobs write: non-finite model outputs (4), failing writes (5), gaps in batch output (7).
Listed in tests/faults.py."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fault_files import engine_root
from fault_store import _forge_weights

if TYPE_CHECKING:
    from faults import Ctx


def _cli(*argv: str) -> tuple[int, str, str]:
    """Run `cataract-grade ARGV` in this process: (exit status, stdout, stderr)."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _last_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    return lines[-1][len("error: "):] if lines else "no error line"


def _errors(err: str) -> str:
    """Every error sentence on stderr (a file's own, then the command's), joined."""
    found = [ln.split("error: ", 1)[1] for ln in err.splitlines() if "error: " in ln]
    return " / ".join(found) or "no error"


def _json_lines(text: str) -> str:
    """Whether every line is strict JSON (NaN and Infinity are not JSON)."""

    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    lines = [ln for ln in text.splitlines() if ln.strip()]
    for n, line in enumerate(lines, 1):
        try:
            json.loads(line, parse_constant=refuse)
        except ValueError as e:
            return f"line {n} of {len(lines)} is not valid JSON ({e})"
    return f"{len(lines)} line(s), all valid JSON"


def _photo(folder: Path, name: str = "eye.png") -> Path:
    import cv2
    import numpy as np

    yy, xx = np.mgrid[:96, :96]
    img = np.zeros((96, 96, 3), np.uint8)
    img[(yy - 48) ** 2 + (xx - 50) ** 2 < 30**2] = (60, 140, 220)
    img[(yy - 40) ** 2 + (xx - 45) ** 2 < 8**2] = (200, 200, 200)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


# ---- 4 non-finite outputs ------------------------------------------------------------------


def _overflowing_bundle(ctx: Ctx) -> Path:
    """Finite weights whose outputs overflow: every grade-head weight 3e38 (loading checks only that they are finite)."""
    import safetensors.torch

    bundle = ctx.bundle()
    tensors = safetensors.torch.load_file(str(bundle / "model.safetensors"))
    tensors["head.weight"].fill_(3e38)
    _forge_weights(bundle, safetensors.torch.save(tensors))
    return bundle


def predict_json_nonfinite(ctx: Ctx) -> str:
    bundle, photo = _overflowing_bundle(ctx), _photo(ctx.tmp())
    code, out, err = _cli("predict", str(photo), "--model", str(bundle), "--json", "--device", "cpu")
    return f"exit {code}; stdout {_json_lines(out)}; {_errors(err)}"


def predict_text_nonfinite(ctx: Ctx) -> str:
    bundle, photo = _overflowing_bundle(ctx), _photo(ctx.tmp())
    code, out, err = _cli("predict", str(photo), "--model", str(bundle), "--device", "cpu")
    return f"exit {code}; " + (f"printed {out.strip()!r}" if out.strip() else _errors(err))


def grade_nonfinite(ctx: Ctx) -> str:
    from engine.infer import Grader

    r = Grader(_overflowing_bundle(ctx), device="cpu").grade(str(_photo(ctx.tmp())))
    return f"graded {r.grade} with confidence {r.confidence}"


def progress_event_nan_loss(ctx: Ctx) -> str:
    from engine.progress import EpochEvent, parse_line

    line = EpochEvent(epoch=1, train_loss=float("nan"), val_loss=float("inf")).to_json()
    verdict = _json_lines(line)
    back = parse_line(line)
    return f"{verdict}; read back as train_loss {getattr(back, 'train_loss', None)}"


# ---- 5 failing writes ----------------------------------------------------------------------


def _batch_dir(ctx: Ctx, n: int) -> Path:
    folder = ctx.tmp() / "visit"
    for i in range(n):
        _photo(folder, f"e{i}.png")
    return folder


def _csv_report(csv_path: Path) -> str:
    partial = csv_path.with_name(csv_path.name + ".partial")
    kept = [f"{p.name} holds {len(p.read_text().splitlines()) - 1} row(s)" for p in (csv_path, partial) if p.exists()]
    return "; ".join(kept) or "no CSV file on disk"


def csv_disk_full(ctx: Ctx) -> str:
    """The disk fills while the third row is written (injected at the CSV writer's row step)."""
    import engine.commands.predict
    from engine.fsutil import inject_faults

    if not hasattr(engine.commands.predict, "_heat_maps"):
        return "n/a (no CSV row step in this code: its CSV is written once, at the end)"

    seen = {"n": 0}

    def full(step: str) -> None:
        if step == "csv.row":
            seen["n"] += 1
            if seen["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")

    folder, csv_path = _batch_dir(ctx, 5), ctx.tmp() / "grades.csv"
    with inject_faults(full):
        code, _out, err = _cli("predict", "--dir", str(folder), "--model", str(ctx.bundle()), "--csv", str(csv_path),
                               "--device", "cpu", "--batch-size", "2")
    return f"exit {code}: {_last_error(err)}; {_csv_report(csv_path)}"


_LIMITED = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of killing
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
from engine.cli import main
sys.exit(main(sys.argv[2:]))
"""


def csv_file_size_limit(ctx: Ctx) -> str:
    """Long: a real process whose files may not grow past 1500 bytes (RLIMIT_FSIZE), as on a full disk."""
    folder, csv_path = _batch_dir(ctx, 8), ctx.tmp() / "grades.csv"
    cmd = [sys.executable, "-c", _LIMITED, "1500", "predict", "--dir", str(folder), "--model", str(ctx.bundle()),
           "--csv", str(csv_path), "--device", "cpu", "--batch-size", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=engine_root())
    tail = _last_error(r.stderr) if "error:" in r.stderr else r.stderr.strip().splitlines()[-1][-200:]
    return f"exit {r.returncode}: {tail}; {_csv_report(csv_path)}"


def csv_killed_midway(ctx: Ctx) -> str:
    """Long: a real `predict --csv` SIGKILLed while it writes the 4th of 6 rows."""
    folder, csv_path = _batch_dir(ctx, 6), ctx.tmp() / "grades.csv"
    cmd = [sys.executable, "-m", "engine", "predict", "--dir", str(folder), "--model", str(ctx.bundle()), "--csv",
           str(csv_path), "--device", "cpu", "--batch-size", "2"]
    env = {**os.environ, "CATARACT_GRADER_FAULT": "csv.row@4:kill"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=engine_root())
    how = "SIGKILLed" if r.returncode == -9 else f"exit {r.returncode} (never killed)"
    return f"{how}; {_csv_report(csv_path)}"


def cam_names_taken_by_folders(ctx: Ctx) -> str:
    """Every heat-map file's path is taken by a folder, so every write fails."""
    folder, cams = _batch_dir(ctx, 2), ctx.tmp() / "cams"
    for i in range(2):  # this code's names and older ones (e0_cam.png)
        for name in (f"e{i}.png_cam.png", f"e{i}_cam.png"):
            (cams / name).mkdir(parents=True)
    code, _out, err = _cli("predict", "--dir", str(folder), "--model", str(ctx.bundle()), "--cam-dir", str(cams),
                           "--device", "cpu")
    written = [p.name for p in cams.rglob("*") if p.is_file()]
    return f"exit {code}; files written {written}; " + (f"error: {_last_error(err)}" if code else "no error")


def train_safetensor_error(ctx: Ctx) -> str:
    """best.safetensors goes bad on disk during epoch 1 (the disk fails), so the bundle cannot be made from it."""
    from engine.fsutil import inject_faults

    out = ctx.tmp() / "run"

    def rot(step: str) -> None:
        if step == "checkpoint.started" and (out / "best.safetensors").exists():
            (out / "best.safetensors").write_bytes(b"\x00" * 7)

    with inject_faults(rot):
        code, stdout, _err = _cli("train", "student", str(ctx.dataset()), "--out", str(out), "--epochs", "1",
                                  "--image-size", "32", "--batch-size", "16", "--device", "cpu", "--arch", "resnet10t",
                                  "--progress", "json")
    events = [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]
    last = events[-1] if events else {}
    return f"exit {code}; last event {last.get('event')}: {last.get('message', '')}"


def promote_shutil_error(ctx: Ctx) -> str:
    """copytree fails on some files (shutil.Error carries a list of them), as on a full disk."""
    from fault_store import _store

    import engine.model_store as ms

    store, source = _store(ctx), ctx.bundle()
    real = ms.shutil.copytree

    def partly(src, dst, **kw):
        Path(dst).mkdir(parents=True)
        raise shutil.Error([(str(Path(src) / "model.safetensors"), str(Path(dst) / "model.safetensors"),
                             "[Errno 28] No space left on device")])

    ms.shutil.copytree = partly
    try:
        card = store.promote(source)
    finally:
        ms.shutil.copytree = real
    return f"promoted {card.name}"


# ---- 7 gaps in batch output ----------------------------------------------------------------


def unsupported_files_in_dir(ctx: Ctx) -> str:
    folder = _batch_dir(ctx, 1)
    (folder / "clip.gif").write_bytes(b"GIF89a" + bytes(20))
    (folder / "scan.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    csv_path = ctx.tmp() / "grades.csv"
    code, out, _err = _cli("predict", "--dir", str(folder), "--model", str(ctx.bundle()), "--csv", str(csv_path),
                           "--json", "--device", "cpu")
    import csv

    rows = list(csv.DictReader(csv_path.open())) if csv_path.exists() else []
    objs = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    why = "; ".join(f"{Path(o['file']).name}: {o['error'].split(chr(39) + ': ', 1)[-1][:40]}..." for o in objs
                    if o.get("error"))
    return f"exit {code}; 3 files, {len(rows)} CSV rows, {len(objs)} JSON objects; {why or 'no reasons given'}"


def heat_map_names_collide(ctx: Ctx) -> str:
    folder, cams = ctx.tmp() / "visit", ctx.tmp() / "cams"
    inputs = [_photo(folder, n) for n in ("a/x.png", "b/x.png", "x.png", "x.tif")]
    code, _out, _err = _cli("predict", "--dir", str(folder), "--model", str(ctx.bundle()), "--cam-dir", str(cams),
                            "--device", "cpu")
    written = sorted(p.relative_to(cams).as_posix() for p in cams.rglob("*") if p.is_file())
    return f"exit {code}; {len(inputs)} inputs, {len(written)} heat maps: {written}"
