"""List the trained model bundles, show the active ones, promote a bundle or switch back.

The store is the folder the app keeps its runs and active.json in: --store DIR, else
CATARACT_GRADER_HOME, else the platform's app-data folder. Exit status 0 on success,
2 when a bundle is refused or there is nothing to switch back to.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="every bundle in the store and the shipped defaults")
    active = sub.add_parser("active", help="the active student and teacher")
    promote = sub.add_parser("promote", help="make a bundle the active model of its role")
    promote.add_argument("bundle", help="model bundle folder")
    promote.add_argument("--role", choices=["student", "teacher"], help="refuse the bundle unless it has this role")
    promote.add_argument("--with", dest="partner", metavar="BUNDLE",
                         help="a bundle of the other role to promote at the same time (for a new sub-label schema)")
    revert = sub.add_parser("revert", help="switch a role back to the model active before the last change")
    revert.add_argument("role", choices=["student", "teacher"])
    for q in (listing, active, promote, revert):
        q.add_argument("--store", metavar="DIR", help="store folder (default: CATARACT_GRADER_HOME or the app's folder)")
    for q in (listing, active):
        q.add_argument("--json", action="store_true", help="print one JSON object")
    listing.add_argument("--runs", metavar="DIR", action="append",
                         help="also list the bundles trained into this folder (DIR/*/bundle, as `train --out "
                              "DIR/NAME` writes them); repeatable; default: ./runs when it exists")


def _card_row(path, card, active: bool) -> dict:
    val = card.metrics.get("val", {}) if isinstance(card.metrics, dict) else {}
    return {
        "path": str(path), "active": active, "role": card.role, "name": card.name, "model_id": card.model_id,
        "arch": card.arch_config.get("backbone", card.arch), "created": card.created,
        "val_acc": val.get("acc"), "val_qwk": val.get("qwk"), "notice": card.notice,
    }


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def run(args: argparse.Namespace) -> int:
    from engine.commands import CommandError
    from engine.model_store import ModelStore, StoreError, default_store_root

    store = ModelStore(args.store or default_store_root())
    for problem in store.problems():
        print(f"warning: {problem}", file=sys.stderr)
    try:
        if args.action == "promote":
            card = store.promote(args.bundle, role=args.role, partner=args.partner)
            print(f"active {card.role}: {card.name} ({card.model_id}) -> {store.active(card.role)}")
            return 0
        if args.action == "revert":
            path = store.revert(args.role)
            where = "the shipped default" if store.is_default(path) else str(path)
            print(f"active {args.role}: {where}")
            return 0
    except StoreError as e:
        raise CommandError(str(e)) from None
    return _show(store, args)


def _show(store, args: argparse.Namespace) -> int:
    from engine.bundle import read_card

    active = {r: store.active(r) for r in ("student", "teacher")}
    if args.action == "active":
        rows = {}
        for role, path in active.items():
            try:
                rows[role] = _card_row(path, read_card(path), True)
            except ValueError:
                rows[role] = None
        if args.json:
            print(json.dumps({**rows, "store": str(store.root)}))
            return 0
        for role, row in rows.items():
            text = f"{row['name']} ({row['model_id']})  {row['path']}" if row else "none installed"
            print(f"{role:8s} {text}")
        return 0
    resolved = {p.resolve() for p in active.values()}
    skipped: list[str] = []
    listed = store.list_bundles(skipped)
    rows = [_card_row(p, c, p.resolve() in resolved) for p, c in listed]
    in_store = {p.resolve() for p, _c in listed}
    trained = [_card_row(p, c, p.resolve() in resolved) for p, c in _trained_here(args, skipped)
               if p.resolve() not in in_store]
    for problem in skipped:
        print(f"warning: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps({"store": str(store.root), "bundles": rows, "trained": trained}))
        return 0
    _table(rows)
    if not rows:
        print(f"no bundles in {store.root} and no shipped defaults installed")
    if trained:
        print(f"\ntrained, not in the store ({', '.join(str(d) for d in _runs_dirs(args))}):")
        _table(trained)
    print("\n* = active.  Make a bundle active: cataract-grade models promote PATH/TO/bundle   "
          "(switch back: cataract-grade models revert ROLE)")
    return 0


def _table(rows: list[dict]) -> None:
    """One line per bundle; the name column is as wide as the longest name (names are never cut)."""
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        mark = "*" if r["active"] else " "
        print(f"{mark} {r['role']:8s} {r['name']:{width}s} {r['model_id']:16s} {r['arch']:16s} "
              f"acc {_fmt(r['val_acc'])}  qwk {_fmt(r['val_qwk'])}  {r['created']}  {r['path']}")


def _runs_dirs(args: argparse.Namespace) -> list:
    from pathlib import Path

    if args.runs:
        return [Path(d) for d in args.runs]
    return [Path("runs")] if Path("runs").is_dir() else []


def _trained_here(args: argparse.Namespace, problems: list[str]) -> list:
    """(path, card) of every bundle in the --runs folders that lies outside the store; unreadable ones skipped."""
    from engine.bundle import read_card

    found = []
    for folder in _runs_dirs(args):
        if not folder.is_dir():
            problems.append(f"{folder} is not a folder (--runs)")
            continue
        for path in sorted({*folder.glob("*/bundle"), *folder.glob("bundle")}):
            if not (path / "card.json").is_file():
                continue
            try:
                found.append((path, read_card(path)))
            except Exception as e:  # noqa: BLE001  (one bad bundle never breaks the list)
                problems.append(f"{path} is left out: {e}")
    return found
