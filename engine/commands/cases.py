"""The case log: record graded images as cases, review them, and export the reviewed ones.

Every action takes --db PATH (default: the app's case log, CATARACT_GRADER_CASES_DB or
cases.sqlite3 in the model store folder) and --user NAME (default: the login name) for the
audit trail. Exit status 0 on success, 2 when a request is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="grade images and record them as cases")
    add.add_argument("images", nargs="*", help="image files")
    add.add_argument("--dir", help="every image in this folder (recursively)")
    add.add_argument("--patient", help="patient ID")
    add.add_argument("--eye", help="OD (right) or OS (left)")
    add.add_argument("--date", help="visit date, YYYY-MM-DD")
    add.add_argument("--sublabels", help="name=value,... entered by the clinician: the fusion teacher answers too")
    add.add_argument("--model", help="student bundle (default: the active one)")
    add.add_argument("--teacher", help="fusion teacher bundle (default: the active one, if any)")
    add.add_argument("--device", default="auto")
    listing = sub.add_parser("list", help="the cases, newest first (filter, search, sort, page)")
    listing.add_argument("--status", action="append", default=[],
                         help="open, agreed, corrected, reviewed or unreviewed (repeat for several)")
    listing.add_argument("--patient", help="only this patient ID")
    listing.add_argument("--eye", help="only OD or OS")
    listing.add_argument("--search", help="text in the image path, patient ID or note")
    listing.add_argument("--disagreements", action="store_true", help="corrected cases and cases where models differ")
    listing.add_argument("--since", help="reviewed at or after this ISO date/time")
    listing.add_argument("--sort", default="id", help="id, created_at, patient_id, model_grade, priority, ...")
    listing.add_argument("--ascending", action="store_true")
    listing.add_argument("--limit", type=int, help="at most this many rows")
    listing.add_argument("--offset", type=int, default=0)
    show = sub.add_parser("show", help="one case with its answers, review and audit trail")
    show.add_argument("id", type=int)
    agree = sub.add_parser("agree", help="the clinician agrees with the latest answer")
    agree.add_argument("id", type=int)
    correct = sub.add_parser("correct", help="the clinician's own grade for a case")
    correct.add_argument("id", type=int)
    correct.add_argument("grade", type=int, help="0-7")
    for q in (agree, correct):
        q.add_argument("--note", help="a note kept with the review")
    reopen = sub.add_parser("reopen", help="take back a review; the case is open again")
    reopen.add_argument("id", type=int)
    edit = sub.add_parser("edit", help="change a case's patient ID, eye or visit date ('' clears one)")
    edit.add_argument("id", type=int)
    edit.add_argument("--patient")
    edit.add_argument("--eye")
    edit.add_argument("--date")
    nxt = sub.add_parser("next", help="open cases in review order (most informative first)")
    nxt.add_argument("--limit", type=int, default=1)
    export = sub.add_parser("export", help="write the reviewed cases as a dataset folder")
    export.add_argument("out", metavar="OUT", help="a new (or empty) folder")
    export.add_argument("--since", help="only cases reviewed at or after this ISO date/time; 'active': since the "
                                        "active student was trained")
    export.add_argument("--link", default="copy", choices=["copy", "hardlink", "symlink"], help="how images are placed")
    export.add_argument("--patient", help="only this patient's cases")
    for q in (add, listing, show, agree, correct, reopen, edit, nxt, export):
        q.add_argument("--db", metavar="PATH", help="case database (default: the app's)")
        q.add_argument("--user", help="who does this, for the audit trail (default: the login name)")
    for q in (add, listing, show, agree, correct, reopen, edit, nxt):
        q.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    from engine.cases import CaseLog, CaseLogError
    from engine.commands import CommandError

    try:
        with CaseLog.open(args.db, user=args.user) as log:
            for notice in log.notices:
                print(f"note: {notice}", file=sys.stderr)
            return ACTIONS[args.action](log, args)
    except CaseLogError as e:
        raise CommandError(str(e)) from None


# ---- recording -------------------------------------------------------------------------------------


def grade_paths(grader, paths: list[str], sublabels: dict | None = None):
    """The one call of the grader: (path, GradeResult | None, error) per image, CAM-free for speed."""
    return grader.grade_files(paths, grader.request(sublabels=sublabels, cam=False))


def _grader(args: argparse.Namespace):
    from engine.commands import CommandError
    from engine.infer import Grader
    from engine.model_store import ModelStore, default_store_root

    store = ModelStore(default_store_root())
    student = args.model or str(store.active("student"))
    teacher = args.teacher or (str(store.active("teacher")) if (store.active("teacher") / "card.json").is_file()
                               else None)
    try:
        return Grader(student, teacher, device=args.device)
    except (ValueError, OSError) as e:
        raise CommandError(str(e)) from None


def _add(log, args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from engine.cases import CaseLogError
    from engine.cases.log import hash_image
    from engine.cases.model import check_eye, check_patient_id, check_visit_date
    from engine.commands import CommandError
    from engine.commands.predict import _inputs
    from engine.schema import parse_sublabels

    paths = _inputs(args)
    try:  # refused before any model is loaded
        check_patient_id(args.patient), check_eye(args.eye), check_visit_date(args.date)
        entered = None if args.sublabels is None else parse_sublabels(args.sublabels)
    except ValueError as e:
        raise CommandError(str(e)) from None
    grader = _grader(args)
    try:
        sublabels = grader.schema.validate(entered) if entered is not None else None
    except ValueError as e:
        raise CommandError(str(e)) from None
    teacher = {}
    if sublabels is not None:
        if not grader.has_teacher:
            raise CommandError("--sublabels needs a fusion teacher model, and none is installed (pass --teacher)")
        teacher = {p: r for p, r, _e in grade_paths(grader, paths, sublabels)}
    done = 0
    details = {"patient_id": args.patient, "eye": args.eye, "visit_date": args.date}
    with ThreadPoolExecutor(max_workers=1) as pool:  # the files are hashed while the model runs
        hashes = {p: pool.submit(hash_image, p) for p in paths}
        for path, result, error in grade_paths(grader, paths):
            try:
                if result is None:
                    raise CaseLogError(error or "it could not be graded")
                sha = hashes[path].result()
                case = log.record(result, **details, sublabels=sublabels, image_sha256=sha)
                if teacher.get(path) is not None:
                    case = log.record(teacher[path], **details, image_sha256=sha)
            except CaseLogError as e:
                print(f"{path}: error: {e}", file=sys.stderr)
                continue
            done += 1
            _print_summary(case, args.json)
    print(f"{done} of {len(paths)} images recorded in {log.path}", file=sys.stderr)
    if done == 0:
        raise CommandError("no image was recorded")
    return 0


# ---- reading ---------------------------------------------------------------------------------------


def summary_json(case) -> dict:
    """The JSON line of a case in `list`, `next` and `add`."""
    return {
        "id": case.id, "image": case.image_path, "patient_id": case.patient_id, "eye": case.eye,
        "visit_date": case.visit_date, "grade": case.model_grade, "confidence": _round(case.model_confidence),
        "model": case.model_name, "final_grade": case.final_grade, "status": case.status,
        "priority": _round(case.priority), "created_at": case.created_at, "reviewed_at": case.reviewed_at,
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _print_summary(case, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary_json(case)))
        return
    final = "-" if case.final_grade is None else str(case.final_grade)
    conf = "" if case.model_confidence is None else f" ({case.model_confidence:.2f})"
    who = " ".join(x for x in (case.patient_id, case.eye, case.visit_date) if x) or "-"
    print(f"{case.id:>6}  {case.status:<9} grade {case.model_grade}{conf}  final {final}  priority "
          f"{case.priority:.2f}  {who}  {case.image_path}")


def _list(log, args: argparse.Namespace) -> int:
    from engine.cases import CaseFilter

    flt = CaseFilter(status=tuple(args.status), patient_id=args.patient, eye=args.eye, search=args.search,
                     disagreements=args.disagreements, reviewed_since=args.since)
    rows = log.list(flt, sort=args.sort, descending=not args.ascending, limit=args.limit, offset=args.offset)
    for case in rows:
        _print_summary(case, args.json)
    if not args.json:
        print(f"{len(rows)} of {log.count(flt)} matching cases ({log.count()} in {log.path})", file=sys.stderr)
    return 0


def _show(log, args: argparse.Namespace) -> int:
    case = log.get(args.id)
    check = log.check_image(case)
    if args.json:
        print(json.dumps({**asdict(case), "file_check": {"state": check.state, "message": check.message}}))
        return 0
    for line in describe(case, check):
        print(line)
    return 0


def describe(case, check) -> list[str]:
    """The text of `cases show`: the case, whether its file is intact, its answers, review and history."""
    lines = [f"case {case.id}: {case.status}" + (f", final grade {case.final_grade}" if case.reviewed else ""),
             f"image     {case.image_path}", f"sha256    {case.image_sha256}"]
    if not check.ok:
        lines.append(f"WARNING   {check.message}")
    lines += [f"patient   {case.patient_id or '-'}   eye {case.eye or '-'}   visit {case.visit_date or '-'}",
              f"review    priority {case.priority:.3f} = uncertainty {case.uncertainty:.3f} + disagreement "
              f"{case.disagreement:.3f} + ood {case.ood:.3f}"]
    if case.sublabels:
        lines.append("sub-labels entered  " + ", ".join(f"{k}={v}" for k, v in case.sublabels.items() if v is not None))
    if case.gate is not None:
        lines.append(f"input gate  {json.dumps(case.gate, sort_keys=True)}")
    if case.reviewed:
        lines.append(f"reviewed  by {case.reviewed_by} at {case.reviewed_at} (answer {case.reviewed_answer_id})")
    if case.note:
        lines.append(f"note      {case.note}")
    lines.append("answers")
    for a in case.answers:
        probs = " ".join(f"{p:.2f}" for p in a.probabilities)
        changed = "" if a.image_sha256 == case.image_sha256 else "  (another version of the file)"
        lines.append(f"  #{a.id} {a.created_at}  {a.role} {a.model_name} ({a.model_id[:8]}): grade {a.grade} "
                     f"({a.confidence:.2f}), p = {probs}{changed}")
        if a.sublabels_used:
            lines.append("      with sub-labels " + ", ".join(f"{k}={v}" for k, v in a.sublabels_used.items()))
    lines.append("history")
    lines += [f"  {e.at}  {e.user}  {e.action}  {json.dumps(e.detail, sort_keys=True)}" for e in case.audit]
    return lines


# ---- reviewing -------------------------------------------------------------------------------------


def _agree(log, args: argparse.Namespace) -> int:
    _print_summary(log.agree(args.id, note=args.note), args.json)
    return 0


def _correct(log, args: argparse.Namespace) -> int:
    _print_summary(log.correct(args.id, args.grade, note=args.note), args.json)
    return 0


def _reopen(log, args: argparse.Namespace) -> int:
    _print_summary(log.reopen(args.id), args.json)
    return 0


def _edit(log, args: argparse.Namespace) -> int:
    from engine.commands import CommandError

    given = {k: v for k, v in (("patient_id", args.patient), ("eye", args.eye), ("visit_date", args.date))
             if v is not None}
    if not given:
        raise CommandError("nothing to change: pass --patient, --eye or --date")
    _print_summary(log.set_details(args.id, **{k: v or None for k, v in given.items()}), args.json)
    return 0


def _next(log, args: argparse.Namespace) -> int:
    rows = log.next_for_review(limit=max(1, args.limit))
    for case in rows:
        _print_summary(case, args.json)
    if not rows and not args.json:
        print("no open cases: every case has been reviewed", file=sys.stderr)
    return 0


def _export(log, args: argparse.Namespace) -> int:
    since = args.since
    if since is not None and since.strip().lower() == "active":
        from engine.cases.export import active_model_trained_at

        since = active_model_trained_at()
    result = log.export(args.out, since=since, link=args.link, patient_id=args.patient)
    for case_id, why in result.skipped:
        print(f"case {case_id} left out: {why}", file=sys.stderr)
    print(f"{result.rows} reviewed cases written to {result.folder} (images: {result.link})")
    return 0


ACTIONS = {"add": _add, "list": _list, "show": _show, "agree": _agree, "correct": _correct, "reopen": _reopen,
           "edit": _edit, "next": _next, "export": _export}
