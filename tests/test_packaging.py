"""Packaging: the PyInstaller spec and its exclusions, the install scripts, and `--self-test` from source."""

import configparser
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cataract_app import selftest
from cataract_app.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="the install scripts are for Linux desktops")


def _bundle_config():
    spec = importlib.util.spec_from_file_location("bundle_config", PACKAGING / "bundle_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_compiles_and_freezes_the_app_entry_point_with_the_compat_hook():
    text = (PACKAGING / "cataract_grader.spec").read_text(encoding="utf-8")
    compile(text, "cataract_grader.spec", "exec")
    cfg = _bundle_config()
    for name in ("cfg.ENTRY_SCRIPT", "cfg.RUNTIME_HOOK", "cfg.APP_NAME", '"resources"', "console=CONSOLE"):
        assert name in text
    assert cfg.APP_NAME == "CataractGrader"
    assert "from cataract_app.main import main" in (ROOT / cfg.ENTRY_SCRIPT).read_text(encoding="utf-8")
    assert "import engine.compat" in (ROOT / cfg.RUNTIME_HOOK).read_text(encoding="utf-8")
    assert (ROOT / cfg.ICON_PNG).is_file()


@pytest.mark.parametrize(
    "module", ["torch", "torch.distributed", "torch._dynamo", "torchvision", "timm", "sympy", "PySide6.QtWidgets", "cv2",
               "safetensors.torch", "engine.commands.train", "cataract_app.selftest", "numpy.f2py", "pydicom",
               "pydicom.pixels.decoders.pillow", "PIL.JpegImagePlugin", "reportlab.pdfgen.canvas"],
)
def test_modules_the_app_imports_are_not_excluded(module):
    assert not _bundle_config().is_excluded(module)


def test_exclusions_and_dropped_files_match_what_they_name():
    cfg = _bundle_config()
    assert cfg.is_excluded("PySide6.QtNetwork") and cfg.is_excluded("tkinter") and cfg.is_excluded("jinja2.runtime")
    for heavy in ("pytorch_grad_cam", "matplotlib.pyplot", "scipy.ndimage", "sklearn.decomposition", "ttach"):
        assert cfg.is_excluded(heavy), heavy  # engine.cam does the CAM math; these only serve tests and benchmarks
    assert not cfg.is_excluded("PySide6.QtNetworkAuth")  # a name that only starts like an excluded one stays
    assert cfg.is_dropped("torch/bin/test_api") and cfg.is_dropped("torch\\lib\\libtorchbind_test.so")
    assert cfg.is_dropped("PySide6/Qt/plugins/platforms/libqvnc.so") and cfg.is_dropped("torch/test/Dict_test")
    assert cfg.is_dropped("torchvision/_C.so") and cfg.is_dropped("PySide6/Qt/translations/qtbase_de.qm")
    assert cfg.is_stripped("torch/lib/libtorch_cpu.so") and not cfg.is_stripped("PySide6/Qt/lib/libQt6Core.so.6")
    for kept in ("torch/lib/libtorch_cpu.so", "torch/bin/torch_shm_manager", "PySide6/Qt/plugins/platforms/libqxcb.so",
                 "PySide6/Qt/plugins/platforms/libqoffscreen.so", "resources/models/student/model.safetensors"):
        assert not cfg.is_dropped(kept), kept


def test_self_test_option_is_parsed():
    assert build_parser().parse_args(["--self-test"]).self_test is True
    assert build_parser().parse_args([]).self_test is False


def test_sample_photograph_ships_small_and_readable():
    from engine.io import read_image

    path = selftest.sample_path()
    assert path.is_file() and path.stat().st_size < 100_000
    assert read_image(path).shape == (256, 256, 3)


def test_engine_command_is_the_executable_itself_when_frozen(monkeypatch):
    assert selftest.engine_command("train") == [sys.executable, "-m", "cataract_app", "train"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert selftest.engine_command("train", "x") == [sys.executable, "train", "x"]


def test_grade_check_names_a_missing_model(tmp_path, tiny_bundles):
    with pytest.raises(ValueError, match="no such model bundle"):
        selftest.check_grade(tmp_path / "missing", tiny_bundles[1], "cpu")


def test_training_check_reports_the_jobs_own_error(tmp_path, monkeypatch):
    script = "import json; print(json.dumps({'event': 'error', 'message': 'the dataset is empty'})); raise SystemExit(2)"
    monkeypatch.setattr(selftest, "engine_command", lambda *args: [sys.executable, "-c", script, *args])
    job = selftest.TrainingJob(tmp_path)
    with pytest.raises(selftest.SelfTestError, match="exit code 2 .*the dataset is empty"):
        job.finish(timeout_s=60)
    assert (tmp_path / "data" / "labels.csv").is_file()


def test_self_test_from_source_passes_with_the_bundle_exclusions_blocked(tmp_path, tiny_bundles):
    # The excluded modules are made unimportable (also in the training child) the way they are
    # missing from the frozen app, so a new import of one fails here before it fails a build.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(PACKAGING)!r})\n"
        "import bundle_config\n"
        "for name in bundle_config.EXCLUDES:\n"
        "    sys.modules.setdefault(name, None)\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "QT_QPA_PLATFORM": "offscreen"}
    student, teacher = tiny_bundles
    cmd = [sys.executable, "-m", "cataract_app", "--self-test", "--model", str(student), "--teacher", str(teacher),
           "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for name in ("sample", "grade", "window", "report", "train"):
        assert any(line.split()[:2] == ["ok", name] for line in lines), proc.stdout
    assert "via `python -m cataract_app train`" in proc.stdout
    assert lines[-1].startswith("self-test passed")


@POSIX_ONLY
def test_install_and_uninstall_into_a_temporary_home(tmp_path):
    app = tmp_path / "dist" / "CataractGrader"
    (app / "_internal" / "resources" / "icons").mkdir(parents=True)
    (app / "_internal" / "resources" / "icons" / "cataract-grader-256.png").write_bytes(b"\x89PNG fake icon")
    (app / "CataractGrader").write_text("#!/bin/sh\necho grader \"$@\"\n", encoding="utf-8")
    (app / "CataractGrader").chmod(0o755)
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "keep.txt").write_text("mine", encoding="utf-8")
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    done = subprocess.run(["bash", str(PACKAGING / "install.sh"), "--from", str(app)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    exe = home / ".local" / "opt" / "CataractGrader" / "CataractGrader"
    icon = home / ".local" / "share" / "icons" / "hicolor" / "256x256" / "apps" / "cataract-grader.png"
    desktop = home / ".local" / "share" / "applications" / "cataract-grader.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(desktop, encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Name"] == "Cataract Grader"
    assert section["Exec"] == f'"{exe}" %f'
    assert section["Icon"] == str(icon) and icon.read_bytes() == b"\x89PNG fake icon"
    assert section["Categories"] == "Science;MedicalSoftware;Graphics;"
    link = home / ".local" / "bin" / "cataract-grader"
    assert subprocess.run([str(link), "--self-test"], capture_output=True, text=True).stdout == "grader --self-test\n"

    gone = subprocess.run(["bash", str(PACKAGING / "uninstall.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0, gone.stderr
    assert not exe.parent.exists() and not desktop.exists() and not icon.exists() and not link.is_symlink()
    assert (home / "Documents" / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_desktop_template_names_the_app_and_its_placeholders():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "cataract-grader.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert (section["Type"], section["Terminal"]) == ("Application", "false")
    assert section["Exec"] == '"@EXEC@" %f' and section["Icon"] == "@ICON@"
    # The dock groups the running window under this entry: Qt's X11 WM_CLASS class is the application name.
    from cataract_app import APPLICATION

    assert section["StartupWMClass"] == APPLICATION
    install = (PACKAGING / "install.sh").read_text(encoding="utf-8")
    assert "s|@EXEC@|$EXE|" in install and "s|@ICON@|$ICON|" in install
