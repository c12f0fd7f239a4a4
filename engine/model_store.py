"""The model store: run folders of trained bundles, and which bundle is active for each role.

One folder (the GUI's app-data folder; `--store DIR` or CATARACT_GRADER_HOME for the CLI) holds
`runs/<timestamp>-<job>/` (one training job each; a finished one has `bundle/`) and `active.json`:
`{"student": path|null, "teacher": path|null, "history": [...]}`, where null means the shipped
default. Only promote() and revert() change what is active; an earlier model stays on disk and
in the history, so switching back is one more promote. A damaged active.json is reported and
read as "defaults"; it is set aside, not overwritten, at the next promote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import EngineError
from engine.fsutil import atomic_write_text
from engine.resources import default_model_dir

if TYPE_CHECKING:
    from engine.bundle import ModelCard

STORE_ENV = "CATARACT_GRADER_HOME"
ORGANISATION, APPLICATION = "CataractGrader", "cataract-grader"  # the GUI's names, as in its AppDataLocation
ACTIVE_FILE = "active.json"
RUNS_DIR = "runs"
BUNDLE_DIR = "bundle"
ROLES = ("student", "teacher")


class StoreError(EngineError):
    """A store operation that cannot be done (a bundle that does not fit, nothing to revert), in one sentence."""


def default_store_root() -> Path:
    """CATARACT_GRADER_HOME, else the folder Qt's AppDataLocation gives the GUI on this platform."""
    env = os.environ.get(STORE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / ORGANISATION / APPLICATION


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sha256_16(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def check_bundle(path: str | Path, role: str | None = None) -> ModelCard:
    """The bundle's card, after checking it can be made active: readable card, right role, intact weights
    and, when its card describes them, intact out-of-distribution statistics."""
    from engine.bundle import CARD_FILE, WEIGHTS_FILE, BundleError, check_card_fits, load_bundle, read_card, read_ood
    from engine.bundle_check import CheckError, check_forward

    p = Path(path)
    if role is not None and role not in ROLES:
        raise StoreError(f"unknown role {role!r}; choose student or teacher")
    try:
        card = read_card(p)
        check_card_fits(card)
    except BundleError as e:
        raise StoreError(str(e)) from None
    if role is not None and card.role != role:
        raise StoreError(f"{p} holds a {card.role} model, so it cannot become the active {role}")
    weights = p / WEIGHTS_FILE
    if not weights.is_file():
        raise StoreError(f"{p} has no {WEIGHTS_FILE}, so it cannot become the active {card.role}")
    if card.model_id and _sha256_16(weights) != card.model_id:
        raise StoreError(f"{weights} is not the file its card describes (it was changed or damaged after training)")
    try:
        read_ood(p, card)  # checked every time: the statistics are not part of the weights' digest
    except BundleError as e:
        raise StoreError(f"{e}, so it cannot become the active {card.role}") from None
    # Loaded and tried, as grading will use it: a bundle that cannot grade never becomes active.
    key = (str(p.resolve()), card.model_id, (p / CARD_FILE).stat().st_mtime_ns)
    if card.model_id and key in _TRIED:
        return card  # the very same weights (their digest was just checked) and card passed before
    try:
        model, card = load_bundle(p, expect_role=card.role)
        check_forward(model, card)
    except BundleError as e:
        raise StoreError(str(e)) from None
    except CheckError as e:
        raise StoreError(f"{p} cannot become the active {card.role}: {e}") from None
    _TRIED.add(key)
    return card


_TRIED: set[tuple[str, str, int]] = set()  # bundles this process loaded and graded the sample photograph with


def _check_state(data: object) -> dict:
    if not isinstance(data, dict):
        raise StoreError("it does not hold a JSON object")
    for role in ROLES:
        if not isinstance(data.get(role), (str, type(None))):
            raise StoreError(f"its {role!r} entry is neither a path nor null")
    history = data.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise StoreError("its history is not a list of entries")
    return {"student": data.get("student"), "teacher": data.get("teacher"), "history": history}


class ModelStore:
    """Run folders and the active student/teacher over one folder; nothing is created until written."""

    def __init__(self, root: str | Path, defaults: Mapping[str, str | Path] | None = None) -> None:
        self.root = Path(root).expanduser()
        given = dict(defaults or {})
        self.defaults = {r: Path(given[r]) if r in given else default_model_dir(r) for r in ROLES}

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def active_file(self) -> Path:
        return self.root / ACTIVE_FILE

    # ---- reading ----------------------------------------------------------------------------
    def _read_state(self) -> tuple[dict, str | None]:
        """The state and, when active.json is damaged, a sentence saying so (the state is then the defaults)."""
        empty = {"student": None, "teacher": None, "history": []}
        try:
            text = self.active_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return empty, None
        except OSError as e:
            return empty, f"{self.active_file} cannot be read ({e.strerror or e}); the shipped default models are used"
        try:
            return _check_state(json.loads(text)), None
        except (json.JSONDecodeError, StoreError) as e:
            reason = f"not valid JSON: {e.msg}" if isinstance(e, json.JSONDecodeError) else str(e)
            return empty, f"{self.active_file} is damaged ({reason}); the shipped default models are used"

    def _decode(self, text: str | None) -> Path | None:
        if text is None:
            return None
        p = Path(text)
        return p if p.is_absolute() else self.root / p

    def _encode(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def _entry_problem(self, role: str, path: Path) -> str | None:
        try:
            from engine.bundle import read_card

            if read_card(path).role == role:
                return None
            return f"the promoted {role} {path} is not a {role} model; the shipped default is used"
        except ValueError as e:
            return f"the promoted {role} cannot be used ({e}); the shipped default is used"

    def problems(self) -> list[str]:
        """Sentences about anything wrong with the active models (a damaged active.json, a missing bundle)."""
        state, damage = self._read_state()
        out = [damage] if damage else []
        for role in ROLES:
            path = self._decode(state[role])
            problem = self._entry_problem(role, path) if path is not None else None
            if problem:
                out.append(problem)
        return out

    def promoted(self, role: str) -> Path | None:
        """The bundle promoted for `role`, or None when the shipped default is active (or the entry is unusable)."""
        self._check_role(role)
        path = self._decode(self._read_state()[0][role])
        if path is None or self._entry_problem(role, path):
            return None
        return path

    def active(self, role: str) -> Path:
        """The active bundle for `role`: the promoted one, else the shipped default (which may not be installed)."""
        return self.promoted(role) or self.defaults[role]

    def history(self) -> list[dict]:
        """Every promote and revert, oldest first."""
        return list(self._read_state()[0]["history"])

    def list_bundles(self, problems: list[str] | None = None) -> list[tuple[Path, ModelCard]]:
        """Readable bundles of finished runs (newest first), then the shipped defaults that are installed.

        A damaged or hostile bundle is left out, never breaking the list; `problems` gets a sentence for each.
        """
        from engine.bundle import read_card

        candidates = sorted(self.runs_dir.glob(f"*/{BUNDLE_DIR}"), reverse=True) if self.runs_dir.is_dir() else []
        candidates += [d for d in (self.defaults[r] for r in ROLES) if d.exists()]
        out: list[tuple[Path, ModelCard]] = []
        for path in candidates:
            try:
                out.append((path, read_card(path)))
            except Exception as e:  # noqa: BLE001  (whatever one entry does, the others are still listed)
                if problems is not None:
                    reason = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
                    problems.append(f"{path} is left out: {reason}")
        return out

    def is_default(self, path: str | Path) -> bool:
        p = Path(path).resolve()
        return any(p == d.resolve() for d in self.defaults.values())

    # ---- writing ----------------------------------------------------------------------------
    def new_run_dir(self, job: str) -> Path:
        """A fresh, empty runs/<timestamp>-<job>/ folder."""
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", job).strip("-") or "run"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            path = self.runs_dir / (f"{stamp}-{slug}" if n == 1 else f"{stamp}-{slug}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise StoreError(f"no free run folder name under {self.runs_dir}")

    def promote(self, bundle: str | Path, role: str | None = None, partner: str | Path | None = None) -> ModelCard:
        """Make `bundle` the active model of its role (and `partner`, of the other role, with it); returns its card.

        Refused, with a sentence, when the bundle is damaged, of another role, or trained on another
        sub-label schema than the model it will be used with. A bundle from outside the store is
        copied into it first, so that moving or deleting the original cannot break the app.
        """
        path = Path(bundle)
        card = check_bundle(path, role)
        role = card.role
        other = "teacher" if role == "student" else "student"
        pair = {role: (path, card)}
        if partner is not None:
            pcard = check_bundle(partner, other)
            pair[other] = (Path(partner), pcard)
        self._check_schemas(pair)
        state, damage = self._read_state()
        for r, (p, c) in pair.items():
            target = None if self.is_default(p) else self._adopt(p, r)
            previous = state[r]
            state[r] = None if target is None else self._encode(target)
            if state[r] != previous:
                state["history"].append({
                    "time": _now(), "action": "promote", "role": r, "bundle": state[r], "previous": previous,
                    "name": c.name, "model_id": c.model_id,
                })
        self._write_state(state, damage)
        return card

    def revert(self, role: str) -> Path:
        """Switch `role` back to the model that was active before the last change; returns the now active bundle."""
        self._check_role(role)
        state, damage = self._read_state()
        changes = [h for h in state["history"] if h.get("role") == role]
        if not changes:
            raise StoreError(f"there is no earlier {role} to switch back to; the {role} has never been changed")
        target = changes[-1].get("previous")
        path = self._decode(target)
        if path is not None:
            card = check_bundle(path, role)
            self._check_schemas({role: (path, card)})
        current = state[role]
        state[role] = target
        state["history"].append({"time": _now(), "action": "revert", "role": role, "bundle": target, "previous": current})
        self._write_state(state, damage)
        return self.active(role)

    # ---- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}; choose student or teacher")

    def _check_schemas(self, pair: dict[str, tuple[Path, ModelCard]]) -> None:
        """The student and teacher that will be active together must share one sub-label schema."""
        from engine.bundle import read_card, schema_differences

        cards = {r: c for r, (_p, c) in pair.items()}
        for r in ROLES:
            if r not in cards:
                path = self.active(r)
                try:
                    cards[r] = read_card(path)
                except ValueError:
                    return  # no model of the other role is installed: nothing to agree with
        s, t = cards["student"].schema_obj(), cards["teacher"].schema_obj()
        if s.fingerprint() != t.fingerprint():
            new = next(iter(pair))
            other = "teacher" if new == "student" else "student"
            diffs = "; ".join(schema_differences(cards[new].schema_obj(), cards[other].schema_obj()))
            raise StoreError(
                f"the {new} {cards[new].name} was trained on another sub-label schema than the active {other} "
                f"({diffs}); promote it together with a {other} trained on the same schema"
            )

    def _adopt(self, path: Path, role: str) -> Path:
        """`path` itself when it lies in the store, else a copy in a new run folder."""
        try:
            path.resolve().relative_to(self.root.resolve())
            return path
        except ValueError:
            pass
        run = self.new_run_dir(f"import-{role}")
        tmp = run / f".{BUNDLE_DIR}.tmp"
        try:
            shutil.copytree(path, tmp)
            os.replace(tmp, run / BUNDLE_DIR)
        except (OSError, shutil.Error) as e:
            shutil.rmtree(run, ignore_errors=True)
            detail = _copy_failure(e)
            raise StoreError(f"{path} could not be copied into the store ({detail}); nothing was changed") from None
        return run / BUNDLE_DIR

    def _write_state(self, state: dict, damage: str | None) -> None:
        if damage and self.active_file.exists():
            # Keep the damaged file for whoever wants to see what went wrong.
            os.replace(self.active_file, self.active_file.with_name(f"{ACTIVE_FILE}.damaged-{int(time.time())}"))
        atomic_write_text(self.active_file, json.dumps(state, indent=2) + "\n")


def _copy_failure(e: OSError) -> str:
    """Why a copy failed, in a few words: shutil.Error carries a list of (source, target, reason) per file."""
    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list) and e.args[0]:
        reasons = [str(item[2]) if isinstance(item, tuple) and len(item) == 3 else str(item) for item in e.args[0]]
        first = re.sub(r"^\[Errno \d+\] ", "", reasons[0])
        return first[:200] + (f", and {len(reasons) - 1} more file(s)" if len(reasons) > 1 else "")
    return e.strerror or str(e)[:200] or type(e).__name__
