"""What the recipe and distillation studies share: resumable runs, held-out scoring, tables.

A study is a dict of named runs (a TrainConfig recipe plus the runs it learns from).
Each run trains once into RUNS/<name>-s<seed>/ (a finished bundle is never trained
again), is scored on its test split and on held-out sets from a seed nobody tuned on,
and becomes one table row: mean ± sd over the seeds that exist.
"""

from __future__ import annotations

import fcntl
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reproduce_seed import train_printed  # noqa: E402

from engine.bundle import read_card  # noqa: E402
from engine.train import TrainConfig  # noqa: E402

HELDOUT_SEED = 31337  # never used to train or choose anything
HELDOUT_N = 800


@dataclass(frozen=True)
class Run:
    """One row: a label, a job, TrainConfig fields, and the runs (same seed) it needs as teachers."""

    label: str
    job: str
    fields: dict = field(default_factory=dict)
    teachers: tuple[str, ...] = ()
    data: str = "seed"  # which training set: the seed's 2,000 images, or a named larger one


def ensure_heldout(folder: Path, size: int, n: int = HELDOUT_N) -> Path:
    """A held-out synthetic set (seed HELDOUT_SEED, label noise 0.1) rendered at `size` px, written once."""
    if not (folder / "labels.csv").exists():
        from engine.synth.sheet import write_dataset

        write_dataset(folder, n=n, seed=HELDOUT_SEED, image_size=size, label_noise=0.1, workers=2)
    return folder


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold RUN/.lock while training it, so two study processes never train the same run at once."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # waits while another process trains this run
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def train_run(study: dict[str, Run], name: str, seed: int, base: dict, datasets: dict[str, Path], runs: Path) -> Path:
    """Train `name` (and first any teacher it needs) for `seed` unless its bundle exists; return the run folder."""
    run = study[name]
    out = runs / f"{name}-s{seed}"
    if (out / "bundle" / "card.json").exists():
        return out
    teachers = [str(train_run(study, t, seed, base, datasets, runs) / "bundle") for t in run.teachers]
    with run_lock(out):
        if (out / "bundle" / "card.json").exists():  # another process finished it while we waited
            return out
        fields = {**base, **run.fields}
        cfg = TrainConfig(job=run.job, dataset=str(datasets[run.data]), out=str(out), seed=seed, split_seed=0,
                          teacher=teachers[0] if teachers else None, extra_teachers=teachers[1:],
                          name=f"{name}-s{seed}", resume=(out / "checkpoint").exists(), **fields)
        train_printed(cfg, f"{name} s{seed}")
    return out


def heldout_scores(out: Path, heldout: dict[str, Path]) -> dict[str, dict]:
    """The run's bundle scored on every held-out set (all images), cached in RUN/heldout.json."""
    from engine.evaluation import evaluate_on_split

    cache = out / "heldout.json"
    scores = json.loads(cache.read_text()) if cache.exists() else {}
    for key, folder in heldout.items():
        if key not in scores:
            m = evaluate_on_split(out / "bundle", folder, {"seed": 0}, split="all", device="cpu")
            scores[key] = {k: m[k] for k in ("acc", "qwk", "mae", "within1", "recall", "n")}
            cache.write_text(json.dumps(scores, indent=1))
    return scores


def curve(out: Path) -> list[dict]:
    """The run's epoch events from log.jsonl."""
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [e for e in events if e["event"] == "epoch"]


def first_epoch_reaching(out: Path, qwk: float) -> tuple[int | None, float | None]:
    """(epoch, cumulative training seconds) when validation QWK first reached `qwk`; (None, None) if never."""
    total = 0.0
    for e in curve(out):
        total += e["seconds"]
        if e["val_qwk"] >= qwk:
            return e["epoch"], total
    return None, None


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    v = [x * scale for x in values]
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.mean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def row(name: str, run: Run, seeds: list[int], runs: Path, heldout: dict[str, Path]) -> str | None:
    """One markdown row over the seeds whose run exists, or None when none does."""
    done = [s for s in seeds if (runs / f"{name}-s{s}" / "bundle" / "card.json").exists()]
    if not done:
        return None
    outs = [runs / f"{name}-s{s}" for s in done]
    cards = [read_card(o / "bundle") for o in outs]
    test = [c.metrics["test"] for c in cards]
    val = [c.metrics["val"] for c in cards]
    held = [heldout_scores(o, heldout) for o in outs]
    epochs = [len(curve(o)) for o in outs]
    secs = [sum(e["seconds"] for e in curve(o)) for o in outs]
    ips = statistics.median(statistics.median(e["images_per_s"] for e in curve(o)) for o in outs)
    cells = [run.label, ", ".join(map(str, done)), mean_sd([v["qwk"] for v in val], 1, 3),
             mean_sd([t["acc"] for t in test], 100), mean_sd([t["qwk"] for t in test], 1, 3),
             mean_sd([t["within1"] for t in test], 100)]
    for key in heldout:
        cells += [mean_sd([h[key]["acc"] for h in held], 100), mean_sd([h[key]["qwk"] for h in held], 1, 3)]
    cells += [f"{statistics.mean(c.epochs for c in cards):.0f} / {statistics.mean(epochs):.0f}",
              f"{statistics.mean(secs) / 60:.0f}", f"{ips:.0f}"]
    return "| " + " | ".join(cells) + " |"


def table(study: dict[str, Run], seeds: list[int], runs: Path, heldout: dict[str, Path]) -> str:
    """The study's markdown table: validation, test and held-out figures, epochs and training time."""
    head = ["run", "seeds", "val QWK", "test exact %", "test QWK", "test within-one %"]
    for key in heldout:
        head += [f"{key} exact %", f"{key} QWK"]
    head += ["best / run epochs", "train min", "train img/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, run in study.items():
        r = row(name, run, seeds, runs, heldout)
        lines.append(r if r else f"| {run.label} | not run |" + " |" * (len(head) - 2))
    return "\n".join(lines)


def replace_section(path: Path, marker: str, text: str) -> None:
    """Write `text` between <!-- marker --> and <!-- /marker --> in `path` (appended when absent)."""
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    block = f"{start}\n{text.strip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def run_all(study: dict[str, Run], order: list[tuple[str, int]], base: dict, datasets: dict[str, Path],
            runs: Path) -> None:
    """Train every (name, seed) in `order` that is not done yet, timing the whole."""
    t0 = time.perf_counter()
    for name, seed in order:
        train_run(study, name, seed, base, datasets, runs)
    print(f"all runs: {time.perf_counter() - t0:.0f} s", flush=True)
