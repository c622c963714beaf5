"""Coverage-guided fuzzing of measr's decode path with atheris (libFuzzer for Python).

The contract under test: any bytes given to `read_image` give a valid Image or an
ImageReadError; any other exception is a crash that atheris reports with the input that caused
it. The bounded version of this check runs in every test run (hypothesis, in
tests/test_io_hostile.py); this harness is for longer searches:

    pip install -e '.[fuzz]'
    python fuzz/seeds.py fuzz/corpus   # small images, and the hostile cases found so far
    python fuzz/fuzz_read_image.py -max_total_time=300 -rss_limit_mb=4096 fuzz/corpus

atheris keeps the inputs that reach new code in the corpus folder, and writes an input that
crashes to `crash-<hash>` in the current folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np

# Only measr is instrumented: instrumenting torch (which measr imports) takes minutes.
with atheris.instrument_imports(include=["measr"]):
    from measr.errors import ImageReadError
    from measr.io import read_image

# Keeps headers that mutations inflate from allocating much memory.
MAX_PIXELS = 1 << 20
FOLDER = Path(tempfile.mkdtemp(prefix="measr-fuzz-"))
SAMPLE = FOLDER / "input.img"


def check_one_input(data: bytes) -> None:
    """Decode the bytes; a clean refusal is fine, anything else escapes to atheris."""
    SAMPLE.write_bytes(data)
    try:
        image = read_image(SAMPLE, max_pixels=MAX_PIXELS)
    except ImageReadError as error:
        assert SAMPLE.name in error.message and error.hint, error
        return
    pixels = image.pixels
    assert pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[2] in (1, 3)
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    assert image.bit_depth in (8, 16)


def main() -> None:
    """Run libFuzzer with the command-line options it understands."""
    atheris.Setup(sys.argv, check_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
