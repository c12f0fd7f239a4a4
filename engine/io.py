"""Read an image file safely: one RGB uint8 array for every format we accept, one clear error otherwise.

JPEG, PNG, TIFF and BMP are accepted, and DICOM (engine.dicom: any file carrying the
DICOM marker, whatever its name), 8 or 16 bits per sample, gray or colour, with or
without alpha. 16-bit samples are scaled to 8 bits (x / 257, rounded), never clipped.
An alpha channel is dropped: the colour channels are kept as stored, not composited.
EXIF orientation is applied. The header is read (engine.imageheader) and held to the pixel
limit before anything is decoded, so a small file that inflates to gigabytes is refused
cheaply; OpenCV's own limit, set to the same number when the engine is imported, stops any
decoder that reads a size the header check did not, and a decoded size that differs from
the header's is refused. `read_image_reduced` decodes at 1/2, 1/4 or 1/8 scale when the
short side stays above what the model needs (JPEG: inside libjpeg, so the full frame is
never allocated), with the full-resolution size beside it for drawing at the input's size.
Decoding goes through `cv2.imdecode` on the file's bytes, so non-ASCII paths work.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine import limits
from engine.errors import EngineError
from engine.imageheader import Header, HeaderError, read_header

DICOM_EXTENSIONS: tuple[str, ...] = (".dcm", ".dicom")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", *DICOM_EXTENSIONS)
DEFAULT_MAX_PIXELS = limits.MAX_IMAGE_PIXELS
# A reduced decode keeps at least this short side: enough for any model input and for a lens crop of a quarter frame.
REDUCED_MIN_SIDE = 1024
# Largest plausible file for an image within the pixel limit: uncompressed 16-bit RGBA plus metadata.
_BYTES_PER_PIXEL_BOUND = 8
_METADATA_SLACK = 16 * 1024 * 1024
_JPEG_REDUCED = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}  # only the scale bits: depth and colour flags stay ours


class ImageReadError(EngineError):
    """An image file that cannot be read; the message names the file and the reason."""

    def __init__(self, message: str, *, name: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason if reason is not None else message


def _fail(name: str, reason: str) -> ImageReadError:
    return ImageReadError(f"cannot read image '{name}': {reason}", name=name, reason=reason)


# ---- public entry points ---------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image, possibly decoded at a reduced scale, and the (height, width) of the full image it stands for."""

    rgb: np.ndarray
    full_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Full-resolution pixels per decoded pixel (1.0 when decoded at full size)."""
        return self.full_size[1] / self.rgb.shape[1]


def min_side_for(image_size: int) -> int:
    """The short side a reduced decode keeps for a model with this input size (training and grading alike)."""
    return max(REDUCED_MIN_SIDE, 2 * int(image_size))


def opencv_limit_active() -> bool:
    """True when OpenCV's own decoders hold the pixel limit too (the engine was imported before OpenCV)."""
    return limits.opencv_pixel_cap is not None


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array at full resolution, or raise ImageReadError saying why not."""
    name, data = _read_file(Path(path), max_pixels)
    return _decode(data, name, max_pixels).rgb


def read_image_reduced(
    path: str | Path, min_side: int = REDUCED_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Read an image file at the smallest of 1, 1/2, 1/4, 1/8 scale whose short side keeps `min_side` pixels."""
    name, data = _read_file(Path(path), max_pixels)
    return _decode(data, name, max_pixels, min_side)


def read_image_bytes(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes (e.g. from a drop or a network share) with the same checks as read_image."""
    _check_extension(name, Path(name).suffix, required=False)
    data = bytes(data)
    _check_file_size(name, len(data), max_pixels)
    return _decode(data, name, max_pixels).rgb


def _read_file(p: Path, max_pixels: int) -> tuple[str, bytes]:
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
    if not _is_dicom_file(p):  # a DICOM file is read whatever its name (devices often write none)
        _check_extension(name, p.suffix, required=True)
    _check_file_size(name, st.st_size, max_pixels)
    try:
        return name, p.read_bytes()
    except PermissionError:
        raise _fail(name, "permission denied (the file is not readable by this user)") from None
    except OSError as e:
        raise _fail(name, f"the file cannot be read ({e.strerror or e})") from None


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


def _is_dicom_file(p: Path) -> bool:
    from engine.dicom import is_dicom_file

    return is_dicom_file(p)


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


def _decode(data: bytes, name: str, max_pixels: int, min_side: int | None = None) -> DecodedImage:
    """Check the header, decode (reduced when `min_side` allows it), and check the decoder saw the header's size."""
    from engine.dicom import DicomError, decode_dicom, is_dicom

    if is_dicom(data):
        try:
            rgb = decode_dicom(data, name, max_pixels)
        except DicomError as e:
            raise _fail(name, e.reason) from None
        return DecodedImage(rgb, rgb.shape[:2])
    try:
        header = read_header(data, max_pixels)
    except HeaderError as e:
        if Path(name).suffix.lower() in DICOM_EXTENSIONS:
            raise _fail(name, "it is named like a DICOM file but is not one (there is no 'DICM' marker at byte 128)") from None
        raise _fail(name, e.reason) from None
    factor = _reduction(header, min_side)
    # Any flag but IMREAD_UNCHANGED applies EXIF orientation; ANYDEPTH keeps 16 bits for our own scaling.
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    if header.format == "JPEG":
        flags |= _JPEG_REDUCED[factor]  # libjpeg scales while decoding: the full frame is never allocated
    with _quiet_opencv():
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        except cv2.error as e:
            if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
                cap = limits.opencv_pixel_cap or max_pixels
                raise _fail(name, f"its {header.format} decoder found more than the limit of {cap:,} pixels "
                                  "(the header check was misled)") from None
            img = None
    if img is None or img.size == 0:
        raise _fail(name, f"the file is damaged or truncated (the {header.format} decoder failed)")
    full = _full_size(img, header, factor if header.format == "JPEG" else 1, name)
    if factor > 1 and header.format != "JPEG":
        h, w = img.shape[:2]
        img = cv2.resize(img, (-(-w // factor), -(-h // factor)), interpolation=cv2.INTER_AREA)
    return DecodedImage(_to_rgb8(img, name), full)


def _reduction(header: Header, min_side: int | None) -> int:
    """The largest of 8, 4, 2 that keeps the short side at `min_side` or more (1: full resolution)."""
    if not min_side:
        return 1
    short = min(header.width, header.height)
    return next((f for f in (8, 4, 2) if -(-short // f) >= min_side), 1)


def _full_size(img: np.ndarray, header: Header, factor: int, name: str) -> tuple[int, int]:
    """(height, width) at full resolution as decoded (EXIF orientation may swap them); refuse any other size."""
    h, w = -(-header.height // factor), -(-header.width // factor)
    got = img.shape[:2]
    if got == (h, w):
        return header.height, header.width
    if got == (w, h):
        return header.width, header.height
    raise _fail(
        name, f"the file is damaged (its {header.format} header says {header.width}x{header.height} but the "
        f"decoder found {got[1] * factor}x{got[0] * factor})"
    )

def _to_rgb8(img: np.ndarray, name: str) -> np.ndarray:
    if img.dtype == np.uint16:
        img = cv2.convertScaleAbs(img, alpha=1.0 / 257.0)  # round(x / 257): scaled, never clipped
    elif img.dtype != np.uint8:
        raise _fail(name, f"it has {img.dtype} samples; only 8- and 16-bit images are supported")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second full-size copy
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise _fail(name, f"it has {img.shape[2]} channels; expected gray, RGB or RGBA")
