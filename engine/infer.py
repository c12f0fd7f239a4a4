"""`Grader`: a grade and its Grad-CAM from one forward pass and a head-only backward.

The backbone runs once without building a graph. Its output (the CAM's target
layer) is then made a leaf that requires grad, the head (pool + linear for the
student, the fusion transformer for the teacher) runs on it, and the gradient of
the request's CAM target (a grade's logit, or the expected grade) flows back to that
leaf only. pytorch_grad_cam's CAM classes turn those activations and gradients into
the map. No hooks are ever registered, so the shared model is never left changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import engine.compat  # noqa: F401  (before pytorch_grad_cam)
from engine.bundle import ModelCard, load_bundle
from engine.cam import cam_math, place_cam
from engine.data.transforms import build_transform
from engine.device import pick_device
from engine.evaluation import autocast_for
from engine.io import read_image
from engine.request import GradeRequest, GraderError
from engine.resources import default_model_dir, has_card
from engine.results import GradeResult, ModelInfo

__all__ = ["Grader", "GraderError", "GradeRequest"]
STUDENT_REQUEST = GradeRequest()


@dataclass(frozen=True)
class _Loaded:
    """One loaded model and what grading with it needs."""

    model: torch.nn.Module
    card: ModelCard
    transform: Callable[[np.ndarray], torch.Tensor]

    @property
    def info(self) -> ModelInfo:
        c = self.card
        return ModelInfo(name=c.name, model_id=c.model_id, role=c.role, arch=c.arch, notice=c.notice)


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
        if not student and not has_card(student_dir):
            raise GraderError(f"no default model is installed in {student_dir}; pass a model bundle (--model)")
        self._models = {"student": self._load(student_dir, "student", None)}
        self.schema = self.student_card.schema_obj()
        teacher_dir = Path(teacher) if teacher else default_model_dir("teacher")
        if teacher or has_card(teacher_dir):
            self._models["teacher"] = self._load(teacher_dir, "teacher", self.schema)
        self._lock = threading.Lock()

    def _load(self, path: Path, role: str, schema) -> _Loaded:
        model, card = load_bundle(path, expect_role=role, schema=schema, device=str(self.device))
        model.requires_grad_(False)
        model = model.to(self.device, memory_format=torch.channels_last).eval()
        return _Loaded(model, card, build_transform(model.preprocess_cfg))

    @property
    def student_card(self) -> ModelCard:
        return self._models["student"].card

    @property
    def teacher_card(self) -> ModelCard | None:
        return self._models["teacher"].card if self.has_teacher else None

    @property
    def _student(self) -> torch.nn.Module:
        return self._models["student"].model

    @property
    def has_teacher(self) -> bool:
        return "teacher" in self._models

    def request(self, **fields) -> GradeRequest:
        """A GradeRequest whose sub-labels are checked against this grader's schema."""
        return GradeRequest(schema=self.schema, **fields)

    # ---- single image ----------------------------------------------------------
    def grade(self, image: str | Path | np.ndarray, request: GradeRequest = STUDENT_REQUEST) -> GradeResult:
        """Grade one image (a file or an HxWx3 uint8 RGB array) as `request` asks."""
        t0 = time.perf_counter()
        source = None
        if isinstance(image, (str, Path)):
            source, rgb = str(image), read_image(image)
        else:
            rgb = self._check_array(image)
        t1 = time.perf_counter()
        loaded = self._route(request)
        x = loaded.transform(rgb)[None]
        r = self._grade_tensors(x, [rgb.shape[:2]], loaded, request, (time.perf_counter() - t1) * 1e3)[0]
        timings = {"decode_ms": (t1 - t0) * 1e3, **r.timings_ms, "total_ms": (time.perf_counter() - t0) * 1e3}
        return replace(r, timings_ms=timings, source=source)

    @staticmethod
    def _check_array(image: np.ndarray) -> np.ndarray:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise GraderError("an image array must be HxWx3 uint8 RGB")
        return image

    def _route(self, request: GradeRequest) -> _Loaded:
        """The model that answers `request`: the student, or with sub-labels the fusion teacher."""
        if request.role == "student":
            return self._models["student"]
        if not self.has_teacher:
            raise GraderError("grading with sub-labels needs a fusion teacher model, and none is loaded")
        if request.schema is not self.schema and request.schema.fingerprint() != self.schema.fingerprint():
            raise GraderError("the request's sub-labels were checked against another schema than the models'")
        return self._models["teacher"]

    def _head_args(self, request: GradeRequest, n: int) -> tuple[torch.Tensor, ...]:
        if request.sublabels is None:
            return ()
        values = list(request.sublabels.values())
        sub = torch.tensor([[v if v is not None else 0 for v in values]], dtype=torch.long, device=self.device)
        mask = torch.tensor([[v is not None for v in values]], dtype=torch.bool, device=self.device)
        return sub.expand(n, -1), mask.expand(n, -1)

    def _grade_tensors(self, x: torch.Tensor, shapes: list[tuple[int, int]], loaded: _Loaded, request: GradeRequest,
                       prep_ms: float) -> list[GradeResult]:
        """Grade a preprocessed batch; `shapes` are the source images' (height, width) for the CAMs."""
        n = len(shapes)
        x = x.to(self.device, memory_format=torch.channels_last)
        t1 = time.perf_counter()
        with self._lock:
            out, logits, maps, t2 = self._forward(loaded, x, self._head_args(request, n), request)
        t3 = time.perf_counter()
        probs = torch.softmax(logits / loaded.card.calibration_temperature, dim=1).cpu().numpy()
        sub_pred = self._sub_predictions(out)
        explained = request.target.explained(logits) if request.cam else [None] * n
        weigh = cam_math(request.cam_method) if maps is not None else None
        head_ms = (t3 - t2) * 1e3
        results = []
        for i, (height, width) in enumerate(shapes):
            heat = None
            if weigh is not None:
                raw = weigh.heat(maps[0][i : i + 1], maps[1][i : i + 1])
                heat = place_cam(raw, loaded.model.preprocess_cfg.crop_box(height, width), height, width)
            p = probs[i]
            grade = int(p.argmax())
            results.append(GradeResult(
                grade=grade, probabilities=tuple(float(v) for v in p), confidence=float(p[grade]),
                expected_grade=float((p * np.arange(len(p))).sum()), sublabels_predicted=sub_pred[i] if sub_pred else {},
                sublabels_used=None if request.sublabels is None else dict(request.sublabels), cam=heat,
                cam_target=explained[i], model=loaded.info, device=str(self.device),
                timings_ms={"preprocess_ms": prep_ms, "backbone_ms": (t2 - t1) * 1e3,
                            "head_cam_ms": head_ms + (time.perf_counter() - t3) * 1e3 / n},
            ))
        return results

    def _forward(self, loaded: _Loaded, x: torch.Tensor, head_args: tuple, request: GradeRequest):
        """(head output, float logits, (activations, gradients) or None, time the backbone ended)."""
        model = loaded.model
        with torch.inference_mode(), autocast_for(self.device):
            feats = model.forward_features(x)
        t2 = time.perf_counter()
        if not request.cam:
            with torch.inference_mode():
                out = model.forward_head(feats.float(), *head_args)
            return out, out["logits"].float(), None, t2
        # A fresh leaf: the backward below stops here, at the CAM's target layer.
        feats = feats.float().clone().requires_grad_(True)
        with torch.enable_grad():
            out = model.forward_head(feats, *head_args)
            logits = out["logits"].float()
            (grads,) = torch.autograd.grad(request.target(logits, loaded.card.calibration_temperature), feats)
        acts = model.cam_activations(feats.detach()).float().cpu().numpy()
        grads = model.cam_activations(grads).float().cpu().numpy()
        return out, logits.detach(), (acts, grads), t2

    def _sub_predictions(self, out: dict) -> list[dict[str, int]]:
        heads = out.get("sub_logits")
        if not heads:
            return []
        cols = [h.detach().argmax(1).cpu().numpy() + s.minimum for h, s in zip(heads, self.schema.sublabels)]
        return [{s.name: int(c[i]) for s, c in zip(self.schema.sublabels, cols)} for i in range(len(cols[0]))]

    # ---- many files ------------------------------------------------------------
    def grade_files(
        self,
        paths: Iterable[str | Path],
        request: GradeRequest | None = None,
        batch_size: int = 16,
        workers: int = 2,
    ) -> Iterator[tuple[str, GradeResult | None, str | None]]:
        """Yield (path, result, error) in input order; decoding overlaps the compute.

        Without a request, the student grades without heat maps. The answering model is
        chosen here, before any file is read; an unreadable file yields an error string
        and never stops the batch.
        """
        request = request or GradeRequest(cam=False)
        loaded = self._route(request)
        return self._grade_files([str(p) for p in paths], loaded, request, batch_size, workers)

    def _grade_files(self, paths: list[str], loaded: _Loaded, request: GradeRequest, batch_size: int, workers: int):
        def load(p: str):
            # Decode and preprocess off the compute thread.
            try:
                rgb = read_image(p)
                return loaded.transform(rgb), rgb.shape[:2], None
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
                    yield from self._flush(pending, loaded, request)
                    pending = []

    def _flush(self, pending, loaded: _Loaded, request: GradeRequest):
        good = [q for q in pending if q[1] is not None]
        results = iter([])
        if good:
            x = torch.stack([q[1] for q in good])
            results = iter(self._grade_tensors(x, [q[2] for q in good], loaded, request, 0.0))
        for p, tensor, _shape, err in pending:
            if tensor is None:
                yield p, None, err
            else:
                yield p, replace(next(results), source=p), None
