"""GIF: the size of the logical screen (and of the first image, should it reach beyond), and
the number of images, counted by following the block structure without decoding anything."""

from __future__ import annotations

import struct

from measr.io.headers.base import ByteSource, Header

_SCREEN = struct.Struct("<6sHHB")  # signature, width, height, flags
_SCREEN_BYTES = 13
_DESCRIPTOR = struct.Struct("<HHHHB")  # left, top, width, height, flags
_IMAGE, _EXTENSION = 0x2C, 0x21
_HAS_COLOR_TABLE = 0x80
# Data sub-blocks followed while counting images: a photo-sized GIF has a few thousand; past
# this the count so far is kept (a second image already makes it an animation).
_MAX_SUB_BLOCKS = 1 << 20


def read_gif(source: ByteSource) -> Header | None:
    """The Header of the GIF in `source`, None when its screen descriptor is cut."""
    screen = source.unpack(_SCREEN, 0)
    if screen is None or screen[0] not in (b"GIF87a", b"GIF89a"):
        return None
    _, width, height, flags = screen
    offset = _SCREEN_BYTES + _color_table_bytes(flags)
    frames, budget = 0, _MAX_SUB_BLOCKS
    while budget > 0:
        introducer = source.read(offset, 1)
        if introducer == bytes((_IMAGE,)):
            descriptor = source.unpack(_DESCRIPTOR, offset + 1)
            if descriptor is None:
                break
            left, top, image_width, image_height, image_flags = descriptor
            if frames == 0:  # the image OpenCV decodes
                width, height = max(width, left + image_width), max(height, top + image_height)
            frames += 1
            # the descriptor, its colour table, and the LZW code size before the data
            offset += 1 + _DESCRIPTOR.size + _color_table_bytes(image_flags) + 1
        elif introducer == bytes((_EXTENSION,)):
            offset += 2  # introducer and label
        else:
            break  # the trailer, the end of the file, or damage
        offset, budget = _after_sub_blocks(source, offset, budget)
    return Header(
        format="gif",
        width=width,
        height=height,
        mode="P",
        frames=max(frames, 1),
        animated=frames > 1,
        orientation=None,
        gray=False,
    )


def _color_table_bytes(flags: int) -> int:
    """The size of the colour table a descriptor's flags announce."""
    return 3 * 2 ** ((flags & 0x07) + 1) if flags & _HAS_COLOR_TABLE else 0


def _after_sub_blocks(source: ByteSource, offset: int, budget: int) -> tuple[int, int]:
    """The offset after the data sub-blocks at `offset` (ended by an empty one) and the budget
    left; a budget of 0 when the file ends first."""
    while budget > 0:
        length = source.read(offset, 1)
        if not length:
            return offset, 0
        offset += 1 + length[0]
        budget -= 1
        if length[0] == 0:
            return offset, budget
    return offset, 0
