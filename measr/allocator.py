"""How the `measr` process allocates memory, and how its threads wait on a busy machine:
`tune_process`, called by the command's entry point (`measr.cli.main`) before torch is imported.
Importing the library changes nothing: a program that uses `measr` keeps its own settings unless
it calls `tune_process` itself.

Every activation of a forward pass is a fresh allocation, and a fresh allocation is memory the
kernel must back page by page (zeroed) as it is first written. Two settings cut that cost:

* **Transparent huge pages.** PyTorch's CPU allocator asks Linux for 2 MiB pages (madvise) for
  allocations of 2 MiB and more when the environment variable THP_MEM_ALLOC_ENABLE is 1; it
  reads the variable once, at its first large allocation. With 4 KiB pages a 1024 px tile of
  `small` took 6.3 million page faults and 18 s of system time per pass, with huge pages 0.25
  million and 9 s, and the pass ran 1.25x faster (eager, 2 threads; docs/performance.md). Set
  THP_MEM_ALLOC_ENABLE=0 to keep 4 KiB pages.
* **glibc keeps freed memory for reuse.** By default glibc serves large allocations with fresh
  `mmap`s (above a threshold that adapts between 128 KiB and 32 MiB) and hands the top of its
  heap back to the kernel once twice that is free there, so the next pass faults the same
  memory in again. `keep_freed_memory` serves allocations up
  to 256 MiB from the heap and keeps up to 1 GiB free at its top. Measured on a 2-core AMD EPYC
  (eager, 2 threads; docs/performance.md): one 1024 px pass of `small` 39.5-47.5 s -> 35.9-37.8
  s, page faults 0.28-0.29 M -> 0.03 M, system time 10-13 s -> 4-8 s; a 4000 x 3000 photo
  584 s -> 476 s, the same output bit for bit. The price is memory: freed blocks stay resident
  until the engine trims the heap after each tile (`measr.engine.memory.return_freed_memory`),
  so the peak grows (1024 px: 3.13 -> 4.44 GiB; the photo: 4.1 -> 6.3 GB) and the memory plan
  counts it. Set MEASR_KEEP_FREED_MEMORY=0 to keep glibc's defaults.

And one setting for a machine that is busy already (`wait_passively_when_busy`):

* **OpenMP threads sleep while they wait.** PyTorch's OpenMP threads spin at every barrier
  before they sleep (GNU OpenMP: 300,000 turns), which is the fastest way on idle cores and
  the slowest where others need them: three `measr restore` of the 500 x 500 example at once
  on the 2-core AMD EPYC, beside a training run, took 859-872 s each, 68-71 s of it CPU time,
  with the default, and 113-114 s, 11.3-11.4 s CPU, with OMP_WAIT_POLICY=PASSIVE
  (docs/performance.md, "Waiting threads"). On idle cores passive waiting cost 1.14x (two
  512 px passes, 12.9 against 11.3 s). So measr sets it when the one-minute load average is at
  least the number of cores it may use as it starts, unless OMP_WAIT_POLICY is set already.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

import psutil

# mallopt parameters of glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 2**20
TRIM_THRESHOLD_BYTES = 2**30
TOP_PAD_BYTES = 64 * 2**20


@cache
def c_library() -> ctypes.CDLL | None:
    """The process's C library, loaded once (None where there is none to find)."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the next allocation (see the module's
    docstring); False, changing nothing, where the C library is not glibc or the environment
    sets MEASR_KEEP_FREED_MEMORY=0."""
    if os.environ.get("MEASR_KEEP_FREED_MEMORY", "1") == "0":
        return False
    mallopt = getattr(c_library(), "mallopt", None)
    if mallopt is None:
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES),
    )
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def available_memory() -> int:
    """Bytes of main memory available now without swapping (Linux: MemAvailable; psutil
    answers the same question on macOS and Windows)."""
    return int(psutil.virtual_memory().available)


# Whether this process keeps freed memory (set by `tune_process`). The memory plan reads it when
# `measr.engine.memory` is imported, so a process tunes itself before importing the engine.
KEEPS_FREED_MEMORY = False


def usable_cores() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_is_busy() -> bool:
    """Whether the cores this process may use are taken already: the one-minute load average
    at least their number (False where the system keeps no load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return load >= usable_cores()


def wait_passively_when_busy() -> bool:
    """OMP_WAIT_POLICY=PASSIVE on a busy machine, unless the environment chose a policy (see
    the module's docstring); whether it was set. OpenMP reads it when torch loads it."""
    if "OMP_WAIT_POLICY" in os.environ or not machine_is_busy():
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def tune_process() -> None:
    """Huge pages for large tensors, freed memory kept for reuse and, on a busy machine,
    threads that sleep while they wait (see the module's docstring), unless the environment
    says otherwise. Call it first thing, before torch is imported."""
    global KEEPS_FREED_MEMORY
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    KEEPS_FREED_MEMORY = keep_freed_memory()
    wait_passively_when_busy()
