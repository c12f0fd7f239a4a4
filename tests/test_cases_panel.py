"""The Cases panel on a temporary case log: paging, filters, search, sort, thumbnails, selection and its toolbar."""

import pytest
from case_helpers import TEACHER, peaked, result, write_image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from cataract_app.cases.panel import CasesPanel
from cataract_app.cases.service import CaseService
from cataract_app.cases.table_model import COLUMNS, ID_ROLE, THUMB_COLUMN
from engine.cases import CaseFilter, CaseLog

WAIT_MS = 20_000
N = 75
PAGE = 20


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """75 cases: patients P0-P4, every third reviewed (some corrected), every tenth with a disagreeing teacher."""
    root = tmp_path_factory.mktemp("cases-panel")
    db = root / "cases.sqlite3"
    with CaseLog.open(db, user="dr-a") as log:
        for i in range(N):
            path = write_image(root / f"eye{i:03d}.png", seed=i)
            case = log.record(result(path, grade=i % 8, probs=peaked(i % 8, 0.4 + 0.5 * (i % 5) / 4)),
                              patient_id=f"P{i % 5}", eye="OD" if i % 2 else "OS")
            if i % 10 == 0:
                log.record(result(path, grade=(i + 3) % 8, model=TEACHER, sublabels_used={}))
            if i % 3 == 0:
                log.correct(case.id, 7, note="spokes missed") if i % 6 == 0 else log.agree(case.id)
    return db


@pytest.fixture
def panel(qtbot, filled, tmp_path):
    import shutil

    db = tmp_path / "cases.sqlite3"
    shutil.copyfile(filled, db)
    service = CaseService(db)
    p = CasesPanel(service.read, page_size=PAGE)
    qtbot.addWidget(p)
    p.resize(1280, 700)
    p.show()
    p.service, p.log = service, CaseLog.open(db)
    qtbot.waitUntil(lambda: p.model.total == N, timeout=WAIT_MS)
    yield p
    p.shutdown()
    service.shutdown()
    p.log.close()


def settle(qtbot, p):
    qtbot.waitUntil(lambda: p.service.wait_idle(), timeout=WAIT_MS)


def shown_ids(qtbot, p, rows):
    """The ids on `rows`, once their pages are there."""
    for r in rows:
        p.model.summary(r)
    qtbot.waitUntil(lambda: all(p.model.summary(r) is not None for r in rows), timeout=WAIT_MS)
    return [p.model.summary(r).id for r in rows]


def test_the_table_pages_through_the_log_fetching_only_the_pages_it_shows(qtbot, panel):
    settle(qtbot, panel)
    assert panel.model.rowCount() == N == panel.log.count()
    assert set(panel.model.page_requests) == {0}  # the rows on screen are all on the first page
    expected = [c.id for c in panel.log.list(sort="id", descending=True)]
    assert shown_ids(qtbot, panel, range(PAGE)) == expected[:PAGE]
    assert panel.model.summary(70) is None  # on its way
    assert shown_ids(qtbot, panel, [70, 45]) == [expected[70], expected[45]]
    assert set(panel.model.page_requests) == {0, 2, 3}
    assert panel.model.data(panel.model.index(70, 0), ID_ROLE) == expected[70]
    assert "75 cases in the log" in panel.count.text()


@pytest.mark.parametrize("view, flt", [
    ("unreviewed", CaseFilter(status=("open",))),
    ("reviewed", CaseFilter(status=("reviewed",))),
    ("disagreements", CaseFilter(disagreements=True)),
])
def test_each_view_lists_what_the_log_lists_for_it(qtbot, panel, view, flt):
    panel.set_view(view)
    expected = [c.id for c in panel.log.list(flt)]
    assert 0 < len(expected) < N
    qtbot.waitUntil(lambda: panel.model.total == len(expected), timeout=WAIT_MS)
    assert shown_ids(qtbot, panel, range(len(expected))) == expected
    assert "match" in panel.count.text()


def test_one_patient_search_and_a_view_combine(qtbot, panel):
    panel.show_patient("P3")
    expected = [c.id for c in panel.log.list(CaseFilter(patient_id="P3"))]
    qtbot.waitUntil(lambda: panel.model.total == len(expected) == N // 5, timeout=WAIT_MS)
    panel.set_view("reviewed")
    both = [c.id for c in panel.log.list(CaseFilter(patient_id="P3", status=("reviewed",)))]
    qtbot.waitUntil(lambda: panel.model.total == len(both), timeout=WAIT_MS)
    assert shown_ids(qtbot, panel, range(len(both))) == both
    panel.show_patient(None)
    panel.set_view("all")
    panel.set_search("SPOKES missed")  # the note, case-insensitively
    noted = [c.id for c in panel.log.list(CaseFilter(search="spokes missed"))]
    qtbot.waitUntil(lambda: panel.model.total == len(noted) == len(range(0, N, 6)), timeout=WAIT_MS)
    panel.set_search("eye07")  # part of the image path: eye070 .. eye074
    qtbot.waitUntil(lambda: panel.model.total == 5, timeout=WAIT_MS)


def test_typing_a_search_waits_for_a_pause_before_asking(qtbot, panel):
    settle(qtbot, panel)
    before = len(panel.model.page_requests)
    for text in ("e", "ey", "eye0", "eye00"):
        panel.search.setText(text)
    qtbot.waitUntil(lambda: panel.model.total == 10, timeout=WAIT_MS)  # eye000 .. eye009
    assert len(panel.model.page_requests) == before + 1


@pytest.mark.parametrize("key", ["model_grade", "model_confidence", "priority", "patient_id"])
def test_clicking_a_header_sorts_in_the_database(qtbot, panel, key):
    column = next(i for i, c in enumerate(COLUMNS) if c.sort == key)
    panel.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
    qtbot.waitUntil(lambda: panel.model.sort_key == key and not panel.model.descending, timeout=WAIT_MS)
    settle(qtbot, panel)
    expected = [c.id for c in panel.log.list(sort=key, descending=False)]
    assert shown_ids(qtbot, panel, range(N)) == expected
    values = [getattr(panel.model.summary(r), key) for r in range(N)]
    assert values == sorted(values)


def test_thumbnails_are_made_off_the_gui_thread_once_and_cached(qtbot, panel):
    settle(qtbot, panel)
    index = panel.model.index(0, THUMB_COLUMN)
    qtbot.waitUntil(lambda: panel.model.data(index, Qt.ItemDataRole.DecorationRole) is not None, timeout=WAIT_MS)
    pixmap = panel.model.data(index, Qt.ItemDataRole.DecorationRole)
    assert max(pixmap.width(), pixmap.height()) == 40
    path = panel.model.summary(0).image_path
    made = panel.thumbnails.made
    for _ in range(3):
        assert panel.thumbnails.get(path) is not None
    assert panel.thumbnails.made == made
    assert panel.thumbnails.made < 30  # only the rows the view showed, not all 75


def test_selection_api_detail_pane_and_toolbar(qtbot, panel):
    settle(qtbot, panel)
    target = panel.model.summary(3).id
    heard = []
    panel.selection_changed.connect(heard.append)
    assert panel.select_case(target)
    assert panel.selected_ids() == [target] == heard[-1] and panel.current_id() == target
    qtbot.waitUntil(lambda: panel.detail.case is not None and panel.detail.case.id == target, timeout=WAIT_MS)
    assert f"Case {target}" in panel.detail.status.text() and "stu (image only)" in panel.detail.answers.text()
    opened = []
    panel.case_activated.connect(opened.append)
    panel.detail.open_button.click()
    assert opened == [target]
    panel.detail.patient_button.click()
    assert panel.patient.text() == panel.detail.case.patient_id
    grade_folder = panel.add_action(QAction("Grade folder\u2026", panel))
    assert panel.toolbar.actions()[0] is grade_folder


def test_a_refresh_shows_cases_another_program_added(qtbot, panel, tmp_path):
    settle(qtbot, panel)
    with CaseLog.open(panel.log.path) as other:
        new = other.record(result(write_image(tmp_path / "late.png", seed=999)), patient_id="P9")
    panel.refresh()
    qtbot.waitUntil(lambda: panel.model.total == N + 1, timeout=WAIT_MS)
    assert shown_ids(qtbot, panel, [0]) == [new.id]
