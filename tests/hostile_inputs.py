"""Bad, odd and hostile input files, built on the fly: shared by the decoder tests
(tests/test_io_hostile.py) and the CLI tests (tests/test_robustness_cli.py).

`build_corpus(root)` lays every input of docs/robustness.md into one folder tree and says, for
each file, what measr must do with it: fail with a cause, or restore it at its size."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage


def rgb_samples(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random 8-bit RGB samples, (H, W, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pil_bytes(image: PILImage.Image, pil_format: str, **options: object) -> bytes:
    """What Pillow writes for image in pil_format."""
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """A PNG chunk with a correct CRC, built by hand."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG whose IHDR claims width x height but whose pixel data is only a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)


# Chunks whose payload Pillow inflates while parsing a PNG header, and the bytes of that payload
# before the compressed data (keyword, separators, flags).
INFLATED_CHUNKS = {b"zTXt": b"Comment\0\0", b"iTXt": b"Comment\0\1\0\0\0", b"iCCP": b"icc\0\0"}
PILLOW_TEXT_LIMIT = 1 << 20  # PngImagePlugin.MAX_TEXT_CHUNK


def with_text_bomb(png: bytes, kind: bytes = b"zTXt") -> bytes:
    """The PNG with a chunk inserted after IHDR (byte 33) whose payload inflates to twice
    Pillow's text limit (from 2 KiB): Pillow then refuses the whole header (issue 21)."""
    inflated = zlib.compress(b"A" * 2 * PILLOW_TEXT_LIMIT, 9)
    return png[:33] + png_chunk(kind, INFLATED_CHUNKS[kind] + inflated) + png[33:]


def oriented_png(samples: np.ndarray, orientation: int) -> bytes:
    """A PNG of samples as stored, with an eXIf chunk giving the EXIF orientation."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return pil_bytes(PILImage.fromarray(samples), "PNG", exif=exif.tobytes())


def permissions_enforced(folder: Path) -> bool:
    """Whether this user is refused a chmod-000 file (root, as in CI, is not)."""
    probe = folder / ".permission-probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        with open(probe, "rb"):
            return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


# --- header bombs of every format measr reads (issue 36) -----------------------------------------
# Small files whose header claims far more pixels than the limit allows. measr must refuse each
# from its header, with its own reader, before anything is decoded (whatever Pillow makes of it).

BOMB_SIDE = 30_000  # 900 megapixels: above measr's limit, below OpenCV's own (2^30)


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with the size in its (first, baseline or progressive) frame header changed."""
    patched = bytearray(jpeg)
    frame = min(i for i in (jpeg.find(b"\xff\xc0"), jpeg.find(b"\xff\xc2")) if i >= 0)
    struct.pack_into(">HH", patched, frame + 5, height, width)
    return bytes(patched)


def with_short_adobe_segment(jpeg: bytes) -> bytes:
    """The JPEG with a 5-byte Adobe APP14 segment after its start marker: libjpeg decodes it,
    Pillow refuses the whole header (issue 36, case 4)."""
    return jpeg[:2] + b"\xff\xee" + struct.pack(">H", 2 + 5) + b"Adobe" + jpeg[2:]


def tiff_bytes(
    width: int,
    height: int,
    bits: tuple[int, ...] = (8, 8, 8),
    *,
    photometric: int = 2,
    sample_format: int = 1,
    strip: bytes = b"",
    big: bool = False,
) -> bytes:
    """An uncompressed little-endian single-strip TIFF (BigTIFF if `big`) with exactly these
    tags, for what Pillow cannot write: 12-bit or 32-bit RGB, 16-bit CMYK, a size its strip
    does not hold."""
    count = len(bits)
    entries = [
        (256, 4, [width]),
        (257, 4, [height]),
        (258, 3, list(bits)),
        (259, 3, [1]),  # no compression
        (262, 3, [photometric]),
        (273, 4, [0]),  # strip offset, set below
        (277, 3, [count]),
        (278, 4, [height]),
        (279, 4, [len(strip)]),
        (339, 3, [sample_format] * count),
    ]
    value_bytes, count_format, offset_format = (8, "Q", "Q") if big else (4, "H", "I")
    head = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) if big else b"II*\x00" + struct.pack("<I", 8)
    directory_end = len(head) + struct.calcsize(count_format) + len(entries) * (4 + 2 * value_bytes)
    extra_start = directory_end + value_bytes  # after the next-directory offset (0)
    extra = b""
    encoded = []
    for tag, kind, values in entries:
        packed = struct.pack(f"<{len(values)}{'I' if kind == 4 else 'H'}", *values)
        if len(packed) > value_bytes:
            encoded.append(
                (tag, kind, len(values), struct.pack(f"<{offset_format}", extra_start + len(extra)))
            )
            extra += packed
        else:
            encoded.append((tag, kind, len(values), packed.ljust(value_bytes, b"\x00")))
    strip_offset = extra_start + len(extra)
    directory = struct.pack(f"<{count_format}", len(entries))
    for tag, kind, number, value in encoded:
        if tag == 273:
            value = struct.pack("<I", strip_offset).ljust(value_bytes, b"\x00")
        directory += struct.pack(f"<HH{offset_format}", tag, kind, number) + value
    return head + directory + bytes(value_bytes) + extra + strip


def _replaced(data: bytes, marker: bytes, skip: int, fields: bytes) -> bytes:
    """`data` with `fields` written `skip` bytes after the first `marker`."""
    at = data.index(marker) + len(marker) + skip
    return data[:at] + fields + data[at + len(fields) :]


def _small_photo(pil_format: str, **options: object) -> bytes:
    return pil_bytes(PILImage.fromarray(rgb_samples(8, 8)), pil_format, **options)


def _bomb_jpeg() -> bytes:
    return with_jpeg_size(_small_photo("JPEG"), BOMB_SIDE, BOMB_SIDE)


def _bomb_webp() -> bytes:
    """An extended WebP whose canvas is BOMB_SIDE a side."""
    side = struct.pack("<I", BOMB_SIDE - 1)[:3]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + side + side
    rest = _small_photo("WEBP", lossless=True)[12:]
    body = b"WEBP" + vp8x + rest
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bomb_bmp() -> bytes:
    return _replaced(_small_photo("BMP"), b"BM", 16, struct.pack("<ii", BOMB_SIDE, BOMB_SIDE))


def _bomb_gif() -> bytes:
    """A GIF whose logical screen is 65535 x 65535 (4.3 gigapixels)."""
    gif = _small_photo("GIF")
    return gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:]


def _bomb_jpeg2000(codestream: bool) -> bytes:
    """A J2K codestream, or a JP2 file, whose SIZ marker claims BOMB_SIDE a side."""
    data = _small_photo("JPEG2000", no_jp2=codestream)
    return _replaced(data, b"\xff\x4f\xff\x51", 4, struct.pack(">II", BOMB_SIDE, BOMB_SIDE))


def _bomb_avif() -> bytes:
    return _replaced(_small_photo("AVIF"), b"ispe", 4, struct.pack(">II", BOMB_SIDE, BOMB_SIDE))


def _bomb_sun_raster() -> bytes:
    """A 24-bit Sun raster header claiming BOMB_SIDE a side, with one row of pixels."""
    header = struct.pack(">4s7I", b"\x59\xa6\x6a\x95", BOMB_SIDE, BOMB_SIDE, 24, 0, 1, 0, 0)
    return header + bytes(3 * BOMB_SIDE)


# Format -> a small file whose header claims more than the pixel limit.
HEADER_BOMBS: dict[str, Callable[[], bytes]] = {
    "png": lambda: png_claiming(BOMB_SIDE, BOMB_SIDE),
    "jpeg": _bomb_jpeg,
    "jpeg, header Pillow refuses": lambda: with_short_adobe_segment(_bomb_jpeg()),
    "tiff": lambda: tiff_bytes(BOMB_SIDE, BOMB_SIDE, strip=bytes(64)),
    "tiff, 12-bit": lambda: tiff_bytes(BOMB_SIDE, BOMB_SIDE, (12, 12, 12), strip=bytes(64)),
    "bigtiff": lambda: tiff_bytes(BOMB_SIDE, BOMB_SIDE, strip=bytes(64), big=True),
    "webp": _bomb_webp,
    "bmp": _bomb_bmp,
    "gif": _bomb_gif,
    "jpeg2000 codestream": lambda: _bomb_jpeg2000(codestream=True),
    "jpeg2000 jp2": lambda: _bomb_jpeg2000(codestream=False),
    "avif": _bomb_avif,
    "pgm": lambda: b"P5\n%d %d\n255\n" % (BOMB_SIDE, BOMB_SIDE) + bytes(64),
    "pbm": lambda: b"P4\n# a comment\n%d %d\n" % (BOMB_SIDE, BOMB_SIDE) + bytes(64),
    "pam": lambda: (
        b"P7\nWIDTH %d\nHEIGHT %d\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"
        % (BOMB_SIDE, BOMB_SIDE)
        + bytes(64)
    ),
    "sun raster": _bomb_sun_raster,
}


def radiance_hdr(width: int, height: int, rows: int = 1) -> bytes:
    """A Radiance HDR image claiming width x height, with `rows` flat run-length coded rows
    (OpenCV decodes the format to 32-bit floats; Pillow cannot read it at all)."""
    runs = b""
    left = width
    while left:
        run = min(127, left)
        runs += bytes((128 + run, 100))
        left -= run
    row = bytes((2, 2, width >> 8, width & 255)) + runs * 4
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width) + row * rows


# --- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    """A file measr must refuse: its path below the corpus root and a fragment of the cause."""

    relative: str
    cause: str


@dataclass(frozen=True)
class OddInput:
    """An unusual but valid image measr must restore: its path and (height, width)."""

    relative: str
    size: tuple[int, int]


@dataclass
class Corpus:
    """Every input laid out below `root`, split by what measr must do with it."""

    root: Path
    bad: list[BadInput] = field(default_factory=list)
    odd: list[OddInput] = field(default_factory=list)

    def path(self, relative: str) -> Path:
        """The file's path."""
        return self.root / relative


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _photo_bytes(pil_format: str, height: int = 48, width: int = 64, seed: int = 0) -> bytes:
    """A small smooth photo-like picture (compresses like a photo, unlike noise)."""
    yy, xx = np.mgrid[0:height, 0:width]
    ramps = [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256]
    noise = np.random.default_rng(seed).integers(0, 16, (height, width, 3))
    samples = np.clip(np.stack(ramps, axis=-1) + noise, 0, 255).astype(np.uint8)
    return pil_bytes(PILImage.fromarray(samples), pil_format)


def _sideways_photo() -> bytes:
    """A 4 x 8 photo stored sideways, EXIF orientation 6, behind a text chunk Pillow refuses."""
    return with_text_bomb(oriented_png(rgb_samples(4, 8, seed=6), 6))


def _animation(pil_format: str) -> bytes:
    """Three frames saved as one animated file."""
    frames = [PILImage.fromarray(rgb_samples(8, 8, seed)) for seed in range(3)]
    return pil_bytes(frames[0], pil_format, save_all=True, append_images=frames[1:])


def _float_tiff() -> bytes:
    """A 32-bit floating-point TIFF (HDR or scientific data)."""
    return pil_bytes(PILImage.fromarray(np.ones((4, 5), dtype=np.float32)), "TIFF")


def _png_16_bit_rgba(height: int = 9, width: int = 11) -> bytes:
    """A 16-bit RGBA PNG (OpenCV encodes BGRA)."""
    samples = np.random.default_rng(3).integers(0, 65536, (height, width, 4), dtype=np.uint16)
    ok, encoded = cv2.imencode(".png", samples)
    assert ok
    return encoded.tobytes()


def _palette_png() -> bytes:
    """A palette PNG with a transparent entry."""
    image = PILImage.fromarray(rgb_samples(10, 12, seed=4)).quantize(16)
    return pil_bytes(image, "PNG", transparency=0)


# Files that are not (usable) images: name -> (contents, cause the error line must contain).
BAD_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "bad/empty.png": (lambda: b"", "empty"),
    "bad/truncated.png": (lambda: _photo_bytes("PNG")[:400], "truncated or corrupt"),
    "bad/truncated.jpg": (lambda: _photo_bytes("JPEG", 96, 128)[:1500], "truncated or corrupt"),
    "bad/header cut.jpg": (lambda: _photo_bytes("JPEG")[:300], "JPEG file but is truncated"),
    "bad/notes.png": (lambda: b"shopping list: milk, eggs\n", "text file"),
    "bad/error page.jpg": (
        lambda: b"<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n",
        "HTML page",
    ),
    "bad/random.webp": (lambda: rgb_samples(32, 32, seed=5).tobytes(), "unknown format"),
    "bad/favicon.png": (
        lambda: pil_bytes(PILImage.fromarray(rgb_samples(16, 16)), "ICO"),
        "ICO files are not supported",
    ),
    "bad/bomb.png": (lambda: png_claiming(100_000, 100_000), "above the limit"),
    "bad/zero width.png": (
        lambda: png_claiming(0, 10) + png_chunk(b"IEND", b""),
        "PNG file but is truncated or corrupt",
    ),
    "bad/animated.gif": (lambda: _animation("GIF"), "animated GIF (3 frames)"),
    "bad/animated.webp": (lambda: _animation("WEBP"), "animated WebP (3 frames)"),
    "bad/animated.png": (lambda: _animation("PNG"), "animated PNG (3 frames)"),
    # One metadata chunk that Pillow refuses must not switch the header checks off.
    "bad/bomb behind text.png": (
        lambda: with_text_bomb(png_claiming(100_000, 100_000)),
        "above the limit",
    ),
    "bad/animated behind text.png": (
        lambda: with_text_bomb(_animation("PNG")),
        "animated PNG (3 frames)",
    ),
    "bad/float32.tif": (_float_tiff, "32-bit floating-point"),
    "bad/unreadable.png": (lambda: _photo_bytes("PNG"), "permission denied"),
    # Valid, but measr reads GIFs without writing them: a batch needs --ext to restore it.
    "web/still.gif": (lambda: _photo_bytes("GIF", 12, 16), "measr does not write .gif files"),
}
# Unusual but valid images: name -> (contents, (height, width)).
ODD_FILES: dict[str, tuple[Callable[[], bytes], tuple[int, int]]] = {
    "odd/one pixel.png": (lambda: _photo_bytes("PNG", 1, 1), (1, 1)),
    "odd/row_1x9.png": (lambda: _photo_bytes("PNG", 1, 9), (1, 9)),
    "odd/column_9x1.jpg": (lambda: _photo_bytes("JPEG", 9, 1), (9, 1)),
    "odd/rgba16.png": (_png_16_bit_rgba, (9, 11)),
    "odd/palette.png": (_palette_png, (10, 12)),
    "odd/cmyk.jpg": (
        lambda: pil_bytes(PILImage.fromarray(rgb_samples(16, 20)).convert("CMYK"), "JPEG"),
        (16, 20),
    ),
    "odd/gray_alpha.png": (
        lambda: pil_bytes(PILImage.fromarray(rgb_samples(6, 9)[:, :, :2], "LA"), "PNG"),
        (6, 9),
    ),
    "фото ünïcödé/照片 1.png": (lambda: _photo_bytes("PNG", 20, 30), (20, 30)),
    "with space/a photo.jpg": (lambda: _photo_bytes("JPEG", 24, 18), (24, 18)),
    "camera/IMG_0001.JPG": (lambda: _photo_bytes("JPEG", 30, 40), (30, 40)),
    "camera/sideways behind text.png": (_sideways_photo, (8, 4)),  # restored upright
    # Names near the 255-byte limit: a lock or temporary file named after them must still fit.
    f"long/{'l' * 246}.png": (lambda: _photo_bytes("PNG", 8, 10), (8, 10)),
    f"long/{'é' * 122}.png": (lambda: _photo_bytes("PNG", 10, 8), (10, 8)),
}


def _add_links(corpus: Corpus) -> None:
    """A link to a photo outside the tree (followed), a broken link and a link loop."""
    outside = corpus.root.parent / f"{corpus.root.name}-linked" / "real.png"
    _write(outside, _photo_bytes("PNG", 14, 22))
    links = corpus.root / "links"
    links.mkdir(parents=True, exist_ok=True)
    (links / "link.png").symlink_to(outside)
    corpus.odd.append(OddInput("links/link.png", (14, 22)))
    (links / "broken.png").symlink_to(links / "gone.png")
    corpus.bad.append(BadInput("links/broken.png", "broken symbolic link"))
    (links / "loop.png").symlink_to(links / "loop.png")
    corpus.bad.append(BadInput("links/loop.png", "too many levels of symbolic links"))


def _add_fifo(corpus: Corpus) -> None:
    """A named pipe named like an image (reading it would block forever)."""
    if hasattr(os, "mkfifo"):
        os.mkfifo(corpus.root / "bad" / "pipe.png")
        corpus.bad.append(BadInput("bad/pipe.png", "not a regular file"))


def build_corpus(root: Path) -> Corpus:
    """Every bad and odd input below `root`. `bad/unreadable.png` is chmod 000: a caller
    running as root, who can read it anyway, must inject the failure (see
    permissions_enforced)."""
    corpus = Corpus(root)
    for relative, (contents, cause) in BAD_FILES.items():
        _write(root / relative, contents())
        corpus.bad.append(BadInput(relative, cause))
    for relative, (contents, size) in ODD_FILES.items():
        _write(root / relative, contents())
        corpus.odd.append(OddInput(relative, size))
    (root / "bad" / "unreadable.png").chmod(0)
    _add_links(corpus)
    _add_fifo(corpus)
    return corpus


def folder_chain(top: Path, depth: int) -> Path:
    """`top/d/d/.../d`, `depth` folders deep, made level by level through folder descriptors
    (Path.mkdir recurses once a level); the deepest folder."""
    top.mkdir(parents=True)
    folder = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=folder)
        deeper = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = deeper
    os.close(folder)
    return top.joinpath(*["d"] * depth)


def remove_folder_chain(top: Path) -> None:
    """Remove a `folder_chain` and the files in it, deepest first through folder descriptors
    (shutil.rmtree, and so pytest's clean-up of old temporary folders, recurses once a level
    and fails beyond about 1000)."""
    folders = [os.open(top, os.O_RDONLY)]
    while "d" in os.listdir(folders[-1]):
        folders.append(os.open("d", os.O_RDONLY, dir_fd=folders[-1]))
    while folders:
        folder = folders.pop()
        for name in os.listdir(folder):
            if name != "d":
                os.unlink(name, dir_fd=folder)
        os.close(folder)
        if folders:
            os.rmdir("d", dir_fd=folders[-1])
    top.rmdir()
