"""The main window: composes the viewer and the grading panels, binds the named actions, shows the session.

It holds no model logic and no grading rules: the GradingSession (cataract_app.session)
decides what to grade and when, and the window turns its notices into widgets. Images are
read on a pool thread, graded by the one Grader in the worker thread, and only the newest
request's answer is ever shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QFileDialog, QMainWindow, QScrollArea, QSplitter, QTabWidget, QVBoxLayout, QWidget

from cataract_app import APPLICATION, DISPLAY_NAME, ORGANISATION
from cataract_app.actions import bind_actions, build_menus
from cataract_app.batch.controller import BatchController
from cataract_app.cases.report import ReportController
from cataract_app.cases.room import CasesRoom
from cataract_app.cases.service import app_db_path
from cataract_app.grading.compare_panel import ComparePanel
from cataract_app.grading.grade_panel import GradePanel
from cataract_app.grading.input_box import InputProblemsBox
from cataract_app.grading.loading import LoadOptions, ModelSummary, build_grader
from cataract_app.grading.sublabel_form import SubLabelForm
from cataract_app.grading.worker import GradingService
from cataract_app.resources import app_icon_path
from cataract_app.retrain.controller import TrainingController
from cataract_app.session import NO_TEACHER, GradingSession
from cataract_app.status_line import StatusLine
from cataract_app.viewer.image_bar import ImageBar
from cataract_app.viewer.image_view import ImageView
from cataract_app.viewer.lens_bar import LensBar, LensEditor
from cataract_app.viewer.navigation import (
    RecentFiles,
    open_folder,
    remember_open_folder,
    step_image,
    supported_extensions,
)
from cataract_app.viewer.overlay_bar import OverlayBar
from cataract_app.viewer.reader import ImageReader
from cataract_app.viewer.recent_menu import RecentMenu
from cataract_app.wheel_guard import guard_inputs
from engine.choices import TEACHER
from engine.request import GradeRequest
from engine.results import GradeResult


class _Backend:
    """The session's side effects: the window's image reader and grading service."""

    def __init__(self, reader: ImageReader, service: GradingService) -> None:
        self.reader, self.service = reader, service

    def read(self, path: str) -> None:
        self.reader.read(path)

    def submit(self, image: np.ndarray, request: GradeRequest, source: str | None) -> None:
        self.service.submit(image, request, source)

    def supersede(self) -> None:
        self.service.supersede_all()


class MainWindow(QMainWindow):
    """Two tabs: grading (image on the left; grade, case, comparison, sub-labels on the right) and the Cases panel."""

    grade_shown = Signal(object)  # GradeResult now on screen
    error_shown = Signal(str)  # a message the user was shown
    model_loaded = Signal(object)  # ModelSummary
    input_refused = Signal(object)  # InputCheck: the input gate held a grade back

    def __init__(
        self, options: LoadOptions | None = None, settings: QSettings | None = None, factory=None, store=None,
        cases_db: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings(ORGANISATION, APPLICATION)
        self.training = TrainingController(self, self.settings, store)  # the model store, Training menu, promote
        self.training.resolve(options or LoadOptions())
        self.training.models_changed.connect(self.reload_models)
        self.recent = RecentFiles(self.settings)
        self.cases = CasesRoom(cases_db or app_db_path(self.training.store.root), self)  # the case log's part
        self.training.cases_db = self.cases.service.path
        self._build_widgets()
        self.actions_by_name = self._bind_actions()
        self.reader = ImageReader(self)
        self.service = GradingService(factory or build_grader, parent=self)
        self.session = GradingSession(_Backend(self.reader, self.service), cases=self.cases.service)
        self.lens = LensEditor(self.view, self.lens_bar)  # the lens circle over the photograph
        self._connect()
        self._clinic_tools()
        self._restore_settings()
        guard_inputs(self)  # no wheel event changes a combo or spin box the user has not focused
        self.grade_panel.show_state("Loading model\u2026", busy=True)
        self.status.show_model("Loading model\u2026", "")
        self.service.load(self.load_options)

    # ---- what the session knows, for callers and tests ----------------------------------------------
    @property
    def load_options(self) -> LoadOptions:
        return self.training.load_options

    @property
    def summary(self) -> ModelSummary | None:
        return self.session.summary

    @property
    def model_error(self) -> str | None:
        return self.session.model_error

    @property
    def path(self) -> str | None:
        return self.session.path

    @property
    def student(self) -> GradeResult | None:
        return self.session.student

    @property
    def teacher(self) -> GradeResult | None:
        return self.session.teacher

    def reload_models(self, options: LoadOptions, message: str = "") -> None:
        """Load other bundles into the one Grader (after a promote); an open image is graded again."""
        self.status.show_model("Loading model\u2026", "")
        if message:
            self.status.message(message, 8000)
        self.service.load(options)

    # ---- layout ------------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.setWindowTitle(DISPLAY_NAME)
        icon = app_icon_path()
        if icon:
            self.setWindowIcon(QIcon(str(icon)))
        self.setAcceptDrops(True)
        self.image_bar, self.view, self.overlay_bar = ImageBar(), ImageView(), OverlayBar()
        self.grade_panel, self.compare, self.form = GradePanel(), ComparePanel(), SubLabelForm()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.lens_bar, self.input_box = LensBar(), InputProblemsBox()
        self.splitter.addWidget(_column((self.image_bar, self.view, self.overlay_bar, self.lens_bar), stretch=1))
        self.grade_panel.layout().insertWidget(2, self.input_box)  # under the state line, over the grade
        column = (self.grade_panel, self.cases.review_box, self.compare, self.form)
        self.right_panel = _scrolling(_column(column, margins=(10, 4, 10, 10)))
        # the sub-label actions stay in view under the panel, at 1366x768 too
        self.splitter.addWidget(_column((self.right_panel, self.form.actions_bar), stretch=0))
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.grade_panel.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click on the grade gives its review keys
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.splitter, "Grading")
        self.tabs.addTab(self.cases.panel, "Cases")
        self.setCentralWidget(self.tabs)
        self.status = StatusLine(self.statusBar())
        self.setMinimumSize(900, 600)

    def _bind_actions(self) -> dict:
        toggle = self.overlay_bar.toggle
        actions = bind_actions(self, {
            "open": self.open_dialog, "next": lambda: self.step(1), "previous": lambda: self.step(-1),
            "quit": self.close, "zoom_in": self.view.zoom_in, "zoom_out": self.view.zoom_out,
            "fit": self.view.fit_to_window, "actual": self.view.actual_size, "heatmap": toggle.toggle,
            "grade_folder": lambda: self.batch.choose_folder(), "report": lambda: self.reports.report(),
            "retrain": self.training.open_retrain, "models": self.training.open_models, "about": self.about,
            **self.cases.slots(),
        })
        actions["heatmap"].setChecked(toggle.isChecked())
        toggle.toggled.connect(actions["heatmap"].setChecked)
        recent = RecentMenu(self.recent, self.open_recent, self)
        build_menus(self.menuBar(), actions, recent)
        actions["recent_menu"] = recent.menuAction()
        return actions

    def _connect(self) -> None:
        self.reader.loaded.connect(lambda _token, path, rgb: self.session.image_read(path, rgb))
        self.reader.failed.connect(lambda _token, path, message: self.session.image_failed(path, message))
        self.service.model_ready.connect(self.session.models_ready)
        self.service.model_failed.connect(self.session.models_failed)
        self.service.graded.connect(lambda ticket, result: self.session.accept(ticket.request, result))
        self.service.failed.connect(lambda ticket, message: self.session.reject(ticket.request, message))
        s = self.session
        s.opening.connect(lambda _path: self.compare.clear())
        s.image_changed.connect(self._show_image)
        s.state.connect(lambda text, busy, keep: self.grade_panel.show_state(text, busy=busy, keep_result=keep))
        s.failed.connect(self._show_error)
        s.note.connect(self.status.message)
        s.answered.connect(self._show_answer)
        s.cam_changed.connect(lambda _result: self._refresh_overlay())
        s.stale_changed.connect(self.compare.set_teacher_stale)
        s.models_changed.connect(self._show_models)
        bar = self.overlay_bar
        bar.visibility_changed.connect(self.view.set_overlay_visible)
        # overlay_cam blends by alpha * w(cam); drawing the alpha=1 blend at opacity a over the photo
        # gives exactly the alpha=a blend, so the slider only changes the layer's opacity.
        bar.opacity_changed.connect(self.view.set_overlay_opacity)
        bar.colormap_changed.connect(self._refresh_overlay)
        bar.cam_target_changed.connect(s.set_target)
        self.image_bar.fit_requested.connect(self.view.fit_to_window)
        self.image_bar.zoom_in_requested.connect(self.view.zoom_in)
        self.image_bar.zoom_out_requested.connect(self.view.zoom_out)
        self.image_bar.step_requested.connect(self.step)
        self.view.zoom_changed.connect(self.image_bar.show_zoom)
        self.view.set_overlay_opacity(bar.opacity.value() / 100.0)
        self.form.grade_requested.connect(self.grade_with_sublabels)
        self.form.edited.connect(lambda: s.enter_sublabels(self.form.confirmed_values()))
        s.sublabels_restored.connect(self.form.set_values)
        self.cases.connect(s, [self.view, self.grade_panel], self.status, self.tabs)
        self.lens.connect(s)
        self.input_box.connect(s)
        s.input_refused.connect(self.input_refused.emit)

    def _clinic_tools(self) -> None:
        """Batch grading and the PDF report (cataract_app.batch, cataract_app.cases.report), on the Cases toolbar too."""
        self.batch = BatchController(self, self.service, self.cases, self.status, self.tabs)
        self.reports = ReportController(self, self.service, self.cases, self.session, self.status, self.tabs,
                                        self.settings, self.overlay_bar.current_colormap)
        for name in ("grade_folder", "report"):
            self.cases.panel.add_action(self.actions_by_name[name])
        self.cases.review_box.add_action(self.actions_by_name["report"])  # the case on screen

    # ---- opening images ----------------------------------------------------------------------------
    def open_dialog(self) -> None:
        exts = " ".join(f"*{e}" for e in supported_extensions())
        path, _ = QFileDialog.getOpenFileName(self, "Open image", open_folder(self.settings),
                                              f"Images ({exts});;All files (*)")
        if path:
            remember_open_folder(self.settings, path)
            self.open_path(path)

    def open_path(self, path: str | Path) -> None:
        """Read `path` in the background; anything still pending for older images is dropped."""
        self.session.open(path)

    def step(self, offset: int) -> None:
        """Open the next (+1) or previous (-1) image of the current folder."""
        if not self.path:
            return
        target = step_image(self.path, offset)
        if target is None:
            self.status.message("This is the last image in the folder." if offset > 0 else "This is the first image in the folder.")
        else:
            self.open_path(target)

    def open_recent(self, path: str) -> None:
        if Path(path).is_file():
            self.open_path(path)
        else:
            self.recent.remove(path)
            self._show_error(f"{path} no longer exists; it was removed from the recent files.")

    def grade_with_sublabels(self, values: dict | None = None) -> None:
        """Ask the fusion teacher, with the entered sub-labels (or `values`)."""
        self.session.grade_with_sublabels(values)

    # ---- showing the session -----------------------------------------------------------------------
    def _show_image(self, path: str, rgb: np.ndarray | None) -> None:
        if rgb is None:
            self.view.clear()
        else:
            self.view.set_image(rgb)
            self.recent.add(path)
            remember_open_folder(self.settings, path)
        self.image_bar.show_path(path)
        self.form.reset()
        self.form.set_has_image(rgb is not None)
        self.setWindowTitle(f"{Path(path).name} \u2013 {DISPLAY_NAME}" if rgb is not None else DISPLAY_NAME)

    def _show_models(self, summary: ModelSummary | None) -> None:
        if summary is None:
            self.status.show_model("no model", "")
            self.form.set_teacher_available(False, "No model is loaded.")
            return
        self.grade_panel.set_grade_names(summary.schema.grade_names)
        self.grade_panel.set_grade_descriptions(summary.schema.grade_descriptions)
        self.grade_panel.banner.show_notice(getattr(summary.student_card, "notice", None))
        self.form.set_schema(summary.schema)
        self.form.set_teacher_available(summary.has_teacher, "" if summary.has_teacher else NO_TEACHER)
        if not summary.has_teacher:
            self.compare.set_teacher_hint("No fusion teacher is loaded.")
        self.overlay_bar.set_colormaps(summary.colormaps, str(self.settings.value("colormap", "jet")))
        card, teacher = summary.student_card, summary.teacher_card
        teacher_text = f"{teacher.name} ({teacher.model_id})" if teacher else ""
        self.status.show_model(f"{card.name} ({card.model_id})", summary.device, teacher_text)
        for problem in self.training.startup_problems:
            self.status.message(f"Note: {problem}", 15000)
        self.training.startup_problems = []
        self.model_loaded.emit(summary)

    def _show_answer(self, kind: str, result: GradeResult) -> None:
        if kind == TEACHER:
            self.compare.set_teacher(result)
        else:
            self.compare.set_student(result)
            self.form.suggest(result.sublabels_predicted)
        self.grade_panel.show_result(result)
        self.grade_shown.emit(result)

    def _refresh_overlay(self, *_args) -> None:
        cmap, shown, rgb = self.overlay_bar.current_colormap(), self.session.cam_result, self.session.image
        if rgb is None or shown is None or shown.cam is None or not cmap:
            self.view.set_overlay(None)
            return
        from engine.overlay import overlay_cam

        self.view.set_overlay(overlay_cam(rgb, shown.cam, colormap=cmap, alpha=1.0))

    def _show_error(self, message: str, keep_result: bool = False) -> None:
        self.grade_panel.show_state(message, error=True, keep_result=keep_result)
        self.status.error(message)
        self.error_shown.emit(message)

    # ---- window plumbing ---------------------------------------------------------------------------
    def about(self) -> None:
        from cataract_app.about import AboutDialog
        from engine import __version__

        cards = [c for c in (self.summary.student_card, self.summary.teacher_card) if c] if self.summary else []
        AboutDialog(__version__, cards, self.summary.device if self.summary else None, self).exec()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if len(files) == 1 and not Path(files[0]).is_dir():
            self.open_path(files[0])  # one photograph (a DICOM too): open it
        elif files:
            self.batch.grade(files)  # several files or a folder: grade them all into the case log
        if files:
            event.acceptProposedAction()

    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        splitter = self.settings.value("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)
        else:
            self.splitter.setSizes([780, 500])
        self.overlay_bar.set_opacity(int(self.settings.value("overlay_opacity", 45)))
        self.overlay_bar.set_cam_target(str(self.settings.value("cam_target", "severity")))
        self.session.target = self.overlay_bar.cam_target()  # what the bar shows (an unknown key: its default)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if not self.training.confirm_close():  # a training job runs and the user keeps it
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("splitter", self.splitter.saveState())
        self.settings.setValue("overlay_opacity", self.overlay_bar.opacity.value())
        self.settings.setValue("cam_target", self.session.target.key)
        if self.overlay_bar.current_colormap():
            self.settings.setValue("colormap", self.overlay_bar.current_colormap())
        self.hide()  # gone at once, even while the worker finishes loading or grading
        self.batch.shutdown()  # cancelled; what it graded is in the case log
        self.reader.shutdown()
        self.service.shutdown()
        self.cases.shutdown()  # after grading stopped: every answer and review asked for is written
        super().closeEvent(event)


def _column(widgets, stretch: int | None = None, margins=(0, 0, 0, 0)) -> QWidget:
    """Widgets stacked top to bottom; `stretch` is the index of the one that takes the spare height."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(*margins)
    if stretch is not None:
        layout.setSpacing(0)
    for w in widgets:
        layout.addWidget(w)
    if stretch is not None:
        layout.setStretch(stretch, 1)
    else:
        layout.addStretch(1)
    return box


def _scrolling(inner: QWidget) -> QScrollArea:
    """The right-hand column: scrolls vertically, never sideways, at least 380 px wide."""
    area = QScrollArea()
    area.setWidget(inner)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setMinimumWidth(380)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area
