"""The `--nproc N` shortcut: start torchrun as a child process and follow it.

`launch_training` runs `torchrun ... -m engine train ARGS --progress json` and hands rank
0's JSON events to the caller's progress callback, so `run_training` with nproc > 1 looks to
its caller (the CLI, the app's retrain panel) like a one-process job: the same events, rank 0's
done event at the end (run_training makes it a TrainResult), a TrainError with the job's own sentence when it fails, and a stop
on the cancel token (torchrun and its workers are terminated; --resume continues it).
`launch_command` runs any other engine command the same way, with its
output passed through.
"""

from __future__ import annotations

import ctypes
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence

from engine.distributed import World, check_config, child_env, torchrun_command
from engine.progress import Cancelled, CancelToken, DoneEvent, ErrorEvent, ProgressCallback, parse_line

POLL_S = 0.2
PR_SET_PDEATHSIG = 1  # prctl(2)


def launch_training(cfg, progress: ProgressCallback, cancel: CancelToken | None = None):
    """Run `cfg` on cfg.nproc processes under torchrun; returns the DoneEvent rank 0 reported."""
    from dataclasses import replace

    from engine.train_config import TrainError, to_arguments

    check_config(cfg, World(size=cfg.nproc))  # refuse what the workers would refuse, before starting them
    cancel = cancel or CancelToken()
    args = ["train", *to_arguments(replace(cfg, nproc=1)), "--progress", "json"]
    proc = subprocess.Popen(torchrun_command(cfg.nproc, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env(), preexec_fn=_die_with_parent())
    lines: queue.Queue = queue.Queue()
    tail: deque[str] = deque(maxlen=40)
    readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, tail.append), daemon=True)]
    for t in readers:
        t.start()
    done, error = None, None
    while True:
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            if cancel.cancelled:
                _stop(proc)
                raise Cancelled("the job was stopped") from None
            if proc.poll() is not None and not readers[0].is_alive() and lines.empty():
                break
            continue
        event = parse_line(line)
        if isinstance(event, DoneEvent):
            done = event
        elif isinstance(event, ErrorEvent):
            error = event
            continue  # the caller learns of it from the TrainError below
        if event is not None:
            progress(event)
    code = proc.wait()
    readers[1].join(timeout=5)
    if code != 0 or done is None:
        raise TrainError(error.message if error else _failure(code, tail))
    return done


def launch_command(nproc: int, engine_args: Sequence[str]) -> int:
    """Run `cataract-grade ARGS` on `nproc` processes under torchrun, output passed through; its exit code."""
    proc = subprocess.Popen(torchrun_command(nproc, list(engine_args)), env=child_env(), preexec_fn=_die_with_parent())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        return 130


def _pump(stream, put) -> None:
    for line in stream:
        put(line.rstrip("\n"))


def _die_with_parent():
    """On Linux, have torchrun sent SIGTERM when this process dies (killed by the app): it then stops its workers.

    torchrun stays in this process's group, so the app's killpg of the job reaches it too.
    """
    if not sys.platform.startswith("linux"):
        return None

    def arm() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass

    return arm


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to torchrun, which stops its workers (each in a session of its own); SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _failure(code: int, tail: deque[str]) -> str:
    """A sentence for a failure that sent no error event: the last line of the workers' error output."""
    lines = [ln.strip() for ln in tail if ln.strip() and not ln.startswith(("W", "*"))]
    last = lines[-1] if lines else "no error message"
    return f"the distributed job failed (exit code {code}): {last}"
