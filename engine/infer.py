"""`Grader`: the input gate, a grade and its Grad-CAM from one forward pass and a head-only backward.

Before the forward pass the input gate checks the photograph and finds the lens
(engine.inputs.prepare; the request may give the circle or skip the checks), and the
photograph is cropped as the model's card says (the lens square, or the centred square
of older bundles). The out-of-distribution check scores the pooled features of that same
forward pass against the bundle's own statistics. A photograph with problems is still
graded; its result says input_ok False. The backbone runs once without building a graph. Its output (the CAM's target
layer) is then made a leaf that requires grad, the head (pool + linear for the
student, the fusion transformer for the teacher) runs on it, and the gradient of
the request's CAM target (a grade's logit, or the expected grade) flows back to that
leaf only. engine.cam's weightings (pytorch_grad_cam's, over numpy) turn those activations and gradients into
the map, which is laid back onto the photograph and kept inside the lens. No hooks are
ever registered, so the shared model is never left changed.
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

import engine.compat  # noqa: F401  (before timm and torchvision)
from engine.bundle import ModelCard, load_bundle
from engine.cam import cam_math
from engine.data.transforms import build_transform
from engine.device import pick_device
from engine.evaluation import autocast_for
from engine.gate import GateConfig
from engine.inputs import Prepared, finish, place_heat, prepare
from engine.io import min_side_for, read_image_reduced
from engine.request import GradeRequest, GraderError
from engine.resources import default_model_dir, has_card
from engine.results import GradeResult, ModelInfo

__all__ = ["Grader", "GraderError", "GradeRequest", "NonFiniteOutputError"]
STUDENT_REQUEST = GradeRequest()


class NonFiniteOutputError(GraderError):
    """The model answered a photograph with NaN or infinite scores: no grade can be read from them."""


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
        gate_config: GateConfig | None = None,
    ) -> None:
        self.device = pick_device(device)
        self.gate_config = gate_config or GateConfig()  # the input gate's limits
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
        source, loaded = None, self._route(request)
        if isinstance(image, (str, Path)):
            # Decoded at the reduced scale the model needs; the heat map is still drawn at the file's full size.
            decoded = read_image_reduced(image, min_side_for(loaded.card.image_size))
            source, rgb, shape = str(image), decoded.rgb, decoded.full_size
        else:
            rgb = self._check_array(image)
            shape = rgb.shape[:2]
        t1 = time.perf_counter()
        prep = prepare(rgb, loaded.transform, request.lens, request.check_input, self.gate_config, shape)
        r = self._grade_prepared([prep], loaded, request, (time.perf_counter() - t1) * 1e3)[0]
        if isinstance(r, GraderError):
            raise r
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

    def _grade_prepared(self, preps: list[Prepared], loaded: _Loaded, request: GradeRequest,
                        prep_ms: float) -> list[GradeResult | NonFiniteOutputError]:
        """Grade a batch of prepared photographs: one forward pass, the OOD check on its features, the heat maps.

        A photograph whose scores (or heat map) are not finite gets a NonFiniteOutputError in its place.
        """
        n = len(preps)
        x = torch.stack([p.x for p in preps]).to(self.device, memory_format=torch.channels_last)
        scorer = getattr(loaded.model, "ood_scorer", None)
        want_pooled = scorer is not None and any(p.gate is not None for p in preps)
        t1 = time.perf_counter()
        with self._lock:
            out, logits, maps, pooled, t2 = self._forward(loaded, x, self._head_args(request, n), request, want_pooled)
        t3 = time.perf_counter()
        probs = torch.softmax(logits / loaded.card.calibration_temperature, dim=1).cpu().numpy()
        sub_pred = self._sub_predictions(out)
        explained = request.target.explained(logits) if request.cam else [None] * n
        weigh = cam_math(request.cam_method) if maps is not None else None
        head_ms = (t3 - t2) * 1e3
        crop = loaded.model.preprocess_cfg.crop
        results = []
        finite = np.isfinite(probs).all(axis=1) & torch.isfinite(logits).all(dim=1).cpu().numpy()
        for i, prep in enumerate(preps):
            heat = None
            if weigh is not None and finite[i]:
                raw = weigh.heat(maps[0][i : i + 1], maps[1][i : i + 1])
                finite[i] = bool(np.isfinite(raw).all())
                heat = place_heat(raw, prep.box, *prep.shape, prep.circle) if finite[i] else None
            if not finite[i]:
                results.append(_nonfinite(loaded, heat_map=weigh is not None and np.isfinite(probs[i]).all()))
                continue
            checked = finish(prep, crop, None if pooled is None else pooled[i], scorer)
            gate_ms = checked.timings_ms.get("total_ms", 0.0)
            p = probs[i]
            grade = int(p.argmax())
            results.append(GradeResult(
                grade=grade, probabilities=tuple(float(v) for v in p), confidence=float(p[grade]),
                expected_grade=float((p * np.arange(len(p))).sum()), sublabels_predicted=sub_pred[i] if sub_pred else {},
                sublabels_used=None if request.sublabels is None else dict(request.sublabels), cam=heat,
                cam_target=explained[i], model=loaded.info, device=str(self.device),
                timings_ms={"gate_ms": gate_ms, "preprocess_ms": max(prep_ms - gate_ms, 0.0),
                            "backbone_ms": (t2 - t1) * 1e3, "head_cam_ms": head_ms + (time.perf_counter() - t3) * 1e3 / n},
                input=checked,
            ))
        return results

    def _forward(self, loaded: _Loaded, x: torch.Tensor, head_args: tuple, request: GradeRequest, pooled: bool):
        """(head output, float logits, (activations, gradients) or None, pooled features or None, backbone end time).

        pooled: also return the (B, C) pooled CAM-layer features (engine.ood.pooled_features) of this pass.
        """
        model = loaded.model
        with torch.inference_mode(), autocast_for(self.device):
            feats = model.forward_features(x)
        t2 = time.perf_counter()
        if not request.cam:
            with torch.inference_mode():
                out = model.forward_head(feats.float(), *head_args)
                mean = model.cam_activations(feats).float().mean(dim=(2, 3)).cpu().numpy() if pooled else None
            return out, out["logits"].float(), None, mean, t2
        # A fresh leaf: the backward below stops here, at the CAM's target layer.
        feats = feats.float().clone().requires_grad_(True)
        with torch.enable_grad():
            out = model.forward_head(feats, *head_args)
            logits = out["logits"].float()
            (grads,) = torch.autograd.grad(request.target(logits, loaded.card.calibration_temperature), feats)
        acts = model.cam_activations(feats.detach()).float().cpu().numpy()
        grads = model.cam_activations(grads).float().cpu().numpy()
        return out, logits.detach(), (acts, grads), acts.mean(axis=(2, 3)) if pooled else None, t2

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
            # Decode, check and crop off the compute thread.
            try:
                decoded = read_image_reduced(p, min_side_for(loaded.card.image_size))
                return prepare(decoded.rgb, loaded.transform, request.lens, request.check_input, self.gate_config,
                               decoded.full_size), None
            except (ValueError, OSError) as e:
                return None, str(e)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            window = max(batch_size * 2, 4)
            futures = [pool.submit(load, p) for p in paths[:window]]
            nxt, pending = len(futures), []
            try:
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
            finally:  # closed early (a cancelled batch): files not yet decoding are not decoded
                for f in futures:
                    if f is not None:
                        f.cancel()

    def _flush(self, pending, loaded: _Loaded, request: GradeRequest):
        good = [q[1] for q in pending if q[1] is not None]
        results = iter(self._grade_prepared(good, loaded, request, 0.0) if good else [])
        for p, prep, err in pending:
            if prep is None:
                yield p, None, err
                continue
            r = next(results)
            if isinstance(r, GraderError):
                yield p, None, str(r)
            else:
                yield p, replace(r, source=p), None


def _nonfinite(loaded: _Loaded, heat_map: bool) -> NonFiniteOutputError:
    what = "an infinite or NaN heat map" if heat_map else "NaN or infinite scores"
    return NonFiniteOutputError(
        f"the {loaded.card.role} model {loaded.card.name!r} gave {what} for this photograph, so it has no grade; "
        "its weights are damaged or badly trained (retrain it, or switch back with `cataract-grade models revert`)")
