"""`Grader`: a grade and its Grad-CAM from one forward pass and a head-only backward.

The backbone runs once without building a graph. Its output (the CAM's target
layer) is then made a leaf that requires grad, the head (pool + linear for the
student, the fusion transformer for the teacher) runs on it, and the gradient of
the chosen grade's logit (or of the expected grade, target="severity") flows back
to that leaf only. pytorch_grad_cam's CAM
classes turn those activations and gradients into the map. No hooks are ever
registered, so the shared model is never left changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

import engine.compat  # noqa: F401  (before pytorch_grad_cam)
from engine.bundle import ModelCard, load_bundle
from engine.data.dataset import preprocess_eval
from engine.device import pick_device
from engine.evaluation import autocast_for
from engine.io import read_image
from engine.resources import default_model_dir
from engine.results import GradeResult, ModelInfo
from engine.schema import NUM_GRADES

CAM_METHODS = ("gradcam", "hirescam", "gradcam++", "layercam", "eigencam")
SEVERITY = "severity"  # CAM target: the expected grade, i.e. what raises the grade anywhere in the image


class GraderError(ValueError):
    """A request the grader cannot serve (no teacher loaded, bad image array, ...)."""


class _CamMath:
    """pytorch_grad_cam's CAM weighting, applied to activations and grads we computed.

    The CAM classes' `get_cam_image`/`get_cam_weights` are pure array math; calling
    them through this adapter uses no model and registers no hooks.
    """

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def get_cam_weights(self, *args):
        return self.cls.get_cam_weights(self, *args)

    def get_cam_image(self, *args):
        return self.cls.get_cam_image(self, *args)


def _cam_math(method: str) -> _CamMath:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM

    cls = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM,
           "eigencam": EigenCAM}.get(method)
    if cls is None:
        raise GraderError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    return _CamMath(cls)


def _check_target(target: int | str | None) -> int | str | None:
    if target is None or target == SEVERITY:
        return target
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < NUM_GRADES:
        raise GraderError(f"the heat map's target must be a grade 0-7, {SEVERITY!r} or None, not {target!r}")
    return int(target)


def _info(card: ModelCard) -> ModelInfo:
    return ModelInfo(name=card.name, model_id=card.model_id, role=card.role, arch=card.arch, notice=card.notice)


def crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the centred square that preprocessing keeps."""
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side


class Grader:
    """Loads a student (and optionally a fusion teacher) bundle and grades images."""

    def __init__(
        self,
        student: str | Path | None = None,
        teacher: str | Path | None = None,
        device: str = "auto",
    ) -> None:
        self.device = pick_device(device)
        student_dir = Path(student) if student else default_model_dir("student")
        if not student and not (student_dir / "card.json").exists():
            raise GraderError(f"no default model is installed in {student_dir}; pass a model bundle (--model)")
        self._student, self.student_card = self._load(student_dir, "student")
        self.schema = self.student_card.schema_obj()
        self._teacher, self.teacher_card = None, None
        teacher_dir = Path(teacher) if teacher else default_model_dir("teacher")
        if teacher or (teacher_dir / "card.json").exists():
            self._teacher, self.teacher_card = self._load(teacher_dir, "teacher")
        self._lock = threading.Lock()

    def _load(self, path: Path, role: str):
        schema = getattr(self, "schema", None)
        model, card = load_bundle(path, expect_role=role, schema=schema, device=str(self.device))
        model.requires_grad_(False)
        return model.to(self.device, memory_format=torch.channels_last).eval(), card

    @property
    def has_teacher(self) -> bool:
        return self._teacher is not None

    # ---- single image ----------------------------------------------------------
    def grade(
        self,
        image: str | Path | np.ndarray,
        sublabels: Mapping[str, object] | None = None,
        cam: bool = True,
        target: int | str | None = None,
        cam_method: str = "gradcam",
    ) -> GradeResult:
        """Grade one image; with sub-labels (complete or partial) the fusion teacher answers.

        `target` picks what the heat map explains: None for the predicted grade, a
        grade 0-7, or "severity" for the expected grade (the regions that push the
        grade up, whatever the predicted class).
        """
        t0 = time.perf_counter()
        source = None
        if isinstance(image, (str, Path)):
            source, rgb = str(image), read_image(image)
        else:
            rgb = self._check_array(image)
        t1 = time.perf_counter()
        results = self._grade_arrays([rgb], sublabels, cam, target, cam_method)
        r = results[0]
        timings = {"decode_ms": (t1 - t0) * 1e3, **r.timings_ms, "total_ms": (time.perf_counter() - t0) * 1e3}
        return _replace(r, timings_ms=timings, source=source)

    @staticmethod
    def _check_array(image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise GraderError("an image array must be HxWx3 uint8 RGB")
        return image

    def _route(self, sublabels: Mapping[str, object] | None):
        if sublabels is None:
            return self._student, self.student_card, None, None
        if self._teacher is None:
            raise GraderError("grading with sub-labels needs a fusion teacher model, and none is loaded")
        values = self.schema.validate(sublabels)
        sub = torch.tensor([[v if v is not None else 0 for v in values.values()]], dtype=torch.long)
        mask = torch.tensor([[v is not None for v in values.values()]], dtype=torch.bool)
        return self._teacher, self.teacher_card, (sub.to(self.device), mask.to(self.device)), values

    def _card_for(self, sublabels) -> ModelCard:
        return self.student_card if sublabels is None or self.teacher_card is None else self.teacher_card

    def _grade_arrays(self, rgbs, sublabels, cam, target, cam_method) -> list[GradeResult]:
        t0 = time.perf_counter()
        card = self._card_for(sublabels)
        x = torch.stack([preprocess_eval(rgb, card.image_size, card.mean, card.std) for rgb in rgbs])
        shapes = [rgb.shape[:2] for rgb in rgbs]
        return self._grade_tensors(x, shapes, sublabels, cam, target, cam_method, (time.perf_counter() - t0) * 1e3)

    def _grade_tensors(self, x, shapes, sublabels, cam, target, cam_method, prep_ms) -> list[GradeResult]:
        """Grade a preprocessed batch; `shapes` are the source images' (height, width) for the CAMs."""
        model, card, sub, used = self._route(sublabels)
        cam_math = _cam_math(cam_method) if cam else None
        target = _check_target(target) if cam else None
        n = len(shapes)
        x = x.to(self.device, memory_format=torch.channels_last)
        head_args = () if sub is None else (sub[0].expand(n, -1), sub[1].expand(n, -1))
        t1 = time.perf_counter()
        with self._lock:
            with torch.inference_mode(), autocast_for(self.device):
                feats = model.forward_features(x)
            t2 = time.perf_counter()
            if cam:
                # A fresh leaf: the backward below stops here, at the CAM's target layer.
                feats = feats.float().clone().requires_grad_(True)
                with torch.enable_grad():
                    out = model.forward_head(feats, *head_args)
                    logits = out["logits"].float()
                    if target == SEVERITY:
                        # Rows are independent (eval-mode head), so one backward gives each image its own gradient.
                        grades = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
                        picked = (torch.softmax(logits / card.calibration_temperature, 1) * grades).sum()
                    else:
                        targets = logits.argmax(1) if target is None else torch.full((n,), int(target))
                        picked = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
                    (grads,) = torch.autograd.grad(picked, feats)
                acts_map = model.cam_activations(feats.detach()).float().cpu().numpy()
                grads_map = model.cam_activations(grads).float().cpu().numpy()
            else:
                with torch.inference_mode():
                    out = model.forward_head(feats.float(), *head_args)
                logits = out["logits"].float()
            t3 = time.perf_counter()
        logits = logits.detach()
        probs = torch.softmax(logits / card.calibration_temperature, dim=1).cpu().numpy()
        sub_pred = self._sub_predictions(out)
        results = []
        for i, (height, width) in enumerate(shapes):
            heat, tgt = None, None
            if cam:
                tgt = SEVERITY if target == SEVERITY else int(targets[i])
                raw = cam_math.get_cam_image(x[i : i + 1], None, None, acts_map[i : i + 1], grads_map[i : i + 1], False)
                heat = self._to_image_cam(raw[0], height, width)
            p = probs[i]
            grade = int(p.argmax())
            results.append(GradeResult(
                grade=grade, probabilities=tuple(float(v) for v in p), confidence=float(p[grade]),
                expected_grade=float((p * np.arange(len(p))).sum()), sublabels_predicted=sub_pred[i] if sub_pred else {},
                sublabels_used=used, cam=heat, cam_target=tgt, model=_info(card), device=str(self.device),
                timings_ms={"preprocess_ms": prep_ms, "backbone_ms": (t2 - t1) * 1e3,
                            "head_cam_ms": (t3 - t2) * 1e3 + (time.perf_counter() - t3) * 1e3 / n},
            ))
        return results

    def _sub_predictions(self, out: dict) -> list[dict[str, int]]:
        heads = out.get("sub_logits")
        if not heads:
            return []
        cols = [h.detach().argmax(1).cpu().numpy() + s.minimum for h, s in zip(heads, self.schema.sublabels)]
        return [{s.name: int(c[i]) for s, c in zip(self.schema.sublabels, cols)} for i in range(len(cols[0]))]

    @staticmethod
    def _to_image_cam(raw: np.ndarray, height: int, width: int) -> np.ndarray:
        """ReLU, scale to [0, 1], resize onto the crop the model saw, zero outside it."""
        import cv2

        raw = np.maximum(raw, 0).astype(np.float32)
        top = float(raw.max())
        raw = raw / top if top > 0 else raw
        x0, y0, side = crop_box(height, width)
        canvas = np.zeros((height, width), np.float32)
        canvas[y0 : y0 + side, x0 : x0 + side] = cv2.resize(raw, (side, side), interpolation=cv2.INTER_LINEAR)
        return np.clip(canvas, 0.0, 1.0)

    # ---- many files ------------------------------------------------------------
    def grade_files(
        self,
        paths: Iterable[str | Path],
        batch_size: int = 16,
        cam: bool = False,
        workers: int = 2,
        sublabels: Mapping[str, object] | None = None,
        target: int | str | None = None,
        cam_method: str = "gradcam",
    ) -> Iterator[tuple[str, GradeResult | None, str | None]]:
        """Yield (path, result, error) in input order; decoding overlaps the compute.

        A bad CAM method or target is refused here, before any file is read; an
        unreadable file yields an error string and never stops the batch.
        """
        if cam:
            _cam_math(cam_method)
            _check_target(target)
        return self._grade_files([str(p) for p in paths], batch_size, cam, workers, sublabels, target, cam_method)

    def _grade_files(self, paths, batch_size, cam, workers, sublabels, target, cam_method):
        card = self._card_for(sublabels)

        def load(p: str):
            # Decode and preprocess off the compute thread.
            try:
                rgb = read_image(p)
                return preprocess_eval(rgb, card.image_size, card.mean, card.std), rgb.shape[:2], None
            except (ValueError, OSError) as e:
                return None, None, str(e)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            window = max(batch_size * 2, 4)
            futures = [pool.submit(load, p) for p in paths[:window]]
            nxt, pending = len(futures), []
            for i, p in enumerate(paths):
                item = futures[i].result()
                futures[i] = None  # free the decoded image once consumed
                if nxt < len(paths):
                    futures.append(pool.submit(load, paths[nxt]))
                    nxt += 1
                pending.append((p, *item))
                if sum(q[1] is not None for q in pending) >= batch_size or i == len(paths) - 1:
                    yield from self._flush(pending, sublabels, cam, target, cam_method)
                    pending = []

    def _flush(self, pending, sublabels, cam, target, cam_method):
        good = [q for q in pending if q[1] is not None]
        results = iter([])
        if good:
            x = torch.stack([q[1] for q in good])
            results = iter(self._grade_tensors(x, [q[2] for q in good], sublabels, cam, target, cam_method, 0.0))
        for p, tensor, _shape, err in pending:
            if tensor is None:
                yield p, None, err
            else:
                yield p, _replace(next(results), source=p), None


def _replace(result: GradeResult, **changes) -> GradeResult:
    from dataclasses import replace

    return replace(result, **changes)
