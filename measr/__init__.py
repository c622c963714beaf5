"""measr: all-in-one photo restoration with MEASNet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from measr.errors import MeasrError

if TYPE_CHECKING:
    from measr.engine import Restorer
    from measr.model import build_model

__version__ = "0.1.0"

__all__ = ["MeasrError", "Restorer", "__version__", "build_model"]


def __getattr__(name: str) -> Any:
    """`Restorer` and `build_model`, imported when first used: importing PyTorch takes seconds,
    and the `measr` command must handle signals before it starts (measr.cli.main)."""
    if name == "Restorer":
        from measr.engine import Restorer

        return Restorer
    if name == "build_model":
        from measr.model import build_model

        return build_model
    raise AttributeError(f"module 'measr' has no attribute '{name}'")


def __dir__() -> list[str]:
    """What `dir(measr)` and completion list: the lazily imported names too."""
    return sorted({*globals(), *__all__})
