"""The retrain form, the left side of the panel: the dataset and its check, what to train, and the settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cataract_app.retrain.launch import KD, SEQUENCE, TEACHER
from engine.choices import DEVICES, FUSIONS, TOKEN_LAYOUTS
from engine.train_config import TrainConfig, option_of

ARCHITECTURES = ("tf_efficientnet_lite0", "resnet18", "resnet34", "resnet50", "efficientnet_lite0", "efficientnet_b0",
                 "mobilenetv3_large_100", "convnext_nano", "vit_tiny_patch16_224", "vit_small_patch16_224")
# Initial backbone weights (TrainConfig.pretrained); the default "auto" is ImageNet for the default architecture.
WEIGHTS = (("ImageNet where installed, else random", "auto"), ("ImageNet (installed weights)", "imagenet"),
           ("Random", "none"))
FUSION_LABELS = {"concat": "Concatenated tokens + transformer (concat)", "coattn": "Co-attention (coattn)",
                 "mlp": "Sub-labels only, no image (mlp)", "none": "Image only, no sub-labels (none)"}
MAX_PROBLEMS_SHOWN = 200


class PathEdit(QLineEdit):
    """A path field whose Enter checks the typed path and nothing else (not the dialog's default button)."""

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().keyPressEvent(event)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()  # QLineEdit leaves Enter to the dialog, which would press "Choose folder..."


def dataset_folder(text: str) -> tuple[Path | None, str]:
    """(folder, '') for a typed path naming a dataset folder or its labels.csv; (None, why not) otherwise."""
    path = Path(text).expanduser()
    if path.is_file() and path.name == "labels.csv":
        path = path.parent
    if not path.exists():
        return None, f"There is no folder {path}. Type the path of a dataset folder, or choose one."
    if not path.is_dir():
        return None, f"{path} is a file, not a folder. A dataset is a folder with labels.csv and the photographs."
    if not (path / "labels.csv").is_file():
        return None, f"{path} has no labels.csv; a dataset folder holds labels.csv and the photographs it names."
    return path.resolve(), ""


class DatasetBox(QGroupBox):
    """Folder picker (or a typed path), the check's verdict, and its report (problems, then counts)."""

    choose_requested = Signal()
    recheck_requested = Signal()
    folder_entered = Signal(str)  # a typed path that names a dataset folder (one with labels.csv)

    def __init__(self, parent=None) -> None:
        super().__init__("1. Labelled images", parent)
        self.path = PathEdit()
        self.path.setPlaceholderText("A folder with labels.csv and the photographs: type or paste it, then Enter")
        self.path.setClearButtonEnabled(True)
        self.choose = QPushButton("Choose folder\u2026")
        self.recheck = QPushButton("Check again")
        self.recheck.setEnabled(False)
        self.verdict = QLabel("Choose a dataset folder to check it.")
        self.verdict.setWordWrap(True)
        self.verdict.setObjectName("info")
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.report.setMaximumHeight(150)
        self.report.hide()
        row = QHBoxLayout()
        row.addWidget(self.choose)
        row.addWidget(self.recheck)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.path)
        layout.addLayout(row)
        layout.addWidget(self.verdict)
        layout.addWidget(self.report)
        self.choose.clicked.connect(self.choose_requested)
        self.recheck.clicked.connect(self.recheck_requested)
        self.path.returnPressed.connect(self._path_typed)

    def _path_typed(self) -> None:
        """Check a typed path before the panel takes it: a folder holding labels.csv (or that labels.csv itself)."""
        text = self.path.text().strip()
        if not text:
            return
        folder, problem = dataset_folder(text)
        if problem:
            self.recheck.setEnabled(False)
            self.report.hide()
            self._verdict(problem, "error")
            return
        self.folder_entered.emit(str(folder))

    def show_checking(self, path: str) -> None:
        self.path.setText(path)
        self.recheck.setEnabled(False)
        self._verdict(f"Checking every row and image of {Path(path).name}\u2026", "info")
        self.report.hide()

    def show_report(self, report) -> None:
        """A ValidationReport: the problems (str(p) is 'labels.csv:LINE: message') and the summary."""
        from engine.commands.validate import format_summary

        self.recheck.setEnabled(True)
        lines = [str(p) for p in report.problems[:MAX_PROBLEMS_SHOWN]]
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"\u2026 and {len(report.problems) - MAX_PROBLEMS_SHOWN} more")
        lines += [""] if lines else []
        lines.append(format_summary(report.summary, len(report.problems)))
        self.report.setPlainText("\n".join(lines))
        self.report.show()
        if report.ok:
            self._verdict(f"Ready: {report.summary['images']} images, no problems found.", "ok")
        else:
            n = len(report.problems)
            self._verdict(f"{n} problem{'s' if n != 1 else ''} found; fix {'them' if n != 1 else 'it'} in the "
                          "folder and check again. Training cannot start on a dataset with errors.", "error")

    def show_failure(self, message: str) -> None:
        self.recheck.setEnabled(bool(self.path.text()))
        self.report.hide()
        self._verdict(f"The dataset could not be checked: {message}", "error")

    def _verdict(self, text: str, kind: str) -> None:
        self.verdict.setText(text)
        self.verdict.setObjectName("error" if kind == "error" else "info")
        self.verdict.setStyleSheet("color: #1e7b34; font-weight: 600;" if kind == "ok" else "")
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)


class JobBox(QGroupBox):
    """Teacher, student distilled from a chosen teacher, or both in a row."""

    def __init__(self, parent=None) -> None:
        super().__init__("2. What to train", parent)
        self.teacher_radio = QRadioButton("A fusion teacher (image + sub-labels)")
        self.kd_radio = QRadioButton("A student, distilled from this teacher:")
        self.sequence_radio = QRadioButton("A teacher, then a student distilled from it")
        self.teacher_combo = QComboBox()
        self.teacher_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.teacher_combo.setMinimumContentsLength(24)
        self.group = QButtonGroup(self)
        for i, radio in enumerate((self.teacher_radio, self.kd_radio, self.sequence_radio)):
            self.group.addButton(radio, i)
        self.sequence_radio.setChecked(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.teacher_radio)
        layout.addWidget(self.kd_radio)
        indent = QHBoxLayout()
        indent.setContentsMargins(24, 0, 0, 0)
        indent.addWidget(self.teacher_combo, 1)
        layout.addLayout(indent)
        layout.addWidget(self.sequence_radio)
        self.kd_radio.toggled.connect(self.teacher_combo.setEnabled)
        self.teacher_combo.setEnabled(False)

    def set_teachers(self, teachers: list[tuple[str, Path]]) -> None:
        """(label, bundle) of every teacher a student can be distilled from; the active one first."""
        # A teacher the user picked stays picked; otherwise the (possibly new) active one is.
        current = self.teacher_combo.currentData() if self.teacher_combo.currentIndex() > 0 else None
        self.teacher_combo.clear()
        for label, path in teachers:
            self.teacher_combo.addItem(label, str(path))
            self.teacher_combo.setItemData(self.teacher_combo.count() - 1, str(path), Qt.ItemDataRole.ToolTipRole)
        index = self.teacher_combo.findData(current) if current else -1
        self.teacher_combo.setCurrentIndex(max(0, index))
        self.kd_radio.setEnabled(bool(teachers))
        self.kd_radio.setToolTip("" if teachers else "No fusion teacher is installed or trained yet.")
        if not teachers and self.kd_radio.isChecked():
            self.sequence_radio.setChecked(True)

    def job(self) -> str:
        return {0: TEACHER, 1: KD, 2: SEQUENCE}[self.group.checkedId()]

    def set_job(self, job: str) -> None:
        {TEACHER: self.teacher_radio, KD: self.kd_radio, SEQUENCE: self.sequence_radio}[job].setChecked(True)

    def teacher(self) -> Path | None:
        data = self.teacher_combo.currentData()
        return Path(data) if data else None


def _spin(name: str, step: int = 1) -> QSpinBox:
    """A spin box for TrainConfig field `name`: its bounds, default and help."""
    opt = option_of(name)
    box = QSpinBox()
    box.setRange(int(opt.low), int(opt.high))
    box.setSingleStep(step)
    box.setValue(getattr(TrainConfig(), name))
    box.setToolTip(opt.help)
    return box


def _dspin(name: str, decimals: int, step: float) -> QDoubleSpinBox:
    opt = option_of(name)
    box = QDoubleSpinBox()
    box.setRange(opt.low, opt.high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(getattr(TrainConfig(), name))
    box.setToolTip(opt.help)
    return box


def _processes_row(box: QSpinBox) -> str | None:
    """Bound the process count to this machine; the row's label, or None where one process is all it can run."""
    from cataract_app.launcher import is_frozen
    from engine.distributed import max_processes

    top = max_processes()
    if top < 2 or is_frozen():  # the packaged app cannot start torchrun
        return None
    box.setMaximum(top)
    return "Processes (GPUs)" if _gpus() > 1 else "Processes"


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class SettingsBox(QGroupBox):
    """The basic settings, and the advanced ones behind a collapsed section."""

    def __init__(self, parent=None) -> None:
        super().__init__("3. Settings", parent)
        self.epochs = _spin("epochs")
        self.image_size = _spin("image_size", 16)
        self.image_size.setSuffix(" px")
        self.arch = QComboBox()
        self.arch.setEditable(True)
        self.arch.addItems(ARCHITECTURES)
        self.weights = QComboBox()
        for label, value in WEIGHTS:
            self.weights.addItem(label, value)
        self.weights.setCurrentIndex(self.weights.findData(TrainConfig().pretrained))
        self.weights.setToolTip(option_of("pretrained").help)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        basic = QFormLayout()
        basic.addRow("Epochs", self.epochs)
        basic.addRow("Image size", self.image_size)
        basic.addRow("Architecture", self.arch)
        basic.addRow("Initial weights", self.weights)
        basic.addRow("Device", self.device)
        self.nproc = _spin("nproc")
        label = _processes_row(self.nproc)
        if label:  # only where more than one process can run
            basic.addRow(label, self.nproc)
        else:
            self.nproc.hide()
        self.batch_size = _spin("batch_size")
        self.lr = _dspin("lr", 6, 1e-4)
        self.seed = _spin("seed")
        self.kd_temperature = _dspin("kd_temperature", 1, 0.5)
        self.kd_alpha = _dspin("kd_alpha", 2, 0.05)
        self.patience = _spin("patience")
        self.token_layout = QComboBox()
        self.token_layout.addItems(TOKEN_LAYOUTS)
        self.fusion = QComboBox()
        for value in FUSIONS:
            self.fusion.addItem(FUSION_LABELS[value], value)
        self.fusion.setToolTip("How a new teacher combines the image with the sub-labels (docs/results.md compares them)")
        self.token_kd = _dspin("token_kd", 2, 0.1)
        self.attn_kd = _dspin("attn_kd", 2, 0.1)
        self.second_teacher = QComboBox()
        self.second_teacher.setToolTip("Distil from this teacher too; each teacher is weighted by its validation QWK")
        self.second_teacher.addItem("(none)", None)
        self.advanced = QWidget()
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        for label, widget in (("Batch size", self.batch_size), ("Learning rate", self.lr), ("Seed", self.seed),
                              ("Distillation temperature", self.kd_temperature),
                              ("Distillation weight (alpha)", self.kd_alpha),
                              ("Early-stopping patience", self.patience),
                              ("Teacher fusion", self.fusion),
                              ("Teacher image tokens", self.token_layout),
                              ("Token distillation weight", self.token_kd),
                              ("Attention distillation weight", self.attn_kd),
                              ("Also distil from", self.second_teacher)):
            adv.addRow(label, widget)
        self.advanced.hide()
        self.toggle = QToolButton()
        self.toggle.setText("Advanced")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: 600; }")
        self.toggle.toggled.connect(self._show_advanced)
        layout = QVBoxLayout(self)
        layout.addLayout(basic)
        layout.addWidget(self.toggle)
        layout.addWidget(self.advanced)

    def _show_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def settings(self) -> TrainConfig:
        """The form as a TrainConfig; the job, dataset and run folder are filled in per step (retrain.launch)."""
        return TrainConfig(
            epochs=self.epochs.value(), image_size=self.image_size.value(), arch=self.arch.currentText().strip(),
            device=self.device.currentText(), batch_size=self.batch_size.value(), lr=self.lr.value(),
            seed=self.seed.value(), kd_temperature=self.kd_temperature.value(), kd_alpha=self.kd_alpha.value(),
            patience=self.patience.value(), token_layout=self.token_layout.currentText(),
            fusion=self.fusion.currentData(), token_kd=self.token_kd.value(), attn_kd=self.attn_kd.value(),
            extra_teachers=[p for p in [self.second_teacher.currentData()] if p], nproc=self.nproc.value(),
            pretrained=self.weights.currentData(),
        )

    def _set_weights(self, value: str | None) -> None:
        """Pick `value` ("auto", "imagenet", "none" or a clinic's own file, added as an entry of its own)."""
        value = value or "none"
        index = self.weights.findData(value)
        if index < 0:
            self.weights.addItem(Path(value).name, value)
            index = self.weights.count() - 1
        self.weights.setCurrentIndex(index)

    def set_teachers(self, teachers: list[tuple[str, Path]]) -> None:
        """Offer every teacher as a second one for multi-teacher distillation; a pick stays picked."""
        current = self.second_teacher.currentData()
        self.second_teacher.clear()
        self.second_teacher.addItem("(none)", None)
        for label, path in teachers:
            self.second_teacher.addItem(label, str(path))
        self.second_teacher.setCurrentIndex(max(0, self.second_teacher.findData(current) if current else 0))

    def set_settings(self, s: TrainConfig) -> None:
        self.epochs.setValue(s.epochs)
        self.nproc.setValue(s.nproc)
        self.image_size.setValue(s.image_size)
        self.arch.setCurrentText(s.arch)
        self._set_weights(s.pretrained)
        self.device.setCurrentText(s.device)
        self.batch_size.setValue(s.batch_size)
        self.lr.setValue(s.lr)
        self.seed.setValue(s.seed)
        self.kd_temperature.setValue(s.kd_temperature)
        self.kd_alpha.setValue(s.kd_alpha)
        self.patience.setValue(s.patience)
        self.token_layout.setCurrentText(s.token_layout)
        self.fusion.setCurrentIndex(max(0, self.fusion.findData(s.fusion)))
        self.token_kd.setValue(s.token_kd)
        self.attn_kd.setValue(s.attn_kd)
        extra = s.extra_teachers[0] if s.extra_teachers else None
        index = self.second_teacher.findData(str(extra)) if extra else 0
        if extra and index < 0:
            self.second_teacher.addItem(Path(extra).name, str(extra))
            index = self.second_teacher.count() - 1
        self.second_teacher.setCurrentIndex(index)
