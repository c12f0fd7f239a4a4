"""DICOM input: synthetic photographs wrapped by pydicom, read through engine.io like any image."""

import cv2
import numpy as np
import pytest
from dicom_helpers import encapsulated, jpeg_baseline, save, synth_photo, uncompressed
from pydicom.uid import JPEGLosslessSV1, JPEGLSLossless

from engine.dicom import DicomError, read_meta
from engine.io import ImageReadError, read_image, read_image_bytes


def _reason(path, **kw) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kw)
    assert str(path) in str(info.value)
    return info.value.reason


@pytest.fixture(scope="module")
def photo():
    return synth_photo(seed=3, size=96)


# ---- pixels ----------------------------------------------------------------------------------


def test_uncompressed_rgb_reads_exactly(tmp_path, photo):
    path = save(uncompressed(photo, PatientID="P1"), tmp_path / "a.dcm")
    np.testing.assert_array_equal(read_image(path), photo)


def test_jpeg_baseline_reads_close_to_the_source(tmp_path, photo):
    path = save(jpeg_baseline(photo, quality=95), tmp_path / "j.dcm")
    got = read_image(path)
    assert got.shape == photo.shape and got.dtype == np.uint8
    error = np.abs(got.astype(int) - photo.astype(int))
    assert error.mean() < 3.0, error.mean()  # JPEG at quality 95; YBR taken as RGB would be tens off
    # the same JPEG bytes through OpenCV's own decoder: the same picture within the decoders' rounding
    jpg = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
    direct = cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - direct.astype(int)).mean() < 1.0


def test_ybr_full_and_planar_configuration_read_as_rgb(tmp_path, photo):
    ycc = cv2.cvtColor(photo, cv2.COLOR_RGB2YCrCb)[..., [0, 2, 1]]  # DICOM order: Y, Cb, Cr
    ybr = read_image(save(uncompressed(ycc, photometric="YBR_FULL"), tmp_path / "ybr.dcm"))
    assert np.abs(ybr.astype(int) - photo.astype(int)).max() <= 2
    planar = read_image(save(uncompressed(photo, planar=1), tmp_path / "planar.dcm"))
    np.testing.assert_array_equal(planar, photo)


def test_gray_16_bit_scaled_by_bits_stored_and_monochrome1_inverted(tmp_path):
    gray = np.array([[0, 2048, 4095, 1000]], np.uint16).repeat(3, 0)
    got = read_image(save(uncompressed(gray, bits=12), tmp_path / "g12.dcm"))
    assert got.shape == (3, 4, 3) and (got[..., 0] == got[..., 2]).all()
    assert got[0].tolist() == [[0] * 3, [128] * 3, [255] * 3, [62] * 3]  # x * 255 / 4095, rounded
    inverted = read_image(save(uncompressed(gray, bits=12, photometric="MONOCHROME1"), tmp_path / "m1.dcm"))
    np.testing.assert_array_equal(inverted, 255 - got)


def test_multiframe_grades_the_first_frame_and_says_so(tmp_path, photo):
    path = save(uncompressed(photo, frames=3), tmp_path / "multi.dcm")
    np.testing.assert_array_equal(read_image(path), photo)
    assert read_meta(path).notes == ("it holds 3 frames; the first frame is graded",)


def test_dicom_without_an_extension_and_from_bytes(tmp_path, photo):
    path = save(uncompressed(photo), tmp_path / "IM000001")
    np.testing.assert_array_equal(read_image(path), photo)
    np.testing.assert_array_equal(read_image_bytes(path.read_bytes(), "dropped.dcm"), photo)


def test_pixel_limit_applies_before_decoding(tmp_path, photo):
    path = save(uncompressed(photo), tmp_path / "big.dcm")
    assert "96x96 = 9,216 pixels, more than the limit of 1,000" in _reason(path, max_pixels=1000)


# ---- metadata --------------------------------------------------------------------------------


def test_patient_eye_and_date_come_from_the_file(tmp_path, photo):
    path = save(uncompressed(photo, PatientID="  MRN-0042 ", ImageLaterality="L", StudyDate="20260501"),
                tmp_path / "m.dcm")
    meta = read_meta(path)
    assert meta.details() == {"patient_id": "MRN-0042", "eye": "OS", "visit_date": "2026-05-01"}
    assert (meta.laterality, meta.modality, meta.frames, meta.notes) == ("L", "OP", 1, ())
    assert meta.sop_class == "Ophthalmic Photography 8 Bit Image Storage"


def test_series_laterality_and_later_dates_fill_in(tmp_path, photo):
    meta = read_meta(save(uncompressed(photo, Laterality="R", AcquisitionDate="20251231"), tmp_path / "r.dcm"))
    assert (meta.eye, meta.visit_date) == ("OD", "2025-12-31")


def test_missing_or_unusable_laterality_and_date_are_left_blank(tmp_path, photo):
    bare = read_meta(save(uncompressed(photo), tmp_path / "bare.dcm"))
    assert bare.details() == {"patient_id": None, "eye": None, "visit_date": None} and bare.notes == ()
    odd = read_meta(save(uncompressed(photo, ImageLaterality="B", StudyDate="20261301"), tmp_path / "odd.dcm"))
    assert (odd.eye, odd.visit_date, odd.laterality) == (None, None, "B")
    assert odd.notes == ("its laterality is 'B' (both eyes), so the eye is left blank",
                         "its StudyDate '20261301' is not a date, so the visit date is left blank")


# ---- refused, each with its sentence ---------------------------------------------------------


def test_no_pixel_data_is_refused(tmp_path, photo):
    ds = uncompressed(photo)
    del ds.PixelData
    path = save(ds, tmp_path / "nopix.dcm")
    assert _reason(path) == ("it is a DICOM Ophthalmic Photography 8 Bit Image Storage without pixel data "
                             "(no image to grade)")
    assert read_meta(path).has_pixels is False


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEGLosslessSV1])
def test_unsupported_transfer_syntax_is_refused(tmp_path, photo, syntax):
    path = save(encapsulated(photo, syntax), tmp_path / "ls.dcm")
    reason = _reason(path)
    assert reason.startswith(f"its pixel data is stored as {syntax.name} ({syntax}), which this app cannot decode")
    assert "JPEG baseline" in reason


@pytest.mark.parametrize("photometric", ["CMYK", "HSV"])
def test_odd_photometric_is_refused(tmp_path, photo, photometric):
    path = save(uncompressed(photo, photometric=photometric), tmp_path / "odd.dcm")
    assert _reason(path).startswith(f"its colour model (photometric interpretation) is '{photometric}'")


def test_32_bit_samples_are_refused(tmp_path, photo):
    ds = uncompressed(photo[..., 0])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.PixelData = photo[..., 0].astype(np.uint32).tobytes()
    assert _reason(save(ds, tmp_path / "b32.dcm")) == "it has 32-bit samples; only 8- and 16-bit DICOM images are supported"


@pytest.mark.parametrize("build", [uncompressed, jpeg_baseline])
def test_truncated_file_is_refused(tmp_path, photo, build):
    data = save(build(photo), tmp_path / "whole.dcm").read_bytes()
    for cut in (len(data) - 300, len(data) // 2):
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        assert "truncated" in _reason(path), cut
    head = tmp_path / "head.dcm"
    head.write_bytes(data[:140])  # the marker, then nothing
    assert "not a readable DICOM file" in _reason(head) or "truncated" in _reason(head)


def test_damaged_jpeg_payload_is_refused(tmp_path, photo):
    ds = jpeg_baseline(photo)
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0garbage" * 10])
    assert "its pixel data cannot be decoded" in _reason(save(ds, tmp_path / "bad.dcm"))


def test_non_dicom_dcm_is_refused_and_a_misnamed_png_is_read(tmp_path, photo):
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file at all, just a note\n" * 10)
    assert _reason(text) == "it is named like a DICOM file but is not one (there is no 'DICM' marker at byte 128)"
    png = tmp_path / "photo.dcm"
    png.write_bytes(cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes())
    np.testing.assert_array_equal(read_image(png), photo)  # content decides, as for every other format
    with pytest.raises(DicomError, match="not a DICOM file"):
        read_meta(png)


def test_rle_and_jpeg_2000_read_through_their_decoders(tmp_path, photo):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, RLELossless

    rle = uncompressed(photo)
    rle.compress(RLELossless)  # pydicom's own encoder
    np.testing.assert_array_equal(read_image(save(rle, tmp_path / "rle.dcm")), photo)
    ok, jp2 = cv2.imencode(".jp2", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))  # OpenCV's OpenJPEG
    assert ok
    j2k = uncompressed(photo)
    j2k.file_meta.TransferSyntaxUID = JPEG2000Lossless
    j2k.PixelData = encapsulate([jp2.tobytes()])
    j2k["PixelData"].VR = "OB"
    j2k["PixelData"].is_undefined_length = True
    got = read_image(save(j2k, tmp_path / "j2k.dcm"))  # decoded by Pillow
    assert np.abs(got.astype(int) - photo.astype(int)).mean() < 1.0


def test_palette_colour_reads_through_its_lookup_table(tmp_path):
    index = np.array([[0, 1, 2, 255]], np.uint8).repeat(2, 0)
    ds = uncompressed(index, photometric="PALETTE COLOR")
    ramp = np.arange(256, dtype=np.uint16)
    for colour, table in (("Red", ramp * 257), ("Green", (255 - ramp) * 257), ("Blue", np.full(256, 128 * 257))):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table.astype("<u2").tobytes())
    got = read_image(save(ds, tmp_path / "palette.dcm"))
    assert got[0].tolist() == [[0, 255, 128], [1, 254, 128], [2, 253, 128], [255, 0, 128]]
