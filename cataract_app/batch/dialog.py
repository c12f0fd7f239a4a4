"""The Grade a folder dialog: the folder, and the patient, eye and visit date its cases get (`cases add --dir`).

Blank fields leave each case's details to its file (a DICOM's own) or empty; a value given
here wins over a DICOM's, as on the command line. Values are checked with the case log's own
rules before anything is graded, and a refusal is said under the fields.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.cases import CaseLogError
from engine.cases.model import check_eye, check_patient_id, check_visit_date

EYE_CHOICES = (("", "from the file, or none"), ("OD", "OD (right)"), ("OS", "OS (left)"))


def checked_details(patient: str, eye: str, visit: str) -> dict[str, str | None]:
    """The batch's details as the case log will store them; CaseLogError with its sentence when one is refused."""
    return {"patient_id": check_patient_id(patient), "eye": check_eye(eye), "visit_date": check_visit_date(visit)}


class GradeFolderDialog(QDialog):
    """Asks for a folder and, optionally, the details every case of the batch gets."""

    def __init__(self, start: str | Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Grade a folder")
        self.folder = QLineEdit(str(start))
        browse = QPushButton("Browse\u2026")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("from the file, or none")
        self.eye = QComboBox()
        for _key, label in EYE_CHOICES:
            self.eye.addItem(label)
        self.visit = QLineEdit()
        self.visit.setPlaceholderText("YYYY-MM-DD, from the file, or none")
        self.error = QLabel("")
        self.error.setObjectName("error")
        self.error.setWordWrap(True)
        self.error.hide()
        form = QFormLayout()
        form.addRow("Folder", row)
        form.addRow("Patient ID", self.patient)
        form.addRow("Eye", self.eye)
        form.addRow("Visit date", self.visit)
        hint = QLabel("Every image below the folder is graded into the case log. A value given here is "
                      "stored with every case and wins over a DICOM's own.")
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Grade")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())
        self.details: dict[str, str | None] = {}

    def values(self) -> tuple[str, dict[str, str | None]]:
        """(folder, details); raises CaseLogError or ValueError with a sentence."""
        folder = self.folder.text().strip()
        if not folder or not Path(folder).is_dir():
            raise ValueError(f"{folder or 'no folder'} is not a folder")
        eye = EYE_CHOICES[self.eye.currentIndex()][0]
        return folder, checked_details(self.patient.text(), eye, self.visit.text())

    def _accept(self) -> None:
        try:
            _folder, self.details = self.values()
        except (CaseLogError, ValueError) as e:
            self.error.setText(str(e)[0].upper() + str(e)[1:] + ".")
            self.error.show()
            return
        self.accept()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Grade every image in a folder", self.folder.text())
        if folder:
            self.folder.setText(folder)
