"""Where the quotes of a CSV file open and close, by line, read the way Python's csv module reads them.

csv reports an unterminated quote only at the end of the file, after swallowing every line
after it into one cell; this scan names the line where that quote opened instead.
"""

from __future__ import annotations


def _line_break(text: str, i: int) -> bool:
    """True at a line break: \\n, or a \\r that is not the first half of \\r\\n."""
    c = text[i]
    return c == "\n" or (c == "\r" and text[i + 1 : i + 2] != "\n")


def quoted_line_breaks(text: str) -> list[tuple[int, int | None]]:
    """(line a quoted cell opens on, line it closes on, or None if never) for each quoted cell holding a line break."""
    if '"' not in text:
        return []
    found: list[tuple[int, int | None]] = []
    line, i, n, field_start = 1, 0, len(text), True
    while i < n:
        if field_start and text[i] == '"':
            opened, spans, i = line, False, i + 1
            while True:
                if i >= n:
                    found.append((opened, None))
                    return found
                if text[i] == '"':
                    if text[i + 1 : i + 2] == '"':  # an escaped quote inside the cell
                        i += 2
                        continue
                    i += 1
                    break
                if _line_break(text, i):
                    line, spans = line + 1, True
                i += 1
            if spans:
                found.append((opened, line))
            field_start = False
            continue
        if text[i] == ",":
            field_start = True
        elif _line_break(text, i):
            line, field_start = line + 1, True
        elif text[i] != "\r":
            field_start = False
        i += 1
    return found
