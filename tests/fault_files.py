"""Fault cases on files: decompression bombs and large photographs (1), labels.csv numbers and quotes (8),
a card's hostile image size (9). Listed in tests/faults.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import forge

if TYPE_CHECKING:
    from faults import Ctx

TESTS = Path(__file__).resolve().parent


def engine_root() -> Path:
    """The checkout whose engine this process imported (a child process must run that one, too)."""
    import engine

    return Path(engine.__file__).resolve().parents[1]


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
                          cwd=engine_root())
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


# ---- 8 lenient numbers, 9 hostile sizes ---------------------------------------------------------


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
