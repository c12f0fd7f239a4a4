"""DICOM photographs: pixels as one RGB uint8 array, and the patient, eye and date for the case.

Ophthalmic cameras send their photographs as DICOM (Part 10 files, 'DICM' at byte 128).
pydicom parses the file; its own decoders read uncompressed, deflated and RLE pixel data and
Pillow decodes JPEG baseline and extended (1.2.840.10008.1.2.4.50/.51) and JPEG 2000
(.90/.91). Other compressions (JPEG lossless, JPEG-LS, HTJ2K, video) are refused with a
sentence that names them. `engine.io.read_image` calls `decode_dicom` for every file that
carries the DICOM marker, so grading, the case log and the app read .dcm like any image;
`read_meta` gives the patient, eye and date without decoding the pixels.

Pixels: RGB, YBR_FULL, YBR_FULL_422 (converted to RGB), MONOCHROME2 (gray; MONOCHROME1 is
inverted), PALETTE COLOR (through its lookup table); 8 or 16 bits allocated, scaled to 8 bits
by the bits stored (a 12-bit sample 4095 is 255); either planar configuration. Of a
multi-frame file the first frame is read, and `DicomMeta.notes` says so.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from engine.errors import EngineError

MAGIC = b"DICM"
MAGIC_OFFSET = 128
PHOTOMETRIC = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "MONOCHROME1", "MONOCHROME2",
               "PALETTE COLOR")
EYE_OF_LATERALITY = {"R": "OD", "L": "OS"}
DATE_TAGS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
_PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) as stored little endian


@dataclass(frozen=True)
class DicomMeta:
    """What a DICOM file says about its photograph; the case takes patient_id, eye and visit_date from it."""

    patient_id: str | None
    eye: str | None  # "OD" | "OS", from ImageLaterality (else Laterality) R / L
    visit_date: str | None  # YYYY-MM-DD, from StudyDate (else the series, acquisition or content date)
    laterality: str | None  # the value as stored (R, L, B, U)
    modality: str | None
    sop_class: str | None  # e.g. "Ophthalmic Photography 8 Bit Image Storage"
    transfer_syntax: str  # UID
    transfer_syntax_name: str
    photometric: str | None
    rows: int
    columns: int
    frames: int
    bits_stored: int | None
    has_pixels: bool
    notes: tuple[str, ...] = ()  # sentences for the user (first of N frames, an eye or date left blank)

    def details(self) -> dict[str, str | None]:
        """The case fields this file fills: patient_id, eye, visit_date."""
        return {"patient_id": self.patient_id, "eye": self.eye, "visit_date": self.visit_date}


class DicomError(EngineError):
    """A DICOM file that cannot be read; engine.io turns it into its ImageReadError with the same reason."""

    def __init__(self, message: str, *, name: str, reason: str) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason


def _fail(name: str, reason: str) -> DicomError:
    return DicomError(f"cannot read DICOM file '{name}': {reason}", name=name, reason=reason)


def is_dicom(data: bytes) -> bool:
    """True when `data` begins like a DICOM Part 10 file (128-byte preamble, then 'DICM')."""
    return data[MAGIC_OFFSET : MAGIC_OFFSET + 4] == MAGIC


def is_dicom_file(path: str | Path) -> bool:
    """True when the file at `path` carries the DICOM marker (reads 132 bytes; False if unreadable)."""
    try:
        with open(path, "rb") as fh:
            return is_dicom(fh.read(MAGIC_OFFSET + 4))
    except OSError:
        return False


# ---- reading ---------------------------------------------------------------------------------


_quiet = False


def _quiet_pydicom() -> None:
    """pydicom warns on stderr about values it reads past (a bad date, a missing delimiter); DicomMeta.notes and
    the refusals here say it in a sentence instead. Values are not validated on reading (we check what we use)."""
    global _quiet
    if not _quiet:
        from pydicom import config

        config.settings.reading_validation_mode = config.IGNORE
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
        _quiet = True


def _parse(data: bytes, name: str, header_only: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError

    _quiet_pydicom()
    if not is_dicom(data):
        raise _fail(name, "it is not a DICOM file (there is no 'DICM' marker at byte 128)")
    try:
        return pydicom.dcmread(io.BytesIO(data), defer_size=1024 if header_only else None)
    except InvalidDicomError as e:
        raise _fail(name, f"the file is not a readable DICOM file ({_short(e)})") from None
    except Exception as e:  # pydicom raises many kinds on damaged input; each becomes one sentence
        raise _fail(name, f"the file is damaged or truncated (its DICOM header cannot be parsed: {_short(e)})") from None


def read_meta(path: str | Path) -> DicomMeta:
    """The patient, eye, date and image geometry of a DICOM file, without decoding its pixels."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise _fail(name, f"the file cannot be read ({e.strerror or e})") from None
    return meta_of(_parse(data, name, header_only=True))


def decode_dicom(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """The first frame of a DICOM file's bytes as HxWx3 uint8 RGB, or DicomError saying why not.

    Called by engine.io.read_image (which checks the file's size first); read through it."""
    ds = _parse(data, name)
    meta = meta_of(ds)
    _check_decodable(meta, ds, data, name, max_pixels)
    from pydicom.pixels import pixel_array

    try:
        arr = pixel_array(ds, index=0)  # YBR is converted to RGB; planar configuration is undone
    except Exception as e:  # noqa: BLE001  (a decoder's failure on damaged data, of any kind)
        raise _fail(name, f"the file is damaged or truncated (its pixel data cannot be decoded: {_short(e)})") from None
    return _to_rgb8(arr, ds, meta, name)


def case_details(path: str | Path, given: Mapping[str, str | None]) -> tuple[dict[str, str | None], tuple[str, ...]]:
    """The patient_id, eye and visit_date to record for a file: what is `given` wins, a DICOM's own fill the rest.

    Returns (details, notes): a note for each value the file holds that differs from the given
    one, and the file's own notes (first of N frames, an eye or date left blank). A file that is
    not DICOM, or whose header cannot be read, keeps the given details.
    """
    details = {k: given.get(k) or None for k in ("patient_id", "eye", "visit_date")}
    if not is_dicom_file(path):
        return details, ()
    try:
        meta = read_meta(path)
    except DicomError:
        return details, ()
    notes = list(meta.notes)
    for key, value in meta.details().items():
        mine = details[key]
        if value is None:
            continue
        if mine is None:
            details[key] = value
        elif _same(key, mine) != value:
            label = key.replace("_", " ").replace("patient id", "patient ID")
            notes.append(f"the file gives {label} {value!r}; the given {mine!r} is used")
    return details, tuple(notes)


def _same(key: str, value: str) -> str:
    """A given value in the form the file's value is compared in (OD/OS upper case, dates as YYYY-MM-DD)."""
    value = value.strip()
    return value.upper() if key == "eye" else value


def _short(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


# ---- metadata --------------------------------------------------------------------------------


def meta_of(ds) -> DicomMeta:
    """DicomMeta of a parsed dataset."""
    notes: list[str] = []
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    frames = _int(ds.get("NumberOfFrames"), 1)
    if frames > 1:
        notes.append(f"it holds {frames} frames; the first frame is graded")
    laterality, eye = _laterality(ds, notes)
    sop = ds.get("SOPClassUID")
    return DicomMeta(
        patient_id=_text(ds.get("PatientID")), eye=eye, visit_date=_visit_date(ds, notes), laterality=laterality,
        modality=_text(ds.get("Modality")), sop_class=getattr(sop, "name", None) if sop else None,
        transfer_syntax=str(ts) if ts else "", transfer_syntax_name=getattr(ts, "name", "") if ts else "",
        photometric=_text(ds.get("PhotometricInterpretation")), rows=_int(ds.get("Rows"), 0),
        columns=_int(ds.get("Columns"), 0), frames=frames, bits_stored=_int(ds.get("BitsStored"), 0) or None,
        has_pixels="PixelData" in ds, notes=tuple(notes),
    )


def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _int(value, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _laterality(ds, notes: list[str]) -> tuple[str | None, str | None]:
    """(the stored laterality, OD/OS or None): ImageLaterality first, then the series' Laterality."""
    for tag in ("ImageLaterality", "Laterality"):
        value = _text(ds.get(tag))
        if value is None:
            continue
        code = value.upper()
        eye = EYE_OF_LATERALITY.get(code)
        if eye is None:
            what = {"B": "both eyes", "U": "unpaired or unknown"}.get(code, "not R or L")
            notes.append(f"its laterality is {value!r} ({what}), so the eye is left blank")
        return value, eye
    return None, None


def _visit_date(ds, notes: list[str]) -> str | None:
    for tag in DATE_TAGS:
        value = _text(ds.get(tag))
        if value is None:
            continue
        m = re.fullmatch(r"(\d{4})[.\-]?(\d{2})[.\-]?(\d{2})", value)
        try:
            if m:
                return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            pass
        notes.append(f"its {tag} {value!r} is not a date, so the visit date is left blank")
        return None
    return None


# ---- pixels ----------------------------------------------------------------------------------


def _check_decodable(meta: DicomMeta, ds, data: bytes, name: str, max_pixels: int) -> None:
    """Refuse, before decoding, what cannot or should not be decoded."""
    if not meta.has_pixels:
        if _PIXEL_TAG in data or len(ds) == 0:
            raise _fail(name, "the file is truncated (it ends inside its header or pixel data)")
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise _fail(name, "it holds floating-point pixel data, which is not a photograph")
        kind = f"a DICOM {meta.sop_class}" if meta.sop_class else "a DICOM file"
        raise _fail(name, f"it is {kind} without pixel data (no image to grade)")
    _check_syntax(meta, name)
    if meta.rows <= 0 or meta.columns <= 0:
        raise _fail(name, f"the file is damaged (its header gives a size of {meta.columns}x{meta.rows})")
    n = meta.rows * meta.columns
    if n > max_pixels:
        raise _fail(name, f"it is {meta.columns}x{meta.rows} = {n:,} pixels, more than the limit of {max_pixels:,}")
    if meta.photometric not in PHOTOMETRIC:
        raise _fail(name, f"its colour model (photometric interpretation) is {meta.photometric!r}, which this app "
                          "does not read; it reads RGB, YBR_FULL, YBR_FULL_422, MONOCHROME1/2 and PALETTE COLOR")
    bits = _int(ds.get("BitsAllocated"), 0)
    if bits not in (8, 16):
        raise _fail(name, f"it has {bits}-bit samples; only 8- and 16-bit DICOM images are supported")
    samples = _int(ds.get("SamplesPerPixel"), 0)
    if samples not in (1, 3):
        raise _fail(name, f"it has {samples} samples per pixel; expected 1 (gray) or 3 (colour)")


def _check_syntax(meta: DicomMeta, name: str) -> None:
    from pydicom.pixels import get_decoder

    uid = meta.transfer_syntax
    try:
        available = get_decoder(uid).is_available
    except (NotImplementedError, ValueError, KeyError):
        available = False
    if not available:
        label = f"{meta.transfer_syntax_name} ({uid})" if meta.transfer_syntax_name else repr(uid)
        raise _fail(name, f"its pixel data is stored as {label}, which this app cannot decode; export it from "
                          "the device as JPEG baseline, JPEG 2000 or uncompressed")


def _to_rgb8(arr: np.ndarray, ds, meta: DicomMeta, name: str) -> np.ndarray:
    if meta.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            arr = apply_color_lut(arr, ds)
        except Exception as e:  # noqa: BLE001  (a damaged or missing lookup table)
            raise _fail(name, f"its colour lookup table cannot be applied ({_short(e)})") from None
        bits = 16 if arr.dtype.itemsize > 1 else 8
    else:
        bits = meta.bits_stored or arr.dtype.itemsize * 8
    arr = _to_8bit(arr, bits, signed=_int(ds.get("PixelRepresentation"), 0) == 1)
    if meta.photometric == "MONOCHROME1":
        arr = 255 - arr
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise _fail(name, f"its decoded pixels have the shape {arr.shape}, not an image of one frame")
    return np.ascontiguousarray(arr)


def _to_8bit(arr: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Scale samples of `bits` stored bits to 0-255 (rounded, never clipped except out-of-range values)."""
    if arr.dtype == np.uint8 and bits >= 8:
        return arr
    bits = max(1, min(int(bits), 16))
    values = arr.astype(np.int64)
    if signed:
        values = values + (1 << (bits - 1))
    top = (1 << bits) - 1
    return ((np.clip(values, 0, top) * 255 + top // 2) // top).astype(np.uint8)
