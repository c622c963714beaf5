"""On a busy machine the `measr` process's OpenMP threads sleep while they wait, rather than
spin against the other processes (measr.allocator, docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from measr import allocator

# What a `measr` process that has imported torch says about its OpenMP threads' waiting.
POLICY_OF_A_PROCESS = """
import os
from measr.allocator import tune_process
tune_process()
import torch
print(os.environ.get("OMP_WAIT_POLICY", "default"))
"""


@pytest.mark.parametrize(("load", "expected"), [(9.0, "PASSIVE"), (0.1, None)])
def test_threads_wait_passively_only_when_the_cores_are_taken(
    monkeypatch: pytest.MonkeyPatch, load: float, expected: str | None
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(allocator, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert allocator.wait_passively_when_busy() == (expected is not None)
    assert os.environ.get("OMP_WAIT_POLICY") == expected


def test_a_policy_the_user_chose_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    assert not allocator.wait_passively_when_busy()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_process_sets_it_before_torch_loads_openmp() -> None:
    """tune_process, as `measr` runs it first thing, on a machine made to look busy (every
    core's load above any real one), then torch: OpenMP starts with the policy set."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    script = "import os\nos.getloadavg = lambda: (1e6, 1e6, 1e6)\n" + POLICY_OF_A_PROCESS
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "PASSIVE"
