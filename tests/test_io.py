"""engine.io: every accepted format reads as RGB uint8, every bad input fails with its own sentence."""

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import io as eio
from engine.io import SUPPORTED_EXTENSIONS, ImageReadError, read_image, read_image_bytes


def _pattern(h: int = 20, w: int = 40) -> np.ndarray:
    """RGB image with a red block at the top-left corner and a smooth gradient elsewhere."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 1] = np.linspace(0, 200, w, dtype=np.uint8)[None, :]
    rgb[..., 2] = np.linspace(0, 200, h, dtype=np.uint8)[:, None]
    rgb[:5, :10] = (255, 0, 0)
    return rgb


def _write(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _exif_jpeg(rgb: np.ndarray, orientation: int) -> bytes:
    """A JPEG with an APP1 Exif segment (big-endian TIFF, one IFD entry: Orientation) right after SOI."""
    data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


# ---- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".bmp"])
def test_lossless_formats_read_back_exactly_as_rgb(tmp_path, ext):
    rgb = _pattern()
    out = read_image(_write(tmp_path / f"a{ext}", rgb))
    assert out.dtype == np.uint8 and out.shape == (20, 40, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_reads_as_rgb(tmp_path, ext):
    out = read_image(_write(tmp_path / f"a{ext}", _pattern()))
    assert out.shape == (20, 40, 3) and out.dtype == np.uint8
    r, g, b = out[1, 1].astype(int)
    assert r > 200 and g < 60 and b < 60  # red stays in the R channel (no BGR mix-up)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_is_scaled_not_clipped(tmp_path, ext):
    values = np.array([[0, 257, 25700, 65535]], np.uint16)
    path = tmp_path / f"g16{ext}"
    assert cv2.imwrite(str(path), np.dstack([values, values, values]))
    out = read_image(path)
    assert out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 1, 100, 255]


def test_16_bit_gray_becomes_rgb(tmp_path):
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), np.full((4, 6), 51400, np.uint16))
    out = read_image(path)
    assert out.shape == (4, 6, 3) and (out == 200).all()


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_gray_becomes_three_equal_channels(tmp_path, ext):
    gray = np.tile(np.linspace(0, 250, 16, dtype=np.uint8), (8, 1))
    path = tmp_path / f"gray{ext}"
    assert cv2.imwrite(str(path), gray)
    out = read_image(path)
    assert out.shape == (8, 16, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    if ext != ".jpg":
        np.testing.assert_array_equal(out[..., 0], gray)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_alpha_is_dropped_keeping_the_colour(tmp_path, ext):
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = 10, 20, 30  # B, G, R
    bgra[:2, :, 3] = 0  # fully transparent top half keeps its colour
    bgra[2:, :, 3] = 255
    path = tmp_path / f"rgba{ext}"
    assert cv2.imwrite(str(path), bgra)
    out = read_image(path)
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [30, 20, 10] and out[3, 3].tolist() == [30, 20, 10]


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_exif_jpeg(_pattern(20, 40), orientation=6))
    out = read_image(path)
    assert out.shape == (40, 20, 3)  # orientation 6: displayed rotated 90 degrees clockwise
    r, g, b = out[2, -3].astype(int)  # the red top-left block is now top-right
    assert r > 200 and g < 60 and b < 60
    assert out[2, 2, 0] < 100


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "Überprüfung_眼"
    folder.mkdir()
    out = read_image(_write(folder / "Ωμάτι.png", _pattern()))
    np.testing.assert_array_equal(out, _pattern())


def test_content_decides_the_format_not_the_extension(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(cv2.imencode(".png", _pattern())[1].tobytes())
    assert read_image(path).shape == (20, 40, 3)


def test_read_image_bytes_matches_read_image(tmp_path):
    path = _write(tmp_path / "a.png", _pattern())
    np.testing.assert_array_equal(read_image_bytes(path.read_bytes(), "a.png"), read_image(path))
    assert read_image_bytes(path.read_bytes()).shape == (20, 40, 3)


def test_supported_extensions():
    assert set(SUPPORTED_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


# ---- bad input -------------------------------------------------------------------------------


def _error(path, **kw) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kw)
    assert str(path) in str(info.value)
    return info.value.reason


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.png") == "the file does not exist"


def test_directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    assert "is a folder" in _error(tmp_path / "folder.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _error(tmp_path / "empty.jpg") == "the file is empty (0 bytes)"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_file_cut_in_half_is_truncated(tmp_path, ext):
    data = cv2.imencode(ext, np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[1].tobytes()
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _error(path)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_missing_end_marker_is_truncated(tmp_path, ext):
    data = cv2.imencode(ext, _pattern())[1].tobytes()
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[:-2])
    assert "end" in _error(path) and "truncated" in _error(path)


def test_text_file_renamed_to_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("patient notes, not a photo\n")
    assert "not an image" in _error(tmp_path / "notes.jpg")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "anim.gif"
    path.write_bytes(cv2.imencode(".png", _pattern())[1].tobytes())
    assert "'.gif'" in _error(path)
    (tmp_path / "noext").write_bytes(path.read_bytes())
    assert "no extension" in _error(tmp_path / "noext")


def test_oversized_is_refused_before_decoding(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.png", _pattern())

    def no_decode(*a, **k):
        raise AssertionError("decoded an oversized image")

    monkeypatch.setattr(eio.cv2, "imdecode", no_decode)
    assert "800 pixels, more than the limit of 100" in _error(path, max_pixels=100)


def test_decompression_bomb_header_is_refused(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00\x00\x00\x00"
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    assert "10,000,000,000 pixels" in _error(path)


def test_unreadable_permissions(tmp_path, monkeypatch):
    path = _write(tmp_path / "locked.png", _pattern())
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: simulate the refusal the OS would give
        def refuse(self):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "read_bytes", refuse)
    try:
        assert "permission denied" in _error(path)
    finally:
        path.chmod(0o644)


def test_bytes_errors():
    with pytest.raises(ImageReadError, match="empty"):
        read_image_bytes(b"", "x.png")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image_bytes(b"hello", "x.png")
    with pytest.raises(ImageReadError, match="'.gif'"):
        read_image_bytes(cv2.imencode(".png", _pattern())[1].tobytes(), "x.gif")
    with pytest.raises(ImageReadError, match="more than the limit"):
        read_image_bytes(cv2.imencode(".png", _pattern())[1].tobytes(), "x.png", max_pixels=10)


def test_error_is_a_value_error_that_one_argument_rebuilds():
    err = ImageReadError("cannot read image 'a.png': it is bad", name="a.png", reason="it is bad")
    assert isinstance(err, ValueError) and err.reason == "it is bad"
    rebuilt = type(err)(str(err))  # how DataLoader workers re-raise an error in the main process
    assert str(rebuilt) == str(err) and rebuilt.reason == str(err)


# ---- decompression bombs: the limit holds for what the decoder decodes ----------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
import tracemalloc  # noqa: E402

import forge  # noqa: E402
from forge import LONG, LONG8, SHORT, SLONG, SSHORT, gray_page, small_tiff, tiff  # noqa: E402

from engine.io import DecodedImage, min_side_for, opencv_limit_active, read_image_reduced  # noqa: E402


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
