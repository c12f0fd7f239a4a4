"""Do the heat maps point at the opacity? Grader maps scored against the generator's true opacity masks.

Photographs are rendered in-process (engine.synth: each sample's drawn opacity mask and
pupil circle come with it) from a seed nobody trained on, JPEG-compressed like the
datasets, and graded through `Grader.grade` exactly as the app does. Per map (values
0-1 at the image's resolution):

- pupil mass: the share of the map's total inside the pupil circle;
- within-pupil AUC: the map as a detector of opacity pixels (mask > 0.1) among the
  pupil's pixels (0.5 = chance), over images with both kinds;
- pointing game: the map's peak within 2 % of the image side of an opacity pixel, over
  images with an opacity;
- ROAD (pytorch_grad_cam.metrics.road.ROADCombined at 20/40/60/80 %): how much the
  target's score falls when the most relevant pixels are imputed away versus the
  least relevant; higher is more faithful. Run on the first --road-n images.
- cost: `Grader.grade` with the map over a bare forward, interleaved (<= 1.15 is the goal).

Variants: each --model bundle, as trained and with its CAM layer moved (stride16: the
last stride-16 stage) or its last stage dilated (output stride 16), each CAM method and
target. The last line is JSON.

    .venv/bin/python benchmarks/bench_cam.py --model resources/models/student --n 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.bundle import read_card  # noqa: E402
from engine.infer import Grader, GradeRequest  # noqa: E402

OPAQUE = 0.1


def photographs(n: int, seed: int, size: int) -> list[dict]:
    """n rendered eyes with their true opacity masks and pupil circles, after a JPEG round trip (q 92)."""
    from engine.synth.render import draw_session
    from engine.synth.sample import render_sample

    out = []
    for i in range(n):
        session = draw_session(np.random.default_rng([seed, i // 2, 1]))
        s = render_sample(np.random.default_rng([seed, i, 0]), size, None, 0.1, session=session)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        yy, xx = np.mgrid[:size, :size]
        pupil = (xx - s.pupil_center[0]) ** 2 + (yy - s.pupil_center[1]) ** 2 <= s.pupil_radius**2
        out.append({"rgb": rgb, "opaque": s.opacity_mask > OPAQUE, "pupil": pupil, "grade": s.true_grade})
    return out


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Mann-Whitney AUC of `scores` for `positive` pixels against the rest (ties count half); None if one-sided."""
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def point_hits(cam: np.ndarray, opaque: np.ndarray, tolerance: int) -> bool:
    """The map's peak lies within `tolerance` px of an opacity pixel."""
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    near = cv2.dilate(opaque.astype(np.uint8), np.ones((2 * tolerance + 1,) * 2, np.uint8))
    return bool(near[y, x])


def map_scores(cams: list[np.ndarray], photos: list[dict]) -> dict:
    """Pupil mass, within-pupil AUC and pointing game over a list of maps."""
    mass, aucs, hits = [], [], []
    tol = max(1, round(0.02 * photos[0]["rgb"].shape[0]))
    for cam, ph in zip(cams, photos):
        total = float(cam.sum())
        mass.append(float(cam[ph["pupil"]].sum()) / total if total > 0 else 0.0)
        a = auc(cam[ph["pupil"]], ph["opaque"][ph["pupil"]])
        if a is not None:
            aucs.append(a)
        if ph["opaque"].any():
            hits.append(point_hits(cam, ph["opaque"], tol))
    return {"pupil_mass": statistics.mean(mass), "pupil_auc": statistics.mean(aucs) if aucs else None,
            "n_auc": len(aucs), "pointing": statistics.mean(hits) if hits else None, "n_pointing": len(hits)}


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["logits"]


def road(grader: Grader, cams: list[np.ndarray], photos: list[dict], target, method_grades: list[int]) -> float:
    """pytorch_grad_cam's ROADCombined (20/40/60/80 %) on the maps at the network's input resolution."""
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    loaded = grader._models["student"]
    size, temp = loaded.card.image_size, loaded.card.calibration_temperature
    grades = torch.arange(8, dtype=torch.float32)

    def severity(output: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(output / temp, dim=-1) * grades).sum(-1)

    def on_input(cam: np.ndarray) -> np.ndarray:
        """The map over the part of the photograph the model saw, at its input size."""
        x0, y0, side = loaded.model.preprocess_cfg.crop_box(*cam.shape)
        return cv2.resize(cam[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)

    x = torch.stack([loaded.transform(p["rgb"]) for p in photos])
    small = np.stack([on_input(c) for c in cams]).astype(np.float32)
    targets = [severity if target == "severity" else ClassifierOutputTarget(g) for g in method_grades]
    with torch.no_grad():
        scores = ROADCombined(percentiles=[20, 40, 60, 80])(x, small, targets, _Logits(grader._student))
    return float(np.mean(scores))


def cost_ratio(grader: Grader, rgb: np.ndarray, method: str, repeats: int) -> float:
    """Median Grader.grade-with-map time over a median bare forward, interleaved call by call."""
    loaded = grader._models["student"]
    x = loaded.transform(rgb)[None].to(memory_format=torch.channels_last)
    model = loaded.model
    bare, graded = [], []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(x)["logits"].argmax(1)
        t1 = time.perf_counter()
        grader.grade(rgb, GradeRequest(target="severity", cam_method=method))
        t2 = time.perf_counter()
        if i >= 3:
            bare.append(t1 - t0)
            graded.append(t2 - t1)
    return statistics.median(graded) / statistics.median(bare)


def variant_bundle(src: Path, tmp: Path, **config) -> Path:
    """A copy of bundle `src` whose card asks for another CAM layer or output stride (same weights)."""
    dst = tmp / f"{src.name}-{'-'.join(f'{k}{v}' for k, v in config.items()) or 'as-trained'}"
    shutil.copytree(src, dst)
    card = json.loads((dst / "card.json").read_text())
    card["arch_config"].update(config)
    if config:  # the OOD statistics were fitted on the as-trained features; a moved layer pools other ones
        card.pop("ood", None)
    (dst / "card.json").write_text(json.dumps(card, indent=2))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="student bundle (repeatable)")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=8128)
    ap.add_argument("--size", type=int, default=256, help="photograph size in px")
    ap.add_argument("--methods", nargs="+", default=["gradcam", "hirescam", "layercam"])
    ap.add_argument("--targets", nargs="+", default=["severity", "predicted"],
                    help="heat-map targets; the first method is run with each, the others with the first only")
    ap.add_argument("--layers", nargs="+", default=["final", "stride16", "dilated"],
                    help="final (as trained), stride16 (CAM at the last stride-16 stage), dilated (output stride 16)")
    ap.add_argument("--road-n", type=int, default=24, help="images scored with ROAD (slow)")
    ap.add_argument("--repeats", type=int, default=15, help="timing repeats per variant")
    args = ap.parse_args()

    torch.manual_seed(0)
    photos = photographs(args.n, args.seed, args.size)
    print(f"{args.n} photographs (seed {args.seed}, {args.size} px); {sum(p['opaque'].any() for p in photos)} "
          f"with an opacity", flush=True)
    layer_cfg = {"final": {}, "stride16": {"cam_layer": "stride16"}, "dilated": {"output_stride": 16}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model:
            for layer in args.layers:
                bundle = variant_bundle(Path(model), Path(tmp), **layer_cfg[layer])
                grader = Grader(bundle, device="cpu")
                name = read_card(bundle).name
                for method in args.methods:
                    for target in args.targets if method == args.methods[0] else args.targets[:1]:
                        t0 = time.perf_counter()
                        request = GradeRequest(target=target, cam_method=method)
                        results = [grader.grade(p["rgb"], request) for p in photos]
                        cams = [r.cam for r in results]
                        row = {"model": name, "layer": layer, "method": method, "target": target,
                               **map_scores(cams, photos)}
                        k = args.road_n
                        row["road"] = road(grader, cams[:k], photos[:k], target, [r.grade for r in results[:k]])
                        row["grid"] = "x".join(map(str, grader._student.forward_features(torch.zeros(
                            1, 3, grader.student_card.image_size, grader.student_card.image_size)).shape[-2:]))
                        row["cost"] = cost_ratio(grader, photos[0]["rgb"], method, args.repeats)
                        row["seconds"] = time.perf_counter() - t0
                        rows.append(row)
                        print(f"{name:>28} {layer:>8} {row['grid']:>5} {method:>9} {target:>9}: pupil mass "
                              f"{row['pupil_mass']:.2f}  AUC {row['pupil_auc']:.2f}  pointing {row['pointing']:.2f}  "
                              f"ROAD {row['road']:+.3f}  cost x{row['cost']:.2f}", flush=True)
    print(json.dumps({"n": args.n, "seed": args.seed, "size": args.size, "rows": rows}))


if __name__ == "__main__":
    main()
