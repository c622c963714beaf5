"""measr: all-in-one photo restoration with MEASNet."""

from measr import allocator  # noqa: F401  # first: it sets how torch allocates, before torch does
from measr.engine import Restorer
from measr.errors import MeasrError
from measr.model import build_model

__version__ = "0.1.0"

__all__ = ["MeasrError", "Restorer", "__version__", "build_model"]
