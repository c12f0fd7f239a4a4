"""engine.io limits: the pixel limit holds for what the decoder decodes, and large photos decode reduced."""

import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import forge
import numpy as np
import pytest
from forge import LONG, LONG8, SHORT, SLONG, SSHORT, gray_page, small_tiff, tiff
from test_io import _exif_jpeg, _pattern, _write

from engine import io as eio
from engine.io import (
    DecodedImage,
    ImageReadError,
    min_side_for,
    opencv_limit_active,
    read_image,
    read_image_bytes,
    read_image_reduced,
)

# ---- decompression bombs: the limit holds for what the decoder decodes ----------------------


def _refused(data: bytes, name: str = "x.tif", **kw) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image_bytes(data, name, **kw)
    return info.value.reason


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the decoder was called")

    monkeypatch.setattr(eio.cv2, "imdecode", refuse)


def test_forged_tiff_reads_back():
    out = read_image_bytes(small_tiff(8, 6), "a.tif")
    assert out.shape == (6, 8, 3) and out[0, :4, 0].tolist() == [0, 31, 62, 93]


def test_tiff_giving_its_size_twice_is_refused_before_decoding(no_decoding):
    # The decoder takes the first width tag (20000), a last-tag-wins reader would see 10.
    page = gray_page(20000, 20000, 64, compression=8) + [(256, LONG, [10]), (257, LONG, [10])]
    assert _refused(tiff([page], [bytes(64)])) == "the file is damaged (its TIFF directory gives its width twice)"


@pytest.mark.parametrize("big", [False, True], ids=["classic", "bigtiff"])
@pytest.mark.parametrize("order", ["<", ">"], ids=["II", "MM"])
@pytest.mark.parametrize("typ", [SHORT, LONG, LONG8])
def test_oversized_tiff_is_refused_in_every_header_encoding(no_decoding, big, order, typ):
    if typ == LONG8 and not big:
        typ = LONG
    side = 20000 if typ != SHORT else 60000
    size = [(256, typ, [side]), (257, typ, [side])]
    data = tiff([gray_page(side, side, 64, width_entries=size)], [bytes(64)], big=big, order=order)
    assert f"{side}x{side} = {side * side:,} pixels, more than the limit" in _refused(data)


@pytest.mark.parametrize("typ", [SSHORT, SLONG])
def test_tiff_size_in_a_type_the_reader_skips_is_refused(no_decoding, typ):
    size = [(256, typ, [30000]), (257, typ, [30000])]
    data = tiff([gray_page(30000, 30000, 64, width_entries=size)], [bytes(64)])
    assert _refused(data) == f"the file is damaged (its TIFF width has the unreadable type {typ})"


def test_every_tiff_page_is_held_to_the_limit(no_decoding):
    pages = [gray_page(8, 8, 64), gray_page(20000, 20000, 64, compression=8)]
    assert "page 2 20000x20000" in _refused(tiff(pages, [bytes(64), bytes(64)]))


def test_tiff_directory_loop_is_refused(no_decoding):
    data = bytearray(small_tiff())
    first = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[first : first + 2])[0]
    struct.pack_into("<I", data, first + 2 + 12 * count, first)  # page 1 links back to itself
    assert _refused(bytes(data)) == "the file is damaged (its TIFF directories form a loop)"


def test_tiff_tiles_far_larger_than_the_image_are_refused(no_decoding):
    page = [e for e in gray_page(16, 16, 64) if e[0] not in (273, 278, 279)]
    page += [(322, LONG, [15000]), (323, LONG, [15000]), (324, LONG, [8]), (325, LONG, [64])]
    assert "tiles of 15000x15000 pixels are far larger than the 16x16 image" in _refused(tiff([page]))


def test_tiff_strips_far_taller_than_the_image_are_refused(no_decoding):
    data = tiff([gray_page(10000, 1, 64, rows=20000)], [bytes(64)])
    assert "strips of 10000x20000 pixels are far larger than the 10000x1 image" in _refused(data)


def test_tiff_with_32_bit_samples_is_refused_before_decoding(no_decoding):
    page = [(t, ty, [32] if t == 258 else v) for t, ty, v in gray_page(8, 8, 256)]
    assert _refused(tiff([page], [bytes(256)])) == "it has 32-bit samples; only 8- and 16-bit images are supported"


def test_jpeg_with_two_frame_headers_is_refused(no_decoding):
    data = cv2.imencode(".jpg", _pattern())[1].tobytes()
    sof = data.find(b"\xff\xc0")
    seg = data[sof : sof + 2 + int.from_bytes(data[sof + 2 : sof + 4], "big")]
    twice = data[:sof] + seg.replace(b"\x00\x14\x00\x28", b"\x7f\xff\x7f\xff", 1) + data[sof:]
    assert _refused(twice, "x.jpg") == "the file is damaged (the JPEG has two frame headers)"


def test_png_header_of_the_wrong_length_is_refused(no_decoding):
    data = bytearray(cv2.imencode(".png", _pattern())[1].tobytes())
    data[8:12] = b"\x00\x00\x00\x0c"
    assert "wrong length" in _refused(bytes(data), "x.png")


def test_decoded_size_must_match_the_header(monkeypatch):
    from engine.imageheader import Header

    monkeypatch.setattr(eio, "read_header", lambda data, max_pixels: Header("TIFF", 5, 5))
    assert _refused(small_tiff(8, 6)) == "the file is damaged (its TIFF header says 5x5 but the decoder found 8x6)"


def test_opencv_holds_the_limit_when_the_header_check_is_misled():
    """A fresh process: the engine sets OpenCV's own limit before cv2 loads, so a fooled header check is not enough."""
    assert opencv_limit_active()
    code = (
        "import sys; sys.path.insert(0, 'tests'); import engine, forge, engine.io as eio\n"
        "from engine.imageheader import Header\n"
        "eio.read_header = lambda data, mp: Header('TIFF', 10, 10)\n"
        "page = forge.gray_page(20000, 20000, 64, compression=8)\n"
        "try:\n    eio.read_image_bytes(forge.tiff([page], [bytes(64)]), 'bomb.tif')\n"
        "except eio.ImageReadError as e:\n    print(e.reason)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert "decoder found more than the limit of 80,000,000 pixels" in out.stdout, out.stderr


# ---- reduced decoding -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (64, 48, 3), np.uint8)
    big = cv2.resize(small, (3000, 4000), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    assert cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def test_reduced_jpeg_decode_never_allocates_the_full_frame(big_jpeg):
    tracemalloc.start()
    reduced = read_image_reduced(big_jpeg, min_side=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(reduced, DecodedImage)
    assert reduced.rgb.shape == (500, 375, 3) and reduced.full_size == (4000, 3000) and reduced.scale == 8.0
    assert peak < 4000 * 3000 * 3 / 10  # the full RGB frame would be 36 MB
    full = cv2.resize(read_image(big_jpeg), (375, 500), interpolation=cv2.INTER_AREA)
    assert np.abs(full.astype(int) - reduced.rgb).mean() < 2.0


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_reduced_decode_of_other_formats_matches_an_area_resize(tmp_path, ext):
    rgb = cv2.resize(np.random.default_rng(1).integers(0, 255, (30, 40, 3), np.uint8), (1000, 700))
    path = _write(tmp_path / f"a{ext}", rgb)
    reduced = read_image_reduced(path, min_side=150)  # 700 / 4 = 175 >= 150, 700 / 8 < 150
    assert reduced.rgb.shape == (175, 250, 3) and reduced.full_size == (700, 1000) and reduced.scale == 4.0
    np.testing.assert_array_equal(reduced.rgb, cv2.resize(rgb, (250, 175), interpolation=cv2.INTER_AREA))


def test_reduced_decode_keeps_small_images_whole(tmp_path):
    path = _write(tmp_path / "a.png", _pattern())
    reduced = read_image_reduced(path, min_side=16)
    np.testing.assert_array_equal(reduced.rgb, read_image(path))
    assert reduced.full_size == (20, 40) and reduced.scale == 1.0


def test_reduced_decode_reports_the_oriented_full_size(tmp_path):
    rgb = cv2.resize(_pattern(20, 40), (800, 400))
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_exif_jpeg(rgb, orientation=6))
    reduced = read_image_reduced(path, min_side=100)
    assert reduced.full_size == (800, 400) and reduced.rgb.shape == (200, 100, 3)


def test_min_side_covers_the_model_input():
    assert min_side_for(128) == 1024 and min_side_for(1024) == 2048


def test_bomb_helper_inflates_as_claimed():
    assert len(forge.deflate_zeros(1 << 22)) < 10_000
