"""DDP as torchrun runs it, on the CPU: two processes (gloo) of the tiny configuration end with
identical weights, and with the weights one process reaches on the same global batch.

Two things differ between the set-ups by design, and the test takes both out so that what it
compares is DDP's arithmetic (the gradient averaged over ranks, each rank's share of the
samples): the gates' training noise (each rank draws its own for its half of the batch; here
none is drawn), and the STP-G-MESE balance loss, a coefficient of variation of the experts'
load that DDP computes on each rank's half of the batch (here weighted 0; with its default
weight, Adam turns that difference into weight differences as large as a step, ~1e-3 at lr
1e-3). What is left differs by float sums in another order, amplified by Adam's normalisation:
2e-5 at most, measured, against 2.5e-3 moved by the three steps.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from measr.model import stp_g_mese
from measr.training.trainer import TrainConfig, Trainer

WORLD = 2
PER_RANK_BATCH = 2
# Largest weight difference allowed between DDP and one process after the run (lr 1e-3, 3
# steps move weights by ~2.5e-3: a gradient not averaged, or halves of the batch mixed up,
# shows as differences of that size).
ONE_PROCESS_TOLERANCE = 1e-4


class NoiselessTorch:
    """`torch` for the gates' module, with their training noise drawn as zeros."""

    randn_like = staticmethod(torch.zeros_like)

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)


def settings(photos: Path, batch: int) -> TrainConfig:
    return TrainConfig(
        config="tiny", tasks="three", data=[str(photos)], steps=3, batch=batch, patch=64,
        lr=1e-3, warmup=1, balance_weight=0.0, workers=0, log_every=3, checkpoint_minutes=1e9,
        threads=1, deterministic=True, device="cpu", prompt_weight=0.0, early_patch=0,
    )  # fmt: skip


def train(photos: Path, run_dir: Path, batch: int) -> dict[str, torch.Tensor]:
    """The weights after a tiny run, gates without noise."""
    stp_g_mese.torch = NoiselessTorch()  # type: ignore[assignment]
    trainer = Trainer(settings(photos, batch), run_dir)
    trainer.run()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def rank_main(rank: int, photos: Path, run_dir: Path, port: int) -> None:
    """One torchrun-like process: the environment torchrun sets, then the trainer."""
    import os

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    weights = train(photos, run_dir, PER_RANK_BATCH)
    torch.save(weights, run_dir / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_ranks_match_each_other_and_one_process(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranks = tmp_path / "ddp"
    ranks.mkdir()
    mp.spawn(rank_main, args=(photos, ranks, free_port()), nprocs=WORLD, join=True)
    first, second = (torch.load(ranks / f"rank{r}.pt") for r in range(WORLD))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)  # DDP keeps ranks in step

    monkeypatch.setattr(stp_g_mese, "torch", stp_g_mese.torch)  # restored after the test
    alone = train(photos, tmp_path / "alone", PER_RANK_BATCH * WORLD)
    start = Trainer(settings(photos, PER_RANK_BATCH * WORLD), tmp_path / "start").model.state_dict()
    apart = max((alone[k] - first[k]).abs().max().item() for k in alone)
    trained = max((alone[k] - start[k]).abs().max().item() for k in alone)
    assert apart <= ONE_PROCESS_TOLERANCE < trained / 10
