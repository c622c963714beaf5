"""Large CPU tensors on transparent huge pages, set before torch allocates anything.

PyTorch's CPU allocator asks Linux for 2 MiB pages (madvise) for allocations of 2 MiB and more
when the environment variable THP_MEM_ALLOC_ENABLE is 1; it reads the variable once, at its
first large allocation, so measr sets it on import. Every activation of a forward pass is a
fresh allocation that the kernel backs page by page as it is first written: with 4 KiB pages a
1024 px tile of `small` took 6.3 million page faults and 18 s of system time per pass, with huge
pages 0.25 million and 9 s, and the pass ran 1.25x faster (eager, 2 threads; docs/performance.md).
Set THP_MEM_ALLOC_ENABLE=0 to keep 4 KiB pages.
"""

from __future__ import annotations

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
