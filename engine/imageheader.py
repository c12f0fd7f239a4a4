"""What an image file says about itself before it is decoded: format, size, and the decoder's working buffer.

Each reader walks its format's header the way the decoder will (the first TIFF directory,
the first JPEG frame, the PNG IHDR), and refuses anything the decoder could read another
way: a tag given twice, a size in a type the reader does not parse, two frame headers.
TIFF pages after the first, which the decoder does not read, are held to the same limits,
and so is the decoder's working buffer (a TIFF strip or tile), which can dwarf a tiny image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.errors import EngineError

# A TIFF strip or tile may be padded past the image, but never beyond this many pixels unless the image is larger.
TIFF_BUFFER_FLOOR = 1 << 20
TIFF_MAX_PAGES = 256


class HeaderError(EngineError):
    """The header is damaged, truncated, or describes an image the decoder must not be given; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Header:
    format: str
    width: int
    height: int


def sniff(data: bytes) -> str | None:
    """The format from the first bytes, the same signatures OpenCV's decoders check."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    return None


def read_header(data: bytes, max_pixels: int) -> Header:
    """The header of a JPEG, PNG, TIFF or BMP file, checked against `max_pixels`; HeaderError otherwise."""
    fmt = sniff(data)
    if fmt is None:
        raise HeaderError("it is not an image (its content is not JPEG, PNG, TIFF or BMP)")
    width, height = _READERS[fmt](data, max_pixels)
    _check_size(fmt, width, height, max_pixels)
    return Header(fmt, width, height)


def _check_size(fmt: str, width: int, height: int, max_pixels: int, page: str = "") -> None:
    if width <= 0 or height <= 0:
        raise HeaderError(f"the file is damaged (the {fmt} header gives {page}a size of {width}x{height})")
    if width * height > max_pixels:
        raise HeaderError(
            f"it is {page}{width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}"
        )


# ---- PNG -------------------------------------------------------------------------------------


def _png_size(data: bytes, _max_pixels: int) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise HeaderError("the file is truncated or damaged (no PNG image header)")
    if data[8:12] != b"\x00\x00\x00\x0d":
        raise HeaderError("the file is damaged (the PNG image header has the wrong length)")
    width, height = struct.unpack(">II", data[16:24])
    depth = data[24]
    if depth not in (1, 2, 4, 8, 16):
        raise HeaderError(f"the file is damaged (the PNG header gives {depth} bits per sample)")
    if data.rfind(b"IEND\xaeB`\x82") < 0:
        raise HeaderError("the file is truncated (the PNG end chunk is missing)")
    return width, height


# ---- JPEG ------------------------------------------------------------------------------------

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes, _max_pixels: int) -> tuple[int, int]:
    """Walk the JPEG segments up to the first scan: one SOFn gives the size, EOI must follow the scan."""
    truncated = HeaderError("the file is truncated (it ends inside the JPEG headers)")
    size: tuple[int, int] | None = None
    i, n = 2, len(data)
    while True:
        if i >= n:
            raise truncated
        if data[i] != 0xFF:
            raise HeaderError(f"the file is damaged (no JPEG marker at byte {i})")
        while i < n and data[i] == 0xFF:
            i += 1
        if i + 2 >= n:
            raise truncated
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker == 0xD9:
            raise HeaderError("the file is damaged (the JPEG ends before any image data)")
        seg_len = int.from_bytes(data[i : i + 2], "big")
        if seg_len < 2:
            raise HeaderError(f"the file is damaged (bad JPEG segment length at byte {i})")
        if marker in _JPEG_SOF:
            if size is not None:
                raise HeaderError("the file is damaged (the JPEG has two frame headers)")
            if i + 7 > n:
                raise truncated
            height, width = struct.unpack(">HH", data[i + 3 : i + 7])
            size = (width, height)
        if marker == 0xDA:
            if size is None:
                raise HeaderError("the file is damaged (the JPEG has no frame header)")
            if data.find(b"\xff\xd9", i) < 0:
                raise HeaderError("the file is truncated (the JPEG end marker is missing)")
            return size
        i += seg_len


# ---- BMP -------------------------------------------------------------------------------------


def _bmp_size(data: bytes, _max_pixels: int) -> tuple[int, int]:
    if len(data) < 26:
        raise HeaderError("the file is truncated (the BMP header is incomplete)")
    offset, header = struct.unpack("<II", data[10:18])
    if header == 12:
        width, height, bpp = struct.unpack("<HH2xH", data[18:26])
        compression = 0
    elif header >= 40 and len(data) >= 34:
        width, height, bpp, compression = struct.unpack("<ii2xHI", data[18:34])
    else:
        raise HeaderError("the file is damaged (unknown BMP header)")
    height = abs(height)
    if compression in (0, 3, 6) and bpp in (1, 4, 8, 16, 24, 32) and width > 0:
        row = ((width * bpp + 31) // 32) * 4
        if len(data) < offset + row * height:
            raise HeaderError("the file is truncated (the BMP pixel data is incomplete)")
    return width, height


# ---- TIFF ------------------------------------------------------------------------------------

_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # the unsigned integer types libtiff reads sizes from
_WIDTH, _HEIGHT, _BITS, _SAMPLES, _ROWS, _TILE_W, _TILE_H = 256, 257, 258, 277, 278, 322, 323
_OFFSETS, _COUNTS = (273, 324), (279, 325)
_SIZE_TAGS = {_WIDTH: "width", _HEIGHT: "height", _BITS: "bits per sample", _SAMPLES: "samples per pixel",
              _ROWS: "rows per strip", _TILE_W: "tile width", _TILE_H: "tile length"}
_TAGS = set(_SIZE_TAGS) | set(_OFFSETS) | set(_COUNTS)


class _Tiff:
    """One TIFF file's layout: byte order, classic or BigTIFF, and bounded reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.bo = "<" if data[:2] == b"II" else ">"
        self.big = data[2:4] in (b"+\x00", b"\x00+")
        self.entry, self.inline, self.ofs = (20, 8, "Q") if self.big else (12, 4, "I")

    def unpack(self, code: str, pos: int) -> tuple:
        size = struct.calcsize(self.bo + code)
        if pos < 0 or pos + size > len(self.data):
            raise HeaderError("the file is truncated or damaged (the TIFF directory lies outside the file)")
        return struct.unpack(self.bo + code, self.data[pos : pos + size])

    def first_ifd(self) -> int:
        return self.unpack("Q", 8)[0] if self.big else self.unpack("I", 4)[0]

    def directory(self, ifd: int) -> tuple[dict[int, tuple[int, ...]], int]:
        """The tags that size the image and its buffers, and the next directory's offset (0: none)."""
        count = self.unpack("Q" if self.big else "H", ifd)[0]
        start = ifd + (8 if self.big else 2)
        if start + count * self.entry > len(self.data):
            raise HeaderError("the file is truncated or damaged (the TIFF directory lies outside the file)")
        tags: dict[int, tuple[int, ...]] = {}
        for k in range(count):
            pos = start + k * self.entry
            tag, typ = self.unpack("HH", pos)
            if tag not in _TAGS:
                continue
            if tag in tags:
                what = _SIZE_TAGS.get(tag, f"tag {tag}")
                raise HeaderError(f"the file is damaged (its TIFF directory gives its {what} twice)")
            code = _TIFF_TYPES.get(typ)
            if code is None:
                what = _SIZE_TAGS.get(tag, "strip or tile layout")
                raise HeaderError(f"the file is damaged (its TIFF {what} has the unreadable type {typ})")
            n = self.unpack(self.ofs, pos + 4)[0]
            nbytes = n * struct.calcsize(code)
            if nbytes > len(self.data):
                raise HeaderError("the file is truncated or damaged (the TIFF directory lies outside the file)")
            where = pos + self.entry - self.inline
            if nbytes > self.inline:
                where = self.unpack(self.ofs, where)[0]
            tags[tag] = self.unpack(f"{n}{code}", where)
        end = start + count * self.entry
        return tags, self.unpack(self.ofs, end)[0] if end + struct.calcsize(self.ofs) <= len(self.data) else 0


def _tiff_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Width and height of the first page; every page is held to the limits; page 1's data must lie in the file."""
    tiff = _Tiff(data)
    ifd, seen, first = tiff.first_ifd(), set(), None
    while ifd:
        if ifd in seen:
            raise HeaderError("the file is damaged (its TIFF directories form a loop)")
        if len(seen) >= TIFF_MAX_PAGES:
            raise HeaderError(f"it has more than {TIFF_MAX_PAGES} TIFF pages")
        seen.add(ifd)
        tags, ifd = tiff.directory(ifd)
        page = f"page {len(seen)} " if len(seen) > 1 else ""
        size = _tiff_page(tags, max_pixels, page)
        if first is None:
            first = size
            _tiff_extent(tags, len(data))
    if first is None:
        raise HeaderError("the file is damaged (the TIFF has no image directory)")
    return first


def _tiff_page(tags: dict[int, tuple[int, ...]], max_pixels: int, page: str) -> tuple[int, int]:
    if not tags.get(_WIDTH) or not tags.get(_HEIGHT):
        raise HeaderError(f"the file is damaged (the TIFF {page}has no image width or height)")
    width, height = tags[_WIDTH][0], tags[_HEIGHT][0]
    _check_size("TIFF", width, height, max_pixels, page)
    bits = tags.get(_BITS) or (1,)
    if max(bits) > 16:
        raise HeaderError(f"it has {max(bits)}-bit samples; only 8- and 16-bit images are supported")
    samples = (tags.get(_SAMPLES) or (1,))[0]
    if not 1 <= samples <= 4:
        raise HeaderError(f"it has {samples} samples per pixel; expected gray, RGB or RGBA")
    tiled = _TILE_W in tags or _TILE_H in tags
    if tiled:
        bw, bh = (tags.get(_TILE_W) or (0,))[0], (tags.get(_TILE_H) or (0,))[0]
        if bw <= 0 or bh <= 0:
            raise HeaderError(f"the file is damaged (the TIFF {page}gives a tile size of {bw}x{bh})")
    else:
        rows = (tags.get(_ROWS) or (0,))[0]  # the decoder reads one strip of this many rows at a time
        bw, bh = width, height if rows in (0, 0xFFFFFFFF) else rows
    if bw * bh > max(width * height, TIFF_BUFFER_FLOOR):
        shape = "tiles" if tiled else "strips"
        raise HeaderError(
            f"the file is damaged (its TIFF {page}{shape} of {bw}x{bh} pixels are far larger than the "
            f"{width}x{height} image)"
        )
    return width, height


def _tiff_extent(tags: dict[int, tuple[int, ...]], size: int) -> None:
    offsets = tags.get(_OFFSETS[0]) or tags.get(_OFFSETS[1])
    counts = tags.get(_COUNTS[0]) or tags.get(_COUNTS[1])
    if offsets and counts and len(offsets) == len(counts):
        if max(o + c for o, c in zip(offsets, counts, strict=True)) > size:
            raise HeaderError("the file is truncated (the TIFF image data is incomplete)")


_READERS = {"JPEG": _jpeg_size, "PNG": _png_size, "TIFF": _tiff_size, "BMP": _bmp_size}
