"""The sub-label form, the teacher's answer beside the student's, and the disagreement flag."""


import pytest
from helpers import write_disc
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QSpinBox

from cataract_app.grading.compare_panel import ComparePanel
from cataract_app.grading.loading import LoadOptions
from cataract_app.grading.sublabel_form import CONFIRMED, SUGGESTED, SubLabelForm
from cataract_app.main_window import MainWindow
from engine.request import PREDICTED
from engine.results import GradeResult, ModelInfo
from engine.schema import DEFAULT_SCHEMA

WAIT_MS = 60_000



def make_window(qtbot, tmp_path, student, teacher):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(str(student), str(teacher) if teacher else None, "cpu"), settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None or w.model_error is not None, timeout=WAIT_MS)
    assert w.model_error is None
    return w


def graded(qtbot, window, path):
    window.open_path(path)
    qtbot.waitUntil(lambda: window.student is not None and window.student.source == str(path), timeout=WAIT_MS)


def fake_result(grade: int, role: str) -> GradeResult:
    probs = tuple(0.65 if k == grade else 0.05 for k in range(8))
    return GradeResult(grade=grade, probabilities=probs, confidence=0.65, expected_grade=float(grade),
                       model=ModelInfo(f"m-{role}", f"{role}-id", role, "arch"))


def test_form_has_one_field_per_sublabel_with_blank_unknown_and_help(qtbot):
    form = SubLabelForm()
    qtbot.addWidget(form)
    form.set_schema(DEFAULT_SCHEMA)
    assert list(form.fields) == list(DEFAULT_SCHEMA.names)
    central = form.fields["central_involvement"].editor
    assert isinstance(central, QComboBox)
    assert [central.itemText(i) for i in range(central.count())] == [
        "(unknown)", "0 \u00b7 none", "1 \u00b7 touches", "2 \u00b7 covers"]
    assert central.toolTip() == DEFAULT_SCHEMA.get("central_involvement").description
    sectors = form.fields["sectors_involved"].editor
    assert isinstance(sectors, QSpinBox) and sectors.text() == "(unknown)"
    assert form.confirmed_values() == dict.fromkeys(DEFAULT_SCHEMA.names)


def test_suggestions_are_marked_and_count_only_once_confirmed(qtbot):
    form = SubLabelForm()
    qtbot.addWidget(form)
    form.set_schema(DEFAULT_SCHEMA)
    form.set_teacher_available(True)
    form.set_has_image(True)
    form.suggest({"central_involvement": 2, "sectors_involved": 5})
    field = form.fields["central_involvement"]
    assert field.state == SUGGESTED and field.value() == 2 and field.tag.text() == "suggested"
    assert "italic" in field.editor.styleSheet()
    assert form.confirmed_values()["central_involvement"] is None
    assert not form.grade_button.isEnabled()
    field.editor.activated.emit(3)  # the clinician picks "2 · covers" themselves
    assert field.state == CONFIRMED and field.tag.text() == "" and field.editor.styleSheet() == ""
    assert form.confirmed_values()["central_involvement"] == 2
    assert form.grade_button.isEnabled()
    form.accept_suggestions()
    assert form.confirmed_values()["sectors_involved"] == 5


def test_partial_sublabels_bring_the_teachers_answer_beside_the_students(qtbot, tiny_bundles, tmp_path):
    student, teacher = tiny_bundles
    window = make_window(qtbot, tmp_path, student, teacher)
    graded(qtbot, window, write_disc(tmp_path / "eye.png"))
    form = window.form
    assert any(f.state == SUGGESTED for f in form.fields.values())  # the student's predictions
    form.set_value("opacity_density", 2)
    form.set_value("sectors_involved", 3)
    assert form.grade_button.isEnabled()
    form.grade_button.click()
    qtbot.waitUntil(lambda: window.teacher is not None, timeout=WAIT_MS)
    result = window.teacher
    assert result.model.role == "teacher"
    assert result.sublabels_used["opacity_density"] == 2 and result.sublabels_used["sectors_involved"] == 3
    assert result.sublabels_used["central_involvement"] is None  # a suggestion, never confirmed
    assert window.compare.teacher_col.grade.text() == str(result.grade)
    assert window.compare.student_col.grade.text() == str(window.student.grade)
    assert window.grade_panel.grade_text() == str(result.grade)
    assert "fusion" in window.grade_panel.answered_by.text()
    form.set_value("opacity_density", 3)
    assert "changed" in window.compare.teacher_col.note.text()


def test_without_a_teacher_the_form_is_disabled_and_says_why(qtbot, tiny_bundles, tmp_path, monkeypatch):
    no_models = lambda role: tmp_path / "no-models" / role  # noqa: E731  (no shipped teacher either)
    monkeypatch.setattr("engine.infer.default_model_dir", no_models)
    monkeypatch.setattr("engine.model_store.default_model_dir", no_models)
    monkeypatch.setenv("CATARACT_GRADER_HOME", str(tmp_path / "store"))
    student, _ = tiny_bundles
    window = make_window(qtbot, tmp_path, student, None)
    graded(qtbot, window, write_disc(tmp_path / "eye.png"))
    form = window.form
    assert not form.grade_button.isEnabled()
    assert not form.fields["central_involvement"].isEnabled()
    assert "none is loaded" in form.reason.text() and not form.reason.isHidden()
    assert "No fusion teacher" in window.compare.teacher_col.note.text()
    window.grade_with_sublabels({"central_involvement": 1})  # even if asked, the error is readable
    qtbot.waitUntil(lambda: "teacher" in window.status.last_error, timeout=WAIT_MS)
    assert window.grade_panel.result() is window.student  # the student's answer stays on screen


@pytest.mark.parametrize(("student", "teacher", "flagged"), [(1, 4, True), (5, 3, True), (2, 3, False), (6, 6, False)])
def test_a_disagreement_of_two_grades_or_more_is_highlighted(qtbot, student, teacher, flagged):
    panel = ComparePanel()
    qtbot.addWidget(panel)
    panel.set_student(fake_result(student, "student"))
    assert not panel.is_flagged() and panel.note.isHidden()
    panel.set_teacher(fake_result(teacher, "teacher"))
    assert panel.gap() == abs(student - teacher)
    assert panel.is_flagged() is flagged
    assert ("disagree by" in panel.note.text()) is flagged
    assert ("#fdecea" in panel.student_col.styleSheet()) is flagged


def test_heat_map_target_regrades_both_models_and_is_remembered(qtbot, tiny_bundles, tmp_path):
    student, teacher = tiny_bundles
    window = make_window(qtbot, tmp_path, student, teacher)
    graded(qtbot, window, write_disc(tmp_path / "eye.png"))
    assert window.student.cam_target == "severity"  # by default the map shows what raises the grade
    window.grade_with_sublabels({"central_involvement": 1})
    qtbot.waitUntil(lambda: window.teacher is not None, timeout=WAIT_MS)
    before = window.student
    bar = window.overlay_bar
    bar.explain.setCurrentIndex(bar.explain.findData(PREDICTED.key))
    predicted = before.grade
    qtbot.waitUntil(lambda: window.student.cam_target == predicted and window.teacher is not None
                    and window.teacher.cam_target == window.teacher.grade, timeout=WAIT_MS)
    assert window.student.grade == before.grade and window.student.probabilities == before.probabilities
    assert window.teacher.sublabels_used["central_involvement"] == 1  # the same form values again
    window.close()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert settings.value("cam_target") == "predicted"
    again = make_window(qtbot, tmp_path, student, teacher)
    assert again.overlay_bar.cam_target() is PREDICTED
