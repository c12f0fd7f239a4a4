"""The case database file: where it lives, how it is opened, and how its schema is migrated.

One SQLite file (standard library) beside the model store: CATARACT_GRADER_CASES_DB, else
`cases.sqlite3` in the store folder (CATARACT_GRADER_HOME or the app-data folder). It runs in
WAL mode with a busy timeout (the app and the CLI write at the same time) and foreign keys.
Every commit survives a killed process. A commit that holds only a model's output (an
answer, with no patient details or sub-labels typed with it) skips the fsync: after a power
cut it may roll back, and grading the image again restores it. Every commit that holds what a
person entered (a review, an edit, details) is fsynced, and makes every earlier one durable too.
`PRAGMA user_version` is the schema version and `application_id` marks the file as ours. A
file that SQLite calls damaged is set aside under a timestamped name and a new one is started,
with a notice; a file from a newer version, or another program's database, is refused;
nothing is emptied.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.cases.model import CaseLogError, from_json
from engine.cases.review import score
from engine.errors import EngineError
from engine.schema import NUM_GRADES

DB_ENV = "CATARACT_GRADER_CASES_DB"
DB_FILE = "cases.sqlite3"
APPLICATION_ID = 0x43475231  # "CGR1": a case log of Cataract Grader
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 15.0
_CORRUPT, _NOTADB = 11, 26  # SQLite's primary result codes for a damaged file

_MESSAGES = {
    5: "is busy: another program held its write lock for more than {t:.0f} s; try again",  # SQLITE_BUSY
    6: "is locked by another connection; try again",  # SQLITE_LOCKED
    8: "cannot be written (the file or its folder is read-only)",  # SQLITE_READONLY
    10: "could not be read or written (a disk error: {e})",  # SQLITE_IOERR
    13: "cannot grow: the disk is full, so nothing was written",  # SQLITE_FULL
    14: "cannot be opened (check that its folder exists and is writable)",  # SQLITE_CANTOPEN
    _CORRUPT: "is damaged ({e}); open it again to set it aside and start a new one",
    _NOTADB: "is not a database file ({e}); open it again to set it aside and start a new one",
}


def default_db_path() -> Path:
    """CATARACT_GRADER_CASES_DB, else cases.sqlite3 beside the model store."""
    env = os.environ.get(DB_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from engine.model_store import default_store_root

    return default_store_root() / DB_FILE


def error_code(e: sqlite3.Error) -> int | None:
    """SQLite's primary result code (Python 3.11+ gives it; older versions only the message)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(e).lower()
    if "malformed" in text:
        return _CORRUPT
    if "not a database" in text:
        return _NOTADB
    return 5 if "locked" in text else None


def sentence(e: sqlite3.Error, path: Path) -> CaseLogError:
    """One sentence for an SQLite failure, naming the file."""
    template = _MESSAGES.get(error_code(e) or -1, "failed ({e})")
    return CaseLogError(f"the case database {path} " + template.format(e=e, t=BUSY_TIMEOUT_S))


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the pragmas every connection needs."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, durable: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so two writers queue instead of deadlocking.

    Every commit survives a killed process. A durable one (synchronous=FULL) also survives a power
    cut, and makes every earlier commit in the WAL durable with it; a non-durable one
    (synchronous=NORMAL) skips the fsync and may roll back after a power cut.
    """
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: several SELECTs see one state of the file, whatever other writers do meanwhile."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


# ---- schema -------------------------------------------------------------------------------------

_TOP = NUM_GRADES - 1
_V1 = [
    f"""CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        image_path TEXT NOT NULL,
        image_sha256 TEXT NOT NULL CHECK (length(image_sha256) = 64),
        patient_id TEXT,
        eye TEXT CHECK (eye IN ('OD', 'OS')),
        visit_date TEXT,
        gate_json TEXT,
        sublabels_json TEXT,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'agreed', 'corrected')),
        final_grade INTEGER CHECK (final_grade BETWEEN 0 AND {_TOP}),
        note TEXT,
        reviewed_at TEXT,
        reviewed_by TEXT,
        reviewed_answer_id INTEGER REFERENCES answers(id),
        model_grade INTEGER,
        model_confidence REAL,
        model_name TEXT,
        CHECK ((status = 'open') = (final_grade IS NULL))
    )""",
    f"""CREATE TABLE answers (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        created_at TEXT NOT NULL,
        model_id TEXT NOT NULL,
        model_name TEXT NOT NULL,
        role TEXT NOT NULL,
        arch TEXT NOT NULL DEFAULT '',
        grade INTEGER NOT NULL CHECK (grade BETWEEN 0 AND {_TOP}),
        probabilities_json TEXT NOT NULL,
        confidence REAL NOT NULL,
        expected_grade REAL NOT NULL,
        sublabels_predicted_json TEXT NOT NULL DEFAULT '{{}}',
        sublabels_used_json TEXT,
        image_sha256 TEXT NOT NULL,
        device TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id),
        at TEXT NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        detail_json TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX answers_by_case ON answers(case_id)",
    "CREATE INDEX audit_by_case ON audit(case_id)",
    "CREATE INDEX cases_by_image ON cases(image_sha256)",
    "CREATE INDEX cases_by_patient ON cases(patient_id, id)",
    "CREATE INDEX cases_by_status ON cases(status, id)",
    "CREATE INDEX cases_by_review_time ON cases(reviewed_at)",
]

_V2 = [  # review order (stored, so `next` is an index walk, not a scan of every answer) and text search
    "ALTER TABLE cases ADD COLUMN priority REAL NOT NULL DEFAULT 0",
    "ALTER TABLE cases ADD COLUMN uncertainty REAL NOT NULL DEFAULT 0",
    "ALTER TABLE cases ADD COLUMN disagreement REAL NOT NULL DEFAULT 0",
    "ALTER TABLE cases ADD COLUMN ood REAL NOT NULL DEFAULT 0",
    "ALTER TABLE cases ADD COLUMN models_disagree INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX cases_for_review ON cases(status, priority DESC, id)",
    "CREATE INDEX cases_for_search ON cases(image_path, patient_id, note)",  # covers the text search
]


def rescore(conn: sqlite3.Connection, case_id: int) -> None:
    """Recompute a case's review terms from its answers and gate result (inside the caller's transaction)."""
    rows = conn.execute(
        "SELECT model_id, role, grade, probabilities_json FROM answers WHERE case_id = ? ORDER BY id", (case_id,)
    ).fetchall()
    gate = from_json(conn.execute("SELECT gate_json FROM cases WHERE id = ?", (case_id,)).fetchone()[0])
    s = score([(m, r, g, tuple(from_json(p))) for m, r, g, p in rows], gate)
    conn.execute(
        "UPDATE cases SET priority = ?, uncertainty = ?, disagreement = ?, ood = ?, models_disagree = ? WHERE id = ?",
        (s.priority, s.uncertainty, s.disagreement, s.ood, int(s.models_disagree), case_id),
    )


def _to_v1(conn: sqlite3.Connection) -> None:
    for statement in _V1:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _to_v2(conn: sqlite3.Connection) -> None:
    for statement in _V2:
        conn.execute(statement)
    for (case_id,) in conn.execute("SELECT id FROM cases").fetchall():
        rescore(conn, case_id)


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _to_v1, 2: _to_v2}  # version -> step up to it


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema up to `target` in one transaction per step; returns the version reached."""
    while True:
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the write lock
            if version >= target:
                return version
            MIGRATIONS[version + 1](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")


# ---- opening ------------------------------------------------------------------------------------


class _Damaged(EngineError):
    """A file SQLite cannot read as a database; caught in open_database, which sets the file aside."""


def _damage_or_sentence(e: sqlite3.DatabaseError, path: Path) -> Exception:
    return _Damaged(str(e)) if error_code(e) in (_CORRUPT, _NOTADB) else sentence(e, path)


def _inspect(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a foreign or newer file; raise _Damaged for one SQLite cannot read."""
    try:  # read-only looks first: a file that is not ours is left exactly as it was
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as e:
        raise _damage_or_sentence(e, path) from None
    if app_id != APPLICATION_ID and (app_id != 0 or tables):
        shown = ", ".join(tables[:5]) or "none"
        raise CaseLogError(f"{path} is another program's SQLite database (tables: {shown}), not a case log; "
                           "choose another file with --db")
    if version > SCHEMA_VERSION:
        raise CaseLogError(f"the case database {path} was written by a newer Cataract Grader (schema version "
                           f"{version}; this one reads up to {SCHEMA_VERSION}); update the app, or choose another "
                           "file with --db")
    try:
        check = conn.execute("PRAGMA quick_check(1)").fetchone()[0] if tables else "ok"
        if check != "ok":
            raise _Damaged(f"integrity check: {check}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise _damage_or_sentence(e, path) from None
    if mode.lower() != "wal":
        raise CaseLogError(f"the case database {path} cannot use write-ahead logging (journal mode stays {mode!r}); "
                           "keep it on a local disk, not a network share")


def set_aside(path: Path) -> Path:
    """Rename a damaged database (and its -wal/-shm files) with a timestamp; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    return aside


def open_database(path: str | Path) -> tuple[sqlite3.Connection, list[str]]:
    """A ready connection to the case log at `path` (created if missing) and any notices for the user."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_file():
        raise CaseLogError(f"{p} is a folder, not a case database file")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CaseLogError(f"the folder for the case database {p} cannot be made ({e.strerror or e})") from None
    notices: list[str] = []
    for attempt in (1, 2):
        conn = None
        try:
            conn = connect(p)
            _inspect(conn, p)
            migrate(conn)
            return conn, notices
        except (_Damaged, sqlite3.DatabaseError) as damage:
            if conn is not None:
                conn.close()
            if not isinstance(damage, _Damaged) and error_code(damage) not in (_CORRUPT, _NOTADB):
                raise sentence(damage, p) from None
            if attempt == 2:
                raise CaseLogError(f"the case database {p} is still damaged after being set aside ({damage})") from None
            try:
                aside = set_aside(p)
            except FileNotFoundError:  # another process set it aside a moment ago
                continue
            except OSError as e:
                raise CaseLogError(f"the case database {p} is damaged ({damage}) and cannot be set aside "
                                   f"({e.strerror or e}); move it away by hand") from None
            notices.append(f"The case database {p} was damaged ({damage}); it was set aside as {aside.name} "
                           "and a new, empty case log was started. The old file is kept for recovery.")
        except BaseException:
            if conn is not None:
                conn.close()
            raise
    raise AssertionError("unreachable")
