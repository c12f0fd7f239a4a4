"""Create the QApplication and the window, then hand control to Qt's event loop."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from cataract_app import APPLICATION, DISPLAY_NAME, ORGANISATION
from cataract_app.grading.loading import LoadOptions
from cataract_app.resources import app_icon_path
from cataract_app.theme import STYLESHEET

SCREENSHOT_SIZE = (1440, 900)


def make_application() -> QApplication:
    """The one QApplication, with the app's names, style and icon."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(DISPLAY_NAME)
    app.setDesktopFileName(APPLICATION)  # Wayland app id; on X11 the WM_CLASS class is the application name
    app.setStyle("Fusion")
    app.setPalette(app.style().standardPalette())  # light, also on a dark desktop theme
    app.setStyleSheet(STYLESHEET)
    icon = app_icon_path()
    if icon:
        app.setWindowIcon(QIcon(str(icon)))
    return app


def run_gui(args: argparse.Namespace) -> int:
    """Show the window at once; the models load in the background, then IMAGE is graded."""
    from cataract_app.main_window import MainWindow
    from engine.schema import parse_sublabels

    try:
        sublabels = parse_sublabels(args.sublabels)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = make_application()
    unattended = bool(args.screenshot or args.measure_startup)
    with tempfile.TemporaryDirectory(prefix="cataract-grader-") as scratch:
        # Unattended runs neither read nor change the user's window state and recent files.
        settings = QSettings(str(Path(scratch) / "settings.ini"), QSettings.Format.IniFormat) if unattended else None
        window = MainWindow(LoadOptions(student=args.model, teacher=args.teacher, device=args.device), settings)
        return _run_window(app, window, args, sublabels)


def _run_window(app: QApplication, window, args: argparse.Namespace, sublabels: dict) -> int:
    from cataract_app.autopilot import Autopilot

    pilot = Autopilot(window, sublabels=sublabels, screenshot=args.screenshot, measure=args.measure_startup)
    if args.screenshot:
        window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    if args.image:
        window.open_path(args.image)
    code = app.exec()
    return pilot.exit_code if pilot.exit_code is not None else code
