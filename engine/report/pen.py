"""A thin layer over reportlab's canvas: top-down coordinates, embedded fonts, text that fits its box."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from reportlab.lib.colors import Color, HexColor
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont

INK = HexColor("#1d232b")
MUTED = HexColor("#5b6572")
RULE = HexColor("#c9ced6")
PALE = HexColor("#eef1f5")
ACCENT = HexColor("#1f5fa8")
WARN = HexColor("#a34f00")
ALERT = HexColor("#b3141b")
GOOD = HexColor("#1d7a3a")


@lru_cache(maxsize=1)
def fonts() -> tuple[str, str]:
    """(regular, bold) font names: DejaVu Sans (the frozen app's or matplotlib's copy) or Bitstream Vera (reportlab's).

    Embedded TrueType renders the same everywhere and covers accented Latin, Greek and
    Cyrillic (DejaVu) in names and notes; the PDF base fonts cover Latin-1 only.
    """
    for regular, bold in _candidates():
        if regular.is_file() and bold.is_file():
            pdfmetrics.registerFont(TTFont("Report", str(regular)))
            pdfmetrics.registerFont(TTFont("Report-Bold", str(bold)))
            return "Report", "Report-Bold"
    return "Helvetica", "Helvetica-Bold"


def _candidates() -> list[tuple[Path, Path]]:
    from engine.resources import resources_dir

    fonts_dir = resources_dir() / "fonts"  # the frozen app carries DejaVu there (it leaves matplotlib out)
    out = [(fonts_dir / "DejaVuSans.ttf", fonts_dir / "DejaVuSans-Bold.ttf")]
    for package, folder, regular, bold in (("matplotlib", "mpl-data/fonts/ttf", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
                                           ("reportlab", "fonts", "Vera.ttf", "VeraBd.ttf")):
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            out.append((Path(root) / folder / regular, Path(root) / folder / bold))
    return out


class Pen:
    """Draws on one canvas page with y measured from the top of the page."""

    def __init__(self, canvas, height: float) -> None:
        self.c = canvas
        self.height = height
        self.regular, self.bold = fonts()

    def font(self, bold: bool) -> str:
        return self.bold if bold else self.regular

    def width(self, text: str, size: float, bold: bool = False) -> float:
        return stringWidth(text, self.font(bold), size)

    def text(self, x: float, y: float, text: str, size: float = 9, bold: bool = False, color: Color = INK,
             align: str = "left", max_width: float | None = None) -> float:
        """Draw one line with its baseline at `y`; cut with an ellipsis to `max_width`. Returns its width."""
        if max_width is not None:
            text = self.fit(text, max_width, size, bold)
        self.c.setFillColor(color)
        self.c.setFont(self.font(bold), size)
        yy = self.height - y
        if align == "right":
            self.c.drawRightString(x, yy, text)
        elif align == "center":
            self.c.drawCentredString(x, yy, text)
        else:
            self.c.drawString(x, yy, text)
        return self.width(text, size, bold)

    def fit(self, text: str, width: float, size: float, bold: bool = False) -> str:
        if self.width(text, size, bold) <= width:
            return text
        while text and self.width(text + "…", size, bold) > width:
            text = text[:-1]
        return text + "…"

    def lines(self, text: str, width: float, size: float, bold: bool = False, max_lines: int = 99) -> list[str]:
        """`text` wrapped to `width`; a last line cut with an ellipsis when more would be needed."""
        out = simpleSplit(text, self.font(bold), size, width) or [""]
        if len(out) > max_lines:
            out = out[:max_lines]
            out[-1] = self.fit(out[-1] + " …", width, size, bold)
        return out

    def paragraph(self, x: float, y: float, text: str, width: float, size: float = 9, bold: bool = False,
                  color: Color = INK, leading: float | None = None, max_lines: int = 99) -> float:
        """Wrapped text from baseline `y`; returns the baseline after the last line."""
        leading = leading or size * 1.3
        for line in self.lines(text, width, size, bold, max_lines):
            self.text(x, y, line, size, bold, color)
            y += leading
        return y

    def rect(self, x: float, y: float, w: float, h: float, fill: Color | None = None, stroke: Color | None = None,
             width: float = 0.6) -> None:
        """A rectangle whose top-left corner is (x, y)."""
        if fill is not None:
            self.c.setFillColor(fill)
        if stroke is not None:
            self.c.setStrokeColor(stroke)
            self.c.setLineWidth(width)
        self.c.rect(x, self.height - y - h, w, h, stroke=int(stroke is not None), fill=int(fill is not None))

    def line(self, x1: float, y1: float, x2: float, y2: float, color: Color = RULE, width: float = 0.6,
             dash: tuple[float, ...] | None = None) -> None:
        self.c.setStrokeColor(color)
        self.c.setLineWidth(width)
        self.c.setDash(*(dash or ()))
        self.c.line(x1, self.height - y1, x2, self.height - y2)
        self.c.setDash()

    def image(self, reader, x: float, y: float, w: float, h: float) -> None:
        self.c.drawImage(reader, x, self.height - y - h, w, h)

    def heading(self, x: float, y: float, text: str, width: float) -> float:
        """A section heading with a rule under it; returns the baseline for the first line below."""
        self.text(x, y, text, 10, bold=True, color=ACCENT)
        self.line(x, y + 3, x + width, y + 3)
        return y + 15
