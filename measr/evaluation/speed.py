"""The speed benchmark: throughput, peak memory and achieved FLOP rate of MEASNet per
configuration, image size, tile size and device, as ratios to a plain forward pass and to the
machine's own float32 matmul rate. A library: it returns a report and never prints.

Every measurement runs in a fresh subprocess (`measr.evaluation.speed_worker`), so that the peak
resident memory of one point is not hidden by an earlier, larger one.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

import torch

from measr.engine.device import resolve_device
from measr.engine.memory import bytes_per_pixel, free_memory
from measr.errors import MeasrError
from measr.model import get_config

DEFAULT_CONFIGS = ("full", "small")
DEFAULT_SIZES = (256, 512, 1024, 2048)
DEFAULT_MATMUL_SIZE = {"cpu": 2048, "cuda": 4096}
WORKER_MODULE = "measr.evaluation.speed_worker"


class Mode(str, Enum):
    """`reference`: one eager float32 forward of the whole (padded) image; `measr`: the engine's
    Restorer as users run it (tiling, global context, padding, fused experts); `compiled`: the
    same with the compiled steps and channels-last (`Restorer(compile=True)`; its warm-up runs
    include the compilation, or the load from inductor's cache)."""

    REFERENCE = "reference"
    MEASR = "measr"
    COMPILED = "compiled"


@dataclass(frozen=True)
class ModelJob:
    """One point, as the worker receives it."""

    config: str
    size: int
    tile: int | None
    device: str
    mode: Mode
    repeats: int
    warmup: int
    threads: int | None
    count_flops: bool


@dataclass(frozen=True)
class MatmulJob:
    """A float32 square matmul, as the worker receives it: its best rate is the device's peak."""

    device: str
    size: int
    repeats: int
    threads: int | None


@dataclass(frozen=True)
class MatmulPeak:
    """The best float32 matmul rate of a device in this run, and the torch threads it had."""

    device: str
    size: int
    gflops: float
    threads: int


@dataclass(frozen=True)
class MachineInfo:
    """What the numbers were measured on."""

    cpu: str
    cpu_cores: int
    cores_available: int
    torch_version: str
    torch_threads: int
    gpu: str | None
    python: str

    def describe(self) -> str:
        """One line, for a table caption."""
        gpu = f", GPU {self.gpu}" if self.gpu else ""
        return (
            f"{self.cpu} ({self.cores_available}/{self.cpu_cores} cores, torch "
            f"{self.torch_version}, {self.torch_threads} threads){gpu}"
        )


@dataclass(frozen=True)
class SpeedPoint:
    """One configuration, size, tile, device and mode. Times are the median of `runs`; GFLOP is
    the model's work on the whole image (one count per configuration and size), so tiled runs
    show the rate of useful work."""

    config: str
    size: int
    tile: int | None
    device: str
    mode: Mode
    status: str  # "ok", or what went wrong ("out of memory", "timed out", ...)
    runs: int = 0
    seconds: float | None = None
    megapixels_per_second: float | None = None
    peak_memory_mib: float | None = None
    model_gflop: float | None = None
    achieved_gflops: float | None = None
    fraction_of_peak: float | None = None
    speed_vs_reference: float | None = None

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode.value}


@dataclass(frozen=True)
class SpeedReport:
    """Every point of one run, with the machine and its matmul peaks."""

    machine: MachineInfo
    peaks: tuple[MatmulPeak, ...]
    points: tuple[SpeedPoint, ...]
    repeats: int
    warmup: int

    def rows(self) -> list[dict[str, Any]]:
        """One row per point (the CSV)."""
        return [point.row() for point in self.points]

    def to_dict(self) -> dict[str, Any]:
        """Everything (the JSON)."""
        return {
            "machine": asdict(self.machine),
            "matmul_peaks": [asdict(p) for p in self.peaks],
            "repeats": self.repeats,
            "warmup": self.warmup,
            "points": self.rows(),
        }


@dataclass(frozen=True)
class SpeedProgress:
    """Sent after each point, with the report of the points so far (so that a run stopped
    part-way still leaves what it measured)."""

    point: SpeedPoint
    done: int
    total: int
    report: SpeedReport


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch_threads: int) -> MachineInfo:
    """The machine description; `torch_threads` is what the workers ran with."""
    cores = os.cpu_count() or 1
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return MachineInfo(
        cpu_model(),
        cores,
        available,
        torch.__version__,
        torch_threads,
        gpu,
        platform.python_version(),
    )


def default_devices() -> tuple[str, ...]:
    """CPU, and CUDA when there is one."""
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def _check_arguments(
    configs: Sequence[str], sizes: Sequence[int], devices: Sequence[str], repeats: int
) -> None:
    for name in configs:
        config = get_config(name)  # MeasrError for an unknown name
        for size in sizes:
            if size % config.size_multiple or size < config.min_size:
                raise MeasrError(
                    f"size {size} does not fit configuration '{name}'",
                    f"use multiples of {config.size_multiple} of at least {config.min_size} px",
                )
    for device in devices:
        if device not in ("cpu", "cuda"):
            raise MeasrError(f"unknown device '{device}'", "use cpu or cuda")
        resolve_device(device)  # MeasrError where there is no CUDA
    if repeats < 1:
        raise MeasrError(f"repeats must be at least 1, got {repeats}")


def _run_worker(job: ModelJob | MatmulJob, timeout_s: float | None) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its answer, or {"status": why it failed}."""
    payload = {"kind": type(job).__name__, **asdict(job)}
    try:
        completed = subprocess.run(
            [sys.executable, "-m", WORKER_MODULE],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout_s:g} s"}
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["no message"])[-1]
        return {"status": f"worker exited with {completed.returncode}: {last}"}
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def measure_matmul_peak(
    device: str, size: int | None = None, repeats: int = 5, threads: int | None = None
) -> MatmulPeak:
    """The best of `repeats` float32 (size x size) @ (size x size) products, in GFLOP/s."""
    job = MatmulJob(device, size or DEFAULT_MATMUL_SIZE[device], repeats, threads)
    answer = _run_worker(job, None)
    if answer.get("status") != "ok":
        raise MeasrError(f"the matmul peak on {device} could not be measured: {answer['status']}")
    return MatmulPeak(
        device, job.size, 2 * job.size**3 / answer["best_seconds"] / 1e9, answer["threads"]
    )


def _point(
    job: ModelJob, answer: dict[str, Any], gflop: float | None, peak: MatmulPeak
) -> SpeedPoint:
    """A measured point from the worker's answer and the FLOP count of its config and size."""
    base = SpeedPoint(job.config, job.size, job.tile, job.device, job.mode, answer["status"])
    if answer["status"] != "ok":
        return base
    seconds = statistics.median(answer["seconds"])
    achieved = gflop / seconds if gflop is not None else None
    return replace(
        base,
        runs=len(answer["seconds"]),
        seconds=seconds,
        megapixels_per_second=job.size * job.size / 1e6 / seconds,
        peak_memory_mib=answer["peak_memory_mib"],
        model_gflop=gflop,
        achieved_gflops=achieved,
        fraction_of_peak=achieved / peak.gflops if achieved is not None else None,
    )


def whole_image_fits(config: str, size: int, available: int) -> bool:
    """Whether a whole-image forward of `size` px (the reference, and the FLOP count) fits in
    `available` bytes, by the engine's activation estimate with a fifth kept in reserve. The
    engine's own modes tile to fit, so they always run."""
    return bytes_per_pixel(get_config(config)) * size * size <= 0.8 * available


def _skip_reason(job: ModelJob) -> str | None:
    """Why a point is not run, or None: a reference that would exhaust the machine's memory."""
    if job.mode is not Mode.REFERENCE or job.device != "cpu":
        return None
    available = free_memory(torch.device("cpu"))
    if whole_image_fits(job.config, job.size, available):
        return None
    needed = bytes_per_pixel(get_config(job.config)) * job.size**2
    return f"skipped: needs ~{needed / 2**30:.0f} GiB, {available / 2**30:.0f} GiB free"


def plan_jobs(
    configs: Sequence[str],
    sizes: Sequence[int],
    tiles: Sequence[int | None],
    devices: Sequence[str],
    modes: Sequence[Mode],
    repeats: int,
    warmup: int,
    threads: int | None,
) -> list[ModelJob]:
    """Every point in the order they run: per config, size and device, the reference first,
    then the engine once per tile size (the reference does not tile)."""
    jobs = []
    for config in configs:
        for size in sizes:
            for device in devices:
                for mode in modes:
                    mode_tiles = [None] if mode is Mode.REFERENCE else list(tiles)
                    for tile in mode_tiles:
                        jobs.append(
                            ModelJob(
                                config, size, tile, device, mode, repeats, warmup, threads, False
                            )
                        )
    return jobs


def _with_ratios(points: list[SpeedPoint]) -> list[SpeedPoint]:
    reference = {
        (p.config, p.size, p.device): p.megapixels_per_second
        for p in points
        if p.mode is Mode.REFERENCE and p.megapixels_per_second
    }
    return [
        replace(p, speed_vs_reference=p.megapixels_per_second / reference[key])
        if p.megapixels_per_second and (key := (p.config, p.size, p.device)) in reference
        else p
        for p in points
    ]


def run_speed(
    configs: Sequence[str] = DEFAULT_CONFIGS,
    sizes: Sequence[int] = DEFAULT_SIZES,
    tiles: Sequence[int | None] = (None,),
    devices: Sequence[str] | None = None,
    *,
    modes: Sequence[Mode] = (Mode.REFERENCE, Mode.MEASR),
    repeats: int = 3,
    warmup: int = 1,
    threads: int | None = None,
    matmul_size: int | None = None,
    timeout_s: float | None = None,
    on_point: Callable[[SpeedProgress], None] | None = None,
) -> SpeedReport:
    """Measure every point of configs x sizes x tiles x devices x modes (tiles apply to the
    `measr` mode; None is the engine's default). Each point: `warmup` untimed runs, then the
    median of `repeats`; a point that runs out of memory or time is reported, not raised."""
    devices = tuple(devices or default_devices())
    _check_arguments(configs, sizes, devices, repeats)
    peaks = {d: measure_matmul_peak(d, matmul_size, threads=threads) for d in devices}
    jobs = plan_jobs(configs, sizes, tiles, devices, modes, repeats, warmup, threads)
    machine = machine_info(peaks[devices[0]].threads)
    flops: dict[tuple[str, int], float] = {}
    points = []
    report = SpeedReport(machine, tuple(peaks.values()), (), repeats, warmup)
    for done, job in enumerate(jobs, start=1):
        key = (job.config, job.size)
        job = replace(job, count_flops=key not in flops)
        skipped = _skip_reason(job)
        answer: dict[str, Any] = {"status": skipped} if skipped else _run_worker(job, timeout_s)
        if answer.get("flops"):
            flops[key] = answer["flops"] / 1e9
        points.append(_point(job, answer, flops.get(key), peaks[job.device]))
        report = replace(report, points=tuple(_with_ratios(points)))
        if on_point is not None:
            on_point(SpeedProgress(report.points[-1], done, len(jobs), report))
    return report


def _cell(value: float | int | str | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(report: SpeedReport) -> str:
    """The report as a markdown table under a line describing the machine and its peaks."""
    peaks = "; ".join(f"{p.device} float32 matmul {p.gflops:.1f} GFLOP/s" for p in report.peaks)
    lines = [
        f"Machine: {report.machine.describe()}. Peak: {peaks}. Median of {report.repeats} runs "
        f"after {report.warmup} warm-up.",
        "",
        "| config | size | tile | device | mode | status | MPix/s | ms | peak MiB | GFLOP "
        "| GFLOP/s | % of peak | x reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report.points:
        percent = p.fraction_of_peak * 100 if p.fraction_of_peak is not None else None
        milliseconds = p.seconds * 1000 if p.seconds is not None else None
        cells = [
            p.config,
            p.size,
            p.tile or "none",
            p.device,
            p.mode.value,
            p.status,
            _cell(p.megapixels_per_second, 3),
            _cell(milliseconds, 1),
            _cell(p.peak_memory_mib, 1),
            _cell(p.model_gflop, 1),
            _cell(p.achieved_gflops, 1),
            _cell(percent, 1),
            _cell(p.speed_vs_reference),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
