"""Architecture rules that keep the project livable."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_qt_or_the_app():
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & {"PySide6", "PyQt5", "PyQt6", "cataract_app"})
        for p in (ROOT / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_unpickles():
    pattern = re.compile(r"(?<![\w.])(pickle\.loads?|torch\.load)\(")  # safetensors.torch.load is fine
    hits = [
        str(p.relative_to(ROOT))
        for d in ("engine", "cataract_app")
        for p in (ROOT / d).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert hits == []


def test_torch_is_pinned_exactly():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in text
    assert re.search(r"^torch==2\.13\.0$", (ROOT / "constraints.txt").read_text(), re.M)


def _engine_modules() -> list[str]:
    import pkgutil

    import engine

    names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
    return sorted(n for n in names if not n.endswith("__main__"))  # __main__ runs the CLI when imported


def test_every_engine_error_is_an_engine_error():
    import importlib
    import inspect

    from engine.errors import EngineError
    from engine.progress import Cancelled

    strays = []
    for name in _engine_modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            defined_here = cls.__module__ == name
            if defined_here and issubclass(cls, Exception) and cls is not Cancelled and not issubclass(cls, EngineError):
                strays.append(f"{name}.{cls_name}")
    assert strays == []  # Cancelled is a stop signal, not an error
