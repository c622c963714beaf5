"""Keeping OpenCV's own warnings (libpng, libtiff, ...) off the user's terminal."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2


class _QuietOpenCV:
    """Silences OpenCV logging while any caller is inside, restoring the old level after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0  # nested or concurrent users; the level is restored by the last out
        self._saved_level = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        """measr reports decode failures itself, with the file name and a hint."""
        with self._lock:
            if self._depth == 0:
                self._saved_level = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    cv2.utils.logging.setLogLevel(self._saved_level)


quiet_opencv = _QuietOpenCV()
