"""The case database keeps what it committed: kills, two writers, damage, newer and foreign files, migrations."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from case_helpers import peaked, result, write_image

from engine.cases import CaseLog, CaseLogError, db, score

HELPERS = str(Path(__file__).resolve().parent)

# A child that records cases and prints each id after its commit; then, with RECORD_THEN == "kill",
# starts one more large transaction and kills itself in the middle of it.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from case_helpers import result, write_image
    from engine.cases import CaseLog, db
    path, folder, first, count, then = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    log = CaseLog.open(path, user=f"proc{first}")
    i = first
    while count < 0 or i < first + count:
        case = log.record(result(write_image(os.path.join(folder, f"{i}.png"), seed=i), grade=i % 8))
        log.agree(case.id)
        print(case.id, flush=True)
        i += 1
    if then == "kill":
        conn = log._conn
        conn.execute("PRAGMA cache_size = 2")  # small cache: the open transaction spills pages into the WAL
        with db.transaction(conn):
            half = conn.execute("INSERT INTO cases (created_at, updated_at, image_path, image_sha256) "
                                "VALUES ('t', 't', 'half-written', ?)", ("0" * 64,)).lastrowid
            for _ in range(3000):
                conn.execute("INSERT INTO audit (case_id, at, user, action, detail_json) "
                             "VALUES (?, 't', 'x', 'junk', ?)", (half, "x" * 500))
            print("inside", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
""")


def _child(tmp_path, path, first, count, then="stop"):
    folder = tmp_path / f"images{first}"
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HELPERS, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(folder), str(first), str(count), then],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _integrity(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_every_connection_runs_in_wal_with_a_busy_timeout_and_foreign_keys(tmp_path):
    with CaseLog.open(tmp_path / "c.sqlite3") as log:
        conn = log._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(db.BUSY_TIMEOUT_S * 1000)
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == db.APPLICATION_ID
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.execute("INSERT INTO audit (case_id, at, user, action) VALUES (999, 't', 'u', 'x')")


def test_the_default_database_lies_beside_the_model_store_unless_pointed_elsewhere(monkeypatch, tmp_path):
    monkeypatch.delenv(db.DB_ENV, raising=False)
    monkeypatch.setenv("CATARACT_GRADER_HOME", str(tmp_path / "store"))
    assert db.default_db_path() == tmp_path / "store" / "cases.sqlite3"
    monkeypatch.setenv(db.DB_ENV, str(tmp_path / "elsewhere.db"))
    with CaseLog.open() as log:
        assert log.path == tmp_path / "elsewhere.db"
    assert (tmp_path / "elsewhere.db").is_file() and not (tmp_path / "store").exists()


def test_a_kill_in_the_middle_of_a_write_loses_no_committed_case(tmp_path):
    path = tmp_path / "c.sqlite3"
    proc = _child(tmp_path, path, 0, 5, then="kill")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert out.split() == ["1", "2", "3", "4", "5", "inside"]
    assert Path(str(path) + "-wal").stat().st_size > 500_000  # the half transaction had reached the disk
    with CaseLog.open(path) as log:
        assert log.notices == ()
        assert [c.id for c in log.list(sort="id", descending=False)] == [1, 2, 3, 4, 5]
        assert all(c.status == "agreed" for c in log.list())
        assert log._conn.execute("SELECT count(*) FROM audit WHERE action = 'junk'").fetchone()[0] == 0
    assert _integrity(path) == "ok"


def test_a_kill_at_a_random_moment_keeps_every_case_it_reported(tmp_path):
    path = tmp_path / "c.sqlite3"
    proc = _child(tmp_path, path, 0, -1)
    seen = [proc.stdout.readline().strip() for _ in range(12)]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    with CaseLog.open(path) as log:
        stored = {c.id: c for c in log.list()}
        assert {int(s) for s in seen} <= set(stored)
        assert all(stored[int(s)].status == "agreed" for s in seen)
        assert all(len(log.get(i).answers) == 1 for i in stored)  # no case without its answer
    assert _integrity(path) == "ok"


def test_two_processes_write_at_the_same_time(tmp_path):
    path = tmp_path / "c.sqlite3"
    CaseLog.open(path).close()
    procs = [_child(tmp_path, path, first, 25) for first in (0, 1000)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _o, e in outs]
    with CaseLog.open(path) as log:
        cases = log.list()
        assert len(cases) == 50 and all(c.status == "agreed" for c in cases)
        users = {e.user for c in cases for e in log.get(c.id).audit}
    assert users == {"proc0", "proc1000"}
    assert sorted(int(i) for out, _e in outs for i in out.split()) == sorted(c.id for c in cases)


def test_a_damaged_file_is_set_aside_with_a_notice_and_never_emptied(tmp_path):
    path = tmp_path / "c.sqlite3"
    junk = b"this is not a database, but somebody's data" * 200
    path.write_bytes(junk)
    with CaseLog.open(path) as log:
        (notice,) = log.notices
        assert "was damaged" in notice and "set aside" in notice
        assert log.count() == 0
        log.record(result(write_image(tmp_path / "a.png")))
    (aside,) = tmp_path.glob("c.sqlite3.damaged-*")
    assert aside.read_bytes() == junk and aside.name in notice


def test_damaged_pages_inside_a_database_are_found_and_set_aside(tmp_path):
    path = tmp_path / "c.sqlite3"
    with CaseLog.open(path) as log:
        for i in range(30):
            log.record(result(write_image(tmp_path / f"{i}.png", seed=i)), patient_id=f"P{i}")
        log._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data), page):  # keep page 1 (the header and schema), scramble the rest
        data[start + 100:start + 400] = os.urandom(300)
    path.write_bytes(bytes(data))
    with CaseLog.open(path) as log:
        assert len(log.notices) == 1 and "damaged" in log.notices[0]
        assert log.count() == 0
    assert len(list(tmp_path.glob("c.sqlite3.damaged-*"))) == 1


def test_a_database_from_a_newer_version_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "c.sqlite3"
    with CaseLog.open(path) as log:
        log.record(result(write_image(tmp_path / "a.png")))
        log._conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
        log._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.read_bytes()
    with pytest.raises(CaseLogError, match=r"newer Cataract Grader \(schema version 3; this one reads up to 2\)"):
        CaseLog.open(path)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.damaged-*"))


def test_another_programs_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(CaseLogError, match=r"another program's SQLite database \(tables: invoices\)"):
        CaseLog.open(path)
    assert path.read_bytes() == before


def test_a_folder_is_not_a_database(tmp_path):
    with pytest.raises(CaseLogError, match="is a folder"):
        CaseLog.open(tmp_path)


def test_a_version_1_database_is_migrated_to_version_2_with_its_cases(tmp_path):
    path = tmp_path / "c.sqlite3"
    conn = db.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    assert db.migrate(conn, target=1) == 1
    probs = peaked(3, 0.5)
    conn.execute("INSERT INTO cases (created_at, updated_at, image_path, image_sha256, patient_id, status, "
                 "final_grade, model_grade) VALUES ('t0', 't0', '/x.png', ?, 'P1', 'open', NULL, 3)", ("a" * 64,))
    conn.execute("INSERT INTO answers (case_id, created_at, model_id, model_name, role, grade, probabilities_json, "
                 "confidence, expected_grade, image_sha256) VALUES (1, 't0', 'm', 'stu', 'student', 3, ?, 0.5, 3.0, ?)",
                 (str(list(probs)), "a" * 64))
    with pytest.raises(sqlite3.OperationalError, match="no such column: priority"):
        conn.execute("SELECT priority FROM cases")
    conn.close()
    with CaseLog.open(path) as log:
        assert log._conn.execute("PRAGMA user_version").fetchone()[0] == 2
        case = log.get(1)
        assert (case.patient_id, case.model_grade, len(case.answers)) == ("P1", 3, 1)
        assert case.priority == pytest.approx(score([("m", "student", 3, probs)], None).priority)
        assert case.priority > 0
        assert [c.id for c in log.next_for_review()] == [1]


def test_two_processes_creating_the_same_new_database_agree_on_its_schema(tmp_path):
    path = tmp_path / "c.sqlite3"
    procs = [_child(tmp_path, path, first, 3) for first in (0, 1000)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    with CaseLog.open(path) as log:
        assert log.count() == 6


def test_model_output_commits_without_an_fsync_and_what_a_person_enters_with_one(tmp_path):
    with CaseLog.open(tmp_path / "c.sqlite3") as log:
        seen = []
        log._conn.set_trace_callback(seen.append)

        def mode_of_last_write():
            begin = max(i for i, s in enumerate(seen) if s == "BEGIN IMMEDIATE")
            return seen[begin - 1]

        case = log.record(result(write_image(tmp_path / "a.png", seed=1)))
        assert mode_of_last_write() == "PRAGMA synchronous = NORMAL"
        log.record(result(write_image(tmp_path / "b.png", seed=2)), patient_id="P1")
        assert mode_of_last_write() == "PRAGMA synchronous = FULL"
        for action in (lambda: log.agree(case.id), lambda: log.set_details(case.id, eye="OD"),
                       lambda: log.correct(case.id, 5), lambda: log.reopen(case.id)):
            action()
            assert mode_of_last_write() == "PRAGMA synchronous = FULL"
