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
    assert set(SUPPORTED_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"}


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
