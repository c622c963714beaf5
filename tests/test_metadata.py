"""Photos keep what they carry through measr: the ICC profile, EXIF (orientation reset to 1
once applied), PNG text chunks and the resolution, in restore and batch, where the output
format holds them."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, PngImagePlugin
from tiny_weights import random_pixels, write_weights
from typer.testing import CliRunner

from measr.cli.app import app
from measr.io import read_image, write_image
from measr.io.metadata import MAX_ICC_BYTES, Metadata, metadata_of, reset_orientation
from measr.io.orientation import orientation_from_exif
from measr.manifest import MANIFEST_ENV

runner = CliRunner()
ORIENTATION, MAKE, MODEL = 0x0112, 0x010F, 0x0110


def srgb_profile() -> bytes:
    """An sRGB ICC profile, as littleCMS builds it."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _s15(value: float) -> bytes:
    """ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)


def _desc_tag(text: str) -> bytes:
    """textDescriptionType (ICC v2): ASCII, then empty Unicode and ScriptCode parts."""
    ascii_text = text.encode("ascii") + b"\x00"
    return (
        b"desc\x00\x00\x00\x00"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + bytes(67)
    )


def display_p3_profile() -> bytes:
    """A small ICC v2 matrix/TRC display profile with Display P3's primaries (D50-adapted) and
    a 2.2 gamma: a valid profile that is not sRGB."""
    tags = [
        (b"desc", _desc_tag("Display P3 (measr test)")),
        (b"cprt", b"text\x00\x00\x00\x00No copyright, test data\x00"),
        (b"wtpt", _xyz_tag(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz_tag(0.5151, 0.2412, -0.0011)),
        (b"gXYZ", _xyz_tag(0.2920, 0.6922, 0.0419)),
        (b"bXYZ", _xyz_tag(0.1571, 0.0666, 0.7841)),
        (b"rTRC", b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0233)),
    ]
    tags += [(b"gTRC", tags[-1][1]), (b"bTRC", tags[-1][1])]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)  # tags start on 4-byte boundaries
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 12, 2, 0, 0, 0)
        + b"acsp"
        + bytes(24)  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _xyz_tag(0.9642, 1.0, 0.8249)[8:]
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def camera_exif(orientation: int) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "measr test camera"
    exif[MODEL] = "M-1"
    return exif


def write_camera_jpeg(path: Path, profile: bytes, orientation: int = 6) -> Path:
    """A 64 x 96 JPEG as a camera held sideways writes it (orientation 6), with a profile."""
    samples = np.rint(random_pixels(64, 96) * 255).astype(np.uint8)
    PILImage.fromarray(samples).save(
        path, exif=camera_exif(orientation), icc_profile=profile, dpi=(300, 150), quality=95
    )
    return path


def write_tagged_png(path: Path, profile: bytes) -> Path:
    """A 64 x 64 PNG with an iCCP profile, text chunks and a resolution."""
    samples = np.rint(random_pixels(64, 64) * 255).astype(np.uint8)
    text = PngImagePlugin.PngInfo()
    text.add_text("Title", "Harbour at dusk")
    text.add_itxt("Description", "Écluse, Hafen, 港")
    PILImage.fromarray(samples).save(path, pnginfo=text, icc_profile=profile, dpi=(72, 72))
    return path


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MANIFEST_ENV, str(write_weights(tmp_path)))


def test_the_hand_built_p3_profile_is_a_valid_profile_other_than_srgb() -> None:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile()))
    assert ImageCms.getProfileDescription(profile).strip() == "Display P3 (measr test)"
    assert display_p3_profile() != srgb_profile()


@pytest.mark.parametrize("profile", [srgb_profile(), display_p3_profile()], ids=["srgb", "p3"])
def test_restore_keeps_a_jpegs_profile_and_exif_with_orientation_reset(
    tmp_path: Path, weights: None, profile: bytes
) -> None:
    source = write_camera_jpeg(tmp_path / "camera.jpg", profile)
    result = runner.invoke(app, ["restore", str(source), "--threads", "1"])
    assert result.exit_code == 0, result.output
    with PILImage.open(tmp_path / "camera_restored.jpg") as restored:
        assert restored.size == (64, 96)  # turned upright once, by measr
        assert restored.info["icc_profile"] == profile
        exif = restored.getexif()
        assert exif[ORIENTATION] == 1  # a viewer must not turn it again
        assert (exif[MAKE], exif[MODEL]) == ("measr test camera", "M-1")
        assert restored.info["dpi"] == pytest.approx((150, 300))  # rows and columns swapped


def test_batch_keeps_a_pngs_profile_text_and_resolution(tmp_path: Path, weights: None) -> None:
    source = tmp_path / "in"
    source.mkdir()
    write_tagged_png(source / "harbour.png", display_p3_profile())
    result = runner.invoke(app, ["batch", str(source), str(tmp_path / "out"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    with PILImage.open(tmp_path / "out" / "harbour.png") as restored:
        assert restored.info["icc_profile"] == display_p3_profile()
        assert restored.text == {"Title": "Harbour at dusk", "Description": "Écluse, Hafen, 港"}
        assert restored.info["dpi"] == pytest.approx((72, 72), abs=0.01)


def test_a_jpegs_metadata_moves_into_a_png_output(tmp_path: Path) -> None:
    source = write_camera_jpeg(tmp_path / "camera.jpg", srgb_profile(), orientation=8)
    write_image(tmp_path / "out.png", read_image(source))
    with PILImage.open(tmp_path / "out.png") as png:
        assert png.info["icc_profile"] == srgb_profile()
        assert png.getexif()[ORIENTATION] == 1
        assert png.getexif()[MAKE] == "measr test camera"
    assert read_image(tmp_path / "out.png").pixels.shape[:2] == (96, 64)  # not turned again


def test_an_rgb_profile_is_not_written_into_a_gray_file(tmp_path: Path) -> None:
    gray = np.rint(random_pixels(64, 64, channels=1)[:, :, 0] * 255).astype(np.uint8)
    PILImage.fromarray(gray).save(tmp_path / "gray.png")
    image = read_image(tmp_path / "gray.png")
    tagged = type(image)(image.pixels, None, 8, "png", Metadata(icc_profile=display_p3_profile()))
    write_image(tmp_path / "out.png", tagged)
    with PILImage.open(tmp_path / "out.png") as png:
        assert "icc_profile" not in png.info


def test_damaged_or_oversized_metadata_is_dropped_not_fatal() -> None:
    kept = metadata_of(
        {"icc_profile": bytes(MAX_ICC_BYTES + 1), "exif": b"Exif\x00\x00junk", "dpi": (0, -1)},
        "JPEG",
        None,
    )
    assert kept == Metadata()


def test_reset_orientation_changes_only_the_orientation() -> None:
    raw = camera_exif(6).tobytes()
    reset = reset_orientation(raw)
    assert orientation_from_exif(raw) == 6 and orientation_from_exif(reset) == 1
    assert len(reset) == len(raw)
    assert sum(a != b for a, b in zip(raw, reset, strict=True)) == 1  # one byte: 6 -> 1


def orientation_as_long(orientation: int, order: str = "<") -> bytes:
    """A bare EXIF structure whose only tag is the orientation, stored as a LONG (type 4)
    where the standard says SHORT, as some writers do."""
    mark = b"II" if order == "<" else b"MM"
    entry = struct.pack(f"{order}HHII", ORIENTATION, 4, 1, orientation)
    return mark + struct.pack(f"{order}HIH", 42, 8, 1) + entry + struct.pack(f"{order}I", 0)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("pil_format", ["JPEG", "PNG"])
def test_an_orientation_stored_as_long_is_reset_once_applied(
    tmp_path: Path, pil_format: str, order: str
) -> None:
    """Issue 36, case 20: Pillow honours a LONG orientation, so the pixels come out turned; the
    tag must then say 1, or viewers turn the output a second time."""
    samples = np.rint(random_pixels(8, 12) * 255).astype(np.uint8)
    path = tmp_path / f"sideways.{pil_format.lower()}"
    exif = orientation_as_long(6, order)
    exif = b"Exif\x00\x00" + exif if pil_format == "JPEG" else exif  # JPEG's APP1 prefix
    PILImage.fromarray(samples).save(path, pil_format, exif=exif)
    image = read_image(path)
    assert (image.height, image.width) == (12, 8)
    assert image.metadata.exif is not None
    assert orientation_from_exif(image.metadata.exif) == 1
    write_image(tmp_path / f"out.{pil_format.lower()}", image)
    with PILImage.open(tmp_path / f"out.{pil_format.lower()}") as written:
        assert written.getexif()[ORIENTATION] == 1


def test_orientation_from_exif_reads_a_long() -> None:
    assert orientation_from_exif(orientation_as_long(8)) == 8
    assert orientation_from_exif(orientation_as_long(8, ">")) == 8
    assert orientation_from_exif(orientation_as_long(9)) is None


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
def test_a_webp_output_carries_the_profile_and_exif(tmp_path: Path, alpha: bool) -> None:
    source = write_camera_jpeg(tmp_path / "camera.jpg", display_p3_profile())
    image = read_image(source)
    if alpha:
        opacity = np.full((image.height, image.width), 200, dtype=np.uint8)
        image = type(image)(image.pixels, opacity, 8, "jpeg", image.metadata)
    write_image(tmp_path / "out.webp", image)
    with PILImage.open(tmp_path / "out.webp") as webp:
        assert webp.size == (64, 96)
        assert webp.info["icc_profile"] == display_p3_profile()
        assert webp.getexif()[MAKE] == "measr test camera"
        assert webp.getexif()[ORIENTATION] == 1
        assert ("A" in webp.mode) == alpha
        webp.load()  # the image data is intact after the chunks were added


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_a_tiff_output_carries_the_profile_and_resolution(tmp_path: Path, bit_depth: int) -> None:
    source = write_tagged_png(tmp_path / "harbour.png", display_p3_profile())
    image = read_image(source)
    image = type(image)(image.pixels, None, bit_depth, "png", image.metadata)
    write_image(tmp_path / "out.tif", image)
    with PILImage.open(tmp_path / "out.tif") as tiff:
        assert tiff.info["icc_profile"] == display_p3_profile()
        assert tiff.info["dpi"] == pytest.approx((72, 72), abs=0.01)
    restored = read_image(tmp_path / "out.tif")
    assert restored.bit_depth == bit_depth
    assert np.allclose(restored.pixels, image.pixels, atol=1 / 255)  # pixels read back intact
