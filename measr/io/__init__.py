"""Decoding and encoding images, robust against hostile input (see docs/robustness.md).

Public API:
    read_image(path, *, max_pixels=MAX_PIXELS) -> Image
    write_image(path, image, *, quality=95, overwrite=False) -> None
    check_output(path, *, overwrite=False) -> OutputFormat, check_quality(quality): what
        write_image refuses, to refuse it before long work
    Image (pixels float32 RGB/gray in [0, 1], alpha, bit_depth, source_format), with_pixels()
    image_from_array(), to_uint(), from_uint()
    SUPPORTED_EXTENSIONS, is_supported_path(), INPUT_EXTENSIONS, is_input_path(), MAX_PIXELS
"""

from measr.io.formats import (
    INPUT_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    is_input_path,
    is_supported_path,
)
from measr.io.image import Image, from_uint, image_from_array, to_uint
from measr.io.read import MAX_PIXELS, read_image
from measr.io.write import check_output, check_quality, write_image

__all__ = [
    "INPUT_EXTENSIONS",
    "MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "Image",
    "check_output",
    "check_quality",
    "from_uint",
    "image_from_array",
    "is_input_path",
    "is_supported_path",
    "read_image",
    "to_uint",
    "write_image",
]
