"""Fault cases on the model store: bundles it cannot load, listings it must survive (3). Listed in tests/faults.py."""

from __future__ import annotations

import errno
import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import forge

if TYPE_CHECKING:
    from faults import Ctx


# ---- 3 the model store -----------------------------------------------------------------------


def _forge_weights(bundle: Path, data: bytes) -> None:
    (bundle / "model.safetensors").write_bytes(data)
    card = json.loads((bundle / "card.json").read_text())
    card["model_id"] = hashlib.sha256(data).hexdigest()[:16]
    (bundle / "card.json").write_text(json.dumps(card))


def _store(ctx: Ctx):
    from engine.model_store import ModelStore

    return ModelStore(ctx.tmp() / "store", defaults={"student": ctx.root / "none-s", "teacher": ctx.root / "none-t"})


def _promote(ctx: Ctx, bundle: Path) -> str:
    card = _store(ctx).promote(bundle)
    return f"promoted {card.name} as the active {card.role}"


def promote_pickle(ctx: Ctx) -> str:
    bundle = ctx.bundle()
    _forge_weights(bundle, pickle.dumps({"weights": [1, 2, 3]}))
    return _promote(ctx, bundle)


def promote_nan_weights(ctx: Ctx) -> str:
    import safetensors.torch

    bundle = ctx.bundle()
    tensors = safetensors.torch.load_file(str(bundle / "model.safetensors"))
    tensors["head.weight"].fill_(float("nan"))
    _forge_weights(bundle, safetensors.torch.save(tensors))
    return _promote(ctx, bundle)


def _edit_card(bundle: Path, **changes) -> None:
    card = json.loads((bundle / "card.json").read_text())
    card.update(changes)
    (bundle / "card.json").write_text(json.dumps(card))


def huge_backbone_card(ctx: Ctx) -> str:
    from engine.bundle import load_bundle

    bundle = ctx.bundle()
    card = json.loads((bundle / "card.json").read_text())
    card["arch_config"]["backbone"] = "convnext_xxlarge"
    (bundle / "card.json").write_text(json.dumps(card))
    load_bundle(bundle)
    return "loaded"


def _listing(ctx: Ctx, damage: Callable[[Path], None]) -> str:
    store = _store(ctx)
    for name, hurt in (("bad", True), ("good", False)):
        bundle = store.new_run_dir(name) / "bundle"
        shutil.copytree(ctx.bundle(), bundle)
        if hurt:
            damage(bundle)
    from engine.cli import main

    code = main(["models", "list", "--store", str(store.root)])
    return f"models list exit {code}, {len(store.list_bundles())} bundle(s) listed"


def list_with_a_card_name_not_text(ctx: Ctx) -> str:
    return _listing(ctx, lambda b: _edit_card(b, name=5))


def list_with_a_deeply_nested_card(ctx: Ctx) -> str:
    return _listing(ctx, lambda b: (b / "card.json").write_text(forge.nested_json(200_000)))


def padded_weights(ctx: Ctx) -> str:
    from engine.bundle import load_bundle

    bundle = ctx.bundle()
    _forge_weights(bundle, (bundle / "model.safetensors").read_bytes() + bytes(4096))
    load_bundle(bundle)
    return "loaded"


def promote_with_a_full_disk(ctx: Ctx) -> str:
    import engine.model_store as ms

    store, source = _store(ctx), ctx.bundle()
    real = ms.shutil.copytree

    def full(src, dst, **kw):
        Path(dst).mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    ms.shutil.copytree = full
    try:
        try:
            store.promote(source)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001
            left = list(store.runs_dir.iterdir()) if store.runs_dir.exists() else []
            return f"CRASH {type(e).__name__}: {e}; {len(left)} half-made run folder(s) left in the store"
    finally:
        ms.shutil.copytree = real
    return "promoted"
