"""The retrain panel trains on the cases reviewed since the active model was trained, alone or added to a dataset."""

import pytest
from case_helpers import result, write_image
from PySide6.QtCore import QSettings

from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow
from engine.cases import CaseLog
from engine.data.manifest import load_dataset
from engine.model_store import ModelStore

WAIT_MS = 60_000


@pytest.fixture
def reviewed(tmp_path):
    """A case log: three cases reviewed now, one reviewed long before the models were made, one open."""
    db = tmp_path / "cases.sqlite3"
    with CaseLog.open(db, user="dr-a") as log:
        ids = []
        for i in range(5):
            case = log.record(result(write_image(tmp_path / f"c{i}.png", seed=i), grade=i), patient_id=f"C{i % 2}")
            if i < 4:
                log.correct(case.id, 6) if i == 1 else log.agree(case.id)
            ids.append(case.id)
        with log._guard(write=True) as conn:  # as if reviewed before the active student was trained
            conn.execute("UPDATE cases SET reviewed_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?", (ids[3],))
    return db, ids


@pytest.fixture
def window(qtbot, tmp_path, tiny_bundles, reviewed):
    student, teacher = tiny_bundles
    store = ModelStore(tmp_path / "store", defaults={"student": student, "teacher": teacher})
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(LoadOptions(device="cpu"), settings, store=store, cases_db=reviewed[0])
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.summary is not None, timeout=WAIT_MS)
    return w


def use_reviewed(qtbot, panel):
    source = panel.cases_source
    qtbot.waitUntil(lambda: source.use_button.isEnabled(), timeout=WAIT_MS)
    source.use_button.click()
    qtbot.waitUntil(lambda: source.last_export is not None and panel.dataset == source.last_export.folder,
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT_MS)
    assert panel.dataset_ok, [str(p) for p in panel.report.problems]
    return load_dataset(panel.dataset)


def test_training_on_the_cases_reviewed_since_the_active_model(qtbot, window, reviewed):
    _db, ids = reviewed
    window.actions_by_name["retrain"].trigger()
    panel = window.training.retrain_dialog
    qtbot.waitUntil(lambda: panel.cases_source.since is not None, timeout=WAIT_MS)
    assert panel.cases_source.count == 3 and "<b>3</b>" in panel.cases_source.summary.text()
    assert not panel.cases_source.add_to.isEnabled()  # no dataset chosen yet
    manifest = use_reviewed(qtbot, panel)
    assert panel.dataset.parent == window.training.store.root / "case-exports"
    by_image = {r.rel_path: r for r in manifest}
    assert sorted(by_image) == [f"images/{i:06d}.png" for i in ids[:3]]
    assert [by_image[f"images/{i:06d}.png"].grade for i in ids[:3]] == [0, 6, 2]
    assert {r.patient_id for r in manifest} == {"C0", "C1"}
    assert panel.start_button.isEnabled()
    assert window.training.last_dataset_folder() is None  # an export is not remembered as the user's dataset


def test_reviewed_cases_added_to_an_earlier_dataset(qtbot, window, reviewed, tiny_dataset):
    window.actions_by_name["retrain"].trigger()
    panel = window.training.retrain_dialog
    panel.set_dataset(tiny_dataset)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT_MS)
    earlier = load_dataset(tiny_dataset)
    source = panel.cases_source
    assert source.add_to.isEnabled() and source.base == tiny_dataset
    source.add_to.setChecked(True)
    manifest = use_reviewed(qtbot, panel)
    assert len(manifest) == len(earlier) + 3
    assert source.last_export.added_to == tiny_dataset.resolve() and "added to" in source.outcome.text()
    kept = {r.rel_path: r for r in manifest if r.rel_path.startswith("base/")}
    assert {(f"base/{r.rel_path}", r.grade, r.patient_id) for r in earlier} == \
        {(k, r.grade, r.patient_id) for k, r in kept.items()}
    assert window.training.last_dataset_folder() == str(tiny_dataset)
    assert source.base == tiny_dataset  # a second export adds to the same dataset, not to the first export
