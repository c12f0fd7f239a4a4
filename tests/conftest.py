import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests never read or write the user's own model store.
os.environ.setdefault("CATARACT_GRADER_HOME", tempfile.mkdtemp(prefix="cataract-grader-test-store-"))

import pytest  # noqa: E402

import engine.compat  # noqa: E402,F401  (before anything imports torchvision)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """32 synthetic images at 64 px with labels.csv and schema.json (shared, read-only)."""
    from engine.synth.sheet import write_dataset

    return write_dataset(tmp_path_factory.mktemp("tiny") / "data", n=32, seed=7, image_size=64, balanced=True)


def _save_tiny(path, arch, role, **cfg):
    import torch

    from engine.bundle import ModelCard, save_bundle
    from engine.data.dataset import IMAGENET_MEAN, IMAGENET_STD
    from engine.models import create_model
    from engine.schema import DEFAULT_SCHEMA

    torch.manual_seed(0)
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    model = create_model(arch, sublabel_ranges=ranges, image_size=64, **cfg)
    card = ModelCard(
        role=role, name=f"tiny-{role}", arch=model.arch, arch_config=model.config, image_size=64,
        mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), grades=list(DEFAULT_SCHEMA.grade_names),
        schema=DEFAULT_SCHEMA.to_dict(), fusion="concat" if role == "teacher" else None, teacher=None,
        data_fingerprint=None, seed=0, epochs=0, metrics={},
        notice="Demo model trained on synthetic images - not for clinical use.",
    )
    save_bundle(path, model, card)
    return path


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """(student_dir, teacher_dir): untrained resnet18 bundles at 64 px, for wiring tests."""
    root = tmp_path_factory.mktemp("bundles")
    student = _save_tiny(root / "student", "student", "student", backbone="resnet18")
    teacher = _save_tiny(root / "teacher", "teacher_concat", "teacher", backbone="resnet18", dim=32, depth=1, heads=2)
    return student, teacher


@pytest.fixture(scope="session")
def teachers(tiny_dataset, tmp_path_factory):
    """(co-attention teacher run, image-only teacher run), one epoch each at 64 px, through the CLI."""
    from model_builders import FAST

    from engine.cli import main

    root = tmp_path_factory.mktemp("teachers")
    assert main(["train", "teacher", str(tiny_dataset), "--out", str(root / "co"), "--fusion", "coattn",
                 "--token-layout", "zones", *FAST]) == 0
    assert main(["train", "teacher", str(tiny_dataset), "--out", str(root / "img"), "--fusion", "none", *FAST]) == 0
    return root / "co", root / "img"
