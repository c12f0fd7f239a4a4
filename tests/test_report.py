"""The PDF report: pages read back with pypdf; what each shows comes from the case, its answers and the history."""

import os

import pytest
from case_helpers import STUDENT, TEACHER, result
from dicom_helpers import save, synth_photo, uncompressed
from helpers import write_disc
from pypdf import PdfReader

from engine.cases import CaseLog
from engine.cli import main
from engine.report import ReportError, case_item, report_items, write_pdf
from engine.report.pdf import MARGIN, PAGE_H, PAGE_W

NOTICE = "Demo model trained on synthetic images - not for clinical use."


@pytest.fixture(scope="module")
def grader(tiny_bundles):
    from engine.infer import Grader

    return Grader(tiny_bundles[0], None, device="cpu")


@pytest.fixture
def log(tmp_path):
    with CaseLog.open(tmp_path / "cases.sqlite3", user="dr-a") as log:
        yield log


def _pages(path) -> list[str]:
    """Each page's text, its runs and wrapped lines joined by single spaces."""
    return [" ".join(page.extract_text().split()) for page in PdfReader(str(path)).pages]


def _two_visits(log, tmp_path):
    """Patient P1: a reviewed OD visit with sub-labels, a teacher answer and a note; an open OS visit."""
    first, second = write_disc(tmp_path / "od.png", radius=14), write_disc(tmp_path / "os.png", radius=24)
    sub = {"central_involvement": 2, "pupil_area_obscured": None, "sectors_involved": 3, "radial_extent": 1,
           "opacity_density": 2, "morphology": 1}
    a = log.record(result(first, grade=3), patient_id="P1", eye="OD", visit_date="2025-01-01", sublabels=sub)
    log.record(result(first, grade=5, model=TEACHER, sublabels_used=sub))
    log.correct(a.id, 4, note="spokes at 7 o'clock")
    b = log.record(result(second, grade=6), patient_id="P1", eye="OS", visit_date="2026-02-01")
    return a.id, b.id


def test_one_page_per_case_with_what_each_case_holds(log, tmp_path, grader):
    a, b = _two_visits(log, tmp_path)
    items = report_items([a, b], log=log, grader=grader, notices={STUDENT.model_id: NOTICE})
    out = write_pdf(tmp_path / "r.pdf", items)
    first, second = _pages(out)
    for text in ("Patient", "P1", "OD (right)", "2025-01-01", f"case {a} · page 1 of 2", NOTICE,
                 "Final grade 4", "corrected the model", "by dr-a", "Note: spokes at 7 o'clock",
                 "Student", "Teacher", "with 5 of 6 sub-labels entered", "Input gate", "not checked",
                 "central involvement", "2 · covers", "1 · touches", "Grade history of patient P1",
                 "2026-02-01", f"model {TEACHER.model_id[:8]}", f"id {STUDENT.model_id}",
                 "notice: unknown (the model is not installed here)", "what raises the expected grade"):
        assert text in first, text
    assert "confidence 90 % (calibrated)" in first  # the latest answer: the teacher's grade 5
    assert "OS (left)" in second and "not reviewed" in second and "not asked (no sub-labels entered)" in second
    assert items[0].heat is not None and items[0].heat.cam.shape == items[0].image.shape[:2]


def test_text_starts_inside_the_printable_area(log, tmp_path, grader):
    a, b = _two_visits(log, tmp_path)
    long_note = "dense wedges inferonasally, " * 40
    log.correct(b, 2, note=long_note)
    log.set_gate(b, {"ok": False, "reason": "the lens is off-centre " * 5, "ood_score": 1.8, "checks": {"focus": 0.3}})
    out = write_pdf(tmp_path / "r.pdf", report_items([a, b], log=log, grader=grader))
    starts = []
    for page in PdfReader(str(out)).pages:
        page.extract_text(visitor_text=lambda t, cm, tm, fd, fs: starts.append((t, cm[4] + tm[4], cm[5] + tm[5])))
    placed = [(t, x, y) for t, x, y in starts if t.strip()]
    assert len(placed) > 100
    outside = [(t, x, y) for t, x, y in placed if not (MARGIN - 1 <= x <= PAGE_W - MARGIN and
                                                      MARGIN - 12 <= y <= PAGE_H - MARGIN)]
    assert outside == []
    text = _pages(out)[1]
    assert "failed" in text and "checks.focus: 0.3" in text and "ood_score: 1.8" in text
    assert "…" in text and long_note not in text  # the note is cut to its lines, not run off the page


def test_an_image_not_in_the_log_is_graded_for_the_report_and_not_recorded(log, tmp_path, grader):
    dcm = save(uncompressed(synth_photo(4, 64), PatientID="P1", ImageLaterality="L", StudyDate="20260303"),
               tmp_path / "new.dcm")
    _two_visits(log, tmp_path)
    before = log.count()
    (item,) = report_items([str(dcm)], log=log, grader=grader)
    assert log.count() == before and item.case is None
    assert item.details == {"patient_id": "P1", "eye": "OS", "visit_date": "2026-03-03"}
    assert len(item.history) == 2  # the patient's recorded visits are drawn
    text = _pages(write_pdf(tmp_path / "new.pdf", [item]))[0]
    assert "not in the case log: graded for this report only, not recorded" in text
    assert "OS (left)" in text and "2026-03-03" in text and "not reviewed (not in the case log)" in text


def test_a_missing_photograph_is_said_and_the_answers_still_shown(log, tmp_path, grader):
    a, _b = _two_visits(log, tmp_path)
    (tmp_path / "od.png").unlink()
    (item,) = report_items([a], log=log, grader=grader)
    assert item.image is None and item.heat is None
    text = _pages(write_pdf(tmp_path / "gone.pdf", [item]))[0]
    assert "is no longer there (moved or deleted)" in text and "the photograph cannot be shown" in text
    assert "Final grade 4" in text


def test_a_given_heat_map_spares_the_regrade(log, tmp_path, grader):
    a, _b = _two_visits(log, tmp_path)
    given = grader.grade(tmp_path / "od.png", grader.request(cam=True, target=2))
    item = case_item(log.get(a), log, None, "severity", "gradcam", {}, heat=given)
    assert item.heat is given
    assert "what speaks for grade 2" in _pages(write_pdf(tmp_path / "g.pdf", [item]))[0]


def test_the_pdf_is_replaced_whole_or_not_at_all(log, tmp_path, grader, monkeypatch):
    a, _b = _two_visits(log, tmp_path)
    out = tmp_path / "r.pdf"
    out.write_bytes(b"%PDF- the earlier report")
    items = report_items([a], log=log, grader=grader)

    def full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ReportError, match="cannot be written to .*No space left on device"):
        write_pdf(out, items)
    assert out.read_bytes() == b"%PDF- the earlier report"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.pdf")] == []
    with pytest.raises(ReportError, match="at least one case"):
        write_pdf(out, [])


def test_report_cli(log, tmp_path, tiny_bundles, capsys):
    a, b = _two_visits(log, tmp_path)
    extra = write_disc(tmp_path / "extra.png", radius=20)
    out, db = tmp_path / "cli.pdf", str(log.path)
    assert main(["report", str(a), str(extra), "--patient", "P1", "--pdf", str(out), "--db", db,
                 "--model", str(tiny_bundles[0]), "--device", "cpu"]) == 0
    pages = _pages(out)
    assert len(pages) == 4 and "not in the case log" in pages[1] and f"case {b} · page 4 of 4" in pages[3]
    assert "4 pages written to" in capsys.readouterr().out
    assert main(["report", str(a), "--no-cam", "--pdf", str(tmp_path / "n.pdf"), "--db", db]) == 0
    assert "no heat map: no model was loaded" in _pages(tmp_path / "n.pdf")[0]
    capsys.readouterr()
    assert main(["report", "99", "--pdf", str(out), "--db", db, "--no-cam"]) == 2
    assert "there is no case 99" in capsys.readouterr().err
    assert main(["report", "nothere.png", "--pdf", str(out), "--db", db]) == 2
    assert "'nothere.png' is neither a case id nor an image file" in capsys.readouterr().err
    assert len(_pages(out)) == 4  # the refused runs left the earlier report as it was


def test_the_input_gate_result_as_the_gate_gives_it(log, tmp_path, grader):
    import numpy as np

    from engine.gate import check_image

    a, b = _two_visits(log, tmp_path)
    dark = check_image((synth_photo(6, 128) * 0.1).astype(np.uint8))
    assert not dark.ok and dark.reasons
    log.set_gate(a, dark)
    log.set_gate(b, check_image(synth_photo(6, 128)))
    first, second = _pages(write_pdf(tmp_path / "g.pdf", report_items([a, b], log=log, grader=None)))
    assert "Input gate failed " + dark.reasons[0] in first and "measures.bright:" in first
    assert "timings_ms" not in first and "lens." not in first
    assert "Input gate passed" in second
