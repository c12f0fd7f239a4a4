"""The case log's cost, all measured in one run.

1  listing and filtering a case log of 100,000 cases (goal: <= 200 ms): one page of the table
   (100 rows + the match count) for each filter the Cases panel offers, every case as
   dataclasses, every open case, and opening the file (which runs SQLite's quick_check).
2  what recording a case adds to a grade (goal: <= 5 %), side by side with the shipped student,
   for a 1024-px PNG and a 3000-px JPEG (q95):
   a  Grader.grade(path) CAM-free (as `cases add` grades), b  the same + CaseLog.record;
   c  Grader.grade(path) with the heat map (as the app grades), d  the same + CaseLog.record;
   e  a + CaseLog.record with a patient ID and eye (a commit with typed input is fsynced);
   f  a + CaseLog.record with the file's SHA-256 computed beforehand (as `cases add` does, on a
      thread, while the model runs), i.e. what the database itself adds.
   The overhead is the median over calls of (record time / that call's grade time), in wall
   time and, as a cross-check that load on a shared machine moves less, in CPU time of all the
   process's threads; the ratio of the medians of whole calls (b/a, d/c) is printed too. Each call grades a different file
   (same picture, one pixel changed), so every record makes a new case, in the 100,000-case log
   of part 1; the calls are made in turn, so load on the machine falls on all alike.

The last line is a JSON object with the ratios and the raw timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.cases import CaseFilter, CaseLog, score  # noqa: E402
from engine.cases.model import now_utc  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def fill(log: CaseLog, n: int, seed: int = 0) -> None:
    """n cases written straight into the engine's schema (one answer and two audit rows each), in one transaction."""
    rng = np.random.default_rng(seed)
    at = now_utc()
    probs = rng.dirichlet(np.full(8, 0.6), size=n)
    statuses = rng.choice(["open", "agreed", "corrected"], size=n, p=[0.7, 0.2, 0.1])
    patients = rng.integers(0, n // 5, size=n)
    cases, answers, audit = [], [], []
    for i in range(n):
        p = tuple(float(v) for v in probs[i])
        grade = int(np.argmax(p))
        s = score([("m" * 16, "student", grade, p)], None)
        status = str(statuses[i])
        final = None if status == "open" else (grade if status == "agreed" else (grade + 1) % 8)
        sha = f"{i:064x}"
        cases.append((i + 1, at, at, f"/clinic/2026/visit{i // 50}/img{i:06d}.png", sha, f"PAT{patients[i]:05d}",
                      "OD" if i % 2 else "OS", "2026-05-01", status, final, None if status == "open" else at,
                      grade, p[grade], "demo-student", s.priority, s.uncertainty))
        answers.append((i + 1, at, "m" * 16, "demo-student", "student", "resnet18", grade, json.dumps(p), p[grade],
                        float(np.dot(p, np.arange(8))), "{}", sha))
        audit += [(i + 1, at, "bench", "recorded", "{}"), (i + 1, at, "bench", "answer", "{}")]
    with log._guard(write=True) as conn:
        conn.executemany(
            "INSERT INTO cases (id, created_at, updated_at, image_path, image_sha256, patient_id, eye, visit_date, "
            "status, final_grade, reviewed_at, model_grade, model_confidence, model_name, priority, uncertainty) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", cases)
        conn.executemany(
            "INSERT INTO answers (case_id, created_at, model_id, model_name, role, arch, grade, probabilities_json, "
            "confidence, expected_grade, sublabels_predicted_json, image_sha256) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", answers)
        conn.executemany("INSERT INTO audit (case_id, at, user, action, detail_json) VALUES (?, ?, ?, ?, ?)", audit)
    log._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log._conn.execute("ANALYZE")


def bench_listing(db: Path, repeats: int, say) -> dict[str, float]:
    with CaseLog.open(db) as log:
        patient = log.list(limit=1)[0].patient_id
        page = {
            "page_newest": CaseFilter(),
            "page_open": CaseFilter(status=("open",)),
            "page_patient": CaseFilter(patient_id=patient),
            "page_search": CaseFilter(search="visit77/"),
            "page_disagreements": CaseFilter(disagreements=True),
            "page_reviewed_since": CaseFilter(reviewed_since="2000-01-01"),
        }
        t = {k: median_ms(lambda f=f: (log.list(f, limit=100), log.count(f)), repeats) for k, f in page.items()}
        t["page_by_priority"] = median_ms(lambda: (log.list(sort="priority", limit=100), log.count()), repeats)
        t["next_for_review"] = median_ms(lambda: log.next_for_review(limit=1), repeats)
        t["all_cases"] = median_ms(lambda: log.list(), max(3, repeats // 4))
        t["all_open_cases"] = median_ms(lambda: log.list(CaseFilter(status=("open",))), max(3, repeats // 4))
        t["reviewed_since_all"] = median_ms(lambda: log.reviewed_since("2000-01-01"), max(3, repeats // 4))
        counts = {"all": log.count(), "open": log.count(page["page_open"]),
                  "search": log.count(page["page_search"])}
    t["open_file"] = median_ms(lambda: CaseLog.open(db).close(), max(3, repeats // 4))
    say(f"1  {counts['all']} cases ({counts['open']} open; the search matches {counts['search']})")
    for k, v in t.items():
        say(f"   {k:<22} {v:8.2f} ms")
    return t


def variants(folder: Path, n: int, size: int, ext: str) -> list[Path]:
    """n files of one synthetic photograph, each with one pixel changed (so each has its own SHA-256)."""
    from engine.synth.sheet import render_sample

    img = render_sample(np.random.default_rng(1), image_size=min(size, 2048)).image  # the generator's largest
    img = cv2.cvtColor(cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2BGR)
    paths = []
    for i in range(n):
        img[0, 0] = (i % 256, i // 256 % 256, 7)
        paths.append(folder / f"photo{size}-{i:04d}.{ext}")
        cv2.imwrite(str(paths[-1]), img, [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else [])
    return paths


PLAN = (  # key, heat map, what is recorded (None: nothing), hash computed beforehand
    ("a", False, None, False), ("b", False, {}, False), ("c", True, None, False), ("d", True, {}, False),
    ("e", False, {"patient_id": "PBENCH", "eye": "OD"}, False), ("f", False, {}, True),
)
LABELS = {"a": "grade, no CAM", "b": "a + record", "c": "grade + CAM", "d": "c + record",
          "e": "a + record with patient (fsync)", "f": "a + record, file hashed beforehand"}


def bench_recording(grader, db: Path, folder: Path, repeats: int, size: int, ext: str, say) -> dict[str, float]:
    from engine.cases.model import sha256_file

    files = iter(variants(folder, len(PLAN) * (repeats + 3), size, ext))
    requests = {cam: grader.request(cam=cam) for cam in (False, True)}
    times: dict[str, list[float]] = {k: [] for k, *_ in PLAN}
    shares: dict[str, list[float]] = {k: [] for k, _c, rec, _h in PLAN if rec is not None}
    cpu_shares: dict[str, list[float]] = {k: [] for k in shares}
    with CaseLog.open(db) as log:
        def once(key: str, cam: bool, details: dict | None, hashed: bool) -> None:
            path = next(files)
            sha = sha256_file(path) if hashed else None  # as `cases add` does on a thread while the model runs
            c0, t0 = time.process_time(), time.perf_counter()
            r = grader.grade(path, requests[cam])
            c1, t1 = time.process_time(), time.perf_counter()
            if details is not None:
                log.record(r, **details, image_sha256=sha)
                c2, t2 = time.process_time(), time.perf_counter()
                shares[key].append((t2 - t1) / (t1 - t0))  # record time / this call's grade time
                cpu_shares[key].append((c2 - c1) / (c1 - c0))  # the same in CPU time (all threads)
            times[key].append((time.perf_counter() - t0) * 1e3)

        for i in range(repeats + 3):
            for step in PLAN:
                once(*step)
            if i < 3:  # warm-up rounds
                for v in (*times.values(), *shares.values(), *cpu_shares.values()):
                    v.clear()
    t = {k: statistics.median(v) for k, v in times.items()}
    t.update({f"share_{k}": statistics.median(v) for k, v in shares.items()})
    t.update({f"cpu_share_{k}": statistics.median(v) for k, v in cpu_shares.items()})
    kb = Path(folder / f"photo{size}-0000.{ext}").stat().st_size / 1024
    say(f"2  {size}-px {ext.upper()} files ({kb:.0f} KiB), shipped student {grader.student_card.name}, "
        f"device {grader.device}")
    for k, label in LABELS.items():
        extra = (f"   record adds {t['share_' + k]:+.1%} (CPU time {t['cpu_share_' + k]:+.1%})"
                 if f"share_{k}" in t else "")
        say(f"   {k}  {label:<36} {t[k]:8.2f} ms{extra}")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--files", default="png:1024,jpg:3000", help="kinds of graded file, EXT:SIDE,...")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own choice); 1 holds up "
                                                "better on a machine that other jobs load")
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args()
    say = (lambda *a: None) if args.json else print
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    kinds = [(ext, int(side)) for ext, side in (k.split(":") for k in args.files.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = tmp / "cases.sqlite3"
        t0 = time.perf_counter()
        with CaseLog.open(db) as log:
            fill(log, args.cases)
        say(f"filled {args.cases} cases in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)")
        listing = bench_listing(db, args.repeats, say)
        from engine.infer import Grader

        grader = Grader(device=args.device)  # the shipped student (and teacher)
        recording = {f"{ext}{side}": bench_recording(grader, db, tmp, args.repeats, side, ext, say)
                     for ext, side in kinds}
    slowest_page = max(v for k, v in listing.items() if k.startswith("page_"))
    report = {
        # what recording adds: the median over calls of (record time / that call's grade time)
        "record_overhead": {k: {"no_cam": round(r["share_b"], 4), "cam": round(r["share_d"], 4),
                                "typed_fsync": round(r["share_e"], 4), "hashed_beforehand": round(r["share_f"], 4),
                                "cpu_time_no_cam": round(r["cpu_share_b"], 4), "cpu_time_cam": round(r["cpu_share_d"], 4),
                                "side_by_side_no_cam": round(r["b"] / r["a"] - 1, 4),
                                "side_by_side_cam": round(r["d"] / r["c"] - 1, 4)} for k, r in recording.items()},
        "slowest_page_ms": round(slowest_page, 2),
        "all_cases_ms": round(listing["all_cases"], 2),
        "listing_ms": {k: round(v, 2) for k, v in listing.items()},
        "grade_ms": {k: {m: round(v, 3) for m, v in r.items()} for k, r in recording.items()},
        "cases": args.cases, "device": args.device, "machine": platform.machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(), "threads": args.threads,
    }
    for k, r in report["record_overhead"].items():
        say(f"{k}: recording adds {r['no_cam']:+.1%} to a CAM-free grade, {r['cam']:+.1%} to a grade with its heat "
            f"map, {r['hashed_beforehand']:+.1%} with the file hashed beforehand (goal <= +5 %)")
    say(f"slowest filtered page of 100 rows + count {slowest_page:.1f} ms; every case as dataclasses "
        f"{listing['all_cases']:.1f} ms (goal <= 200 ms)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
