"""Peak memory and time for one very large photograph, each case in a fresh process.

a  decode:     engine.io.read_image (full resolution)
b  decode-reduced: engine.io.read_image_reduced at the grader's resolution (when the code has it)
c  grade:      Grader.grade(path) with the shipped student, heat map included
d  grade-array: read_image(path) in full, then Grader.grade(array) (what the app's viewer does today)
e  predict:    `cataract-grade predict IMAGE --cam-dir DIR` (grade, heat map, overlay PNG)

Peak RSS is the child's ru_maxrss (os.wait4); "base" is the RSS after imports and model load,
so the delta is what the image itself cost. --src runs another checkout's engine (e.g. main,
extracted with `git archive main | tar -x -C DIR`) for a before/after table in one run.

    python benchmarks/large_image.py --size 8900 [--src /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
case, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import engine.compat
import cv2, numpy
if case == "decode":
    import engine.io as eio
    base = rss(); t0 = time.perf_counter(); img = eio.read_image(path); shape = img.shape
elif case == "decode-reduced":
    import engine.io as eio
    if not hasattr(eio, "read_image_reduced"):
        print(json.dumps({"skipped": "no read_image_reduced in this checkout"})); sys.exit(0)
    base = rss(); t0 = time.perf_counter(); d = eio.read_image_reduced(path, 1024); shape = d.rgb.shape
elif case == "grade":
    from engine.infer import Grader
    g = Grader(device="cpu"); base = rss(); t0 = time.perf_counter()
    r = g.grade(path) if hasattr(g, "request") else g.grade(path, cam=True); shape = r.cam.shape
elif case == "grade-array":  # the app's path today: the viewer decodes in full, the grader gets the array
    from engine.infer import Grader
    g = Grader(device="cpu"); base = rss(); t0 = time.perf_counter()
    import engine.io as eio
    r = g.grade(eio.read_image(path)); shape = r.cam.shape
elif case == "predict":
    from engine.cli import main
    base = rss(); t0 = time.perf_counter()
    code = main(["predict", path, "--cam-dir", out, "--device", "cpu"])
    shape = cv2.imread(str(next(__import__("pathlib").Path(out).glob("*.png"))), cv2.IMREAD_REDUCED_COLOR_8).shape
seconds = time.perf_counter() - t0
print(json.dumps({"base_mb": base, "seconds": seconds, "shape": list(shape)}))
"""


def run_case(case: str, image: Path, src: Path) -> dict:
    """Run one case in a forked child; its own numbers plus the peak RSS the kernel saw (wait4)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "CATARACT_GRADER_HOME": tempfile.mkdtemp()}
    with tempfile.TemporaryDirectory() as out:
        r_fd, w_fd = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child: exec the case with stdout into the pipe
            os.close(r_fd)
            os.dup2(w_fd, 1)
            os.chdir(src)
            os.execve(sys.executable, [sys.executable, "-c", _CHILD, case, str(image), out], env)
        os.close(w_fd)
        with os.fdopen(r_fd) as fh:
            stdout = fh.read()
        _pid, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        return {"error": f"exit {os.waitstatus_to_exitcode(status)}"}
    result = json.loads(lines[-1])
    result.update(peak_mb=usage.ru_maxrss / 1024, wall_s=wall)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=8900, help="side of the square test photograph")
    ap.add_argument("--format", default="jpg", choices=["jpg", "png"])
    ap.add_argument("--image", help="use this photograph instead of a rendered one")
    ap.add_argument("--src", action="append", default=[], help="another checkout to measure side by side")
    ap.add_argument("--cases", default="decode,decode-reduced,grade,grade-array,predict")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="large-image-"))
    image = Path(args.image) if args.image else _render(work / f"big{args.size}.{args.format}", args.size)
    print(f"image: {image} ({image.stat().st_size / 1e6:.1f} MB, {args.size}x{args.size})")
    sources = [("this", ROOT)] + [(Path(s).name, Path(s).resolve()) for s in args.src]
    rows = []
    for case in args.cases.split(","):
        for label, src in sources:
            r = run_case(case, image, src)
            rows.append({"case": case, "code": label, **r})
            if "error" in r or "skipped" in r:
                print(f"{case:15s} {label:10s} {r.get('error') or r.get('skipped')}")
                continue
            print(f"{case:15s} {label:10s} peak {r['peak_mb']:7.0f} MB  (base {r['base_mb']:5.0f} MB, image "
                  f"+{r['peak_mb'] - r['base_mb']:6.0f} MB)  {r['seconds']:6.2f} s  out {tuple(r['shape'])}",
                  flush=True)
    print(json.dumps(rows))
    return 0


def _render(path: Path, size: int) -> Path:
    """A synthetic slit-lamp photograph rendered at 1024 px and scaled up (a camera's full frame)."""
    sys.path.insert(0, str(ROOT))
    import cv2
    import numpy as np

    from engine.synth.sample import render_sample

    rgb = render_sample(np.random.default_rng(3), 1024, target_grade=5).image
    big = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    assert cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), params)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
