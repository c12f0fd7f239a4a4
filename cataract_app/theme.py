"""The app's light clinical look: neutral background, one accent colour, readable type."""

from __future__ import annotations

ACCENT = "#0b6e99"
ACCENT_SOFT = "#e6f1f6"
TEXT = "#1f2933"
MUTED = "#6b7785"
BORDER = "#d9dee4"
PANEL = "#f7f8fa"
WARN_BG = "#fff4e5"
WARN_BORDER = "#e8a13a"
WARN_TEXT = "#7a4b00"
ERROR_BG = "#fdecea"
ERROR_TEXT = "#a4262c"
SUGGESTED = "#8a94a0"
LOW_CONFIDENCE = 0.5  # below this the grade panel asks for a careful review

STYLESHEET = f"""
QMainWindow, QWidget {{ background: #ffffff; color: {TEXT}; font-size: 10pt; }}
QSplitter::handle {{ background: {BORDER}; }}
QGroupBox {{
    border: 1px solid {BORDER}; border-radius: 6px; margin-top: 14px; padding: 10px 8px 8px 8px;
    background: #ffffff;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; font-weight: 600; }}
QPushButton {{
    border: 1px solid {BORDER}; border-radius: 4px; padding: 5px 12px; background: {PANEL};
}}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #a9b1ba; }}
QPushButton#primary {{ background: {ACCENT}; color: #ffffff; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#primary:disabled {{ background: #9fc3d4; border-color: #9fc3d4; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 8px; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#banner {{
    background: {WARN_BG}; color: {WARN_TEXT}; border: 1px solid {WARN_BORDER}; border-radius: 4px;
    padding: 6px 8px; font-weight: 600;
}}
QLabel#info {{
    background: {PANEL}; color: {TEXT}; border: 1px solid {BORDER}; border-radius: 4px; padding: 6px 8px;
}}
QLabel#error {{
    background: {ERROR_BG}; color: {ERROR_TEXT}; border-radius: 4px; padding: 6px 8px;
}}
QLabel#gradeBig {{ font-size: 52pt; font-weight: 700; color: {ACCENT}; }}
QLabel#gradeName {{ font-size: 13pt; font-weight: 600; }}
QLabel#answerGrade {{ font-size: 24pt; font-weight: 700; }}
QFrame#imageBar {{ background: {PANEL}; border-bottom: 1px solid {BORDER}; }}
QFrame#toolRow {{ background: {PANEL}; border-top: 1px solid {BORDER}; }}
QFrame#imageBar QWidget, QFrame#toolRow QWidget {{ background: transparent; }}
QFrame#imageBar QComboBox, QFrame#toolRow QComboBox {{ background: #ffffff; }}
"""
