"""A corpus of bad, odd and hostile inputs: each decodes sensibly or fails with a clean error."""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import runpy
import struct
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hostile_inputs import (
    BOMB_SIDE,
    HEADER_BOMBS,
    INFLATED_CHUNKS,
    oriented_png,
    permissions_enforced,
    pil_bytes,
    png_chunk,
    png_claiming,
    radiance_hdr,
    tiff_bytes,
    with_jpeg_size,
    with_short_adobe_segment,
    with_text_bomb,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import features

import measr.io.probe as probe_module
import measr.io.read as read_module
import measr.io.write as write_module
from measr.errors import ImageReadError, ImageWriteError
from measr.io import Image, image_from_array, read_image, to_uint, write_image
from measr.io.headers import RefusedImageError, read_own_header
from measr.io.headers.jpeg import MAX_SCANS
from measr.io.orientation import orientation_from_exif

RNG = np.random.default_rng(7)
FUZZ_FOLDER = Path(__file__).resolve().parent.parent / "fuzz"


def _skip_unless_permissions_enforced(folder: Path) -> None:
    """Skip when this user ignores file permissions (root, as os.geteuid() == 0 usually is)."""
    if not permissions_enforced(folder):
        pytest.skip("file permissions are not enforced for this user (root?)")


def _rgb(height: int = 16, width: int = 24) -> np.ndarray:
    """Random 8-bit RGB samples."""
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _expect_read_error(path: Path, *fragments: str, **options: int) -> ImageReadError:
    """read_image(path) raises ImageReadError naming the file, with a hint and the fragments."""
    with pytest.raises(ImageReadError) as caught:
        read_image(path, **options)
    error = caught.value
    assert path.name in error.message, error.message
    assert "\n" not in error.message and error.hint
    for fragment in fragments:
        assert fragment in error.message, error.message
    return error


def _check_valid(image: Image) -> None:
    """The invariants every decoded Image keeps."""
    assert image.pixels.dtype == np.float32 and image.pixels.ndim == 3
    assert image.pixels.shape[2] in (1, 3) and image.height >= 1 and image.width >= 1
    assert float(image.pixels.min()) >= 0.0 and float(image.pixels.max()) <= 1.0
    assert image.bit_depth in (8, 16)
    if image.alpha is not None:
        assert image.alpha.shape == image.pixels.shape[:2]
        assert image.alpha.dtype == (np.uint8 if image.bit_depth == 8 else np.uint16)


# --- files that are not images ----------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    """A 0-byte file is refused as empty."""
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_read_error(path, "empty")


def test_text_file_named_png(tmp_path: Path) -> None:
    """Plain text with an image extension is recognised as text."""
    path = tmp_path / "notes.png"
    path.write_text("shopping list: milk, eggs\n")
    _expect_read_error(path, "text file")


def test_html_page_named_jpg(tmp_path: Path) -> None:
    """A saved error page is recognised as HTML."""
    path = tmp_path / "download.jpg"
    path.write_text("<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n")
    _expect_read_error(path, "HTML")


def test_random_bytes(tmp_path: Path) -> None:
    """Binary junk is an unknown format."""
    path = tmp_path / "junk.webp"
    path.write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_read_error(path, "unknown format")


def test_format_measr_does_not_read(tmp_path: Path) -> None:
    """A real image in a format OpenCV does not decode (ICO) is named as unsupported."""
    path = tmp_path / "favicon.png"
    path.write_bytes(pil_bytes(PILImage.fromarray(_rgb(16, 16)), "ICO"))
    _expect_read_error(path, "ICO files are not supported")


@pytest.mark.parametrize("pil_format", ["PNG", "JPEG", "WEBP", "TIFF", "BMP"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_images(tmp_path: Path, pil_format: str, keep: float) -> None:
    """A cut-off download of each format is refused as truncated or corrupt."""
    data = pil_bytes(PILImage.fromarray(_rgb(64, 64)), pil_format)
    path = tmp_path / f"cut.{pil_format.lower()}"
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    _expect_read_error(path)


def test_truncated_png_and_jpeg_say_so(tmp_path: Path) -> None:
    """When the header is intact, the message names the format and the damage."""
    for pil_format in ("PNG", "JPEG"):
        data = pil_bytes(PILImage.fromarray(_rgb(64, 64)), pil_format)
        path = tmp_path / f"half.{pil_format.lower()}"
        path.write_bytes(data[: len(data) // 2])
        _expect_read_error(path, pil_format, "truncated or corrupt")


# --- header bombs and limits ------------------------------------------------------------------


def _decoding_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any decoding fail the test."""

    def must_not_decode(*args: object) -> None:
        raise AssertionError("the pixels of a refused image were decoded")

    monkeypatch.setattr(read_module.cv2, "imdecode", must_not_decode)


def _expect_refused_fast(path: Path, *fragments: str) -> None:
    """read_image(path) refuses the file in under a second and 5 MB of Python allocations."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        _expect_read_error(path, *fragments)
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 5 * 1024 * 1024


def test_huge_png_header_is_refused_fast_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PNG claiming 100000 x 100000 is refused from its header: fast, small memory."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(100_000, 100_000))
    _decoding_forbidden(monkeypatch)
    _expect_refused_fast(path, "100000 x 100000", "above the limit")


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    """max_pixels lowers the limit; the same image reads under the default one."""
    path = tmp_path / "photo.png"
    path.write_bytes(pil_bytes(PILImage.fromarray(_rgb(40, 50)), "PNG"))
    _expect_read_error(path, "2000 pixels", "limit of 1999 pixels", max_pixels=1999)
    assert read_image(path, max_pixels=2000).width == 50


# --- a header bomb in every format measr reads (issue 36) -------------------------------------
# measr reads each format's header itself: a file is refused from its header, before decoding,
# whatever Pillow makes of it; OpenCV's own pixel limit is only a second fence.


def _pillow_blind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Pillow refuse every header, as it refuses some hostile ones."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PILImage.UnidentifiedImageError("refused for the test")

    monkeypatch.setattr(probe_module.PILImage, "open", refuse)


@pytest.mark.parametrize("pillow", ["with Pillow", "Pillow refusing the header"])
@pytest.mark.parametrize("name", sorted(HEADER_BOMBS))
def test_a_header_bomb_of_every_format_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, pillow: str
) -> None:
    """Issue 36: a few hundred bytes claiming 900 megapixels (4.3 gigapixels for GIF) are
    refused from the header in well under a second and a few MB, never decoded."""
    path = tmp_path / "bomb.img"
    path.write_bytes(HEADER_BOMBS[name]())
    _decoding_forbidden(monkeypatch)
    if pillow != "with Pillow":
        _pillow_blind(monkeypatch)
    _expect_refused_fast(path, "above the limit")


def test_jpeg2000_size_comes_from_the_codestream_pillow_does_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow sizes a JP2 file from its header box (8 x 8 here); OpenJPEG decodes the size its
    codestream gives (30000 x 30000), which measr checks."""
    data = HEADER_BOMBS["jpeg2000 jp2"]()
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.size == (8, 8)
    path = tmp_path / "bomb.jp2"
    path.write_bytes(data)
    _decoding_forbidden(monkeypatch)
    _expect_read_error(path, f"{BOMB_SIDE} x {BOMB_SIDE}")


def test_a_file_in_no_format_opencv_decodes_is_never_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a header measr can read, nothing is decoded: ICO, text and junk are named from
    their bytes alone."""
    _decoding_forbidden(monkeypatch)
    icon = tmp_path / "favicon.png"
    icon.write_bytes(pil_bytes(PILImage.fromarray(_rgb(16, 16)), "ICO"))
    _expect_read_error(icon, "ICO files are not supported")
    junk = tmp_path / "junk.webp"
    junk.write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_read_error(junk, "unknown format")


def _jpeg(samples: np.ndarray, **options: object) -> bytes:
    return pil_bytes(PILImage.fromarray(samples), "JPEG", quality=95, **options)


def test_a_jpeg_bomb_pillow_cannot_parse_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 36, case 4: a 5-byte Adobe segment makes Pillow refuse the header; 781 bytes then
    cost 6.1 GB in OpenCV before measr refused the size."""
    data = with_short_adobe_segment(with_jpeg_size(_jpeg(_rgb(16, 16)), 32_000, 32_000))
    with pytest.raises(PILImage.UnidentifiedImageError):
        PILImage.open(io.BytesIO(data))
    path = tmp_path / "bomb.jpg"
    path.write_bytes(data)
    _decoding_forbidden(monkeypatch)
    _expect_read_error(path, "32000 x 32000", "above the limit")


def test_a_jpeg_pillow_cannot_parse_keeps_orientation_and_metadata(tmp_path: Path) -> None:
    """Issue 36, case 21: the same trick lost the EXIF orientation (a sideways photo came out
    sideways), the ICC profile and the resolution; measr's own JPEG reader finds them."""
    stored = np.zeros((16, 24, 3), np.uint8)
    stored[:8, :8] = (255, 0, 0)  # a red corner: top-left as stored
    exif = PILImage.Exif()
    exif[0x0112] = 6
    profile = b"\x00" * 16 + b"RGB " + b"\x00" * 16 + b"acsp" + b"\x00" * 88
    data = _jpeg(stored, exif=exif.tobytes(), icc_profile=profile, dpi=(300, 150))
    path = tmp_path / "sideways.jpg"
    path.write_bytes(with_short_adobe_segment(data))
    image = read_image(path)
    assert (image.height, image.width) == (24, 16)
    upright = to_uint(image.pixels, 8)
    assert upright[0, -1, 0] > 200 and upright[-1, 0, 0] < 50  # the corner turned clockwise
    assert image.metadata.exif is not None and orientation_from_exif(image.metadata.exif) == 1
    assert image.metadata.icc_profile == profile
    assert image.metadata.dpi == (150, 300)  # turned with the picture


def _progressive_with_repeated_scan(repeats: int) -> bytes:
    """A small progressive JPEG whose first AC scan is repeated: each repeat is a few bytes but
    makes libjpeg walk every block of the image again."""
    data = _jpeg(_rgb(64, 64), progressive=True)
    scans = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    second, third = scans[1], scans[2]  # the second scan is an AC scan in Pillow's progression
    end = data.rindex(b"\xff\xd9")
    return data[:end] + data[second:third] * repeats + data[end:]


def test_a_jpeg_of_too_many_scans_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 36, case 26: 100 000 scans (3.4 MB) decoded for 150 s; more than MAX_SCANS are
    refused from the markers alone."""
    path = tmp_path / "scans.jpg"
    path.write_bytes(_progressive_with_repeated_scan(MAX_SCANS))
    _decoding_forbidden(monkeypatch)
    started = time.perf_counter()
    _expect_read_error(path, f"more than {MAX_SCANS} scans")
    assert time.perf_counter() - started < 1.0


def test_a_jpeg_of_too_many_segments_is_refused(tmp_path: Path) -> None:
    """10 000 empty comment segments (40 KB): the walk over the markers is capped."""
    data = _jpeg(_rgb(8, 8))
    path = tmp_path / "comments.jpg"
    path.write_bytes(data[:2] + b"\xff\xfe\x00\x02" * 10_000 + data[2:])
    _expect_refused_fast(path, "more than 8192 segments")


def test_a_progressive_jpeg_within_the_scan_limit_reads(tmp_path: Path) -> None:
    path = tmp_path / "scans.jpg"
    path.write_bytes(_progressive_with_repeated_scan(MAX_SCANS - 20))
    assert read_image(path).width == 64


@pytest.mark.parametrize(("width", "height", "rows"), [(21_000, 21_000, 1), (8, 4, 4)])
def test_a_radiance_hdr_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int, height: int, rows: int
) -> None:
    """Issue 36, case 3: Pillow cannot read HDR, so 28 MB cost 10.4 GB and 120 s of decoding
    before the floating-point samples were refused; the signature alone refuses it now."""
    path = tmp_path / "sky.hdr"
    path.write_bytes(radiance_hdr(width, height, rows))
    _decoding_forbidden(monkeypatch)
    _expect_refused_fast(path, "32-bit floating-point", "8- and 16-bit")


@pytest.mark.parametrize(
    ("bits", "sample_format", "cause"),
    [((12, 12, 12), 1, "above the limit"), ((32, 32, 32), 1, "32-bit integer")],
)
def test_tiff_bombs_pillow_cannot_parse_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bits: tuple[int, ...],
    sample_format: int,
    cause: str,
) -> None:
    """Issue 36, case 5: 12-bit or 32-bit RGB TIFFs, which Pillow cannot parse, went to
    OpenCV unchecked (34 KB cost 6.4 GB)."""
    data = tiff_bytes(32_768, 32_768, bits, sample_format=sample_format, strip=bytes(64))
    with pytest.raises(PILImage.UnidentifiedImageError):
        PILImage.open(io.BytesIO(data))
    path = tmp_path / "bomb.tif"
    path.write_bytes(data)
    _decoding_forbidden(monkeypatch)
    _expect_read_error(path, cause)


def _pack_12_bit(samples: np.ndarray) -> bytes:
    """12-bit samples packed two to three bytes, rows padded to whole bytes (TIFF's layout)."""
    rows = []
    for row in samples.reshape(samples.shape[0], -1).astype(np.uint32):
        padded = np.append(row, 0) if len(row) % 2 else row
        pairs = padded.reshape(-1, 2)
        packed = np.stack(
            [pairs[:, 0] >> 4, ((pairs[:, 0] & 15) << 4) | (pairs[:, 1] >> 8), pairs[:, 1] & 255],
            axis=1,
        )
        rows.append(packed.astype(np.uint8).tobytes()[: (len(row) * 12 + 7) // 8])
    return b"".join(rows)


def test_a_12_bit_tiff_within_the_limit_reads_as_16_bit(tmp_path: Path) -> None:
    samples = RNG.integers(0, 4096, (6, 10, 3), dtype=np.uint16)
    path = tmp_path / "scan12.tif"
    path.write_bytes(tiff_bytes(10, 6, (12, 12, 12), strip=_pack_12_bit(samples)))
    image = read_image(path)
    assert image.bit_depth == 16 and (image.height, image.width) == (6, 10)
    expected = samples.astype(np.float64) / 4095
    assert np.abs(image.pixels - expected).max() < 1e-3


def test_a_16_bit_cmyk_tiff_is_named_not_called_corrupt(tmp_path: Path) -> None:
    """Issue 36, case 45: OpenCV cannot decode 16-bit CMYK, which is valid TIFF; the message
    said "truncated or corrupt"."""
    path = tmp_path / "print.tif"
    path.write_bytes(tiff_bytes(8, 4, (16,) * 4, photometric=5, strip=bytes(8 * 4 * 8)))
    _expect_read_error(path, "16-bit CMYK TIFF", "cannot decode")


@pytest.mark.parametrize(("kind", "maxval"), [(b"P5", 4095), (b"P6", 1000), (b"P5", 100)])
def test_netpbm_samples_are_scaled_by_maxval(tmp_path: Path, kind: bytes, maxval: int) -> None:
    """Issue 36, case 19: OpenCV returns a PGM/PPM's numbers as stored, so a maxval of 4095
    came out 16 times too dark; measr scales them to the full range."""
    channels = 1 if kind == b"P5" else 3
    samples = RNG.integers(0, maxval + 1, (4, 6, channels), dtype=np.uint16)
    samples[0, 0] = maxval  # full white
    stored = samples.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    path = tmp_path / "scan.pnm"
    path.write_bytes(kind + b"\n6 4\n%d\n" % maxval + stored)
    image = read_image(path)
    assert image.bit_depth == (16 if maxval > 255 else 8)
    np.testing.assert_allclose(image.pixels, samples / maxval, atol=0.5 / (2**image.bit_depth - 1))
    assert float(image.pixels.max()) == 1.0


@pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF support")
@pytest.mark.parametrize("pillow", ["with Pillow", "Pillow refusing the header"])
def test_an_animated_avif_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pillow: str
) -> None:
    """Issue 36, case 22: only the first frame of an animated AVIF was restored, silently."""
    frames = [PILImage.fromarray(_rgb(16, 16)) for _ in range(3)]
    path = tmp_path / "clip.avif"
    frames[0].save(path, "AVIF", save_all=True, append_images=frames[1:], duration=100)
    if pillow != "with Pillow":
        _pillow_blind(monkeypatch)
    _expect_read_error(path, "animated AVIF (3 frames)")


SMALL_FILES = {
    "gif": lambda: pil_bytes(PILImage.fromarray(_rgb(6, 10)), "GIF"),
    "jpeg2000": lambda: pil_bytes(PILImage.fromarray(_rgb(6, 10)), "JPEG2000"),
    "j2k": lambda: pil_bytes(PILImage.fromarray(_rgb(6, 10)), "JPEG2000", no_jp2=True),
    "webp lossy": lambda: pil_bytes(PILImage.fromarray(_rgb(6, 10)), "WEBP"),
    "webp alpha": lambda: pil_bytes(
        PILImage.fromarray(RNG.integers(0, 256, (6, 10, 4), dtype=np.uint8)), "WEBP"
    ),
    "bmp": lambda: pil_bytes(PILImage.fromarray(_rgb(6, 10)), "BMP"),
    "ppm": lambda: b"P6 10 6 255\n" + _rgb(6, 10).tobytes(),
    "pbm": lambda: b"P1\n# bits\n10 6\n" + b"0 1 " * 30,
    "pam": lambda: (
        b"P7\nWIDTH 10\nHEIGHT 6\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n"
        + _rgb(6, 10).tobytes()
    ),
    "bigtiff": lambda: tiff_bytes(10, 6, strip=_rgb(6, 10).tobytes(), big=True),
    "avif": lambda: pil_bytes(PILImage.fromarray(_rgb(6, 10)), "AVIF"),
    "sun raster": lambda: (
        struct.pack(">4s7I", b"\x59\xa6\x6a\x95", 10, 6, 24, 180, 1, 0, 0) + _rgb(6, 10).tobytes()
    ),
}


@pytest.mark.parametrize("name", sorted(SMALL_FILES))
def test_a_small_file_of_every_format_reads(tmp_path: Path, name: str) -> None:
    """measr's own header readers accept the valid files of every format OpenCV decodes."""
    path = tmp_path / "small.img"
    path.write_bytes(SMALL_FILES[name]())
    image = read_image(path)
    _check_valid(image)
    assert (image.height, image.width) == (6, 10)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(HEADER_BOMBS)),
    flips=st.lists(st.tuples(st.integers(0, 1 << 10), st.integers(1, 255)), max_size=6),
    keep=st.integers(0, 1 << 10),
)
def test_fuzz_the_own_header_readers(name: str, flips: list[tuple[int, int]], keep: int) -> None:
    """Damaged headers of every format give a Header, None or a refusal, nothing else."""
    data = bytearray(HEADER_BOMBS[name]())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    with contextlib.suppress(RefusedImageError):
        read_own_header(io.BytesIO(bytes(data[:keep])))


# --- a header Pillow refuses (issue 21) -----------------------------------------------------
# A PNG chunk that inflates past Pillow's text limit makes Pillow refuse the whole header; the
# checks that rely on the header must still run.


@pytest.mark.parametrize("kind", sorted(INFLATED_CHUNKS))
def test_a_chunk_pillow_refuses_does_not_switch_off_the_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: bytes
) -> None:
    """21000 x 21000 is within OpenCV's own limit: without the header check it would be
    decoded (gigabytes) before measr refused it."""
    path = tmp_path / "bomb.png"
    path.write_bytes(with_text_bomb(png_claiming(21_000, 21_000), kind))

    def must_not_decode(*args: object) -> None:
        raise AssertionError("the pixels of a refused image were decoded")

    monkeypatch.setattr(read_module.cv2, "imdecode", must_not_decode)
    _expect_read_error(path, "21000 x 21000", "above the limit")


def test_an_animated_png_behind_such_a_chunk_is_refused_as_animated(tmp_path: Path) -> None:
    frames = [PILImage.fromarray(_rgb(8, 8)) for _ in range(3)]
    animation = pil_bytes(frames[0], "PNG", save_all=True, append_images=frames[1:])
    path = tmp_path / "clip.png"
    path.write_bytes(with_text_bomb(animation))
    _expect_read_error(path, "animated PNG", "3 frames")


def test_the_exif_orientation_behind_such_a_chunk_is_applied(tmp_path: Path) -> None:
    stored = _rgb(4, 8)
    path = tmp_path / "sideways.png"
    path.write_bytes(with_text_bomb(oriented_png(stored, 6)))
    upright = read_image(path)
    assert upright.source_format == "png"
    np.testing.assert_array_equal(to_uint(upright.pixels, 8), np.rot90(stored, k=-1))


def test_gray_behind_such_a_chunk_stays_gray(tmp_path: Path) -> None:
    path = tmp_path / "gray_alpha.png"
    gray_alpha = PILImage.fromarray(_rgb(6, 9)[:, :, :2], "LA")
    path.write_bytes(with_text_bomb(pil_bytes(gray_alpha, "PNG")))
    image = read_image(path)
    assert image.is_gray and image.alpha is not None


@settings(max_examples=100, deadline=None)
@given(exif=st.binary(max_size=64), order=st.sampled_from([b"II*\x00", b"MM\x00*"]))
def test_damaged_exif_behind_such_a_chunk_never_escapes(exif: bytes, order: bytes) -> None:
    """measr reads the eXIf chunk itself then: any bytes in it (behind a valid TIFF byte-order
    mark, so the parser goes past its first check) give an image or a clean refusal."""
    png = pil_bytes(PILImage.fromarray(_rgb(4, 8)), "PNG")
    data = with_text_bomb(png[:33] + png_chunk(b"eXIf", order + exif) + png[33:])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "exif.png"
        path.write_bytes(data)
        image = read_image(path)
    assert (image.height, image.width) in ((4, 8), (8, 4))


def test_a_line_break_in_a_file_name_stays_escaped_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "notes\nforged line.png"
    path.write_text("not an image")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert "\n" not in caught.value.one_line()
    assert "notes\\nforged line.png" in caught.value.message


def test_zero_sized_png_header(tmp_path: Path) -> None:
    """A header claiming 0 x 10 pixels is refused."""
    path = tmp_path / "zero.png"
    path.write_bytes(png_claiming(0, 10) + png_chunk(b"IEND", b""))
    _expect_read_error(path)


def test_file_larger_than_any_image_within_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes are not read into memory when the file is too big for the pixel limit."""
    monkeypatch.setattr(read_module, "_METADATA_ALLOWANCE", 0)
    path = tmp_path / "huge.bmp"
    path.write_bytes(b"\x00" * 1000)
    _expect_read_error(path, "MB, more than any image", max_pixels=100)


# --- odd but valid images ---------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 7), (7, 1)])
@pytest.mark.parametrize("extension", [".png", ".jpg", ".tif", ".webp", ".bmp"])
def test_tiny_images(tmp_path: Path, extension: str, height: int, width: int) -> None:
    """1x1, 1x7 and 7x1 images read and write back at their size."""
    path = tmp_path / f"tiny{extension}"
    write_image(path, image_from_array(_rgb(height, width)))
    image = read_image(path)
    _check_valid(image)
    assert (image.height, image.width) == (height, width)
    write_image(tmp_path / f"again{extension}", image)


def test_16_bit_rgba_png(tmp_path: Path) -> None:
    """16-bit colour and alpha stay 16-bit and exact."""
    samples = RNG.integers(0, 65536, (9, 11, 4), dtype=np.uint16)
    path = tmp_path / "deep.png"
    ok, encoded = cv2.imencode(".png", samples)  # OpenCV writes BGRA
    assert ok
    path.write_bytes(encoded.tobytes())
    image = read_image(path)
    assert image.bit_depth == 16 and image.alpha is not None
    np.testing.assert_array_equal(to_uint(image.pixels, 16), samples[:, :, 2::-1])
    np.testing.assert_array_equal(image.alpha, samples[:, :, 3])


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_png(tmp_path: Path, transparent: bool) -> None:
    """A palette PNG reads as RGB (plus alpha when it has a transparent entry)."""
    rgb = _rgb(10, 12)
    palette_image = PILImage.fromarray(rgb).quantize(16)
    options = {"transparency": 0} if transparent else {}
    path = tmp_path / "palette.png"
    path.write_bytes(pil_bytes(palette_image, "PNG", **options))
    image = read_image(path)
    _check_valid(image)
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(to_uint(image.pixels, 8), expected)
    assert (image.alpha is not None) == transparent
    if image.alpha is not None:
        np.testing.assert_array_equal(image.alpha == 0, np.asarray(palette_image) == 0)


@pytest.mark.parametrize("pil_format", ["JPEG", "TIFF"])
def test_cmyk_files_read_as_rgb(tmp_path: Path, pil_format: str) -> None:
    """CMYK JPEG/TIFF become RGB, close to Pillow's own conversion, with no bogus alpha."""
    cmyk = PILImage.fromarray(_rgb(16, 16)).convert("CMYK")
    path = tmp_path / f"print.{pil_format.lower()}"
    path.write_bytes(pil_bytes(cmyk, pil_format, quality=95))
    image = read_image(path)
    _check_valid(image)
    assert image.pixels.shape[2] == 3 and image.alpha is None
    with PILImage.open(path) as im:
        reference = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(to_uint(image.pixels, 8).astype(int) - reference).max() <= 8


def test_gray_alpha_png_8_bit(tmp_path: Path) -> None:
    """An LA PNG stays one gray channel plus its alpha."""
    pairs = RNG.integers(0, 256, (6, 9, 2), dtype=np.uint8)
    path = tmp_path / "la.png"
    path.write_bytes(pil_bytes(PILImage.fromarray(pairs, "LA"), "PNG"))
    image = read_image(path)
    assert image.is_gray and image.alpha is not None
    np.testing.assert_array_equal(to_uint(image.pixels, 8)[:, :, 0], pairs[:, :, 0])
    np.testing.assert_array_equal(image.alpha, pairs[:, :, 1])


def test_gray_alpha_png_16_bit(tmp_path: Path) -> None:
    """A 16-bit gray+alpha PNG (built by hand; Pillow widens it to RGBA) stays gray, 16-bit."""
    pairs = RNG.integers(0, 65536, (5, 8, 2), dtype=np.uint16)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pairs)
    header = png_claiming(8, 5, bit_depth=16, color_type=4)
    ihdr_end = 8 + 25  # signature + IHDR chunk
    data = header[:ihdr_end] + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    path = tmp_path / "la16.png"
    path.write_bytes(data)
    image = read_image(path)
    assert image.is_gray and image.bit_depth == 16 and image.alpha is not None
    np.testing.assert_array_equal(to_uint(image.pixels, 16)[:, :, 0], pairs[:, :, 0])
    np.testing.assert_array_equal(image.alpha, pairs[:, :, 1])


def test_gray_alpha_tiff(tmp_path: Path) -> None:
    """An LA TIFF (OpenCV drops its alpha) keeps gray and alpha via Pillow."""
    pairs = RNG.integers(0, 256, (6, 9, 2), dtype=np.uint8)
    path = tmp_path / "la.tif"
    path.write_bytes(pil_bytes(PILImage.fromarray(pairs, "LA"), "TIFF"))
    image = read_image(path)
    assert image.is_gray and image.alpha is not None
    np.testing.assert_array_equal(image.alpha, pairs[:, :, 1])


@pytest.mark.parametrize("pil_format", ["GIF", "WEBP", "PNG"])
def test_animations_are_refused(tmp_path: Path, pil_format: str) -> None:
    """Animated GIF, WebP and PNG are refused with the frame count."""
    frames = [PILImage.fromarray(_rgb(8, 8)) for _ in range(3)]
    path = tmp_path / f"clip.{pil_format.lower()}"
    frames[0].save(path, pil_format, save_all=True, append_images=frames[1:])
    _expect_read_error(path, "animated", "3 frames")


def test_still_gif_reads(tmp_path: Path) -> None:
    """A single-frame GIF is an ordinary image."""
    path = tmp_path / "still.gif"
    PILImage.fromarray(_rgb(8, 10)).save(path, "GIF")
    image = read_image(path)
    _check_valid(image)
    assert (image.height, image.width, image.source_format) == (8, 10, "gif")


def test_multi_page_tiff_reads_the_first_page(tmp_path: Path) -> None:
    """Multi-page TIFFs give their first page (pages are not an animation)."""
    pages = [_rgb(8, 8) for _ in range(3)]
    path = tmp_path / "scan.tif"
    images = [PILImage.fromarray(page) for page in pages]
    images[0].save(path, "TIFF", save_all=True, append_images=images[1:])
    np.testing.assert_array_equal(to_uint(read_image(path).pixels, 8), pages[0])


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_float_and_32_bit_tiffs_are_refused(tmp_path: Path, dtype: type) -> None:
    """Samples that are neither 8- nor 16-bit are refused with what they are."""
    path = tmp_path / "science.tif"
    PILImage.fromarray(np.ones((4, 5), dtype=dtype)).save(path, "TIFF")
    _expect_read_error(path, "32-bit", "8- and 16-bit")


# --- paths --------------------------------------------------------------------------------------


def test_non_ascii_path(tmp_path: Path) -> None:
    """Non-ASCII names read, and errors about them name them."""
    path = tmp_path / "фото ünïcödé 照片.png"
    path.write_bytes(pil_bytes(PILImage.fromarray(_rgb()), "PNG"))
    _check_valid(read_image(path))
    broken = tmp_path / "повреждённый.jpg"
    broken.write_bytes(b"\xff\xd8\xff")
    _expect_read_error(broken)


def test_symlink_is_followed(tmp_path: Path) -> None:
    """A link to an image reads the image."""
    target = tmp_path / "real.png"
    target.write_bytes(pil_bytes(PILImage.fromarray(_rgb()), "PNG"))
    link = tmp_path / "link.png"
    link.symlink_to(target)
    assert read_image(link).width == 24


def test_broken_symlink(tmp_path: Path) -> None:
    """A dangling link says it is a broken link."""
    link = tmp_path / "dangling.png"
    link.symlink_to(tmp_path / "gone.png")
    _expect_read_error(link, "broken symbolic link")


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist."""
    _expect_read_error(tmp_path / "nope.png", "no such file")


def test_directory_passed_as_file(tmp_path: Path) -> None:
    """A folder, even one named like an image."""
    folder = tmp_path / "album.png"
    folder.mkdir()
    _expect_read_error(folder, "folder")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe would block a reader forever; it is refused from its file type."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    _expect_read_error(fifo, "not a regular file")


def test_nul_byte_in_path(tmp_path: Path) -> None:
    """A path with a NUL byte is an invalid path, not a ValueError."""
    with pytest.raises(ImageReadError, match="not valid"):
        read_image(str(tmp_path / "a\x00b.png"))
    with pytest.raises(ImageWriteError, match="not valid"):
        write_image(str(tmp_path / "a\x00b.png"), image_from_array(_rgb(2, 2)))


def test_unreadable_file(tmp_path: Path) -> None:
    """chmod 000 gives 'permission denied'."""
    _skip_unless_permissions_enforced(tmp_path)
    path = tmp_path / "secret.png"
    path.write_bytes(pil_bytes(PILImage.fromarray(_rgb()), "PNG"))
    path.chmod(0)
    try:
        _expect_read_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_unreadable_file_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same failure injected, so it is covered when the tests run as root."""
    path = tmp_path / "secret.png"
    path.write_bytes(pil_bytes(PILImage.fromarray(_rgb()), "PNG"))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(builtins, "open", denied)
    _expect_read_error(path, "permission denied")


# --- output side --------------------------------------------------------------------------------


def test_read_only_output_folder(tmp_path: Path) -> None:
    """A folder without write permission gives ImageWriteError and nothing is created."""
    _skip_unless_permissions_enforced(tmp_path)
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ImageWriteError, match=r"out\.png") as caught:
            write_image(folder / "out.png", image_from_array(_rgb()))
        assert "permission denied" in caught.value.message
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("code", "cause"),
    [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only"), (errno.ENOSPC, "no space")],
)
def test_output_failures_injected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, cause: str
) -> None:
    """Read-only folders, read-only disks and full disks, injected at file creation."""

    def failing_open(*args: object, **kwargs: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(write_module.os, "open", failing_open)
    with pytest.raises(ImageWriteError) as caught:
        write_image(tmp_path / "out.png", image_from_array(_rgb()))
    assert "out.png" in caught.value.message and cause in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_full_disk_mid_write_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC during the data write itself leaves no partial file."""
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        """A file object whose writes fail as on a full disk."""

        def __init__(self, descriptor: int) -> None:
            self._file = real_fdopen(descriptor, "wb")

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            self._file.close()
            super().close()

    monkeypatch.setattr(write_module.os, "fdopen", lambda fd, mode: FullDisk(fd))
    with pytest.raises(ImageWriteError, match="no space"):
        write_image(tmp_path / "out.jpg", image_from_array(_rgb()))
    assert list(tmp_path.iterdir()) == []


# --- fuzzing the decode path ------------------------------------------------------------------


# The starting points for mutations: the seeds of the atheris harness (fuzz/seeds.py), small
# valid files in every readable format and the hostile PNGs found so far.
SEED_FILES: dict[str, bytes] = runpy.run_path(str(FUZZ_FOLDER / "seeds.py"))["seed_files"]()
SEEDS = list(SEED_FILES.values())
FUZZ_MAX_PIXELS = 1 << 20  # keeps any header a mutation inflates from allocating much


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[Path]:
    """One folder for all fuzz examples (hypothesis reruns the test body many times)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def _read_fuzzed(folder: Path, data: bytes) -> None:
    """Decoding arbitrary bytes gives a valid Image or an ImageReadError, nothing else."""
    path = folder / "fuzzed.img"
    path.write_bytes(data)
    try:
        image = read_image(path, max_pixels=FUZZ_MAX_PIXELS)
    except ImageReadError as error:
        assert "fuzzed.img" in error.message and error.hint
        return
    _check_valid(image)


_FUZZ_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ_SETTINGS
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes(fuzz_dir: Path, data: bytes) -> None:
    """Random bytes never escape as another exception."""
    _read_fuzzed(fuzz_dir, data)


@_FUZZ_SETTINGS
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=8),
    keep=st.floats(0.0, 1.0),
)
def test_fuzz_mutated_images(
    fuzz_dir: Path, seed: int, flips: list[tuple[int, int]], keep: float
) -> None:
    """Valid files with flipped bits and truncations decode or fail cleanly."""
    data = bytearray(SEEDS[seed])
    for position, mask in flips:
        data[position % len(data)] ^= mask
    data = data[: max(0, round(len(data) * keep))] if keep < 1.0 else data
    _read_fuzzed(fuzz_dir, bytes(data))


def test_the_fuzz_seeds_keep_the_contract_and_hold_the_text_chunk_case(fuzz_dir: Path) -> None:
    """Every seed decodes or fails cleanly; the seeds for issue 21 are read through a header
    Pillow refuses."""
    for data in SEEDS:
        _read_fuzzed(fuzz_dir, data)
    with pytest.raises(ValueError, match="MAX_TEXT_CHUNK"):
        PILImage.open(io.BytesIO(SEED_FILES["text_bomb.png"]))
    path = fuzz_dir / "clip.png"
    path.write_bytes(SEED_FILES["text_bomb_animated.png"])
    _expect_read_error(path, "animated PNG (3 frames)")


def test_image_too_wide_for_the_format(tmp_path: Path) -> None:
    """WebP cannot hold 17000 pixels a side: ImageWriteError suggesting PNG, no file left."""
    wide = image_from_array(np.zeros((1, 17_000, 3), np.uint8))
    with pytest.raises(ImageWriteError, match="17000 x 1") as caught:
        write_image(tmp_path / "wide.webp", wide)
    assert "PNG" in caught.value.hint
    assert list(tmp_path.iterdir()) == []
    write_image(tmp_path / "wide.png", wide)
