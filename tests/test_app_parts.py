"""The window's parts on their own: folder navigation, recent files, the worker, About."""

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from cataract_app.about import about_html, metrics_summary
from cataract_app.errors import user_message
from cataract_app.grading.loading import ModelSummary
from cataract_app.grading.worker import GradingService
from cataract_app.viewer.navigation import MAX_RECENT, RecentFiles, position_in_folder, sibling_images, step_image
from engine.io import ImageReadError
from engine.request import GradeRequest
from engine.results import GradeResult, ModelInfo
from engine.schema import DEFAULT_SCHEMA

WAIT_MS = 10_000


def test_folder_images_sort_naturally_and_skip_other_files(tmp_path):
    for name in ("img10.png", "img2.JPG", "img1.tif", "notes.txt", "scan.dcm"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in sibling_images(tmp_path / "img2.JPG")] == ["img1.tif", "img2.JPG", "img10.png"]
    assert step_image(tmp_path / "img2.JPG", 1).name == "img10.png"
    assert step_image(tmp_path / "img2.JPG", -1).name == "img1.tif"
    assert step_image(tmp_path / "img10.png", 1) is None and step_image(tmp_path / "img1.tif", -1) is None
    assert step_image(tmp_path / "notes.txt", 1).name == "img1.tif"  # from a non-image: the first image
    assert position_in_folder(tmp_path / "img10.png") == (3, 3)
    assert position_in_folder(tmp_path / "notes.txt") == (0, 3)


def test_recent_files_are_newest_first_unique_and_bounded(tmp_path):
    recent = RecentFiles(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert recent.paths() == []
    recent.add(tmp_path / "a.png")
    assert recent.paths() == [str(tmp_path / "a.png")]  # a one-item list survives the round trip
    for i in range(12):
        recent.add(tmp_path / f"{i}.png")
    recent.add(tmp_path / "3.png")
    paths = recent.paths()
    assert len(paths) == MAX_RECENT and paths[0] == str(tmp_path / "3.png") and len(set(paths)) == len(paths)
    recent.remove(paths[0])
    assert str(tmp_path / "3.png") not in recent.paths()


def _result(grade: int = 3) -> GradeResult:
    probs = tuple(0.3 if k == grade else 0.1 for k in range(8))
    return GradeResult(grade=grade, probabilities=probs, confidence=0.3, expected_grade=3.0,
                       model=ModelInfo("fake", "fake-1", "student", "fake"))


class FakeGrader:
    """Stands in for engine.infer.Grader: no torch, answers or raises on demand."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls = 0

    def grade(self, image, request=None):
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return _result(int(image[0, 0, 0]) % 8)


def _factory(grader):
    summary = ModelSummary(DEFAULT_SCHEMA, None, None, False, "cpu", ("jet",))
    return lambda _options: (grader, summary)


def _service(qtbot, grader):
    service = GradingService(factory=_factory(grader))
    seen = {"ready": [], "graded": [], "failed": [], "finished": []}
    service.model_ready.connect(seen["ready"].append)
    service.graded.connect(lambda req, res: seen["graded"].append((req.ticket_id, res.grade)))
    service.failed.connect(lambda req, msg: seen["failed"].append((req.ticket_id, msg)))
    service.finished.connect(lambda req: seen["finished"].append(req.ticket_id))
    service.load(None)
    qtbot.waitUntil(lambda: bool(seen["ready"]), timeout=WAIT_MS)
    return service, seen


def _image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def test_a_worker_that_raises_reports_a_message_and_still_finishes(qtbot):
    service, seen = _service(qtbot, FakeGrader(fail_with=ImageReadError("cannot read image 'x.png': it is empty")))
    request = service.submit(_image(1), GradeRequest(), "x.png")
    qtbot.waitUntil(lambda: seen["finished"] == [request.ticket_id], timeout=WAIT_MS)
    assert seen["failed"] == [(request.ticket_id, "Cannot read image 'x.png': it is empty")]
    assert seen["graded"] == [] and service.pending == 0
    service.shutdown()


def test_only_the_newest_request_reaches_the_window(qtbot):
    grader = FakeGrader()
    service, seen = _service(qtbot, grader)
    requests = [service.submit(_image(v), GradeRequest(), f"{v}.png") for v in (1, 2, 5)]
    qtbot.waitUntil(lambda: len(seen["finished"]) == 3, timeout=WAIT_MS)
    assert seen["graded"] == [(requests[-1].ticket_id, 5)]
    assert grader.calls <= 3 and service.pending == 0
    service.shutdown()


def test_a_model_that_fails_to_load_is_reported_and_grading_says_so(qtbot):
    def broken_factory(_options):
        raise ValueError("bundle /nowhere: no card.json")

    service = GradingService(factory=broken_factory)
    failures, failed = [], []
    service.model_failed.connect(failures.append)
    service.failed.connect(lambda req, msg: failed.append(msg))
    service.load(None)
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT_MS)
    assert failures == ["Bundle /nowhere: no card.json"]
    service.submit(_image(1), GradeRequest(), None)
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    assert failed == ["Bundle /nowhere: no card.json"]
    service.shutdown()


def test_unexpected_errors_still_read_as_a_sentence(capsys):
    assert user_message(KeyError("boom")) == "Unexpected error (KeyError): 'boom'"
    assert "KeyError" in capsys.readouterr().err  # the traceback goes to the log, not the user


def test_about_lists_version_cards_metrics_notice_and_disclaimer():
    card = SimpleNamespace(name="demo-student", model_id="st-123", role="student", arch="student", image_size=224,
                           created="2025-01-02T03:04:05Z", metrics={"val": {"accuracy": 0.61, "qwk": 0.8123}},
                           notice="Demo model - not for clinical use.")
    text = about_html("9.9.9", [card], "cpu")
    for expected in ("9.9.9", "demo-student", "st-123", "Student model", "2025-01-02", "val.qwk 0.812",
                     "not for clinical use", "Disclaimer", "cpu"):
        assert expected in text
    assert metrics_summary({}) == "none recorded"
    assert metrics_summary({"mae": 0.5, "accuracy": 0.7}) == "accuracy 0.7 \u00b7 mae 0.5"
    assert "No model is loaded" in about_html("1", [], None)


@pytest.mark.parametrize("notice", [None, "Demo model - not for clinical use."])
def test_grade_panel_shows_the_banner_only_with_a_notice(qtbot, notice):
    from cataract_app.grading.grade_panel import GradePanel

    panel = GradePanel()
    qtbot.addWidget(panel)
    result = GradeResult(grade=6, probabilities=tuple([0.02] * 6 + [0.86, 0.02]), confidence=0.86,
                         expected_grade=5.9, model=ModelInfo("m", "m-1", "student", "a", notice))
    panel.show_result(result)
    assert panel.grade_text() == "6" and "86 %" in panel.confidence.text() and "low" not in panel.confidence.text()
    assert panel.banner.isHidden() is (notice is None)
