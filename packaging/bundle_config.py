"""What goes into the frozen app and what stays out: read by cataract_grader.spec and the tests.

Every exclusion here was checked against the modules the app really imports while it grades,
opens its window and trains (tests/test_packaging.py runs the self-test with these blocked).
Measure before and after any change: `CATARACT_BUNDLE_FULL=1 make bundle` builds without them.
"""

from __future__ import annotations

import importlib.util
from fnmatch import fnmatch
from pathlib import Path

APP_NAME = "CataractGrader"
ENTRY_SCRIPT = "packaging/entry.py"  # calls cataract_app.main.main(), like the `cataract-grader` script
RUNTIME_HOOK = "packaging/rthook_compat.py"  # imports engine.compat before anything can import torchvision
ICON_PNG = "resources/icons/cataract-grader-256.png"

# Packages imported by name at run time (importlib), which the import analysis cannot see.
COLLECT_ALL_SUBMODULES = ("engine", "cataract_app")

# Python packages the app never imports; most arrive through optional imports of torch,
# sympy, matplotlib or huggingface_hub (compile-time tooling, notebooks, tests, downloads).
EXCLUDES = (
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "pydoc_data",
    "IPython", "ipykernel", "ipywidgets", "jupyter_client", "notebook",
    "pytest", "_pytest", "pytestqt", "pluggy", "iniconfig",
    "pip", "setuptools", "pkg_resources", "_distutils_hack", "PyInstaller",
    "pygments", "jinja2", "markupsafe", "networkx", "fsspec", "hf_xet", "docutils", "pandas",
    "tensorboard", "torch.utils.tensorboard", "torch.utils.benchmark",
    "torch.testing._internal.common_methods_invocations", "torch.testing._internal.opinfo",
    "torch.testing._internal.generated", "torch.testing._internal.distributed._tensor",
    "numpy.tests",
    # engine.cam computes the CAM weightings itself: grad-cam and what its package import pulls in
    # (matplotlib, scipy, scikit-learn, ttach) are test and benchmark references, never run by the app.
    "pytorch_grad_cam", "ttach", "matplotlib", "mpl_toolkits", "scipy", "sklearn", "joblib", "threadpoolctl",
    "contourpy", "kiwisolver", "fontTools", "cycler", "pyparsing",
    # Qt modules the app does not use; hooks would otherwise follow optional references.
    "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebChannel",
    "PySide6.Qt3DCore", "PySide6.QtMultimedia", "PySide6.QtSql", "PySide6.QtTest",
    "PySide6.QtPdf", "PySide6.QtCharts", "PySide6.QtDataVisualization", "PySide6.QtOpenGL",
    "PySide6.QtOpenGLWidgets", "PySide6.QtDesigner", "PySide6.QtHelp", "PySide6.QtSvg",
)

HOOKSCONFIG: dict = {}  # per-package hook options (none needed now that matplotlib stays out)

# Files the hooks collect that the app never loads (paths inside the bundle, fnmatch patterns).
DROP_FILES = (
    "torch/bin/test_*", "torch/bin/*Test", "torch/bin/protoc*", "torch/bin/*.pt", "torch/bin/*.ptl",
    "torch/bin/upgrader_models*", "torch/lib/*test*.so*", "torch/lib/libbackend_with_compiler.so",
    "torch/lib/libaoti_custom_ops.so", "torch/include/*", "torch/share/cmake/*", "torch/test/*",
    "PySide6/Qt/plugins/platforms/libqeglfs.so", "PySide6/Qt/plugins/platforms/libqlinuxfb.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so", "PySide6/Qt/plugins/platforms/libqminimalegl.so",
    "PySide6/Qt/plugins/egldeviceintegrations/*", "PySide6/Qt/plugins/qmltooling/*",
    "PySide6/Qt/plugins/sqldrivers/*", "PySide6/Qt/plugins/designer/*",
    "PySide6/Qt/translations/*",  # the app is in English and installs no QTranslator (7 MiB)
    # torchvision's compiled ops are linked against CUDA and never load next to the CPU torch (engine.compat
    # declares the schemas instead), so they and the CUDA libraries they need stay out (18 MiB).
    "torchvision/_C.so", "torchvision.libs/*",
)

# Libraries shipped with their symbol tables; packaging/slim_bundle.py strips them after the build.
STRIP_FILES = ("torch/lib/libtorch_cpu.so", "torch/lib/libtorch_python.so", "torch/lib/libc10.so",
               "torch/lib/libtorch.so", "torch/lib/libshm.so")


def is_stripped(dest: str) -> bool:
    """True for a bundle path that slim_bundle.py strips."""
    return any(fnmatch(dest.replace("\\", "/"), pattern) for pattern in STRIP_FILES)


REPORT_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "LICENSE_DEJAVU")


def report_fonts() -> list[Path]:
    """matplotlib's DejaVu Sans and its licence, copied to resources/fonts/ for the PDF report (accents, Greek,
    Cyrillic); matplotlib itself stays out. Empty when matplotlib is not installed where the app is built."""
    spec = importlib.util.find_spec("matplotlib")
    roots = spec.submodule_search_locations if spec else []
    for root in roots or []:
        paths = [Path(root) / "mpl-data" / "fonts" / "ttf" / name for name in REPORT_FONTS]
        if all(p.is_file() for p in paths):
            return paths
    return []


def is_dropped(dest: str) -> bool:
    """True for a bundle path matched by DROP_FILES ('/' separators on every platform)."""
    path = dest.replace("\\", "/")
    return any(fnmatch(path, pattern) for pattern in DROP_FILES)


def is_excluded(module: str) -> bool:
    """True when `module` or a package above it is in EXCLUDES (how PyInstaller's excludes apply)."""
    return any(module == name or module.startswith(name + ".") for name in EXCLUDES)
