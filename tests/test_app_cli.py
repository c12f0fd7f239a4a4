"""`cataract-grader` as a command: arguments, engine subcommands, unattended runs and --screenshot."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from helpers import write_disc
from PySide6.QtCore import QSettings

import cataract_app.main as app_main
from cataract_app.autopilot import Autopilot
from cataract_app.grading.loading import LoadOptions
from cataract_app.main_window import MainWindow
from engine.schema import parse_sublabels

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 60_000



@pytest.mark.parametrize("command", ["train", "predict", "validate", "evaluate", "synth"])
def test_engine_subcommands_are_dispatched_to_the_engine_cli(monkeypatch, command):
    seen = []
    monkeypatch.setattr("engine.cli.main", lambda argv: seen.append(list(argv)) or 7)
    assert app_main.main([command, "--flag", "x"]) == 7
    assert seen == [[command, "--flag", "x"]]


IMPORT_ORDER_PROBE = """
import builtins, sys, types
seen = []
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    top = name.split(".")[0]
    if top in ("torch", "PySide6") and top not in seen:
        seen.append(top)
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
fake = types.ModuleType("cataract_app.app")
def run_gui(args):
    import PySide6.QtWidgets  # what the real run_gui does first
    print(",".join(seen))
    return 0
fake.run_gui = run_gui
sys.modules["cataract_app.app"] = fake
import cataract_app.main
sys.exit(cataract_app.main.main(["eye.png"]))
"""


def test_torch_is_imported_before_pyside6():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", IMPORT_ORDER_PROBE], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "torch,PySide6"


def test_missing_stdio_of_a_windowed_build_is_replaced(monkeypatch):
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    app_main.guard_stdio()
    try:
        assert sys.stdout.write("fine") == 4 and sys.stderr.write("ok") == 2
    finally:
        sys.stdout.close()
        sys.stderr.close()


def test_screenshot_without_an_image_is_refused(capsys):
    assert app_main.main(["--screenshot", "out.png"]) == 2
    assert "needs an IMAGE" in capsys.readouterr().err


def test_sublabels_argument_is_parsed_or_refused():
    assert parse_sublabels("central_involvement=1, opacity_density=?,morphology=") == {
        "central_involvement": 1, "opacity_density": None, "morphology": None}
    assert parse_sublabels(None) == {}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_sublabels("central_involvement")
    with pytest.raises(ValueError, match="not a whole number"):
        parse_sublabels("central_involvement=two")


def _pilot(qtbot, tiny_bundles, tmp_path, **kwargs):
    student, teacher = tiny_bundles
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(LoadOptions(str(student), str(teacher), "cpu"), settings)
    qtbot.addWidget(window)
    pilot = Autopilot(window, quit=lambda code: None, **kwargs)  # leave the test session's event loop alone
    window.show()
    return window, pilot


def test_autopilot_enters_sublabels_and_saves_the_window(qtbot, tiny_bundles, tmp_path):
    out = tmp_path / "shots" / "window.png"
    window, pilot = _pilot(qtbot, tiny_bundles, tmp_path, screenshot=str(out), measure=True,
                           sublabels={"central_involvement": 1, "opacity_density": 2})
    window.open_path(write_disc(tmp_path / "eye.png"))
    qtbot.waitUntil(lambda: pilot.exit_code is not None, timeout=WAIT_MS)
    assert pilot.exit_code == 0
    assert window.teacher is not None and window.teacher.sublabels_used["opacity_density"] == 2
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > 100 and picture.shape[1] > 100
    assert 0 < pilot.timings["window_s"] <= pilot.timings["first_grade_s"]


def test_autopilot_fails_with_exit_code_1_on_an_unreadable_image(qtbot, tiny_bundles, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    window, pilot = _pilot(qtbot, tiny_bundles, tmp_path, screenshot=str(tmp_path / "never.png"))
    window.open_path(broken)
    qtbot.waitUntil(lambda: pilot.exit_code is not None, timeout=WAIT_MS)
    assert pilot.exit_code == 1
    assert "broken.png" in capsys.readouterr().err
    assert not (tmp_path / "never.png").exists()


def test_screenshot_command_writes_a_png(tiny_bundles, tmp_path):
    student, teacher = tiny_bundles
    out = tmp_path / "screenshot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cataract_app", str(write_disc(tmp_path / "eye.png")), "--model", str(student),
           "--teacher", str(teacher), "--device", "cpu", "--screenshot", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(out)).shape[:2] == (900, 1440)
