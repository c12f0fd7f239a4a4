"""The Cases panel: the case log as a table that sorts, filters, searches and pages, beside the selected case.

It is a tab of the main window. Its toolbar takes more actions (`add_action`: grading a
folder, a report) and its selection is public (`selected_ids`, `current_id`,
`selection_changed`), so later tools act on the cases chosen here. Every read goes through
`read(job, on_done, on_fail)`, the reader lane of the window's CaseService.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSplitter,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from cataract_app.cases import jobs
from cataract_app.cases.detail import CaseDetail
from cataract_app.cases.table_model import COLUMNS, ID_ROLE, PAGE_SIZE, THUMB_COLUMN, CaseTableModel
from cataract_app.cases.thumbnails import Thumbnails
from engine.cases import CaseFilter

VIEWS = (("all", "All cases", ()), ("unreviewed", "Unreviewed", ("open",)), ("reviewed", "Reviewed", ("reviewed",)),
         ("disagreements", "Disagreements", ()))
SEARCH_DELAY_MS = 300
ROW_PX = 46
WIDTHS = {"id": 56, "thumb": 52, "patient": 110, "eye": 44, "visit": 92, "grade": 56, "confidence": 60,
          "final": 52, "status": 84, "priority": 64}


class CasesPanel(QWidget):
    """Toolbar with filters, the paged table and the detail pane; emits what the user asks for."""

    case_activated = Signal(int)  # open this case in the grading view
    selection_changed = Signal(list)  # the selected case ids
    next_requested = Signal()

    def __init__(self, read: Callable, parent=None, page_size: int = PAGE_SIZE) -> None:
        super().__init__(parent)
        self._read = read
        self.thumbnails = Thumbnails(40, parent=self)
        self.model = CaseTableModel(read, self.thumbnails, page_size=page_size, parent=self)
        self._build()
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_filter)
        self._keep_id: int | None = None  # the case to select again once the rows are back
        self._detail_for: int | None = None
        self.model.loaded.connect(self._on_loaded)
        self.model.failed.connect(lambda m: self.count.setText(f"The case log could not be read: {m}"))
        self.model.modelReset.connect(self._restore_selection)

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.toolbar = QToolBar("Cases")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self._actions_end = self.toolbar.addSeparator()  # actions added by add_action go before it
        self.view_choice = QComboBox()
        for _key, label, _status in VIEWS:
            self.view_choice.addItem(label)
        self.patient = QLineEdit()
        self.patient.setPlaceholderText("Patient ID")
        self.patient.setClearButtonEnabled(True)
        self.patient.setFixedWidth(130)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search path, patient, note")
        self.search.setClearButtonEnabled(True)
        self.search.setFixedWidth(210)
        for label, w in (("Show", self.view_choice), ("Patient", self.patient), ("Search", self.search)):
            self.toolbar.addWidget(_labelled(label, w))
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.next_action = self.toolbar.addAction("Next to review \u25b8")
        self.next_action.setToolTip("Open the most informative open case (Ctrl+N)")
        self.refresh_action = self.toolbar.addAction("Refresh")
        self.refresh_action.setToolTip("Read the case log again (another program may have added cases)")

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(ROW_PX)
        header = self.table.horizontalHeader()
        header.setSortIndicatorShown(True)
        header.setSortIndicator(0, Qt.SortOrder.DescendingOrder)
        header.setStretchLastSection(True)
        for i, column in enumerate(COLUMNS):
            if column.key in WIDTHS:
                self.table.setColumnWidth(i, WIDTHS[column.key])
        self.table.setIconSize(self.thumbnails_size())
        header.sortIndicatorChanged.connect(self._sort_indicator_moved)
        self.table.setSortingEnabled(True)
        self.detail = CaseDetail()
        self.detail.setMinimumWidth(300)
        self.count = QLabel("Reading the case log\u2026")
        self.count.setObjectName("muted")
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.table, 1)
        lv.addWidget(self.count)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([900, 360])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.splitter, 1)

        self.view_choice.currentIndexChanged.connect(lambda _i: self.apply_filter())
        self.patient.editingFinished.connect(self.apply_filter)
        self.patient.textChanged.connect(lambda t: not t and self.apply_filter())  # the clear button
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.next_action.triggered.connect(self.next_requested)
        self.refresh_action.triggered.connect(self.refresh)
        self.table.activated.connect(self._activated)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.detail.open_requested.connect(self.case_activated)
        self.detail.patient_requested.connect(self.show_patient)

    def thumbnails_size(self):
        from PySide6.QtCore import QSize

        return QSize(self.thumbnails.size, self.thumbnails.size)

    # ---- public API -------------------------------------------------------------------------------
    def add_action(self, action: QAction) -> QAction:
        """Put another tool (e.g. grading a folder, a report of the selection) at the toolbar's start."""
        self.toolbar.insertAction(self._actions_end, action)
        return action

    def current_filter(self) -> CaseFilter:
        key, _label, status = VIEWS[self.view_choice.currentIndex()]
        return CaseFilter(status=status, patient_id=self.patient.text().strip() or None,
                          search=self.search.text().strip() or None, disagreements=key == "disagreements")

    def set_view(self, key: str) -> None:
        """'all', 'unreviewed', 'reviewed' or 'disagreements'."""
        self.view_choice.setCurrentIndex([v[0] for v in VIEWS].index(key))

    def show_patient(self, patient_id: str | None) -> None:
        """Only this patient's cases (None or '': every patient)."""
        self.patient.setText(patient_id or "")
        self.apply_filter()

    def set_search(self, text: str) -> None:
        self.search.setText(text)
        self._search_timer.stop()
        self.apply_filter()

    def apply_filter(self) -> None:
        self._keep_id = self.current_id()
        self.model.set_query(self.current_filter())

    def refresh(self) -> None:
        self._keep_id = self.current_id()
        self.model.refresh()

    def selected_ids(self) -> list[int]:
        """The ids of the selected rows whose page is loaded, in table order."""
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [s.id for s in (self.model.summary(r) for r in rows) if s is not None]

    def current_id(self) -> int | None:
        index = self.table.currentIndex()
        return self.model.data(index, ID_ROLE) if index.isValid() else None

    def select_case(self, case_id: int) -> bool:
        """Select the case's row when it is among the rows read so far."""
        row = self.model.row_of(case_id)
        if row is None:
            return False
        index = self.model.index(row, 0)
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().setCurrentIndex(index, flags)
        self.table.scrollTo(index)
        return True

    # ---- reactions --------------------------------------------------------------------------------
    def _on_loaded(self) -> None:
        flt = self.current_filter()
        narrowed = flt != CaseFilter()
        n = self.model.total
        self.count.setText(f"{n:,} case{'s' if n != 1 else ''}" + (" match" if narrowed else " in the log"))

    def _restore_selection(self) -> None:
        if self._keep_id is not None:
            QTimer.singleShot(0, lambda case_id=self._keep_id: self.select_case(case_id))

    def _sort_indicator_moved(self, column: int, _order) -> None:
        if COLUMNS[column].sort is None:  # the thumbnails do not sort: show the order that holds
            current = next(i for i, c in enumerate(COLUMNS) if c.sort == self.model.sort_key)
            order = Qt.SortOrder.DescendingOrder if self.model.descending else Qt.SortOrder.AscendingOrder
            QTimer.singleShot(0, lambda: self.table.horizontalHeader().setSortIndicator(current, order))

    def _activated(self, index) -> None:
        case_id = self.model.data(index, ID_ROLE)
        if case_id is not None:
            self.case_activated.emit(case_id)

    def _selection_changed(self, *_args) -> None:
        self.selection_changed.emit(self.selected_ids())
        case_id = self.current_id()
        if case_id is None or case_id == self._detail_for:
            if case_id is None:
                self._detail_for = None
                self.detail.show_case(None, None)
            return
        self._detail_for = case_id
        self._read(lambda log: jobs.load(log, case_id), lambda loaded: self._show_detail(case_id, loaded))

    def _show_detail(self, case_id: int, loaded) -> None:
        if case_id == self._detail_for:
            self.detail.show_case(*loaded)
            patient = loaded[0].patient_id
            if patient:
                self._read(lambda log: log.history(patient), lambda h: self.detail.show_history(case_id, h))

    def reload_detail(self) -> None:
        """Read the shown case again (it was reviewed or edited)."""
        case_id = self._detail_for
        if case_id is not None:
            self._read(lambda log: jobs.load(log, case_id), lambda loaded: self._show_detail(case_id, loaded))

    def shutdown(self) -> None:
        self.thumbnails.shutdown()
        self.detail.previews.shutdown()


def _labelled(text: str, widget: QWidget) -> QWidget:
    box = QWidget()
    box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    row = QHBoxLayout(box)
    row.setContentsMargins(6, 0, 6, 0)
    row.addWidget(QLabel(text))
    row.addWidget(widget)
    return box


__all__ = ["CasesPanel", "THUMB_COLUMN"]
