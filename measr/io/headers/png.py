"""PNG: size, colour type, frames and orientation from the chunks before the image data,
through measr's guarded chunk reader (measr/io/png_chunks.py)."""

from __future__ import annotations

from measr.io.headers.base import ByteSource, Header
from measr.io.png_chunks import read_png_facts

GRAY_COLOR_TYPES = (0, 4)  # gray, gray + alpha (IHDR colour type)
# Pillow's mode for each PNG colour type (16-bit gray: "I;16").
_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def read_png(source: ByteSource) -> Header | None:
    """The Header of the PNG in `source`, None when its IHDR is missing or damaged (libpng
    refuses such a file too)."""
    facts = read_png_facts(source.stream)
    if facts is None:
        return None
    ihdr = facts.ihdr
    sixteen_bit_gray = ihdr.color_type == 0 and ihdr.bit_depth == 16
    return Header(
        format="png",
        width=ihdr.width,
        height=ihdr.height,
        mode="I;16" if sixteen_bit_gray else _MODES.get(ihdr.color_type, "RGB"),
        frames=facts.frames,
        animated=facts.frames > 1,
        orientation=facts.orientation,
        gray=ihdr.color_type in GRAY_COLOR_TYPES,
    )
