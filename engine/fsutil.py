"""Writes that matter go to a temporary file in the same folder, then rename; and the tools that keep them honest.

`write_step(name)` marks each point of a multi-step write where a kill could land. Tests
and benchmarks/fault_injection.py stop the writer there on purpose: in-process with
`inject_faults` (raising InjectedKill, which no writer cleans up after, exactly like a
kill), or in a child process with CATARACT_GRADER_FAULT=STEP[@N][:kill|raise], which
SIGKILLs the process the Nth time STEP is reached. Writers clean up after ordinary errors
(a full disk), and whoever opens the folder next removes what a kill left behind.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import EngineError

FAULT_ENV = "CATARACT_GRADER_FAULT"
_hook: Callable[[str], None] | None = None
_env_hits: dict[str, int] = {}


class InjectedKill(BaseException):  # noqa: N818  (it stands for a kill, not an error)
    """Raised at a write step by an injected fault; BaseException, so no writer's error handling cleans up."""


class FolderBusyError(EngineError):
    """Another process holds the folder's lock (a second job writing into the same run folder)."""


def write_step(name: str) -> None:
    """A point inside a write where a fault may be injected (a no-op unless a test or the environment asks)."""
    if _hook is not None:
        _hook(name)
    spec = os.environ.get(FAULT_ENV)
    if spec:
        _env_fault(spec, name)


def _env_fault(spec: str, name: str) -> None:
    step, _, action = spec.partition(":")
    step, _, nth = step.partition("@")
    if step != name:
        return
    _env_hits[name] = _env_hits.get(name, 0) + 1
    if _env_hits[name] != int(nth or 1):
        return
    if action == "raise":
        raise InjectedKill(name)
    os.kill(os.getpid(), signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)


@contextmanager
def inject_faults(hook: Callable[[str], None]) -> Iterator[None]:
    """Call `hook(step)` at every write step inside the block (it may raise InjectedKill to stop the writer)."""
    global _hook
    previous, _hook = _hook, hook
    try:
        yield
    finally:
        _hook = previous


def kill_at(step: str, nth: int = 1) -> Callable[[str], None]:
    """A hook for inject_faults that stops the writer the nth time it reaches `step`."""
    seen = {"n": 0}

    def hook(name: str) -> None:
        if name == step:
            seen["n"] += 1
            if seen["n"] == nth:
                raise InjectedKill(step)

    return hook


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_synced(path: Path, data: bytes) -> None:
    """Write `data` to a new file and fsync it (a building block for folders that are renamed in whole)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; read once, at import, before any thread
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` in one rename; on an error the old file stays and the temp file goes."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the file gets the permissions open() would give
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        write_step("atomic.written")
        os.replace(tmp, p)
        fsync_dir(p.parent)
    except BaseException as e:
        if not isinstance(e, InjectedKill):  # a kill cleans up nothing; whoever comes next does
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_tree(path: Path, step: str | None = None) -> None:
    """Delete a folder file by file, so that a fault injected at `step` (after the first file) leaves it half gone."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    first = True
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        if first and step:
            write_step(step)
        first = False
    shutil.rmtree(path, ignore_errors=True)


def stale_temps(folder: Path, name: str, older_than: float = 0.0) -> list[Path]:
    """The temp files and folders our writers make beside `folder/name` (.NAME.*), left behind by killed writes.

    Without a lock on the folder, pass `older_than` (seconds), so a temp another process is writing right now is spared.
    """
    if not folder.is_dir():
        return []
    now = time.time()
    found = []
    for p in folder.glob(f".{glob.escape(name)}.*"):
        try:
            age = now - p.lstat().st_mtime
        except OSError:
            continue
        if age >= older_than and (p.name.endswith((".tmp", ".old")) or p.is_dir()):
            found.append(p)
    return sorted(found)


_held_locks: dict[str, int] = {}


def hold_folder_lock(folder: Path) -> None:
    """Lock `folder` for this process until it exits (the OS drops the lock of a killed process).

    Taking it again from the same process is a no-op; another process gets FolderBusyError.
    """
    key = str(folder.resolve())
    if key in _held_locks:
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock_fd(fd)
    except OSError:
        os.close(fd)
        raise FolderBusyError(f"another job is writing into {folder} right now; wait for it or choose another folder") \
            from None
    _held_locks[key] = fd


def release_folder_lock(folder: Path) -> None:
    """Drop this process's lock on `folder` (before the folder is removed); a no-op when it holds none."""
    fd = _held_locks.pop(str(folder.resolve()), None)
    if fd is not None:
        os.close(fd)


def _lock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
