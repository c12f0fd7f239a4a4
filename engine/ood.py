"""Out-of-distribution score: how far an image's pooled model features lie from the training set's.

`OodScorer.fit` takes the pooled features of the training images in batches, estimates
their mean and a Ledoit-Wolf shrunk covariance (well conditioned even with fewer images
than feature dimensions), and sets the threshold at a quantile of the Mahalanobis
distances of training images scored by a fit that did not see them (two-fold cross-fit,
so the threshold is not the optimistic in-sample one). The final mean and covariance
use every image. Saved as `ood.safetensors` (mean, precision) + `ood.json` (threshold
and provenance), so a bundle can carry the statistics of its own training set.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from engine.errors import EngineError
from engine.fsutil import atomic_write_bytes

OOD_WEIGHTS = "ood.safetensors"
OOD_CARD = "ood.json"
OOD_FILES = (OOD_WEIGHTS, OOD_CARD)
FORMAT = "cataract-grader-ood"
FORMAT_VERSION = 1
DEFAULT_QUANTILE = 0.995


class OodError(EngineError):
    """Statistics that cannot be fitted, saved or loaded (too few images, a damaged or foreign file)."""


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, Ledoit-Wolf shrunk covariance and the shrinkage (0..1) of the rows of x (float64)."""
    n, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    s = xc.T @ xc / n
    mu = float(np.trace(s)) / d
    delta = float(((s - mu * np.eye(d)) ** 2).sum()) / d
    x2 = xc * xc
    beta_bar = float((x2.T @ x2).sum() / n - (s * s).sum()) / (d * n)
    beta = min(beta_bar, delta)
    shrink = beta / delta if delta > 0 else 1.0
    cov = (1.0 - shrink) * s
    cov[np.diag_indices(d)] += shrink * mu
    return mean, cov, shrink


def _precision(cov: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric covariance, with a floor on its eigenvalues so it always exists."""
    w, v = np.linalg.eigh(cov)
    floor = max(float(w.max()) * 1e-9, 1e-12)
    return (v / np.maximum(w, floor)) @ v.T


def _distances(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    xc = x - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", xc, precision, xc), 0.0))


def _as_rows(batch: object) -> np.ndarray:
    """One batch of pooled features as a float64 (n, d) array (a torch tensor, a numpy array or a list)."""
    if hasattr(batch, "detach"):
        batch = batch.detach().float().cpu().numpy()
    a = np.asarray(batch, np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise OodError(f"pooled features must be (images, dimensions), not shape {a.shape}")
    return a


@dataclass(frozen=True, eq=False)
class OodScorer:
    """Mahalanobis distance to a training set's pooled features, with the distance above which an image is foreign."""

    mean: np.ndarray  # (d,) float64
    precision: np.ndarray  # (d, d) float64, the inverse shrunk covariance
    threshold: float
    quantile: float
    n_images: int
    shrinkage: float

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, batches: Iterable[object], quantile: float = DEFAULT_QUANTILE, seed: int = 0) -> OodScorer:
        """Fit from an iterable of feature batches (each (n, d)); the threshold is a cross-fitted quantile."""
        if not 0.5 <= quantile < 1.0:
            raise OodError(f"the threshold quantile must be from 0.5 to below 1, not {quantile}")
        rows = [_as_rows(b) for b in batches]
        if not rows:
            raise OodError("no features were given to fit the out-of-distribution statistics")
        dims = {r.shape[1] for r in rows}
        if len(dims) != 1:
            raise OodError(f"feature batches disagree on their dimension: {sorted(dims)}")
        x = np.concatenate(rows)
        if x.shape[0] < 10:
            raise OodError(f"{x.shape[0]} images are too few to fit out-of-distribution statistics (10 or more)")
        if not np.isfinite(x).all():
            raise OodError("the features hold NaN or infinite values")
        order = np.random.default_rng(seed).permutation(x.shape[0])
        halves = order[: x.shape[0] // 2], order[x.shape[0] // 2 :]
        held = []
        for fit_idx, score_idx in (halves, halves[::-1]):
            m, c, _ = ledoit_wolf(x[fit_idx])
            held.append(_distances(x[score_idx], m, _precision(c)))
        threshold = float(np.quantile(np.concatenate(held), quantile))
        mean, cov, shrink = ledoit_wolf(x)
        return cls(mean, _precision(cov), threshold, float(quantile), int(x.shape[0]), float(shrink))

    def scores(self, features: object) -> np.ndarray:
        """Mahalanobis distance of each row of (n, d) features (a single (d,) vector gives one)."""
        x = _as_rows(features)
        if x.shape[1] != self.dim:
            raise OodError(f"these features have {x.shape[1]} dimensions; the statistics were fitted on {self.dim}")
        return _distances(x, self.mean, self.precision)

    def score(self, features: object) -> float:
        """The distance of one image's pooled features."""
        s = self.scores(features)
        if s.shape[0] != 1:
            raise OodError(f"score takes one image's features; got {s.shape[0]} (use scores)")
        return float(s[0])

    def is_foreign(self, features: object) -> np.ndarray:
        """True for each image whose distance is above the threshold."""
        return self.scores(features) > self.threshold

    def to_files(self) -> dict[str, bytes]:
        """The two files' contents: ood.safetensors (mean, precision) and ood.json (threshold and provenance)."""
        data = safetensors.numpy.save({"mean": self.mean, "precision": self.precision}, metadata={"format": FORMAT})
        card = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "dim": self.dim, "threshold": self.threshold,
            "quantile": self.quantile, "n_images": self.n_images, "shrinkage": self.shrinkage,
            "distance": "mahalanobis", "covariance": "ledoit-wolf",
        }
        return {OOD_WEIGHTS: data, OOD_CARD: (json.dumps(card, indent=2) + "\n").encode("utf-8")}

    def save(self, folder: str | Path) -> None:
        """Write ood.safetensors and ood.json into folder (each through a temporary file)."""
        for name, data in self.to_files().items():
            atomic_write_bytes(Path(folder) / name, data)

    @classmethod
    def load(cls, folder: str | Path) -> OodScorer:
        """Read statistics written by save, or raise OodError saying what is wrong."""
        folder = Path(folder)
        try:
            card = json.loads((folder / OOD_CARD).read_text(encoding="utf-8"))
            tensors = safetensors.numpy.load((folder / OOD_WEIGHTS).read_bytes())
        except FileNotFoundError as e:
            raise OodError(f"no out-of-distribution statistics in {folder} ({Path(e.filename).name} is missing)") from None
        except (OSError, ValueError, UnicodeDecodeError, SafetensorError) as e:
            raise OodError(f"the out-of-distribution statistics in {folder} cannot be read ({e})") from None
        if not isinstance(card, dict) or card.get("format") != FORMAT:
            raise OodError(f"{folder / OOD_CARD} is not an out-of-distribution card")
        if card.get("format_version") != FORMAT_VERSION:
            raise OodError(f"{folder / OOD_CARD} has format version {card.get('format_version')!r}; "
                           f"this version reads {FORMAT_VERSION}")
        mean, precision = tensors.get("mean"), tensors.get("precision")
        d = card.get("dim")
        if mean is None or precision is None or mean.shape != (d,) or precision.shape != (d, d):
            raise OodError(f"{folder / OOD_WEIGHTS} does not hold a {d}-dimensional mean and precision")
        threshold = card.get("threshold")
        if not isinstance(threshold, (int, float)) or not math.isfinite(threshold) or threshold <= 0:
            raise OodError(f"{folder / OOD_CARD} has no usable threshold ({threshold!r})")
        if not (np.isfinite(mean).all() and np.isfinite(precision).all()):
            raise OodError(f"{folder / OOD_WEIGHTS} holds NaN or infinite values")
        return cls(mean.astype(np.float64), precision.astype(np.float64), float(threshold),
                   float(card.get("quantile", DEFAULT_QUANTILE)), int(card.get("n_images", 0)),
                   float(card.get("shrinkage", 0.0)))


# ---- in a model bundle ----------------------------------------------------------------------------
def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def card_entry(scorer: OodScorer, files: dict[str, bytes]) -> dict:
    """What a model card says of the statistics beside its weights: threshold, size, and each file's digest."""
    return {"dim": scorer.dim, "threshold": scorer.threshold, "quantile": scorer.quantile, "n_images": scorer.n_images,
            "files": {name: _digest(data) for name, data in sorted(files.items())}}


def entry_problem(entry: object) -> str | None:
    """Why a card's `ood` field is unusable (None when it is null or well formed)."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        return "card field 'ood' must be a JSON object or null"
    files = entry.get("files")
    if not isinstance(files, dict) or set(files) != set(OOD_FILES) or not all(isinstance(v, str) for v in files.values()):
        return f"card field 'ood' must name the digests of {' and '.join(OOD_FILES)}"
    dim, threshold = entry.get("dim"), entry.get("threshold")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        return f"card field 'ood' has no usable dim ({dim!r})"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (math.isfinite(threshold) and threshold > 0):
        return f"card field 'ood' has no usable threshold ({threshold!r})"
    return None


def load_for_bundle(folder: str | Path, entry: dict | None, dim: int | None = None) -> OodScorer | None:
    """The statistics a bundle's card describes (None when it describes none), checked against the card.

    Raises OodError when the files are missing, changed since training, damaged, or of
    another width than the model's features.
    """
    if entry is None:
        return None
    folder = Path(folder)
    for name in OOD_FILES:
        try:
            data = (folder / name).read_bytes()
        except FileNotFoundError:
            raise OodError(f"{folder}: the card describes out-of-distribution statistics but {name} is missing") from None
        except OSError as e:
            raise OodError(f"{folder / name} cannot be read ({e.strerror or e})") from None
        if _digest(data) != entry["files"][name]:
            raise OodError(f"{folder / name} is not the file its card describes (it was changed or damaged after "
                           "training)")
    scorer = OodScorer.load(folder)
    if scorer.dim != entry["dim"] or (dim is not None and scorer.dim != dim):
        raise OodError(f"{folder}: the out-of-distribution statistics are {scorer.dim}-dimensional, but the model's "
                       f"features have {dim if dim is not None else entry['dim']}")
    return scorer


def pooled_features(model, x) -> object:
    """The (B, C) pooled features of a student or teacher for a preprocessed batch: its CAM map, averaged."""
    import torch

    with torch.inference_mode():
        return model.cam_activations(model.forward_features(x)).float().mean(dim=(2, 3))


def fit_for_model(model, batches: Iterable[object], quantile: float = DEFAULT_QUANTILE) -> OodScorer:
    """The one-call training hook: OodScorer.fit on the pooled features of preprocessed image batches."""
    return OodScorer.fit((pooled_features(model, x) for x in batches), quantile)
