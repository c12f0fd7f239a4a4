"""Hand-built hostile files: TIFF directories with any tags, decompression bombs, cards and weights that lie.

Shared by the unit tests and benchmarks/fault_injection.py, so both try the very same bytes.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

# TIFF field types
BYTE, SHORT, LONG, SSHORT, SLONG, LONG8 = 1, 3, 4, 8, 9, 16


def tiff(pages: list[list[tuple[int, int, list[int]]]], strips: list[bytes] | None = None, big: bool = False,
         order: str = "<") -> bytes:
    """A TIFF whose pages are lists of (tag, type, values) entries, written in the given order (duplicates kept).

    `strips` are appended after the header; tags 273 with values [-1] are pointed at them in turn.
    """
    codes = {BYTE: "B", SHORT: "H", LONG: "I", SSHORT: "h", SLONG: "i", LONG8: "Q"}
    head = (b"II" if order == "<" else b"MM") + (struct.pack(order + "HHHQ", 43, 8, 0, 0) if big
                                                  else struct.pack(order + "HI", 42, 0))
    body = bytearray(head)
    data_at = []
    for strip in strips or []:
        data_at.append(len(body))
        body += strip
    ofs, cnt = ("Q", "Q") if big else ("I", "H")
    entry, inline = (20, 8) if big else (12, 4)
    prev_link = 8 if big else 4
    for page in pages:
        while len(body) % 2:
            body += b"\0"
        ifd = len(body)
        struct.pack_into(order + ofs, body, prev_link, ifd)
        table = bytearray(struct.pack(order + cnt, len(page)))
        extra = bytearray()
        extra_at = ifd + len(table) + len(page) * entry + struct.calcsize(order + ofs)
        for tag, typ, values in page:
            if tag == 273 and values == [-1]:
                values = [data_at.pop(0)]
            payload = struct.pack(order + codes[typ] * len(values), *values)
            table += struct.pack(order + "HH" + ofs, tag, typ, len(values))
            if len(payload) <= inline:
                table += payload.ljust(inline, b"\0")
            else:
                table += struct.pack(order + ofs, extra_at + len(extra))
                extra += payload
        prev_link = ifd + len(table)
        table += struct.pack(order + ofs, 0)
        body += table + extra
    return bytes(body)


def gray_page(width: int, height: int, nbytes: int, compression: int = 1, rows: int | None = None,
              width_entries: list[tuple[int, int, list[int]]] | None = None) -> list[tuple[int, int, list[int]]]:
    """The entries of one 8-bit gray page with a single strip of `nbytes` (pointed at the next strip given)."""
    size = width_entries if width_entries is not None else [(256, LONG, [width]), (257, LONG, [height])]
    return [*size, (258, SHORT, [8]), (259, SHORT, [compression]), (262, SHORT, [1]), (273, LONG, [-1]),
            (277, SHORT, [1]), (278, LONG, [rows or height]), (279, LONG, [nbytes])]


def small_tiff(width: int = 8, height: int = 8, **kw) -> bytes:
    """A real uncompressed 8-bit gray TIFF (a gradient), decodable by OpenCV."""
    pixels = bytes((x * 31 + y * 7) % 256 for y in range(height) for x in range(width))
    return tiff([gray_page(width, height, len(pixels), **kw)], [pixels])


def deflate_zeros(nbytes: int) -> bytes:
    """`nbytes` zero bytes deflated (zlib stream), built without holding them in memory."""
    comp = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    out = []
    left = nbytes
    while left:
        n = min(left, len(chunk))
        out.append(comp.compress(chunk[:n]))
        left -= n
    out.append(comp.flush())
    return b"".join(out)


def tiff_bomb(side: int = 20000, decoy: int = 10) -> bytes:
    """A deflated side x side gray TIFF whose directory gives its width and height a second time, as `decoy`."""
    strip = deflate_zeros(side * side)
    page = gray_page(side, side, len(strip), compression=8)
    page += [(256, LONG, [decoy]), (257, LONG, [decoy])]
    return tiff([page], [strip])


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def safetensors_header(tensors: dict[str, tuple[str, list[int]]], claimed_bytes: int | None = None) -> bytes:
    """A safetensors file header (and no data) for tensors given as name -> (dtype, shape)."""
    sizes = {"F32": 4, "F16": 2, "I64": 8}
    meta, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for s in shape:
            n *= s
        meta[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(meta).encode()
    return struct.pack("<Q", len(head)) + head + (b"" if claimed_bytes is None else bytes(claimed_bytes))
