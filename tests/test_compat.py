"""torchvision, timm and pytorch_grad_cam import and run next to the CPU torch."""

import numpy as np
import torch

import engine.compat as compat


def test_compat_is_idempotent():
    assert compat.ensure_torchvision_ops() is False  # already handled on import
    assert hasattr(torch.ops.torchvision, "nms")


def test_timm_model_runs():
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=8).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 8)


def test_grad_cam_runs_and_gives_a_map():
    import timm
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=8).eval()
    x = torch.rand(1, 3, 64, 64)
    with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(3)])
    assert heat.shape == (1, 64, 64)
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0
