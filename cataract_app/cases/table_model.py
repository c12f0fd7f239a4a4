"""The case table's model: pages of CaseLog.list fetched on the reader lane as the view needs them.

A log can hold 100,000 cases. The model knows the match count (CaseLog.count) and holds a
few pages of CaseSummary rows; a row that is not loaded yet shows a placeholder and asks
for its page, which arrives off the GUI thread and replaces it. Sorting is the database's
(any of SORT_KEYS), so a sorted, filtered view is still one page query.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor

from cataract_app import theme
from engine.cases import CaseFilter, CaseSummary

PAGE_SIZE = 100
MAX_PAGES = 30
ID_ROLE = Qt.ItemDataRole.UserRole
STATUS_COLOURS = {"open": theme.MUTED, "agreed": "#1e7b34", "corrected": "#b35c00"}


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    sort: str | None  # the CaseLog sort key, None: not sortable
    tip: str = ""


COLUMNS = (
    Column("id", "#", "id", "Case number"),
    Column("thumb", "", None),
    Column("patient", "Patient", "patient_id"),
    Column("eye", "Eye", "eye"),
    Column("visit", "Visit", "visit_date"),
    Column("grade", "Model", "model_grade", "The latest model answer's grade"),
    Column("confidence", "Conf.", "model_confidence", "Calibrated confidence of the latest answer"),
    Column("final", "Final", "final_grade", "The clinician's grade"),
    Column("status", "Status", "status"),
    Column("priority", "Priority", "priority", "Review order: uncertainty + disagreement + distance from training"),
    Column("recorded", "Recorded", "created_at"),
)
THUMB_COLUMN = 1


def local_time(stamp: str | None) -> str:
    """'2026-05-01T12:30:00.000000Z' -> '2026-05-01 14:30' in the user's time zone."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def cell_text(case: CaseSummary, key: str) -> str:
    if key == "id":
        return str(case.id)
    if key == "patient":
        return case.patient_id or ""
    if key == "eye":
        return case.eye or ""
    if key == "visit":
        return case.visit_date or ""
    if key == "grade":
        return "" if case.model_grade is None else str(case.model_grade)
    if key == "confidence":
        return "" if case.model_confidence is None else f"{case.model_confidence * 100:.0f} %"
    if key == "final":
        return "\u2013" if case.final_grade is None else str(case.final_grade)
    if key == "status":
        return case.status
    if key == "priority":
        return f"{case.priority:.2f}"
    if key == "recorded":
        return local_time(case.created_at)
    return ""


class CaseTableModel(QAbstractTableModel):
    """Rows of the case log for one filter and sort; `read(job, on_done, on_fail)` runs a job on the reader lane."""

    loaded = Signal()  # a new query's count and first page arrived, or a refresh did
    failed = Signal(str)

    def __init__(self, read: Callable, thumbnails=None, page_size: int = PAGE_SIZE, max_pages: int = MAX_PAGES,
                 parent=None) -> None:
        super().__init__(parent)
        self._read, self.thumbnails = read, thumbnails
        self.page_size, self.max_pages = page_size, max_pages
        self.filter, self.sort_key, self.descending = CaseFilter(), "id", True
        self.total = 0
        self._pages: OrderedDict[int, list[CaseSummary]] = OrderedDict()
        self._asked: set[int] = set()
        self._generation = 0
        self.page_requests: list[int] = []  # every page asked of the log (tests read it)
        if thumbnails is not None:
            thumbnails.ready.connect(self._thumbnail_ready)

    # ---- queries ----------------------------------------------------------------------------------
    def set_query(self, flt: CaseFilter | None = None, sort: str | None = None, descending: bool | None = None) -> None:
        """Count and fetch the first page for a new filter or sort; the table changes when they arrive."""
        self.filter = flt if flt is not None else self.filter
        self.sort_key = sort if sort is not None else self.sort_key
        self.descending = descending if descending is not None else self.descending
        self._fetch(pages=[0], reset=True)

    def refresh(self) -> None:
        """Read the count and the pages held again (after a write, or another program's)."""
        self._fetch(pages=sorted(self._pages) or [0], reset=False)

    def _fetch(self, pages: list[int], reset: bool) -> None:
        self._generation += 1
        gen, flt, key, desc, size = self._generation, self.filter, self.sort_key, self.descending, self.page_size
        self.page_requests += pages

        def job(log):
            return log.count(flt), {p: log.list(flt, sort=key, descending=desc, limit=size, offset=p * size)
                                    for p in pages}

        self._read(job, lambda answer: self._arrived(gen, reset, *answer), self._query_failed)

    def _arrived(self, gen: int, reset: bool, total: int, pages: dict[int, list[CaseSummary]]) -> None:
        if gen != self._generation:
            return  # a newer query or refresh is on its way
        if reset or total != self.total:
            self.beginResetModel()
            self.total, self._pages, self._asked = total, OrderedDict(pages), set()
            self.endResetModel()
        else:
            self._pages.update(pages)
            self._asked.clear()
            if total:
                self.dataChanged.emit(self.index(0, 0), self.index(total - 1, len(COLUMNS) - 1))
        self.loaded.emit()

    def _query_failed(self, message: str) -> None:
        self.failed.emit(message)

    def _want(self, page: int) -> None:
        if page in self._asked:
            return
        self._asked.add(page)
        gen, flt, key, desc, size = self._generation, self.filter, self.sort_key, self.descending, self.page_size
        self.page_requests.append(page)
        self._read(lambda log: log.list(flt, sort=key, descending=desc, limit=size, offset=page * size),
                   lambda rows: self._page_arrived(gen, page, rows), self._query_failed)

    def _page_arrived(self, gen: int, page: int, rows: list[CaseSummary]) -> None:
        if gen != self._generation:
            return
        self._pages[page] = rows
        self._asked.discard(page)
        while len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)
        first, last = page * self.page_size, min(self.total, (page + 1) * self.page_size) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))

    # ---- rows -------------------------------------------------------------------------------------
    def summary(self, row: int) -> CaseSummary | None:
        """The case on `row`, or None while its page is on its way (asked for here)."""
        if not 0 <= row < self.total:
            return None
        page = row // self.page_size
        rows = self._pages.get(page)
        if rows is None:
            self._want(page)
            return None
        self._pages.move_to_end(page)
        offset = row - page * self.page_size
        return rows[offset] if offset < len(rows) else None

    def row_of(self, case_id: int) -> int | None:
        """The row of a case among the pages held, if it is there."""
        for page, rows in self._pages.items():
            for i, case in enumerate(rows):
                if case.id == case_id:
                    return page * self.page_size + i
        return None

    # ---- Qt's model interface ----------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else self.total

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt override)
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tip or None
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        case = self.summary(index.row())
        column = COLUMNS[index.column()]
        if case is None:
            return "\u2026" if role == Qt.ItemDataRole.DisplayRole and index.column() == 0 else None
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(case, column.key)
        if role == ID_ROLE:
            return case.id
        if role == Qt.ItemDataRole.DecorationRole and index.column() == THUMB_COLUMN and self.thumbnails is not None:
            return self.thumbnails.get(case.image_path)
        if role == Qt.ItemDataRole.ForegroundRole and column.key == "status":
            return QColor(STATUS_COLOURS.get(case.status, theme.TEXT))
        if role == Qt.ItemDataRole.ToolTipRole:
            return case.image_path
        if role == Qt.ItemDataRole.TextAlignmentRole and column.key not in ("patient", "recorded"):
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.SizeHintRole and index.column() == THUMB_COLUMN:
            return QSize(self.thumbnails.size + 8 if self.thumbnails else 8, 0)
        return None

    def sort(self, column: int, order=Qt.SortOrder.DescendingOrder) -> None:
        key = COLUMNS[column].sort if 0 <= column < len(COLUMNS) else None
        if key is not None:
            self.set_query(sort=key, descending=order == Qt.SortOrder.DescendingOrder)

    def _thumbnail_ready(self, path: str) -> None:
        for page, rows in self._pages.items():
            for i, case in enumerate(rows):
                if case.image_path == path:
                    index = self.index(page * self.page_size + i, THUMB_COLUMN)
                    self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
