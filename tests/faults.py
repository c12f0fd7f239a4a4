"""The fault-injection cases of issue #17, shared by tests/test_faults.py and benchmarks/fault_injection.py
(which also runs them against another checkout, for a before/after table). One function per case, in
fault_files.py (bombs, labels.csv, card sizes), fault_jobs.py (killed jobs, undecoded images),
fault_store.py (the model store) and fault_outputs.py (non-finite outputs, failing writes, batch output);
the table of cases is here.

A case does one hostile or unlucky thing and returns what happened in one line. `outcome()`
turns a refusal into "refused: <sentence>", a crash into "CRASH <type>: ...", and a missing
API (an older checkout) into "n/a". Cases marked long are benchmark-only (big files, real
training runs, real SIGKILLs).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fault_files import (
    card_image_size_100000,
    jpeg_two_frames,
    large_photo_for_the_model,
    lenient_grades,
    misled_header_check,
    tiff_huge_second_page,
    tiff_huge_tiles,
    tiff_size_in_signed_type,
    tiff_tall_strips,
    tiff_width_twice,
    unterminated_quote,
)
from fault_jobs import (
    checkpoint_old_left_behind,
    fresh_job_over_foreign_checkpoint,
    kill_at_step,
    killed_between_renames,
    resume_with_nothing_to_resume,
    temps_of_killed_writes,
    train_killed_by_sigkill,
    truncated_test_image,
)
from fault_outputs import (
    cam_names_taken_by_folders,
    csv_disk_full,
    csv_file_size_limit,
    csv_killed_midway,
    grade_nonfinite,
    heat_map_names_collide,
    predict_json_nonfinite,
    predict_text_nonfinite,
    progress_event_nan_loss,
    promote_shutil_error,
    train_safetensor_error,
    unsupported_files_in_dir,
)
from fault_store import (
    huge_backbone_card,
    list_with_a_card_name_not_text,
    list_with_a_deeply_nested_card,
    padded_weights,
    promote_nan_weights,
    promote_pickle,
    promote_with_a_full_disk,
)


@dataclass(frozen=True)
class Case:
    family: str
    name: str  # what was tried
    run: Callable[[Ctx], str]
    expect: str  # a piece of the outcome this code must give
    long: bool = False


class Ctx:
    """A scratch folder per case, plus a tiny dataset and bundle built once and copied."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dataset: Path | None = None
        self._bundle: Path | None = None
        self.n = 0

    def tmp(self) -> Path:
        self.n += 1
        path = self.root / f"case{self.n}"
        path.mkdir(parents=True)
        return path

    def dataset(self) -> Path:
        if self._dataset is None:
            from engine.synth.sheet import write_dataset

            self._dataset = write_dataset(self.root / "data", n=16, seed=3, image_size=48, balanced=True)
        return shutil.copytree(self._dataset, self.tmp() / "data")

    def bundle(self) -> Path:
        if self._bundle is None:
            self._bundle = _tiny_bundle(self.root / "bundle")
        return shutil.copytree(self._bundle, self.tmp() / "bundle")


def _tiny_bundle(path: Path) -> Path:
    import torch

    from engine.bundle import ModelCard, save_bundle
    from engine.models import create_model
    from engine.schema import DEFAULT_SCHEMA

    torch.manual_seed(0)
    ranges = [[s.minimum, s.maximum] for s in DEFAULT_SCHEMA.sublabels]
    model = create_model("student", backbone="resnet18", sublabel_ranges=ranges, image_size=64)
    card = ModelCard(role="student", name="fault-student", arch=model.arch, arch_config=model.config, image_size=64,
                     grades=list(DEFAULT_SCHEMA.grade_names), schema=DEFAULT_SCHEMA.to_dict(), metrics={})
    save_bundle(path, model, card)
    return path


def outcome(case: Case, ctx: Ctx) -> str:
    """Run a case; every way it can end, as one line."""
    try:
        return case.run(ctx)
    except (ImportError, AttributeError) as e:
        if "has no attribute" in str(e) or isinstance(e, ImportError):
            return f"n/a ({type(e).__name__}: {e})"
        return f"CRASH {type(e).__name__}: {e}"
    except ValueError as e:
        return f"refused: {_one_line(e)}"
    except BaseException as e:  # noqa: BLE001  (a crash is an outcome to report, not to hide)
        if isinstance(e, KeyboardInterrupt):
            raise
        return f"CRASH {type(e).__name__}: {_one_line(e)}"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 400 else text[:397] + "..."


# ---- the table ---------------------------------------------------------------------------------

B, K, S, D, N, H = ("1 decompression bombs", "2 killed training runs", "3 model store", "6 undecoded images",
                    "8 lenient numbers", "9 hostile sizes")
F, W, G = "4 non-finite outputs", "5 failing writes", "7 batch output gaps"
STEPS = ["checkpoint.started", "checkpoint.model-written", "checkpoint.extra-written", "checkpoint.state-written",
         "checkpoint.old-moved", "checkpoint.new-moved", "checkpoint.old-removing"]

CASES: list[Case] = [
    Case(B, "TIFF gives width/height twice (20000 first, 10 last)", tiff_width_twice, "gives its width twice"),
    Case(B, "real 390 KB deflated TIFF bomb, 20000x20000, width twice", lambda c: tiff_width_twice(c, 20000),
         "gives its width twice", long=True),
    Case(B, "TIFF size 30000x30000 in a signed type", tiff_size_in_signed_type, "unreadable type"),
    Case(B, "TIFF page 2 is 20000x20000", tiff_huge_second_page, "page 2 20000x20000"),
    Case(B, "TIFF 16x16 image with 15000x15000 tiles", tiff_huge_tiles, "far larger than the 16x16 image"),
    Case(B, "TIFF 10000x1 image with 20000-row strips", tiff_tall_strips, "far larger than the 10000x1 image"),
    Case(B, "JPEG with two frame headers", jpeg_two_frames, "two frame headers"),
    Case(B, "header check misled: OpenCV's own limit", misled_header_check, "more than the limit of 80,000,000"),
    Case(B, "4000x3000 JPEG graded with a heat map", large_photo_for_the_model, "decoded at 1500x2000 for the model; "
         "heat map 3000x4000", long=True),  # in make test: tests/test_large_images.py
]
CASES += [Case(K, f"checkpoint write killed at {s}", kill_at_step(s), "resumes after epoch "
               + ("2" if STEPS.index(s) >= 3 else "1") + "; next save leaves ['checkpoint']") for s in STEPS]
CASES += [
    Case(K, "half-deleted checkpoint.old beside the checkpoint", checkpoint_old_left_behind,
         "resumes after epoch 2; folder holds ['checkpoint']"),
    Case(K, "killed between the renames (old + complete new temp)", killed_between_renames, "resumes after epoch 2"),
    Case(K, "train --out over a checkpoint/ it did not create", fresh_job_over_foreign_checkpoint,
         "which no job of this app made there"),
    Case(K, "same, with a real epoch of training", lambda c: fresh_job_over_foreign_checkpoint(c, 1),
         "which no job of this app made there", long=True),
    Case(K, "temp folders of killed writes, next start", temps_of_killed_writes, "after the next start: none"),
    Case(K, "--resume with no checkpoint", resume_with_nothing_to_resume, "no checkpoint in"),
]
CASES += [Case(K, f"real SIGKILL of `train --epochs 3` at {s} #{n}", train_killed_by_sigkill(s, n), expect, long=True)
          for s, n, expect in [
              ("checkpoint.model-written", 2, "--resume started at epoch 2 "),  # epoch 2's write: epoch 1 kept
              ("checkpoint.state-written", 2, "--resume started at epoch 3 "),  # epoch 2 complete, not yet swapped
              ("checkpoint.old-moved", 1, "--resume started at epoch 3 "),  # the first save has nothing to move
              ("checkpoint.new-moved", 2, "--resume started at epoch 3 "),
              ("checkpoint.old-removing", 1, "--resume started at epoch 3 "),
              ("bundle.files-written", 1, "--resume started at epoch 4 and wrote the bundle"),
              ("atomic.written", 1, "there is no checkpoint in"),  # run.json, before any epoch
          ]]
CASES += [
    Case(S, "promote a pickle named model.safetensors", promote_pickle, "not a safetensors file"),
    Case(S, "promote NaN weights", promote_nan_weights, "holds NaN or infinite weights"),
    Case(S, "card names convnext_xxlarge (3.4 GB) over ResNet-18 weights", huge_backbone_card,
         "does not fit a student model"),
    Case(S, "weights file padded past its header", padded_weights, "cut off or padded"),
    Case(S, "models list with a card whose name is 5", list_with_a_card_name_not_text,
         "models list exit 0, 1 bundle(s) listed"),
    Case(S, "models list with card.json nested 200,000 deep", list_with_a_deeply_nested_card,
         "models list exit 0, 1 bundle(s) listed"),
    Case(S, "promote a bundle from outside onto a full disk", promote_with_a_full_disk,
         "could not be copied into the store (No space left on device); nothing was changed"),
    Case(F, "predict --json, finite weights whose scores overflow (head weights 3e38)", predict_json_nonfinite,
         "exit 2; stdout 1 line(s), all valid JSON; the student model 'fault-student' gave NaN or infinite scores"),
    Case(F, "predict (text), same bundle", predict_text_nonfinite, "exit 2; the student model 'fault-student' gave NaN "
         "or infinite scores for this photograph, so it has no grade"),
    Case(F, "Grader.grade, same bundle", grade_nonfinite, "gave NaN or infinite scores for this photograph"),
    Case(F, "train --progress json, an epoch with a NaN loss", progress_event_nan_loss,
         "1 line(s), all valid JSON; read back as train_loss nan"),
    Case(W, "predict --csv, the disk fills at the 3rd row", csv_disk_full,
         "(No space left on device); the 2 row(s) written before are kept in"),
    Case(W, "predict --csv, files may not grow past 1500 bytes (RLIMIT_FSIZE)", csv_file_size_limit,
         "(File too large); the ",
         long=True),
    Case(W, "real SIGKILL of predict --csv at the 4th of 6 rows", csv_killed_midway,
         "SIGKILLed; grades.csv.partial holds 3 row(s)", long=True),
    Case(W, "predict --cam-dir, every heat-map path taken by a folder", cam_names_taken_by_folders,
         "exit 2; files written []; error: 2 heat map file(s) could not be written"),
    Case(W, "train: best.safetensors damaged on disk during epoch 1", train_safetensor_error,
         "exit 2; last event error: the best weights"),
    Case(W, "promote: the copy fails with shutil.Error (a full disk)", promote_shutil_error,
         "could not be copied into the store (No space left on device); nothing was changed"),
    Case(G, "predict --dir with a .gif and a .webp beside a photograph", unsupported_files_in_dir,
         "exit 0; 3 files, 3 CSV rows, 3 JSON objects; clip.gif: it has the extension '.gif'"),
    Case(G, "heat maps of a/x.png, b/x.png, x.png and x.tif", heat_map_names_collide,
         "4 inputs, 4 heat maps: ['a/x.png_cam.png', 'b/x.png_cam.png', 'x.png_cam.png', 'x.tif_cam.png']"),
    Case(D, "truncated image in the test split", truncated_test_image, "after 0 epoch(s):"),
    Case(D, "same, 3 epochs", lambda c: truncated_test_image(c, 3), "after 0 epoch(s):", long=True),
    Case(N, "grades 0_7, ٧ and 3_0 in labels.csv", lenient_grades, "rows accepted: none; refused: labels.csv:2: "
         "grade '0_7' is not an integer"),
    Case(N, "unterminated quote on line 3 of labels.csv", unterminated_quote,
         "rows accepted: '1' as 1; refused: labels.csv:3: a quote opens a cell on this line and is never closed"),
    Case(H, "card with image_size 100000", card_image_size_100000, "must be an integer within 16-1024"),
]

RESULTS: list[tuple[str, str, str]] = []  # (family, case, outcome) of the cases run in this process, for the summary
