"""After PyInstaller: strip the symbol tables the torch wheel ships in its libraries (about 95 MiB).

libtorch_cpu.so and libtorch_python.so come unstripped; `strip --strip-unneeded` keeps the
dynamic symbols the loader needs and drops the rest. PyInstaller's own strip=True would run
over every binary of the bundle; this touches only the files bundle_config.STRIP_FILES names.
Usage: python packaging/slim_bundle.py dist/CataractGrader
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundle_config as cfg  # noqa: E402


def slim(app: Path) -> int:
    """Strip every file under app/_internal that STRIP_FILES names; returns the bytes saved."""
    internal = app / "_internal"
    strip = shutil.which("strip")
    if strip is None:
        print("warning: no `strip` (binutils) here; the bundle keeps torch's symbol tables", file=sys.stderr)
        return 0
    saved = 0
    for path in sorted(p for p in internal.rglob("*") if p.is_file() and cfg.is_stripped(p.relative_to(internal).as_posix())):
        before = path.stat().st_size
        subprocess.run([strip, "--strip-unneeded", str(path)], check=True)
        saved += before - path.stat().st_size
    return saved


if __name__ == "__main__":
    saved = slim(Path(sys.argv[1]))
    print(f"stripped torch's libraries: {saved / 2**20:.0f} MiB saved")
