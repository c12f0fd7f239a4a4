"""The Cases panel on a log of 100,000 cases: how long the table waits for its rows, and how long the window stalls.

Measured in one run, side by side, for each view the panel offers (newest, unreviewed,
disagreements, one patient, a text search, sorted by priority) and for jumps to 20 places in
the 100,000 rows (as dragging the scroll bar does):
a  the table's model as built: the query (count + first page, or one page) runs on the reader
   lane; the time until the model has the rows, and the longest the GUI thread went without
   turning its event loop meanwhile (a 5 ms timer measures the gaps);
b  the same query run on the GUI thread, as a model that reads synchronously would: the stall
   is the whole query.
Then recording an answer while another program holds the database's write lock for 1 s (as a
`cases add` of a folder does between its commits): through the writer lane, and on the GUI
thread. The table is not on screen (its repaint is not the database's cost). Offscreen Qt.
The last line is a JSON object with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench_cases import fill  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from cataract_app.cases.panel import CasesPanel  # noqa: E402
from cataract_app.cases.service import CaseService  # noqa: E402
from engine.cases import CaseFilter, CaseLog  # noqa: E402


class StallMeter:
    """The longest gap between turns of the event loop while it runs (a 5 ms timer)."""

    def __init__(self) -> None:
        self.clock, self.timer, self.worst = QElapsedTimer(), QTimer(), 0.0
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.worst = 0.0
        self.clock.start()
        self.timer.start()

    def _tick(self) -> None:
        self.worst = max(self.worst, self.clock.nsecsElapsed() / 1e6)
        self.clock.restart()

    def stop(self) -> float:
        self.timer.stop()
        self._tick()
        return self.worst


def spin_until(app: QApplication, done, limit_s: float = 60.0) -> None:
    t0 = time.perf_counter()
    while not done():
        app.processEvents()
        time.sleep(0.0005)
        if time.perf_counter() - t0 > limit_s:
            raise TimeoutError("no answer from the reader lane")


def measure_lane(app, panel: CasesPanel, apply, meter: StallMeter) -> tuple[float, float]:
    heard = []
    panel.model.loaded.connect(lambda: heard.append(1))
    meter.start()
    t0 = time.perf_counter()
    apply()
    spin_until(app, lambda: heard)
    wait_ms = (time.perf_counter() - t0) * 1e3
    panel.model.loaded.disconnect()
    panel.model.loaded.connect(panel._on_loaded)
    return wait_ms, meter.stop()


def measure_sync(app, fn, meter: StallMeter) -> float:
    """The stall when `fn` (a query) runs on the GUI thread inside one turn of the event loop."""
    meter.start()
    QTimer.singleShot(0, fn)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.05 or meter.worst == 0:
        app.processEvents()
    return meter.stop()


def _answer(path: Path):
    from engine.results import GradeResult, ModelInfo

    probs = (0.05, 0.1, 0.6, 0.1, 0.05, 0.04, 0.03, 0.03)
    return GradeResult(grade=2, probabilities=probs, confidence=0.6, expected_grade=2.2, source=str(path),
                       model=ModelInfo("bench", "b" * 16, "student", "resnet18"))


def hold_write_lock(db: Path, seconds: float):
    """Another program's transaction: the write lock taken, held `seconds`, released."""
    import sqlite3
    import threading

    taken = threading.Event()

    def run() -> None:
        conn = sqlite3.connect(str(db), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    taken.wait()
    return thread


def bench_locked_record(app, db: Path, folder: Path, service: CaseService, meter: StallMeter) -> dict:
    import cv2
    import numpy as np

    paths = []
    for i in range(2):
        paths.append(folder / f"locked{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((32, 32, 3), i, np.uint8))
    holder = hold_write_lock(db, 1.0)
    meter.start()
    t0 = time.perf_counter()
    service.record(str(paths[0]), _answer(paths[0]), None)
    spin_until(app, lambda: service.writer.pending == 0)
    saved_ms, stall_lane = (time.perf_counter() - t0) * 1e3, meter.stop()
    holder.join()
    log = CaseLog.open(db)
    holder = hold_write_lock(db, 1.0)
    stall_sync = measure_sync(app, lambda: log.record(_answer(paths[1])), meter)
    holder.join()
    log.close()
    return {"saved_ms": saved_ms, "stall_lane_ms": stall_lane, "stall_sync_ms": stall_sync}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="bench-cases-panel-") as tmp:
        db = Path(tmp) / "cases.sqlite3"
        with CaseLog.open(db) as log:
            fill(log, args.cases)
            patient = log.list(limit=1)[0].patient_id
        service = CaseService(db)
        panel = CasesPanel(service.read)
        spin_until(app, lambda: panel.model.total == args.cases)
        meter, out = StallMeter(), {}
        views = {"newest": (CaseFilter(), "id"), "unreviewed": (CaseFilter(status=("open",)), "id"),
                 "disagreements": (CaseFilter(disagreements=True), "id"),
                 "one_patient": (CaseFilter(patient_id=patient), "id"),
                 "search": (CaseFilter(search="visit77/"), "id"), "by_priority": (CaseFilter(), "priority")}
        reader = CaseLog.open(db)
        print(f"{args.cases} cases; medians of {args.repeats} runs (ms)")
        print(f"{'view':<14} {'rows after':>10} {'GUI stall, lane':>16} {'GUI stall, sync':>16}")
        for name, (flt, sort) in views.items():
            lane = [measure_lane(app, panel, lambda f=flt, s=sort: panel.model.set_query(f, sort=s), meter)
                    for _ in range(args.repeats)]
            sync = [measure_sync(app, lambda f=flt, s=sort: (reader.count(f), reader.list(f, sort=s, limit=100)), meter)
                    for _ in range(args.repeats)]
            row = {"rows_ms": statistics.median(w for w, _ in lane), "stall_lane_ms": statistics.median(s for _, s in lane),
                   "stall_sync_ms": statistics.median(sync)}
            out[name] = row
            print(f"{name:<14} {row['rows_ms']:10.1f} {row['stall_lane_ms']:16.1f} {row['stall_sync_ms']:16.1f}")
        panel.model.set_query(CaseFilter(), sort="id")
        spin_until(app, lambda: panel.model.total == args.cases)
        jumps, stalls = [], []
        for k in range(20):
            row = (k * 4999 + 1234) % args.cases
            meter.start()
            t0 = time.perf_counter()
            panel.model.summary(row)
            spin_until(app, lambda row=row: panel.model.summary(row) is not None)
            jumps.append((time.perf_counter() - t0) * 1e3)
            stalls.append(meter.stop())
        sync_page = [measure_sync(app, lambda k=k: reader.list(limit=100, offset=(k * 4999) % args.cases), meter)
                     for k in range(args.repeats)]
        out["jump"] = {"page_ms": statistics.median(jumps), "stall_lane_ms": statistics.median(stalls),
                       "stall_sync_ms": statistics.median(sync_page)}
        print(f"{'jump to a row':<14} {out['jump']['page_ms']:10.1f} {out['jump']['stall_lane_ms']:16.1f} "
              f"{out['jump']['stall_sync_ms']:16.1f}")
        out["record_while_locked"] = bench_locked_record(app, db, Path(tmp), service, meter)
        row = out["record_while_locked"]
        print(f"{'record, locked':<14} {row['saved_ms']:10.1f} {row['stall_lane_ms']:16.1f} {row['stall_sync_ms']:16.1f}")
        reader.close()
        panel.shutdown()
        service.shutdown()
    print(json.dumps({"cases": args.cases, "load": os.getloadavg()[0], **out}))


if __name__ == "__main__":
    main()
