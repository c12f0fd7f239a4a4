"""The Qt binding keeps Python's reference counts: PySide6 6.12.0 dropped one on every emit() and processEvents().

With it, a window that emitted about as many signals as True has references (some 35,000 in
the app: a long training run's progress lines, a scroll through the case table) ended with
"Fatal Python error: bool_dealloc". constraints.txt pins a version without the fault.
"""

import sys

from PySide6.QtCore import QCoreApplication, QObject, Signal

EMITS = 2000


class _Emitter(QObject):
    fired = Signal()
    value = Signal(int)


def test_emitting_signals_keeps_the_reference_counts_of_true_and_none(qtbot):
    emitter = _Emitter()
    heard = []
    emitter.value.connect(heard.append)
    before = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(EMITS):
        emitter.fired.emit()
        emitter.value.emit(i)
    after = sys.getrefcount(True), sys.getrefcount(None)
    assert len(heard) == EMITS
    assert abs(after[0] - before[0]) < EMITS // 10 and abs(after[1] - before[1]) < EMITS // 10


def test_turning_the_event_loop_keeps_the_reference_count_of_none(qtbot):
    app = QCoreApplication.instance()
    before = sys.getrefcount(None)
    for _ in range(EMITS):
        app.processEvents()
    assert abs(sys.getrefcount(None) - before) < EMITS // 10
