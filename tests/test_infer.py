"""Grader: grade + CAM in one pass, sub-label routing, batch grading, CSV, no leaks."""

import copy
import csv
import resource

import cv2
import numpy as np
import pytest

from engine.bundle import BundleError
from engine.cli import main
from engine.infer import Grader, GradeRequest, GraderError
from engine.io import ImageReadError


@pytest.fixture(scope="module")
def grader(tiny_bundles):
    student, teacher = tiny_bundles
    return Grader(student, teacher, device="cpu")


def _disc(h=90, w=120, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (200, 80, 40), -1)
    return np.clip(img.astype(int) + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def test_grade_gives_probabilities_and_a_cam_at_image_resolution(grader):
    r = grader.grade(_disc())
    assert 0 <= r.grade <= 7 and len(r.probabilities) == 8
    assert abs(sum(r.probabilities) - 1) < 1e-5 and r.confidence == pytest.approx(max(r.probabilities))
    assert r.cam.shape == (90, 120) and r.cam.dtype == np.float32
    assert r.cam.min() >= 0 and r.cam.max() <= 1 and r.cam.max() > 0
    assert r.cam[:, :15].max() == 0  # outside the centred square the model saw
    assert r.model.role == "student" and r.model.is_demo
    assert set(r.sublabels_predicted) == set(grader.schema.names)
    assert r.cam_target == r.grade


def test_cam_for_a_chosen_grade_and_methods(grader):
    img = _disc()
    maps = {m: grader.grade(img, GradeRequest(target=5, cam_method=m)).cam for m in ("gradcam", "gradcam++", "layercam", "eigencam")}
    assert all(m.shape == (90, 120) for m in maps.values())
    assert not np.allclose(maps["gradcam"], maps["eigencam"])
    assert grader.grade(img, GradeRequest(target=5)).cam_target == 5
    with pytest.raises(GraderError, match="unknown CAM method"):
        grader.grade(img, GradeRequest(cam_method="magic"))


def _reference_gradcam(grader, img, target, method=None, layer=None):
    """pytorch_grad_cam's own GradCAM (hooks, its own forward and full backward) on the student."""
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from engine.data.transforms import preprocess_eval

    model, card = copy.deepcopy(grader._student), grader.student_card  # a copy: the shared one stays untouched

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, t):
            return self.m(t)["logits"]

    def expected_grade(logits):
        return (torch.softmax(logits, -1) * torch.arange(logits.shape[-1], dtype=logits.dtype)).sum()

    x = preprocess_eval(img, card.image_size, card.mean, card.std)[None]
    model.requires_grad_(True)
    cls = method or GradCAM
    with cls(model=Logits(), target_layers=[layer(model) if layer else model.backbone.layer4[-1]]) as cam:
        picked = expected_grade if target == "severity" else ClassifierOutputTarget(target)
        return cam(input_tensor=x, targets=[picked])[0]


def _minmax(a):
    return (a - a.min()) / max(float(a.max() - a.min()), 1e-7)


@pytest.mark.parametrize("target", ["predicted", "severity", "each grade"])
def test_one_pass_cam_equals_pytorch_grad_cam_own_route(grader, target):
    # A square image at the model's input size: the crop is the whole image and no resampling differs.
    size = grader.student_card.image_size
    img = _disc(size, size, seed=5)
    targets = list(range(8)) if target == "each grade" else [None if target == "predicted" else target]
    nonzero = 0
    for t in targets:
        ours = grader.grade(img, GradeRequest(target=t, check_input=False))  # unmasked: the lens mask is tested apart
        ref = _reference_gradcam(grader, img, ours.grade if t is None else t)
        assert ref.shape == ours.cam.shape
        if ref.max() == 0:  # no region raises this grade: both must say so
            assert ours.cam.max() == 0
            continue
        nonzero += 1
        np.testing.assert_allclose(_minmax(ours.cam), _minmax(ref), atol=2e-3)
    assert nonzero >= 1


@pytest.mark.parametrize("variant", ["hirescam", "stride16", "dilated"])
def test_cam_levers_equal_pytorch_grad_cam_own_route(tiny_bundles, tmp_path, variant):
    """HiResCAM, a stride-16 target layer and a dilated last stage: the one-pass map is still the library's."""
    import torch
    from pytorch_grad_cam import GradCAM, HiResCAM

    from tests.conftest import _save_tiny

    config = {"stride16": {"cam_layer": "stride16"}, "dilated": {"output_stride": 16}}.get(variant, {})
    student = _save_tiny(tmp_path / "s", "student", "student", backbone="resnet18", **config)
    g = Grader(student, device="cpu")
    img = _disc(64, 64, seed=5)
    method = "hirescam" if variant == "hirescam" else "gradcam"
    ours = g.grade(img, GradeRequest(target="severity", cam_method=method, check_input=False))  # unmasked
    layer = (lambda m: m.backbone.layer3[-1]) if variant == "stride16" else None
    ref = _reference_gradcam(g, img, "severity", HiResCAM if variant == "hirescam" else GradCAM, layer)
    grid = g._student.forward_features(torch.zeros(1, 3, 64, 64)).shape[-1]
    assert grid == (2 if variant == "hirescam" else 4)
    np.testing.assert_allclose(_minmax(ours.cam), _minmax(ref), atol=2e-3)


def test_any_input_size_is_resized_to_what_the_model_expects(grader):
    for h, w in ((40, 40), (500, 300), (64, 64)):
        r = grader.grade(_disc(h, w, seed=1), GradeRequest(target="severity"))
        assert r.cam.shape == (h, w) and abs(sum(r.probabilities) - 1) < 1e-5


def test_severity_target_and_bad_targets(grader):
    img = _disc(seed=2)
    r = grader.grade(img, GradeRequest(target="severity"))
    assert r.cam_target == "severity" and r.cam.shape == (90, 120) and r.cam.max() <= 1
    assert not np.allclose(r.cam, grader.grade(img, GradeRequest(target=0)).cam)
    for bad in (8, -1, "worst", 2.5, True):
        with pytest.raises(GraderError, match="target must be a grade 0-7"):
            grader.grade(img, GradeRequest(target=bad))


def test_without_cam_the_same_grade(grader):
    img = _disc(seed=3)
    a, b = grader.grade(img), grader.grade(img, GradeRequest(cam=False))
    assert b.cam is None and a.grade == b.grade
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_sublabels_route_through_the_teacher(grader):
    img = _disc()
    full = {n: 1 for n in grader.schema.names}
    r_full = grader.grade(img, grader.request(sublabels=full))
    r_part = grader.grade(img, grader.request(sublabels={"sectors_involved": 4}))
    assert r_full.model.role == "teacher" and r_part.model.role == "teacher"
    assert r_part.sublabels_used["sectors_involved"] == 4 and r_part.sublabels_used["morphology"] is None
    assert r_full.probabilities != r_part.probabilities
    assert r_full.cam.shape == img.shape[:2]


def test_bad_requests_are_refused_with_a_sentence(grader, tmp_path):
    from engine.schema import SchemaError

    with pytest.raises(SchemaError, match="outside 0-2"):
        grader.grade(_disc(), grader.request(sublabels={"central_involvement": 7}))
    with pytest.raises(GraderError, match="HxWx3 uint8"):
        grader.grade(np.zeros((10, 10), np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ImageReadError):
        grader.grade(bad)


def test_no_teacher_means_a_clear_error(tiny_bundles, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.infer.default_model_dir", lambda role: tmp_path / "none" / role)
    g = Grader(tiny_bundles[0], teacher=None, device="cpu")
    assert not g.has_teacher
    with pytest.raises(GraderError, match="needs a fusion teacher"):
        g.grade(_disc(), g.request(sublabels={"sectors_involved": 1}))


def test_teacher_with_another_schema_is_refused(tiny_bundles, tmp_path):
    import json
    import shutil

    other = tmp_path / "teacher"
    shutil.copytree(tiny_bundles[1], other)
    card = json.loads((other / "card.json").read_text())
    card["schema"]["sublabels"][0]["name"] = "haze"
    (other / "card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="schema"):
        Grader(tiny_bundles[0], other, device="cpu")
    with pytest.raises(BundleError, match="student"):
        Grader(tiny_bundles[1], device="cpu")


def test_batch_with_a_bad_file_in_the_middle(grader, tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"img{i}.png"
        cv2.imwrite(str(p), _disc(seed=i))
        paths.append(p)
    (tmp_path / "img2.png").write_bytes(b"\x89PNG broken")
    out = list(grader.grade_files(paths, GradeRequest(cam=False), batch_size=2))
    assert [o[0] for o in out] == [str(p) for p in paths]
    assert out[2][1] is None and out[2][2]
    assert all(o[1] is not None and o[2] is None for i, o in enumerate(out) if i != 2)
    single = grader.grade(paths[4], GradeRequest(cam=False))
    np.testing.assert_allclose(out[4][1].probabilities, single.probabilities, atol=1e-5)


def test_predict_cli_writes_csv_rows_and_cams(tiny_bundles, tmp_path, capsys):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"e{i}.png"), _disc(seed=i))
    (tmp_path / "e1.png").write_text("garbage")
    out_csv, cams = tmp_path / "out.csv", tmp_path / "cams"
    code = main(["predict", "--dir", str(tmp_path), "--model", str(tiny_bundles[0]), "--teacher",
                 str(tiny_bundles[1]), "--csv", str(out_csv), "--cam-dir", str(cams), "--device", "cpu"])
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 3
    header = list(rows[0])
    assert header[:11] == ["file", "grade", "confidence", *[f"p{k}" for k in range(8)]]
    assert header[-9:] == ["model_id", "input_ok", "input_problems", "lens_cx", "lens_cy", "lens_r", "lens_source",
                           "ood_score", "error"] and "pred_central_involvement" in header
    bad = next(r for r in rows if r["file"].endswith("e1.png"))
    assert bad["error"] and bad["grade"] == "" and bad["input_ok"] == ""
    good = [r for r in rows if r is not bad]
    assert all(r["input_ok"] in ("true", "false") for r in good)
    assert all((r["input_ok"] == "false") == bool(r["input_problems"]) for r in good)
    assert sorted(p.name for p in cams.iterdir()) == ["e0.png_cam.png", "e2.png_cam.png"]


def test_predict_cli_refuses_bad_sublabels(tiny_bundles, tmp_path, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), _disc())
    code = main(["predict", str(img), "--model", str(tiny_bundles[0]), "--teacher", str(tiny_bundles[1]),
                 "--sublabels", "colour=3", "--device", "cpu"])
    assert code == 2 and "unknown sub-label 'colour'" in capsys.readouterr().err


def test_predict_cli_cam_target_and_method(tiny_bundles, tmp_path, capsys):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), _disc())
    base = ["predict", str(img), "--model", str(tiny_bundles[0]), "--device", "cpu"]
    maps = {}
    for name, extra in {"predicted": [], "severity": ["--cam-target", "severity"],
                        "eigencam": ["--cam-method", "eigencam"]}.items():
        assert main([*base, "--cam-dir", str(tmp_path / name), *extra]) == 0
        maps[name] = cv2.imread(str(tmp_path / name / "a.png_cam.png"))
    assert not np.array_equal(maps["predicted"], maps["eigencam"])  # the method is honoured
    assert not np.array_equal(maps["predicted"], maps["severity"])
    capsys.readouterr()
    assert main([*base, "--cam-dir", str(tmp_path / "x"), "--cam-target", "9"]) == 2
    assert "--cam-target '9'" in capsys.readouterr().err
    assert main([*base, "--cam-dir", str(tmp_path / "y"), "--cam-method", "magic"]) == 2
    assert "unknown CAM method 'magic'" in capsys.readouterr().err


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_repeated_calls_leave_no_hooks_and_no_memory_growth(grader):
    """The short soak; the 300-call one is benchmarks/soak_grade.py."""
    img = _disc()
    model = grader._student
    for _ in range(10):
        grader.grade(img)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(30):
        grader.grade(img)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert _hook_count(model) == 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    assert grown_mb < 30, f"peak RSS grew by {grown_mb:.1f} MB over 30 calls"


def test_cam_on_a_vit_student_has_the_image_size(tmp_path):
    import torch

    from engine.bundle import ModelCard, save_bundle
    from engine.models import create_model
    from engine.schema import DEFAULT_SCHEMA

    torch.manual_seed(0)
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    model = create_model("student", backbone="vit_tiny_patch16_224", image_size=64, sublabel_ranges=ranges)
    card = ModelCard(role="student", name="tiny-vit", image_size=64, schema=DEFAULT_SCHEMA.to_dict())
    save_bundle(tmp_path / "vit", model, card)
    img = _disc(72, 96)
    r = Grader(tmp_path / "vit", teacher=None, device="cpu").grade(img)
    assert r.cam.shape == img.shape[:2] and np.isfinite(r.cam).all()
    inside = r.cam[:, 12:84]  # the centred square the model saw
    assert inside.max() > inside.min()


def test_a_request_is_checked_once_when_built(grader):
    from engine.request import PREDICTED, TARGET_KEYS, Grade, cam_target

    r = grader.request(sublabels={"sectors_involved": "4"}, target="3")
    assert r.role == "teacher" and r.sublabels["sectors_involved"] == 4 and r.sublabels["morphology"] is None
    assert r.target == Grade(3) and r.target.key == "3" and r.explaining("severity").target.key == "severity"
    assert [cam_target(k).key for k in TARGET_KEYS] == list(TARGET_KEYS)
    assert GradeRequest().role == "student" and GradeRequest().target is PREDICTED
    with pytest.raises(GraderError, match="checked against a schema"):
        GradeRequest(sublabels={"sectors_involved": 4})
