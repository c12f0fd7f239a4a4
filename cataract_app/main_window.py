"""The main window: composes the image view and the right-hand panels and wires them together.

It holds no model logic. Images are read on a pool thread, graded by the one Grader in
the worker thread, and only the newest request's answer is ever shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QFileDialog, QMainWindow, QScrollArea, QSplitter, QVBoxLayout, QWidget

from cataract_app import APPLICATION, DISPLAY_NAME, ORGANISATION
from cataract_app.grading.compare_panel import ComparePanel
from cataract_app.grading.grade_panel import GradePanel
from cataract_app.grading.sublabel_form import SubLabelForm
from cataract_app.grading.worker import (
    STUDENT,
    TEACHER,
    GradeTicket,
    GradingService,
    LoadOptions,
    ModelSummary,
    build_grader,
)
from cataract_app.resources import app_icon_path
from cataract_app.retrain.controller import TrainingController
from cataract_app.viewer.image_view import ImageView
from cataract_app.viewer.navigation import RecentFiles, step_image, supported_extensions
from cataract_app.viewer.overlay_bar import OverlayBar
from cataract_app.viewer.reader import ImageReader
from cataract_app.window_chrome import ImageBar, StatusLine, build_menus
from engine.request import GradeRequest
from engine.results import GradeResult

NO_TEACHER = "Sub-labels need a fusion teacher model and none is loaded; start the app with --teacher BUNDLE to use them."


class MainWindow(QMainWindow):
    """Image on the left, grade / comparison / sub-labels on the right, a splitter between."""

    grade_shown = Signal(object)  # GradeResult now on screen
    error_shown = Signal(str)  # a message the user was shown
    model_loaded = Signal(object)  # ModelSummary

    def __init__(
        self, options: LoadOptions | None = None, settings: QSettings | None = None, factory=None, store=None
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings(ORGANISATION, APPLICATION)
        self.training = TrainingController(self, store)  # the model store, Training menu, promote
        self.load_options = self.training.resolve(options or LoadOptions())
        self.recent = RecentFiles(self.settings)
        self.summary: ModelSummary | None = None
        self.model_error: str | None = None
        self.path: str | None = None
        self.rgb: np.ndarray | None = None
        self.student: GradeResult | None = None
        self.teacher: GradeResult | None = None
        self._cam_result: GradeResult | None = None
        self._build_widgets()
        self.actions_by_name: dict[str, QAction] = build_menus(self)
        self._connect_panels()
        self._restore_settings()
        self.reader = ImageReader(self)
        self.reader.loaded.connect(self._on_image_read)
        self.reader.failed.connect(self._on_image_failed)
        self.service = GradingService(factory or build_grader, parent=self)
        self.service.model_ready.connect(self._on_model_ready)
        self.service.model_failed.connect(self._on_model_failed)
        self.service.graded.connect(self._on_graded)
        self.service.failed.connect(self._on_grade_failed)
        self.grade_panel.show_state("Loading model\u2026", busy=True)
        self.status.show_model("Loading model\u2026", "")
        self.service.load(self.load_options)

    def reload_models(self, options: LoadOptions, message: str = "") -> None:
        """Load other bundles into the one Grader (after a promote); an open image is graded again."""
        self.load_options = options
        self.status.show_model("Loading model\u2026", "")
        if message:
            self.status.message(message, 8000)
        self.service.load(options)

    # ---- layout ----------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.setWindowTitle(DISPLAY_NAME)
        icon = app_icon_path()
        if icon:
            self.setWindowIcon(QIcon(str(icon)))
        self.setAcceptDrops(True)
        self.image_bar = ImageBar()
        self.view = ImageView()
        self.overlay_bar = OverlayBar()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(0)
        for w in (self.image_bar, self.view, self.overlay_bar):
            left_layout.addWidget(w)
        left_layout.setStretch(1, 1)

        self.grade_panel = GradePanel()
        self.compare = ComparePanel()
        self.form = SubLabelForm()
        right_inner = QWidget()
        right_layout = QVBoxLayout(right_inner)
        right_layout.setContentsMargins(10, 4, 10, 10)
        for w in (self.grade_panel, self.compare, self.form):
            right_layout.addWidget(w)
        right_layout.addStretch(1)
        right = QScrollArea()
        right.setWidget(right_inner)
        right.setWidgetResizable(True)
        right.setFrameShape(QScrollArea.Shape.NoFrame)
        right.setMinimumWidth(380)
        right.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.status = StatusLine(self.statusBar())
        self.setMinimumSize(900, 600)

    def _connect_panels(self) -> None:
        self.overlay_bar.visibility_changed.connect(self.view.set_overlay_visible)
        # overlay_cam blends by alpha * w(cam); drawing the alpha=1 blend at opacity a over the photo
        # gives exactly the alpha=a blend, so the slider only changes the layer's opacity.
        self.overlay_bar.opacity_changed.connect(self.view.set_overlay_opacity)
        self.overlay_bar.colormap_changed.connect(self._refresh_overlay)
        self.overlay_bar.cam_target_changed.connect(self._on_cam_target_changed)
        self.image_bar.fit_requested.connect(self.view.fit_to_window)
        self.image_bar.zoom_in_requested.connect(self.view.zoom_in)
        self.image_bar.zoom_out_requested.connect(self.view.zoom_out)
        self.view.zoom_changed.connect(self.image_bar.show_zoom)
        self.view.set_overlay_opacity(self.overlay_bar.opacity.value() / 100.0)
        self.form.grade_requested.connect(self.grade_with_sublabels)
        self.form.edited.connect(self.compare.mark_teacher_stale)
        self.image_bar.step_requested.connect(self.step)

    # ---- opening images ----------------------------------------------------------
    def open_dialog(self) -> None:
        exts = " ".join(f"*{e}" for e in supported_extensions())
        start = str(Path(self.path).parent) if self.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, f"Images ({exts});;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> None:
        """Read `path` in the background; anything still pending for older images is dropped.

        The old answer leaves the screen at once; the old picture stays until the new one is read.
        """
        self.service.supersede_all()
        self.path = str(path)
        self.student = self.teacher = self._cam_result = None
        self.view.set_overlay(None)
        self.compare.clear()
        self.grade_panel.show_state(f"Opening {Path(path).name}\u2026", busy=True)
        self.status.message(f"Opening {Path(path).name}\u2026")
        self.reader.read(path)

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

    def _on_image_read(self, _token: int, path: str, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.view.set_image(rgb)
        self.image_bar.show_path(path)
        self.form.reset()
        self.form.set_has_image(True)
        self.recent.add(path)
        self.setWindowTitle(f"{Path(path).name} \u2013 {DISPLAY_NAME}")
        self._grade_student()

    def _on_image_failed(self, _token: int, path: str, message: str) -> None:
        self.rgb = None
        self.view.clear()
        self.image_bar.show_path(path)
        self.form.reset()
        self.form.set_has_image(False)
        self.setWindowTitle(DISPLAY_NAME)
        self._show_error(message)

    # ---- grading -------------------------------------------------------------------
    def _grade_student(self) -> None:
        if self.rgb is None:
            return
        if self.model_error:
            self._show_error(self.model_error)
            return
        waiting = "Loading model\u2026 the image is graded as soon as it is ready." if self.summary is None else "Grading\u2026"
        self.grade_panel.show_state(waiting, busy=True)
        self.service.submit(self.rgb, GradeRequest(target=self.overlay_bar.cam_target()), self.path)

    def _on_cam_target_changed(self, _target) -> None:
        """The heat map should explain something else: grade the shown image again (answers stay the same)."""
        if self.rgb is None or self.summary is None:
            return
        self._grade_student()
        if self.teacher is not None:
            self.grade_with_sublabels(self.teacher.sublabels_used)

    def grade_with_sublabels(self, values: dict | None = None) -> None:
        """Ask the fusion teacher, with the form's confirmed values (or `values`)."""
        if self.rgb is None or self.summary is None:
            return
        values = self.form.confirmed_values() if values is None else values
        self.grade_panel.show_state("Grading with sub-labels\u2026", busy=True, keep_result=True)
        request = GradeRequest(sublabels=values, schema=self.summary.schema, target=self.overlay_bar.cam_target())
        self.service.submit(self.rgb, request, self.path)

    def _on_model_ready(self, summary: ModelSummary) -> None:
        self.summary = summary
        self.model_error = None
        self.grade_panel.set_grade_names(summary.schema.grade_names)
        self.grade_panel.banner.show_notice(getattr(summary.student_card, "notice", None))
        self.form.set_schema(summary.schema)
        self.form.set_teacher_available(summary.has_teacher, "" if summary.has_teacher else NO_TEACHER)
        if not summary.has_teacher:
            self.compare.set_teacher_hint("No fusion teacher is loaded.")
        self.overlay_bar.set_colormaps(summary.colormaps, str(self.settings.value("colormap", "jet")))
        card, teacher = summary.student_card, summary.teacher_card
        teacher_text = f"{teacher.name} ({teacher.model_id})" if teacher else ""
        self.status.show_model(f"{card.name} ({card.model_id})", summary.device, teacher_text)
        self.status.message(f"Model ready in {summary.load_ms / 1000:.1f} s.", 4000)
        for problem in self.training.startup_problems:
            self.status.message(f"Note: {problem}", 15000)
        self.training.startup_problems = []
        if self.rgb is not None:
            self._grade_student()
        elif self.path is None:
            self.grade_panel.show_state("Open a retro-illumination photograph (Ctrl+O) or drop one here.")
        self.model_loaded.emit(summary)

    def _on_model_failed(self, message: str) -> None:
        self.model_error = f"The model could not be loaded: {message}"
        self.status.show_model("no model", "")
        self.form.set_teacher_available(False, "No model is loaded.")
        self._show_error(self.model_error)

    def _on_graded(self, request: GradeTicket, result: GradeResult) -> None:
        if request.kind == STUDENT:
            self.student = result
            self.compare.set_student(result)
            self.form.suggest(result.sublabels_predicted)
        else:
            self.teacher = result
            self.compare.set_teacher(result)
        self.grade_panel.show_result(result)
        if result.cam is not None:
            self._cam_result = result
            self._refresh_overlay()
        seconds = result.timings_ms.get("total_ms", 0.0) / 1000
        text = f"Graded {Path(self.path or '').name} in {seconds:.2f} s by the {request.kind}."
        if result.cam is not None and not result.cam.any():
            # Grad-CAM keeps only regions that raise the grade; none did, so there is nothing to draw.
            text += " No image region raised this grade, so the heat map is empty."
        self.status.message(text, 6000)
        self.grade_shown.emit(result)

    def _on_grade_failed(self, request: GradeTicket, message: str) -> None:
        self._show_error(message, keep_result=request.kind == TEACHER)

    def _refresh_overlay(self, *_args) -> None:
        cmap = self.overlay_bar.current_colormap()
        if self.rgb is None or self._cam_result is None or self._cam_result.cam is None or not cmap:
            self.view.set_overlay(None)
            return
        from engine.overlay import overlay_cam

        self.view.set_overlay(overlay_cam(self.rgb, self._cam_result.cam, colormap=cmap, alpha=1.0))

    def _show_error(self, message: str, keep_result: bool = False) -> None:
        self.grade_panel.show_state(message, error=True, keep_result=keep_result)
        self.status.error(message)
        self.error_shown.emit(message)

    # ---- window plumbing ---------------------------------------------------------------
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
        if files:
            self.open_path(files[0])
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
        saved = str(self.settings.value("cam_target", "severity"))
        self.overlay_bar.set_cam_target(None if saved == "predicted" else saved)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if not self.training.confirm_close():  # a training job runs and the user keeps it
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("splitter", self.splitter.saveState())
        self.settings.setValue("overlay_opacity", self.overlay_bar.opacity.value())
        self.settings.setValue("cam_target", self.overlay_bar.cam_target() or "predicted")
        if self.overlay_bar.current_colormap():
            self.settings.setValue("colormap", self.overlay_bar.current_colormap())
        self.hide()  # gone at once, even while the worker finishes loading or grading
        self.reader.shutdown()
        self.service.shutdown()
        super().closeEvent(event)

