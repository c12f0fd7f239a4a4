"""The window's side of retraining: the model store, the Training menu's dialogs, promote and reload.

The controller owns which bundles the window grades with (`load_options`): the store's
active models at start unless --model/--teacher name others. After every promote or
switch back it changes them and emits `models_changed`; the window reloads its one Grader.
It asks before the app quits while a training job runs. It never calls into the window.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QStandardPaths, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from cataract_app.grading.loading import LoadOptions
from cataract_app.retrain.job import GRACE_MS
from engine.model_store import ROLES, STORE_ENV, ModelStore, default_store_root
from engine.resources import has_card

STOP_WAIT_MS = 2000


def open_app_store() -> ModelStore:
    """CATARACT_GRADER_HOME, else the app's data folder (QStandardPaths.AppDataLocation)."""
    if os.environ.get(STORE_ENV, "").strip():
        return ModelStore(default_store_root())
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return ModelStore(location or default_store_root())


def question(parent, title: str, text: str) -> bool:
    """A Yes/No question; No is the default, so a stray Enter changes nothing."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent, title, text, buttons, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class TrainingController(QObject):
    """Owns the store, the bundles graded with, and the retrain and models dialogs of one window."""

    models_changed = Signal(object, str)  # LoadOptions to grade with from now on, a message for the user

    def __init__(self, parent: QWidget, settings: QSettings, store: ModelStore | None = None) -> None:
        super().__init__(parent)
        self._parent, self.settings = parent, settings
        self._store = store
        self.load_options = LoadOptions()
        self.retrain_dialog = None
        self.models_dialog = None
        self.startup_problems: list[str] = []
        self.cases_db: Path | None = None  # the window's case log, for training on reviewed cases
        self.ask = lambda title, text: question(self._parent, title, text)

    @property
    def store(self) -> ModelStore:
        if self._store is None:
            self._store = open_app_store()
        return self._store

    # ---- which models ---------------------------------------------------------------------------
    def resolve(self, options: LoadOptions) -> LoadOptions:
        """Grade with `options`, the roles not named on the command line filled with the store's active bundles."""
        missing = [r for r in ROLES if getattr(options, r) is None]
        if missing:
            self.startup_problems = self.store.problems()
            options = replace(options, **{r: self._active_option(r) for r in missing})
        self.load_options = options
        return options

    def _active_option(self, role: str) -> str | None:
        path = self.store.active(role)
        return str(path) if has_card(path) else None  # None: no such model installed

    def current_bundle(self, role: str) -> Path | None:
        """The bundle the window grades with for `role` (None when no such model is installed)."""
        chosen = getattr(self.load_options, role)
        path = Path(chosen) if chosen else self.store.defaults[role]
        return path if has_card(path) else None

    def teacher_choices(self) -> list[tuple[str, Path]]:
        """Teachers a student can be distilled from: the active one first, then the store's others."""
        from engine.bundle import read_card

        out: list[tuple[str, Path]] = []
        active = self.current_bundle("teacher")
        if active is not None:
            try:
                card = read_card(active)
                out.append((f"Active: {card.name} ({card.model_id[:8]})", active))
            except ValueError:
                pass
        seen = {active.resolve()} if active is not None else set()
        for path, card in self.store.list_bundles():
            if card.role == "teacher" and path.resolve() not in seen:
                seen.add(path.resolve())
                out.append((f"{card.name} ({card.model_id[:8]}), {card.created[:16].replace('T', ' ')}", path))
        return out

    # ---- changing the active model ----------------------------------------------------------------
    def promote(self, bundle: Path, partner: Path | None = None):
        """Make `bundle` (and `partner`) active in the store and reload the Grader; returns the card."""
        card = self.store.promote(bundle, partner=partner)
        roles = [card.role] + (["teacher" if card.role == "student" else "student"] if partner else [])
        self._reload(roles, f"Promoted {card.name} ({card.model_id}); it is now the active {card.role}.")
        return card

    def revert(self, role: str) -> Path:
        """Switch `role` back to the model active before its last change, and reload."""
        from engine.bundle import read_card

        path = self.store.revert(role)
        try:
            name = read_card(path).name
        except ValueError:
            name = "the shipped default"
        self._reload([role], f"Switched the {role} back to {name}.")
        return path

    def _reload(self, roles: list[str], message: str) -> None:
        changes = {role: self._active_option(role) for role in roles}
        self.load_options = replace(self.load_options, **changes)
        self.models_changed.emit(self.load_options, message)
        if self.models_dialog is not None:
            self.models_dialog.refresh()
        if self.retrain_dialog is not None:
            self.retrain_dialog.refresh_teachers()
            self.retrain_dialog.cases_source.refresh()  # "since the active model was trained" moved

    # ---- dialogs and closing ----------------------------------------------------------------------
    def open_retrain(self):
        if self.retrain_dialog is None:
            from cataract_app.retrain.panel import RetrainDialog
            from cataract_app.wheel_guard import guard_inputs

            self.retrain_dialog = RetrainDialog(self, self._parent)
            guard_inputs(self.retrain_dialog)  # no wheel changes a setting the user has not focused
            self.retrain_dialog.cases_source.set_base(self.last_dataset_folder())
        self.retrain_dialog.refresh_teachers()
        self.retrain_dialog.cases_source.refresh()
        self.retrain_dialog.show()
        self.retrain_dialog.raise_()
        self.retrain_dialog.activateWindow()
        return self.retrain_dialog

    def open_models(self):
        if self.models_dialog is None:
            from cataract_app.retrain.models_dialog import ModelsDialog

            self.models_dialog = ModelsDialog(self, self._parent)
        self.models_dialog.refresh()
        self.models_dialog.show()
        self.models_dialog.raise_()
        return self.models_dialog

    @property
    def busy(self) -> bool:
        return self.retrain_dialog is not None and self.retrain_dialog.running

    def confirm_close(self) -> bool:
        """True when the app may close: no job runs, or the user agreed to stop it (it is then stopped)."""
        if not self.busy:
            return True
        if not self.ask("Stop training?", "A training job is still running. Stop it and quit? "
                        "The unfinished run is not used; the active models stay as they are."):
            return False
        run = self.retrain_dialog.run
        run.stop()
        job = run.process
        # No event loop turns while closing, so the grace timer cannot fire: wait, then kill here.
        if job is not None and job.proc is not None and not job.proc.waitForFinished(GRACE_MS):
            job.kill_now()
            job.proc.waitForFinished(STOP_WAIT_MS - GRACE_MS)
        return True

    def last_dataset_folder(self) -> str | None:
        value = self.settings.value("retrain/dataset")
        return str(value) if value else None

    def remember_dataset_folder(self, path: str) -> None:
        self.settings.setValue("retrain/dataset", path)
