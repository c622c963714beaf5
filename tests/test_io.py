"""Round trips, conversions, EXIF orientation and atomic writes of measr.io."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

import measr.io.write as write_module
from measr.errors import ExitCode, ImageWriteError, MeasrError
from measr.io import (
    SUPPORTED_EXTENSIONS,
    Image,
    from_uint,
    image_from_array,
    is_supported_path,
    read_image,
    to_uint,
    write_image,
)
from measr.io.image import convert_bit_depth
from measr.io.png import encode_gray_alpha_png

HEIGHT, WIDTH = 12, 20
LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}
SIXTEEN_BIT = {".png", ".tif", ".tiff"}
LAYOUTS = ["gray", "rgb", "rgba", "gray_alpha"]


def _samples(dtype: type, channels: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with mild noise: lossy codecs keep it close, lossless ones exact."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    planes = [(x / WIDTH * 0.6 + y / HEIGHT * 0.3 + 0.05 * c) for c in range(channels)]
    smooth = np.stack(planes, axis=-1)
    noisy = smooth + rng.uniform(-0.02, 0.02, smooth.shape)
    return np.rint(np.clip(noisy, 0, 1) * top).astype(dtype)


def _alpha(dtype: type, seed: int = 1) -> np.ndarray:
    """Random alpha, never fully transparent (lossy WebP may alter colour under alpha 0)."""
    top = int(np.iinfo(dtype).max)
    return np.random.default_rng(seed).integers(1, top, (HEIGHT, WIDTH), endpoint=True, dtype=dtype)


def _make_image(layout: str, bit_depth: int) -> Image:
    """A test Image of the given layout and depth."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    channels = 1 if layout.startswith("gray") else 3
    alpha = _alpha(dtype) if layout in ("rgba", "gray_alpha") else None
    return image_from_array(_samples(dtype, channels), alpha=alpha)


def _expected_channels(extension: str, layout: str) -> int:
    """Channels read back: gray stays gray except in WebP and as gray+alpha outside PNG/JPEG."""
    if layout == "rgb" or layout == "rgba":
        return 3
    if extension == ".webp":
        return 3
    if layout == "gray_alpha" and extension not in (".png", ".jpg", ".jpeg"):
        return 3
    return 1


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("extension", SUPPORTED_EXTENSIONS)
def test_round_trip(tmp_path: Path, extension: str, bit_depth: int, layout: str) -> None:
    """Size, depth, channels and alpha survive a write and read; lossless formats bit-exact."""
    image = _make_image(layout, bit_depth)
    path = tmp_path / f"out{extension}"
    write_image(path, image)
    back = read_image(path)

    expected_depth = bit_depth if extension in SIXTEEN_BIT else 8
    assert (back.height, back.width) == (HEIGHT, WIDTH)
    assert back.bit_depth == expected_depth
    assert back.pixels.dtype == np.float32
    assert back.pixels.shape[2] == _expected_channels(extension, layout)
    written = to_uint(image.pixels, expected_depth)
    read = to_uint(back.pixels, expected_depth)
    if back.pixels.shape[2] != image.pixels.shape[2]:
        written = np.repeat(written, 3, axis=2)  # gray stored as three equal channels
    if extension in LOSSLESS:
        np.testing.assert_array_equal(read, written)
    else:
        assert np.abs(back.pixels - from_uint(written)).mean() < 0.03

    if image.alpha is None or extension in (".jpg", ".jpeg"):
        assert back.alpha is None  # JPEG cannot carry alpha: dropped by design
    else:
        assert back.alpha is not None
        np.testing.assert_array_equal(back.alpha, convert_bit_depth(image.alpha, expected_depth))


def test_source_format_follows_content(tmp_path: Path) -> None:
    """A PNG named .jpg reads as a PNG."""
    path = tmp_path / "really_a_png.jpg"
    write_image(tmp_path / "a.png", _make_image("rgb", 8))
    (tmp_path / "a.png").rename(path)
    assert read_image(path).source_format == "png"


def test_uint_float_round_trip_is_exact_for_every_value() -> None:
    """from_uint then to_uint gives back every 8- and 16-bit value."""
    for dtype, depth in ((np.uint8, 8), (np.uint16, 16)):
        values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
        floats = from_uint(values)
        assert floats.dtype == np.float32
        assert floats.min() == 0.0 and floats.max() == 1.0
        np.testing.assert_array_equal(to_uint(floats, depth), values)


def test_to_uint_clips_and_maps_nan_to_zero() -> None:
    """Out-of-range and NaN network outputs never wrap around."""
    pixels = np.array([-0.5, 0.0, 0.5, 1.0, 1.7, np.nan, np.inf, -np.inf], dtype=np.float32)
    assert to_uint(pixels, 8).tolist() == [0, 0, 128, 255, 255, 0, 255, 0]
    assert to_uint(pixels, 16).tolist() == [0, 0, 32768, 65535, 65535, 0, 65535, 0]


def test_convert_bit_depth_is_exact_between_8_and_16() -> None:
    """8 -> 16 -> 8 is the identity; 16 -> 8 rounds to nearest."""
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(convert_bit_depth(convert_bit_depth(values, 16), 8), values)
    assert convert_bit_depth(np.array([0, 128, 129, 65535], np.uint16), 8).tolist() == [
        0,
        0,
        1,
        255,
    ]


def test_with_pixels_keeps_alpha_depth_and_format() -> None:
    """The restored image keeps what the file had, and gray stays gray."""
    image = image_from_array(_samples(np.uint16, 1), alpha=_alpha(np.uint16), source_format="tiff")
    restored = image.with_pixels(np.full((HEIGHT, WIDTH, 3), 0.25, dtype=np.float32))
    assert restored.is_gray and restored.pixels.shape == (HEIGHT, WIDTH, 1)
    assert restored.alpha is image.alpha
    assert (restored.bit_depth, restored.source_format) == (16, "tiff")
    np.testing.assert_allclose(restored.pixels, 0.25)
    color = _make_image("rgb", 8).with_pixels(np.zeros((HEIGHT, WIDTH, 3)))
    assert color.pixels.dtype == np.float32 and not color.is_gray
    with pytest.raises(ValueError, match="new pixels"):
        image.with_pixels(np.zeros((HEIGHT + 1, WIDTH, 3), dtype=np.float32))


def test_image_properties_and_validation() -> None:
    """Image exposes its size and refuses malformed arrays."""
    image = image_from_array(np.zeros((4, 6), np.float64))
    assert (image.height, image.width, image.is_gray, image.has_alpha) == (4, 6, True, False)
    assert image.bit_depth == 8
    with pytest.raises(ValueError):
        Image(np.zeros((4, 6, 2), np.float32), None, 8, "png")
    with pytest.raises(ValueError):
        Image(np.zeros((4, 6, 3), np.float64), None, 8, "png")
    with pytest.raises(ValueError):
        Image(np.zeros((4, 6, 3), np.float32), None, 12, "png")
    with pytest.raises(ValueError):
        Image(np.zeros((4, 6, 3), np.float32), np.zeros((4, 6), np.uint16), 8, "png")
    with pytest.raises(ValueError):
        Image(np.zeros((4, 6, 3), np.float32), np.zeros((4, 5), np.uint8), 8, "png")


def test_supported_extensions() -> None:
    """One list of extensions, lower case with the dot, matched case-insensitively."""
    assert set(SUPPORTED_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
    assert is_supported_path("Holiday.JPG") and is_supported_path(Path("a/b.tiff"))
    assert not is_supported_path("notes.txt") and not is_supported_path("noext")


def test_gray_alpha_png_decodes_the_same_in_pillow() -> None:
    """The hand-written gray+alpha PNG encoder produces a standard PNG."""
    gray, alpha = _samples(np.uint8, 1)[:, :, 0], _alpha(np.uint8)
    with PILImage.open(io.BytesIO(encode_gray_alpha_png(gray, alpha))) as im:
        assert im.mode == "LA"
        np.testing.assert_array_equal(np.asarray(im), np.stack([gray, alpha], axis=-1))


# --- EXIF orientation -------------------------------------------------------------------------


def _asymmetric_rgb() -> np.ndarray:
    """Large flat blocks, different in each corner, so any wrong rotation or flip shows."""
    image = np.zeros((32, 48, 3), np.uint8)
    image[:16, :24] = (250, 20, 20)
    image[:16, 24:] = (20, 250, 20)
    image[16:, :24] = (20, 20, 250)
    image[16:, 24:] = (240, 240, 30)
    image[:8, :8] = (255, 255, 255)
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("pil_format", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_is_applied(tmp_path: Path, pil_format: str, orientation: int) -> None:
    """Pixels come out upright, as Pillow's exif_transpose shows them (TIFF: by OpenCV)."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"oriented.{pil_format.lower()}"
    PILImage.fromarray(_asymmetric_rgb()).save(path, pil_format, exif=exif.tobytes(), quality=95)
    with PILImage.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = to_uint(read_image(path).pixels, 8)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 40  # codec noise at edges
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 3


def test_written_image_is_not_rotated_again(tmp_path: Path) -> None:
    """measr writes upright pixels without the orientation tag, so reading again is stable."""
    exif = PILImage.Exif()
    exif[0x0112] = 6
    source = tmp_path / "camera.jpg"
    PILImage.fromarray(_asymmetric_rgb()).save(source, exif=exif.tobytes(), quality=95)
    upright = read_image(source)
    write_image(tmp_path / "restored.png", upright)
    again = read_image(tmp_path / "restored.png")
    np.testing.assert_array_equal(again.pixels, upright.pixels)
    assert (again.height, again.width) == (48, 32)


# --- paths and atomic writes ------------------------------------------------------------------


def test_non_ascii_and_space_paths(tmp_path: Path) -> None:
    """Paths with spaces and non-ASCII characters read and write."""
    folder = tmp_path / "vacances d'été 写真"
    path = folder / "ça va — フォト 1.png"
    image = _make_image("rgba", 16)
    write_image(path, image)
    back = read_image(path)
    np.testing.assert_array_equal(back.pixels, image.pixels)
    assert back.alpha is not None and image.alpha is not None
    np.testing.assert_array_equal(back.alpha, image.alpha)


def test_write_leaves_only_the_output(tmp_path: Path) -> None:
    """No temporary file remains after a successful write; missing folders are created."""
    path = tmp_path / "new" / "nested" / "out.jpg"
    write_image(path, _make_image("rgb", 8))
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jpg"]


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    """An existing output survives untouched; overwrite=True replaces it."""
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(ImageWriteError) as caught:
        write_image(path, _make_image("rgb", 8))
    assert "out.png" in caught.value.message and caught.value.option == "overwrite"
    assert path.read_bytes() == b"precious"
    write_image(path, _make_image("rgb", 8), overwrite=True)
    assert read_image(path).width == WIDTH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_overwriting_a_symlink_never_writes_through_it(tmp_path: Path) -> None:
    """An output that is a link to the input replaces the link; the input is untouched."""
    source = tmp_path / "input.png"
    write_image(source, _make_image("rgb", 8))
    before = source.read_bytes()
    link = tmp_path / "output.png"
    link.symlink_to(source)
    write_image(link, _make_image("gray", 8), overwrite=True)
    assert source.read_bytes() == before
    assert not link.is_symlink() and read_image(link).is_gray


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_disk_full_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """ENOSPC while writing or renaming gives ImageWriteError and no file at all."""

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(write_module.os, failing, disk_full)
    with pytest.raises(ImageWriteError) as caught:
        write_image(tmp_path / "out.png", _make_image("rgb", 8))
    assert "out.png" in caught.value.message and "no space" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a non-OS failure (Ctrl-C during fsync) removes the temporary file."""

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(write_module.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.tif", _make_image("rgb", 16))
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_bad_names_and_options(tmp_path: Path) -> None:
    """Unknown extension, a folder as output, a file as folder: ImageWriteError; a quality
    outside 1..100: a usage error naming the value."""
    image = _make_image("rgb", 8)
    (tmp_path / "afile").write_bytes(b"x")
    (tmp_path / "adir.png").mkdir()
    cases = [
        (tmp_path / "out.gif", {}, "does not write .gif files"),
        (tmp_path / "noextension", {}, "does not write files without an extension"),
        (tmp_path / "adir.png", {"overwrite": True}, "folder"),
        (tmp_path / "afile" / "out.png", {}, "cannot create folder"),
    ]
    for path, options, cause in cases:
        with pytest.raises(ImageWriteError) as caught:
            write_image(path, image, **options)  # type: ignore[arg-type]
        assert path.name in caught.value.message and cause in caught.value.message
        assert caught.value.hint
    for quality in (0, 101):
        with pytest.raises(MeasrError) as refused:
            write_image(tmp_path / "out.jpg", image, quality=quality)
        assert refused.value.option == "quality" and refused.value.exit_code == ExitCode.USAGE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.png", "afile"]


def test_jpeg_quality_changes_the_file(tmp_path: Path) -> None:
    """Lower quality gives a smaller JPEG and WebP."""
    image = _make_image("rgb", 8)
    for extension in (".jpg", ".webp"):
        write_image(tmp_path / f"low{extension}", image, quality=10)
        write_image(tmp_path / f"high{extension}", image, quality=100)
        low = (tmp_path / f"low{extension}").stat().st_size
        assert low < (tmp_path / f"high{extension}").stat().st_size


def test_output_permissions_follow_the_umask(tmp_path: Path) -> None:
    """The temporary file is created like open() would, not with mkstemp's private 0600."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "shared.png"
    write_image(path, _make_image("rgb", 8))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
