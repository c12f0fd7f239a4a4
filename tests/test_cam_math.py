"""engine.cam's five CAM weightings against pytorch_grad_cam's own classes, on the same arrays."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine.compat  # noqa: F401  (before pytorch_grad_cam)
from engine.cam import cam_math
from engine.choices import CAM_METHODS


def _library_map(method: str, acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM

    cls = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM,
           "eigencam": EigenCAM}[method]

    class Math:  # the class's math only, on our arrays: no model, no hooks
        def get_cam_weights(self, *args):
            return cls.get_cam_weights(self, *args)

    return cls.get_cam_image(Math(), None, None, None, acts, grads, False)


@pytest.mark.parametrize("method", CAM_METHODS)
def test_every_method_equals_pytorch_grad_cam(method):
    rng = np.random.default_rng(7)
    acts = np.maximum(rng.normal(size=(2, 16, 7, 7)), 0).astype(np.float32)  # post-ReLU features
    grads = rng.normal(scale=0.01, size=(2, 16, 7, 7)).astype(np.float32)
    grads[0, :4] = 0  # channels with no gradient: GradCAM++ must give them weight 0
    acts[1, 0, 0, 0] = np.nan  # EigenCAM zeroes NaNs before its SVD
    ours = cam_math(method).maps(acts.copy(), grads.copy())
    theirs = _library_map(method, acts.copy(), grads.copy())
    assert ours.shape == theirs.shape == (2, 7, 7)
    finite = np.isfinite(theirs)
    assert finite.any()
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=1e-7)
    assert np.array_equal(np.isfinite(ours), finite)


def test_heat_is_the_first_map_and_methods_differ():
    rng = np.random.default_rng(1)
    acts = np.maximum(rng.normal(size=(1, 8, 5, 5)), 0).astype(np.float32)
    grads = rng.normal(size=(1, 8, 5, 5)).astype(np.float32)
    maps = {m: cam_math(m).heat(acts, grads) for m in CAM_METHODS}
    assert all(m.shape == (5, 5) for m in maps.values())
    assert not np.allclose(maps["gradcam"], maps["layercam"])


def test_the_engine_grades_without_importing_pytorch_grad_cam_or_its_extras(tiny_bundles, tmp_path):
    student, _teacher = tiny_bundles
    code = (
        "import sys, numpy as np\n"
        "from engine.infer import Grader\n"
        f"g = Grader(student={str(student)!r}, device='cpu')\n"
        "r = g.grade(np.full((96, 96, 3), 120, np.uint8), g.request(cam=True))\n"
        "assert r.cam is not None\n"
        "print(sorted(m for m in ('pytorch_grad_cam', 'matplotlib', 'scipy', 'sklearn') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
