"""Write scikit-image's bundled colour photos to a folder: clean photos from a source that no
training set of measr holds, to see whether the prompt names damage on photos unlike the
training ones (issue 37).

Run from the repository root:  python scripts/other_source_photos.py OUT
then:  measr benchmark prompt --naming-only --photos OUT

The photos are the everyday colour scenes among scikit-image's data files (an astronaut, a cat,
a cup of coffee, a rocket, a motorcycle), written as PNG; the microscopy, astronomy, medical and
grey-level test images are left out.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": data.astronaut,
    "chelsea": data.chelsea,
    "coffee": data.coffee,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],  # the left view of a stereo pair
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, load in PHOTOS.items():
        pixels = load()
        Image.fromarray(pixels).save(out / f"skimage-{name}.png")
        print(f"{out / f'skimage-{name}.png'}: {pixels.shape[1]}x{pixels.shape[0]}")


if __name__ == "__main__":
    main()
