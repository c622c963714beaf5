"""Write the starting corpus of the fuzz harness: one small file per format measr reads, and
the hostile cases found so far, generated rather than stored (fuzz/corpus/ is not tracked).

    python fuzz/seeds.py fuzz/corpus

The same seeds start the bounded fuzz test of every test run (tests/test_io_hostile.py)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import PngImagePlugin

# A zTXt chunk that inflates past Pillow's text limit (1 MiB) makes Pillow refuse the whole
# header; measr must then still read the PNG's size, frames and orientation (issue 21).
TEXT_BOMB_BYTES = 2 << 20
EXIF_ORIENTATION_TAG = 0x0112


def encoded(image: PILImage.Image, pil_format: str, **options: object) -> bytes:
    """What Pillow writes for `image` in `pil_format`."""
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def text_bomb() -> PngImagePlugin.PngInfo:
    """PNG metadata holding one compressed comment of TEXT_BOMB_BYTES (2 KiB on disk)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "A" * TEXT_BOMB_BYTES, zip=True)
    return info


def seed_files() -> dict[str, bytes]:
    """File name -> contents: small valid images, and PNGs whose text chunk Pillow refuses
    (still, rotated by EXIF, animated)."""
    rgb = PILImage.fromarray(np.random.default_rng(7).integers(0, 256, (12, 12, 3), np.uint8))
    frames = [rgb.rotate(90 * turn) for turn in range(3)]
    rotated = PILImage.Exif()
    rotated[EXIF_ORIENTATION_TAG] = 6
    return {
        "rgb.png": encoded(rgb, "PNG"),
        "rgb.jpg": encoded(rgb, "JPEG", quality=90),
        "progressive.jpg": encoded(rgb, "JPEG", quality=90, progressive=True),
        "rgba.webp": encoded(rgb.convert("RGBA"), "WEBP"),
        "rgb.tif": encoded(rgb, "TIFF"),
        "rgb.bmp": encoded(rgb, "BMP"),
        "gray_alpha.png": encoded(rgb.convert("LA"), "PNG"),
        "text_bomb.png": encoded(rgb, "PNG", pnginfo=text_bomb()),
        "text_bomb_rotated.png": encoded(rgb, "PNG", pnginfo=text_bomb(), exif=rotated),
        "text_bomb_animated.png": encoded(
            frames[0], "PNG", pnginfo=text_bomb(), save_all=True, append_images=frames[1:]
        ),
    }


def main() -> None:
    """Write the seeds into the folder named on the command line (default: fuzz/corpus)."""
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = seed_files()
    for name, contents in seeds.items():
        (folder / name).write_bytes(contents)
    print(f"wrote {len(seeds)} seeds to {folder}")


if __name__ == "__main__":
    main()
