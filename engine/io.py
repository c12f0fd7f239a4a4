"""Read an image file safely: one RGB uint8 array for every format we accept, one clear error otherwise.

JPEG, PNG, TIFF and BMP are accepted, 8 or 16 bits per sample, gray or colour, with or
without alpha. 16-bit samples are scaled to 8 bits (x / 257, rounded), never clipped.
An alpha channel is dropped: the colour channels are kept as stored, not composited.
EXIF orientation is applied. The pixel count is read from the file header and checked
before anything is decoded, so a small file that inflates to gigabytes is refused
cheaply; OpenCV's own OPENCV_IO_MAX_IMAGE_PIXELS limit (2^30 by default) stays behind it.
Decoding goes through `cv2.imdecode` on the file's bytes, so non-ASCII paths work.
"""

from __future__ import annotations

import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from engine.errors import EngineError

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
DEFAULT_MAX_PIXELS = 80_000_000
# Largest plausible file for an image within the pixel limit: uncompressed 16-bit RGBA plus metadata.
_BYTES_PER_PIXEL_BOUND = 8
_METADATA_SLACK = 16 * 1024 * 1024


class ImageReadError(EngineError):
    """An image file that cannot be read; the message names the file and the reason."""

    def __init__(self, message: str, *, name: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason if reason is not None else message


def _fail(name: str, reason: str) -> ImageReadError:
    return ImageReadError(f"cannot read image '{name}': {reason}", name=name, reason=reason)


# ---- public entry points ---------------------------------------------------------------------


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array, or raise ImageReadError saying why not."""
    p = Path(path)
    name = str(p)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _fail(name, "the file does not exist") from None
    except PermissionError:
        raise _fail(name, "permission denied (the file or its folder is not readable by this user)") from None
    except OSError as e:
        raise _fail(name, f"the file cannot be opened ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(name, "it is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(name, "it is not a regular file")
    _check_extension(name, p.suffix, required=True)
    if st.st_size == 0:
        raise _fail(name, "the file is empty (0 bytes)")
    _check_file_size(name, st.st_size, max_pixels)
    try:
        data = p.read_bytes()
    except PermissionError:
        raise _fail(name, "permission denied (the file is not readable by this user)") from None
    except OSError as e:
        raise _fail(name, f"the file cannot be read ({e.strerror or e})") from None
    return _decode(data, name, max_pixels)


def read_image_bytes(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes (e.g. from a drop or a network share) with the same checks as read_image."""
    _check_extension(name, Path(name).suffix, required=False)
    data = bytes(data)
    _check_file_size(name, len(data), max_pixels)
    return _decode(data, name, max_pixels)


# ---- checks before decoding ------------------------------------------------------------------


def _check_extension(name: str, suffix: str, required: bool) -> None:
    if not suffix and not required:
        return
    if suffix.lower() not in SUPPORTED_EXTENSIONS:
        shown = f"the extension '{suffix}'" if suffix else "no extension"
        raise _fail(name, f"it has {shown}; supported are {', '.join(SUPPORTED_EXTENSIONS)}")


def _check_file_size(name: str, size: int, max_pixels: int) -> None:
    if size == 0:
        raise _fail(name, "the file is empty (0 bytes)")
    if size > max_pixels * _BYTES_PER_PIXEL_BOUND + _METADATA_SLACK:
        raise _fail(name, f"the file is {size / 1e6:,.0f} MB, too large for an image of at most {max_pixels:,} pixels")


def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    return None


def _png_size(data: bytes, name: str) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _fail(name, "the file is truncated or damaged (no PNG image header)")
    width, height = struct.unpack(">II", data[16:24])
    if data.rfind(b"IEND\xaeB`\x82") < 0:
        raise _fail(name, "the file is truncated (the PNG end chunk is missing)")
    return width, height


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes, name: str) -> tuple[int, int]:
    """Walk the JPEG segments up to the first scan: frame size from SOFn, EOI must follow the scan."""
    truncated = _fail(name, "the file is truncated (it ends inside the JPEG headers)")
    size: tuple[int, int] | None = None
    i, n = 2, len(data)
    while True:
        if i >= n:
            raise truncated
        if data[i] != 0xFF:
            raise _fail(name, f"the file is damaged (no JPEG marker at byte {i})")
        while i < n and data[i] == 0xFF:
            i += 1
        if i + 2 >= n:
            raise truncated
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker == 0xD9:
            raise _fail(name, "the file is damaged (the JPEG ends before any image data)")
        seg_len = int.from_bytes(data[i : i + 2], "big")
        if seg_len < 2:
            raise _fail(name, f"the file is damaged (bad JPEG segment length at byte {i})")
        if marker in _JPEG_SOF:
            if i + 7 > n:
                raise truncated
            height, width = struct.unpack(">HH", data[i + 3 : i + 7])
            size = (width, height)
        if marker == 0xDA:
            if size is None:
                raise _fail(name, "the file is damaged (the JPEG has no frame header)")
            if data.find(b"\xff\xd9", i) < 0:
                raise _fail(name, "the file is truncated (the JPEG end marker is missing)")
            return size
        i += seg_len


def _bmp_size(data: bytes, name: str) -> tuple[int, int]:
    if len(data) < 26:
        raise _fail(name, "the file is truncated (the BMP header is incomplete)")
    offset, header = struct.unpack("<II", data[10:18])
    if header == 12:
        width, height, bpp = struct.unpack("<HH2xH", data[18:26])
        compression = 0
    elif header >= 40 and len(data) >= 34:
        width, height, bpp, compression = struct.unpack("<ii2xHI", data[18:34])
    else:
        raise _fail(name, "the file is damaged (unknown BMP header)")
    height = abs(height)
    if compression in (0, 3, 6) and bpp in (1, 4, 8, 16, 24, 32) and width > 0:
        row = ((width * bpp + 31) // 32) * 4
        if len(data) < offset + row * height:
            raise _fail(name, "the file is truncated (the BMP pixel data is incomplete)")
    return width, height


def _tiff_size(data: bytes, name: str) -> tuple[int, int]:
    """Read width and height from the first IFD; strips or tiles must lie inside the file."""
    damaged = _fail(name, "the file is truncated or damaged (the TIFF directory lies outside the file)")
    bo = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            ifd = struct.unpack(bo + "Q", data[8:16])[0]
            (count,) = struct.unpack(bo + "Q", data[ifd : ifd + 8])
            start, entry, inline, ofs_code = ifd + 8, 20, 8, "Q"
        else:
            ifd = struct.unpack(bo + "I", data[4:8])[0]
            (count,) = struct.unpack(bo + "H", data[ifd : ifd + 2])
            start, entry, inline, ofs_code = ifd + 2, 12, 4, "I"
    except struct.error:
        raise damaged from None
    if start + count * entry > len(data):
        raise damaged
    tags: dict[int, tuple[int, ...]] = {}
    for k in range(count):
        raw = data[start + k * entry : start + (k + 1) * entry]
        tag, typ = struct.unpack(bo + "HH", raw[:4])
        n = struct.unpack(bo + ("Q" if big else "I"), raw[4 : 4 + (8 if big else 4)])[0]
        code = {1: "B", 3: "H", 4: "I", 16: "Q"}.get(typ)
        if code is None or tag not in (256, 257, 273, 279, 324, 325):
            continue
        nbytes = n * struct.calcsize(code)
        if nbytes > len(data):
            raise damaged
        field = raw[entry - inline :]
        if nbytes > inline:
            pos = struct.unpack(bo + ofs_code, field)[0]
            field = data[pos : pos + nbytes]
            if len(field) < nbytes:
                raise damaged
        tags[tag] = struct.unpack(f"{bo}{n}{code}", field[:nbytes])
    if not tags.get(256) or not tags.get(257):
        raise _fail(name, "the file is damaged (the TIFF has no image width or height)")
    offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    if offsets and counts and len(offsets) == len(counts):
        if max(o + c for o, c in zip(offsets, counts, strict=True)) > len(data):
            raise _fail(name, "the file is truncated (the TIFF image data is incomplete)")
    return tags[256][0], tags[257][0]


_HEADER_READERS = {"JPEG": _jpeg_size, "PNG": _png_size, "TIFF": _tiff_size, "BMP": _bmp_size}


# ---- decoding --------------------------------------------------------------------------------

_log_lock = threading.Lock()
_log_users = 0
_log_saved = 0


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's stderr log while decoding: every failure becomes an ImageReadError instead."""
    global _log_users, _log_saved
    logging = cv2.utils.logging
    with _log_lock:
        if _log_users == 0:
            _log_saved = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _log_users += 1
    try:
        yield
    finally:
        with _log_lock:
            _log_users -= 1
            if _log_users == 0:
                logging.setLogLevel(_log_saved)


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    fmt = _sniff(data)
    if fmt is None:
        raise _fail(name, "it is not an image (its content is not JPEG, PNG, TIFF or BMP)")
    width, height = _HEADER_READERS[fmt](data, name)
    if width <= 0 or height <= 0:
        raise _fail(name, f"the file is damaged (the {fmt} header gives a size of {width}x{height})")
    if width * height > max_pixels:
        raise _fail(
            name, f"it is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
        )
    # Any flag but IMREAD_UNCHANGED applies EXIF orientation; ANYDEPTH keeps 16 bits for our own scaling.
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    with _quiet_opencv():
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        except cv2.error:
            img = None
    if img is None or img.size == 0:
        raise _fail(name, f"the file is damaged or truncated (the {fmt} decoder failed)")
    return _to_rgb8(img, name)


def _to_rgb8(img: np.ndarray, name: str) -> np.ndarray:
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise _fail(name, f"it has {img.dtype} samples; only 8- and 16-bit images are supported")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise _fail(name, f"it has {img.shape[2]} channels; expected gray, RGB or RGBA")
