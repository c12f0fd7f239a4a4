"""The self-test's clinic check: a DICOM photograph read back through pydicom, graded, and drawn into a PDF report.

The frozen app must carry pydicom (with its Pillow JPEG decoder plugin) and reportlab; this
check fails when either is missing from the bundle or cannot do its job there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPHTHALMIC_PHOTO_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
MIN_PDF_BYTES = 5_000  # a page with two pictures; an empty canvas is about 1 KB


class ClinicCheckError(Exception):
    """The DICOM or report step failed; the message says which and why."""


def write_jpeg_dicom(rgb: np.ndarray, path: Path) -> Path:
    """The photograph as a JPEG-baseline ophthalmic DICOM file (Part 10), as a clinic camera writes it."""
    import cv2
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ClinicCheckError("OpenCV could not encode the sample as JPEG")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = OPHTHALMIC_PHOTO_8BIT
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.PatientID, ds.ImageLaterality, ds.StudyDate = "OP", "SELFTEST-1", "R", "20260101"
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([jpg.tobytes()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(str(path), enforce_file_format=True)
    return path


def check_dicom_report(sample: Path, student: Path, device: str, scratch: Path) -> str:
    """Wrap the sample in DICOM, read it back (pydicom + Pillow), grade it and write its one-page PDF (reportlab)."""
    from engine.infer import Grader
    from engine.io import read_image
    from engine.report import image_item, model_notices, write_pdf

    rgb = read_image(sample)
    dcm = write_jpeg_dicom(rgb, scratch / "selftest.dcm")
    back = read_image(dcm)
    if back.shape != rgb.shape:
        raise ClinicCheckError(f"the DICOM copy decoded to {back.shape}, not the sample's {rgb.shape}")
    diff = float(np.abs(back.astype(np.int16) - rgb.astype(np.int16)).mean())
    if diff > 8:
        raise ClinicCheckError(f"the DICOM copy differs from the sample by {diff:.1f} grey levels on average")
    grader = Grader(student=student, device=device)
    item = image_item(str(dcm), grader, None, "predicted", "gradcam", model_notices(grader))
    if item.details.get("patient_id") != "SELFTEST-1":
        raise ClinicCheckError(f"the DICOM's patient ID read back as {item.details.get('patient_id')!r}")
    pdf = write_pdf(scratch / "selftest-report.pdf", [item])
    data = Path(pdf).read_bytes()
    if not data.startswith(b"%PDF") or len(data) < MIN_PDF_BYTES:
        raise ClinicCheckError(f"the report {pdf} is not a PDF page with pictures ({len(data)} bytes)")
    return f"DICOM read back (mean difference {diff:.1f}), graded {item.answers[-1].grade}, PDF report {len(data) // 1024} KB"
