"""Help > About: the version, each loaded model's card and the disclaimer."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from cataract_app import DISCLAIMER, DISPLAY_NAME

PREFERRED_METRICS = ("qwk", "kappa", "accuracy", "within_one", "mae", "ece")


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def metrics_summary(metrics: Any, limit: int = 5) -> str:
    """'qwk 0.812 · accuracy 0.640 · mae 0.41': the headline numbers of a card, best known first."""
    if not isinstance(metrics, Mapping) or not metrics:
        return "none recorded"
    flat = _flatten(metrics)

    def rank(name: str) -> tuple[int, str]:
        leaf = name.rsplit(".", 1)[-1].lower()
        return (PREFERRED_METRICS.index(leaf) if leaf in PREFERRED_METRICS else len(PREFERRED_METRICS), name)

    names = sorted(flat, key=rank)[:limit]
    return " \u00b7 ".join(f"{n} {flat[n]:.3g}" for n in names) if names else "none recorded"


def card_rows(card: Any) -> list[tuple[str, str]]:
    """The card fields a reader checks, as (label, text) pairs; missing fields are skipped."""
    rows = []
    for label, attr in (("Name", "name"), ("Model id", "model_id"), ("Role", "role"), ("Architecture", "arch"),
                        ("Image size", "image_size"), ("Created", "created")):
        value = getattr(card, attr, None)
        if value not in (None, ""):
            rows.append((label, str(value)))
    rows.append(("Metrics", metrics_summary(getattr(card, "metrics", None))))
    notice = getattr(card, "notice", None)
    if notice:
        rows.append(("Notice", str(notice)))
    return rows


def about_html(version: str, cards: list[Any], device: str | None) -> str:
    """The About text as simple HTML, shared by the dialog and tests."""
    parts = [f"<h2>{DISPLAY_NAME} {html.escape(version)}</h2>",
             "<p>Cortical cataract grading (0\u20137) from retro-illumination photographs, "
             "with Grad-CAM heat maps and sub-label fusion.</p>"]
    if device:
        parts.append(f"<p>Compute device: <b>{html.escape(device)}</b></p>")
    if not cards:
        parts.append("<p><i>No model is loaded yet.</i></p>")
    for card in cards:
        title = html.escape(str(getattr(card, "role", "model")).capitalize())
        rows = "".join(
            f"<tr><td style='padding-right:12px;color:#6b7785'>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in card_rows(card)
        )
        parts.append(f"<h3>{title} model</h3><table>{rows}</table>")
    parts.append(f"<p style='color:#7a4b00'><b>Disclaimer.</b> {html.escape(DISCLAIMER)}</p>")
    return "\n".join(parts)


class AboutDialog(QDialog):
    """A read-only page; it closes with OK or Escape."""

    def __init__(self, version: str, cards: list[Any], device: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"About {DISPLAY_NAME}")
        self.resize(560, 520)
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.text.setHtml(about_html(version, cards, device))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
