"""Compare every training method the engine offers on one synthetic dataset and split.

Each method is trained over several seeds on the patient-level split that
benchmarks/reproduce_seed.py uses, scored on the held-out test split (model selection
sees only the validation split), and written as one row of docs/results.md between
the `<!-- methods-table -->` markers: accuracy, QWK, within-one, MAE, parameters and
CPU latency (one image, batch 1, median of repeated forwards, measured one model at
a time after training).

Resumable: a run whose bundle exists is not trained again.

    .venv/bin/python benchmarks/compare_methods.py                       # CPU-sized defaults
    .venv/bin/python benchmarks/compare_methods.py --image-size 224 --epochs 40 --device cuda
    .venv/bin/python benchmarks/compare_methods.py --table-only          # rewrite the table
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from reproduce_seed import ensure_seed_data, fmt, speed, train_printed  # noqa: E402

import engine.compat  # noqa: E402,F401
from engine.bundle import load_bundle, read_card  # noqa: E402
from engine.models.registry import count_parameters  # noqa: E402
from engine.train import TrainConfig  # noqa: E402

VIT = "vit_tiny_patch16_224"

# name: (label, job, TrainConfig fields, teachers it learns from (method names))
METHODS: dict[str, tuple[str, str, dict, tuple[str, ...]]] = {
    "mlp": ("Sub-label-only MLP (no image)", "teacher", {"fusion": "mlp", "epochs_scale": 2.0}, ()),
    "plain": ("Image-only ResNet-18 student, no teacher", "student", {}, ()),
    "vit-plain": ("Image-only ViT-Tiny student, no teacher", "student", {"arch": VIT}, ()),
    "teacher": ("Fusion teacher, concat, grid tokens", "teacher", {}, ()),
    "teacher-zones": ("Fusion teacher, concat, centre/periphery zone tokens", "teacher", {"token_layout": "zones"}, ()),
    "coattn": ("Fusion teacher, co-attention", "teacher", {"fusion": "coattn"}, ()),
    "vit-teacher": ("Image-only ViT-Tiny teacher", "teacher", {"fusion": "none", "arch": VIT}, ()),
    "kd": ("ResNet-18 student, logit KD from the concat teacher", "kd", {}, ("teacher",)),
    "kd-t2": ("ResNet-18 student, logit KD with T=2, alpha=0.5", "kd", {"kd_temperature": 2.0, "kd_alpha": 0.5},
              ("teacher",)),
    "kd-token": ("ResNet-18 student, logit + token KD", "kd", {"token_kd": 1.0}, ("teacher",)),
    "kd-attn": ("ResNet-18 student, logit + attention KD", "kd", {"attn_kd": 1.0}, ("teacher",)),
    "kd-multi": ("ResNet-18 student, KD from concat + co-attention teachers", "kd", {}, ("teacher", "coattn")),
    "vit-kd": ("ViT-Tiny student, logit KD from the ViT teacher", "kd", {"arch": VIT}, ("vit-teacher",)),
}


def train_one(name: str, seed: int, args, data: Path, runs: Path) -> Path:
    _label, job, extra, teachers = METHODS[name]
    out = runs / f"{name}-s{seed}"
    if (out / "bundle" / "card.json").exists():
        return out
    extra = dict(extra)
    epochs = int(args.epochs * extra.pop("epochs_scale", 1.0))
    bundles = [str(train_one(t, seed, args, data, runs) / "bundle") for t in teachers]
    cfg = TrainConfig(
        job=job, dataset=str(data), out=str(out), epochs=epochs, image_size=args.image_size,
        batch_size=args.batch_size, lr=args.lr, device=args.device, seed=seed, split_seed=0,
        patience=args.patience, teacher=bundles[0] if bundles else None, extra_teachers=bundles[1:],
        name=f"{name}-s{seed}", **extra,
    )
    train_printed(cfg, f"{name} s{seed}")
    return out


def cpu_latencies_ms(bundles: dict[str, Path], reps: int = 100) -> dict[str, float]:
    """Median batch-1 CPU forward time per model, in inference mode, measured round-robin
    (one forward of each model in turn) so that load on the machine falls on all alike."""
    runners = {}
    for name, bundle in bundles.items():
        model, card = load_bundle(bundle)
        model = model.float().eval().to(memory_format=torch.channels_last)
        n_sub = len(card.schema["sublabels"])
        x = torch.randn(1, 3, card.image_size, card.image_size).to(memory_format=torch.channels_last)
        args = () if card.role == "student" else (
            torch.zeros(1, n_sub, dtype=torch.long), torch.ones(1, n_sub, dtype=torch.bool))
        runners[name] = (model, x, args)
    times: dict[str, list[float]] = {name: [] for name in runners}
    with torch.inference_mode():
        for i in range(reps + 10):
            for name, (model, x, args) in runners.items():
                t0 = time.perf_counter()
                model(x, *args)
                if i >= 10:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def write_table(args, runs: Path) -> str:
    header = (
        "| method | seeds | test accuracy % | test QWK | within-one % | MAE | params (M) | CPU ms/image | train img/s |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows = []
    firsts = {}
    for name in METHODS:
        done = [s for s in args.seeds if (runs / f"{name}-s{s}" / "bundle" / "card.json").exists()]
        if done:
            firsts[name] = runs / f"{name}-s{done[0]}" / "bundle"
    latencies = cpu_latencies_ms(firsts)
    for name, (label, *_rest) in METHODS.items():
        done = [s for s in args.seeds if (runs / f"{name}-s{s}" / "bundle" / "card.json").exists()]
        if not done:
            rows.append(f"| {label} | not run | | | | | | | |")
            continue
        test = [read_card(runs / f"{name}-s{s}" / "bundle").metrics["test"] for s in done]
        first = runs / f"{name}-s{done[0]}" / "bundle"
        model, _card = load_bundle(first)
        params = count_parameters(model) / 1e6
        latency = latencies[name]
        ips = statistics.median(speed(runs / f"{name}-s{s}")[0] for s in done)
        rows.append(
            f"| {label} | {', '.join(map(str, done))} | {fmt([t['acc'] for t in test])} | "
            f"{fmt([t['qwk'] for t in test], 1, 3)} | {fmt([t['within1'] for t in test])} | "
            f"{fmt([t['mae'] for t in test], 1, 2)} | {params:.2f} | {latency:.1f} | {ips:.0f} |"
        )
    return "\n".join([header, *rows])


TEMPLATE = """<!-- methods-table -->
## Every method on the same data ({date})

Mean ± standard deviation over seeds {seeds} on the patient-level split above
(split seed 0), scored on the held-out **test** split. Images {size} px, up to
{epochs} epochs (the MLP twice that), early stopping after {patience} epochs without
a better validation QWK, device {device}. Parameters and CPU latency are those of the
seed-{seed0} model: batch 1, median of 100 forwards at {size} px, {threads} thread(s),
{machine}, all models measured round-robin in one run after training. A teacher's
latency includes its sub-label tokens. Distilled students learn from the teacher(s) of
the same seed; the seeds column says which seeds each row has.

{table}

Reproduce (resumable): `{cmd}`
<!-- /methods-table -->"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "runs" / "seed-data"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "methods"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", choices=list(METHODS), default=list(METHODS))
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    ap.add_argument("--table-only", action="store_true", help="write the table from the runs that exist")
    args = ap.parse_args()

    data, runs = Path(args.data), Path(args.runs)
    ensure_seed_data(data)
    if not args.table_only:
        for seed in args.seeds:
            for name in args.only:
                train_one(name, seed, args, data, runs)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    text = TEMPLATE.format(
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), seeds=", ".join(map(str, args.seeds)),
        size=args.image_size, epochs=args.epochs, patience=args.patience, device=device, seed0=args.seeds[0],
        threads=torch.get_num_threads(), machine=platform.machine(), table=write_table(args, runs),
        cmd=" ".join(["python benchmarks/compare_methods.py", *(a for a in sys.argv[1:] if a != "--table-only")]),
    )
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    if "<!-- methods-table -->" in old and "<!-- /methods-table -->" in old:
        head, rest = old.split("<!-- methods-table -->", 1)
        text = head + text + rest.split("<!-- /methods-table -->", 1)[1]
    else:
        text = old.rstrip("\n") + "\n\n" + text + "\n"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
