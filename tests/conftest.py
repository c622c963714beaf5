"""The tests run the commands on PyTorch whatever runtimes are installed (the command line's
`auto` backend would pick OpenVINO where its extra is): results and sentences stay the same on
every machine. The backend tests ask for their runtime, or unset this, themselves."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_weights import smooth_photo

os.environ["MEASR_BACKEND"] = "torch"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six generated training photos (96 px), for the training tests."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(root / f"p{i}.png"), smooth_photo(rng, 96))
    return root
