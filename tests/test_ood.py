"""Out-of-distribution statistics: Ledoit-Wolf as published, cross-fitted thresholds, safe files, a real model."""

from __future__ import annotations

import numpy as np
import pytest
from negatives import NEGATIVES

from engine.ood import OOD_CARD, OOD_WEIGHTS, OodError, OodScorer, fit_for_model, ledoit_wolf, pooled_features


def _features(n: int, d: int = 24, seed: int = 0) -> np.ndarray:
    """n draws from one correlated Gaussian (the same for every seed)."""
    mix = np.random.default_rng(100 + d).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mix + 3.0


def test_ledoit_wolf_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.covariance")
    x = _features(40, 30)
    mean, cov, shrink = ledoit_wolf(x)
    sk_cov, sk_shrink = sk.ledoit_wolf(x)
    assert shrink == pytest.approx(sk_shrink) and np.allclose(cov, sk_cov) and np.allclose(mean, x.mean(0))


def test_threshold_holds_held_out_images_and_flags_foreign_ones():
    scorer = OodScorer.fit(np.array_split(_features(600), 7), quantile=0.99)
    held_out = scorer.is_foreign(_features(400, seed=1))
    assert held_out.mean() < 0.04  # cross-fitting keeps the threshold honest for unseen images
    foreign = _features(50, seed=2) + np.random.default_rng(3).normal(0, 2.0, (50, 24))
    assert scorer.is_foreign(foreign).mean() > 0.95
    assert scorer.n_images == 600 and scorer.dim == 24 and 0 <= scorer.shrinkage <= 1


def test_statistics_round_trip_and_bad_files_are_refused(tmp_path):
    scorer = OodScorer.fit([_features(50)])
    scorer.save(tmp_path)
    back = OodScorer.load(tmp_path)
    x = _features(5, seed=9)
    assert np.allclose(back.scores(x), scorer.scores(x)) and back.threshold == scorer.threshold
    with pytest.raises(OodError, match="dimensions"):
        back.score(np.zeros(7))
    (tmp_path / OOD_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(OodError, match="cannot be read"):
        OodScorer.load(tmp_path)
    (tmp_path / OOD_WEIGHTS).unlink()
    with pytest.raises(OodError, match="missing"):
        OodScorer.load(tmp_path)
    scorer.save(tmp_path)
    (tmp_path / OOD_CARD).write_text('{"format": "something-else"}')
    with pytest.raises(OodError, match="not an out-of-distribution card"):
        OodScorer.load(tmp_path)


def test_fit_refuses_what_it_cannot_use():
    with pytest.raises(OodError, match="too few"):
        OodScorer.fit([_features(5)])
    with pytest.raises(OodError, match="disagree"):
        OodScorer.fit([_features(20, 4), _features(20, 5)])
    with pytest.raises(OodError, match="no features"):
        OodScorer.fit([])
    bad = _features(20)
    bad[3, 2] = np.nan
    with pytest.raises(OodError, match="NaN"):
        OodScorer.fit([bad])


def test_the_shipped_student_tells_its_photographs_from_other_pictures():
    """Statistics from the demo student's own features: held-out photographs mostly pass, other pictures do not."""
    import torch

    from engine.bundle import load_bundle
    from engine.data.transforms import preprocess_eval
    from engine.resources import default_model_dir
    from engine.synth.sheet import render_sample

    model, card = load_bundle(default_model_dir("student"), expect_role="student", device="cpu")
    model.eval()

    def batch(imgs):
        return torch.stack([preprocess_eval(im, card.image_size, card.mean, card.std) for im in imgs])

    def photos(seed, n):
        return [render_sample(np.random.default_rng([seed, i]), 128, target_grade=i % 8).image for i in range(n)]

    train = photos(61, 64)
    scorer = fit_for_model(model, [batch(train[i : i + 32]) for i in range(0, 64, 32)], quantile=0.98)
    held = scorer.is_foreign(pooled_features(model, batch(photos(62, 16))).numpy())
    others = [NEGATIVES[k](np.random.default_rng(i), 128) for k in ("document", "noise", "flat") for i in range(2)]
    foreign = scorer.is_foreign(pooled_features(model, batch(others)).numpy())
    assert held.sum() <= 2 and foreign.all(), (held, foreign)
