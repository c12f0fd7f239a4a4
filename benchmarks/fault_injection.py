"""Every fault-injection case of issue #17, long variants included, as a table of case -> outcome.

Each case (tests/faults.py) runs in a fresh process, so peak memory is the case's own. With
--src DIR, every case also runs against another checkout (say main, extracted with
`git archive main | tar -x -C DIR`), giving "before" and "now" side by side. The cases that
need this code's fault hook say "n/a" on a checkout without it; for those, the constructed
on-disk states (a half-deleted checkpoint.old, a kill between the renames) show the old code.

    python benchmarks/fault_injection.py [--long] [--src /path/to/main] [--only "2 killed"]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

_CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import engine.compat, faults
case = next(c for c in faults.CASES if c.family + "|" + c.name == sys.argv[2])
print("\n" + json.dumps({"outcome": faults.outcome(case, faults.Ctx(Path(sys.argv[3])))}))
"""


def run_case(key: str, src: Path, timeout: float) -> dict:
    """One case in a forked child running `src`'s engine; its outcome, wall time and peak RSS (wait4)."""
    with tempfile.TemporaryDirectory(prefix="fault-") as work:
        env = {**os.environ, "PYTHONPATH": str(src), "CATARACT_GRADER_HOME": str(Path(work) / "store"),
               "OMP_NUM_THREADS": "2"}
        r_fd, w_fd = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(r_fd)
            os.dup2(w_fd, 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            os.chdir(src)
            os.execve(sys.executable, [sys.executable, "-c", _CHILD, str(TESTS), key, work], env)
        os.close(w_fd)
        with os.fdopen(r_fd) as fh:
            out = fh.read()
        _pid, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - t0
    lines = [ln for ln in out.splitlines() if ln.startswith('{"outcome"')]
    code = os.waitstatus_to_exitcode(status)
    result = json.loads(lines[-1])["outcome"] if lines else f"CRASH: the process ended with status {code}"
    if seconds > timeout:
        result += f" (took {seconds:.0f} s)"
    return {"outcome": result, "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", help="another checkout to run every case against, for a before column")
    ap.add_argument("--long", action="store_true", help="include the long variants (real bombs, real SIGKILLs)")
    ap.add_argument("--only", default="", help="run only the cases whose family or name contains this")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(TESTS))
    import faults

    cases = [c for c in faults.CASES if (args.long or not c.long) and args.only in f"{c.family} {c.name}"]
    sources = ([("before", Path(args.src).resolve())] if args.src else []) + [("now", ROOT)]
    rows = []
    for case in cases:
        row = {"family": case.family, "case": case.name, "expect": case.expect}
        for label, src in sources:
            row[label] = run_case(f"{case.family}|{case.name}", src, args.timeout)
        row["ok"] = case.expect in row["now"]["outcome"]
        rows.append(row)
        _print_row(row, [label for label, _ in sources])
    bad = [r["case"] for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} cases end as expected" + (f"; not: {bad}" if bad else ""))
    print(json.dumps(rows))
    return 1 if bad else 0


def _print_row(row: dict, labels: list[str]) -> None:
    print(f"\n[{row['family']}] {row['case']}", flush=True)
    for label in labels:
        r = row[label]
        print(f"  {label:6s} {r['peak_mb']:6.0f} MB {r['seconds']:6.1f} s  {r['outcome']}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
