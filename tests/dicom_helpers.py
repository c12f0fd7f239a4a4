"""Builders for DICOM test files: synthetic photographs wrapped by pydicom, uncompressed or JPEG baseline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

OPHTHALMIC_PHOTO_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"


def synth_photo(seed: int = 0, size: int = 96) -> np.ndarray:
    """One synthetic retro-illumination photograph (HxWx3 uint8 RGB)."""
    from engine.synth.sample import render_sample

    return render_sample(np.random.default_rng(seed), image_size=size).image


def dataset(rows: int, cols: int, syntax: str = ExplicitVRLittleEndian, **tags) -> Dataset:
    """A DICOM dataset with file meta and the given tags (PatientID, ImageLaterality, StudyDate, ...)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = OPHTHALMIC_PHOTO_8BIT
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = OPHTHALMIC_PHOTO_8BIT
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OP"
    ds.Rows, ds.Columns = rows, cols
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def _pixels_tags(ds: Dataset, samples: int, bits: int, photometric: str, planar: int | None) -> None:
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if samples == 3:
        ds.PlanarConfiguration = planar or 0


def uncompressed(rgb_or_gray: np.ndarray, photometric: str | None = None, bits: int = 8, planar: int = 0,
                 frames: int = 1, **tags) -> Dataset:
    """Native (uncompressed) pixel data: RGB, or gray (2-D) as MONOCHROME2; `frames` copies of the image."""
    arr = rgb_or_gray
    samples = 3 if arr.ndim == 3 else 1
    ds = dataset(arr.shape[0], arr.shape[1], **tags)
    _pixels_tags(ds, samples, bits, photometric or ("RGB" if samples == 3 else "MONOCHROME2"), planar)
    if samples == 3 and planar == 1:
        arr = arr.transpose(2, 0, 1)
    arr = arr.astype(np.uint8 if bits <= 8 else np.uint16)
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = b"".join([arr.tobytes()] * frames)
    return ds


def jpeg_baseline(rgb: np.ndarray, quality: int = 95, **tags) -> Dataset:
    """JPEG baseline (1.2.840.10008.1.2.4.50), encoded by OpenCV and encapsulated by pydicom."""
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    ds = dataset(rgb.shape[0], rgb.shape[1], syntax=JPEGBaseline8Bit, **tags)
    _pixels_tags(ds, 3, 8, "YBR_FULL_422", 0)
    ds.PixelData = encapsulate([jpg.tobytes()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def encapsulated(rgb: np.ndarray, syntax: str, payload: bytes = b"\xff\xd8\xff\xf7not-decodable\xff\xd9",
                 **tags) -> Dataset:
    """Pixel data claimed to be in `syntax` (e.g. JPEG-LS), with a payload no decoder is asked to read."""
    ds = dataset(rgb.shape[0], rgb.shape[1], syntax=syntax, **tags)
    _pixels_tags(ds, 3, 8, "RGB", 0)
    ds.PixelData = encapsulate([payload])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Write a DICOM Part 10 file (preamble, 'DICM', file meta)."""
    ds.save_as(str(path), enforce_file_format=True)
    assert pydicom.dcmread(str(path), stop_before_pixels=True).SOPClassUID == ds.SOPClassUID
    return path
