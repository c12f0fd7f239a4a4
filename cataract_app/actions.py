"""The window's named actions and its menus: what each does is a slot the window binds by name.

ACTIONS lists every action once (text, shortcuts, status tip); MENUS lays them out.
`bind_actions` makes the QActions from a name -> slot mapping, so this module never reaches
into a window's attributes, and the window never builds an action by hand. Every action
has a command-line twin (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QWidget

from engine.schema import GRADES

_K = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    """One named action: its menu text, its shortcuts and what the status bar says of it."""

    name: str
    text: str
    keys: tuple = ()
    tip: str = ""
    checkable: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open", "&Open image\u2026", (_K.Open,), "Open a photograph"),
    ActionSpec("grade_folder", "&Grade a folder\u2026", ("Ctrl+Shift+O",),
               "Grade every image in a folder into the case log (cataract-grade cases add --dir)"),
    ActionSpec("next", "&Next image", ("Right", "PgDown")),
    ActionSpec("previous", "&Previous image", ("Left", "PgUp")),
    ActionSpec("quit", "&Quit", (_K.Quit, "Ctrl+Q")),
    ActionSpec("zoom_in", "Zoom &in", ("Ctrl+=", "Ctrl++", _K.ZoomIn)),
    ActionSpec("zoom_out", "Zoom &out", ("Ctrl+-", _K.ZoomOut)),
    ActionSpec("fit", "&Fit to window", ("Ctrl+0",)),
    ActionSpec("actual", "&Actual size", ("Ctrl+1",)),
    ActionSpec("heatmap", "&Heat map", ("H",), checkable=True),
    ActionSpec("show_grading", "&Grading view", ("Ctrl+G",), "The image, its grade and heat map"),
    ActionSpec("show_cases", "&Cases panel", ("Ctrl+L",), "Every graded image kept in the case log"),
    # Enter and the digits act only on the image and the grade (cataract_app.cases.review_box), so a
    # tab after the text shows them without making them window-wide shortcuts.
    ActionSpec("agree", "&Agree with the grade\tEnter", (), "The latest answer's grade becomes the final grade"),
    *(ActionSpec(f"correct_{g}", f"Correct to &{g}\t{g}", (), f"The clinician's grade for this case is {g}")
      for g in GRADES),
    ActionSpec("reopen", "&Reopen the case", (), "Take the review back; the case is open again"),
    ActionSpec("review_next", "&Next case to review", ("Ctrl+N",), "The open case a review would teach the model most"),
    ActionSpec("report", "&Report (PDF)\u2026", ("Ctrl+P",),
               "A PDF of the case on screen, or of the cases selected in the Cases tab (cataract-grade report)"),
    ActionSpec("retrain", "&Retrain\u2026", ("Ctrl+T",), "Train a new teacher or student on a labelled folder"),
    ActionSpec("models", "&Models\u2026", (), "See every trained model and choose the active ones"),
    ActionSpec("about", "&About Cataract Grader"),
)
# Menu title -> action names; None is a separator, "recent" the Open recent submenu, (title, names) a submenu.
MENUS: tuple[tuple[str, tuple], ...] = (
    ("&File", ("open", "recent", "grade_folder", None, "previous", "next", None, "quit")),
    ("&View", ("zoom_in", "zoom_out", "fit", "actual", None, "heatmap", None, "show_grading", "show_cases")),
    ("&Cases", ("agree", ("Co&rrect to", tuple(f"correct_{g}" for g in GRADES)), "reopen", None, "review_next", None,
                "report")),
    ("&Training", ("retrain", "models")),
    ("&Help", ("about",)),
)


def bind_actions(window: QWidget, slots: Mapping[str, Callable[[], object]]) -> dict[str, QAction]:
    """One QAction per spec, triggering `slots[name]`; shortcuts work even when the menu bar is hidden."""
    missing = sorted({s.name for s in ACTIONS} - set(slots))
    if missing:
        raise KeyError(f"no slot for the actions {', '.join(missing)}")
    actions = {}
    for spec in ACTIONS:
        action = QAction(spec.text, window)
        if spec.keys:
            action.setShortcuts([QKeySequence(k) for k in spec.keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if spec.tip:
            action.setStatusTip(spec.tip)
        action.setCheckable(spec.checkable)
        action.triggered.connect(lambda _checked=False, slot=slots[spec.name]: slot())
        window.addAction(action)
        actions[spec.name] = action
    return actions


def build_menus(bar: QMenuBar, actions: Mapping[str, QAction], recent: QMenu) -> None:
    """The menu bar laid out as MENUS says."""
    for title, names in MENUS:
        _fill(bar.addMenu(title), names, actions, recent)


def _fill(menu: QMenu, names: tuple, actions: Mapping[str, QAction], recent: QMenu) -> None:
    for name in names:
        if name is None:
            menu.addSeparator()
        elif name == "recent":
            menu.addMenu(recent)
        elif isinstance(name, tuple):
            _fill(menu.addMenu(name[0]), name[1], actions, recent)
        else:
            menu.addAction(actions[name])
