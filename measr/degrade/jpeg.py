"""JPEG compression artefacts through OpenCV's encoder (libjpeg, 4:2:0 chroma)."""

from __future__ import annotations

import cv2
import numpy as np

from measr.degrade._image import as_image, to_uint8
from measr.degrade.ranges import JPEG


def compress(img: np.ndarray, quality: int) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] encoded as JPEG at `quality` (1 to 100) and decoded."""
    if quality not in JPEG.valid_quality:
        raise ValueError(f"JPEG quality must be in {JPEG.valid_quality}, got {quality}")
    bgr = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as JPEG")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("OpenCV could not decode its own JPEG")
    rgb = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 255.0).reshape(img.shape)


def add_jpeg(img: np.ndarray, quality: int | None, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode as JPEG; quality in [1, 100] (None: uniform in [10, 95])."""
    clean = as_image(img)
    return compress(clean, JPEG.quality.pick(rng, quality))
