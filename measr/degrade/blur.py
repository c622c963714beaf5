"""Blur: camera-shake kernels from a random walk with inertia, straight motion, defocus discs.

A shake kernel is the path the image of a point draws on the sensor during the exposure: a
velocity that keeps most of itself from step to step, nudged by small random accelerations and
now and then a sudden jerk. The path is scaled into the kernel square, centred on its centre of
mass, rasterised with bilinear weights (every instant of the exposure weighs the same) and
normalised to sum 1. Straight motion (a panning camera, a passing car) is the same splat of
a segment at a given angle, every point of it equally long exposed. Images are convolved with
reflected borders.
"""

from __future__ import annotations

import math

import numpy as np

from measr.degrade._image import as_image, clip_unit, convolve
from measr.degrade.ranges import BLUR

BLUR_KINDS = BLUR.kind.options
JERK_STRENGTH = 2.5  # size of a sudden shake relative to the typical speed
SPLAT_SPACING = 0.25  # most pixels the path may move between two rasterised points


def shake_trajectory(rng: np.random.Generator, steps: int, inertia: float) -> np.ndarray:
    """(steps, 2) x-y positions of a random walk with inertia in [0, 1) (unscaled units)."""
    if steps < 2 or not 0.0 <= inertia < 1.0:
        raise ValueError(f"need steps >= 2 and inertia in [0, 1), got {steps}, {inertia}")
    heading = rng.uniform(0.0, 2.0 * math.pi)
    velocity = np.array([math.cos(heading), math.sin(heading)])
    nudges = rng.standard_normal((steps, 2))
    jerking = rng.random(steps) < BLUR.motion_jerk_probability
    jerks = jerking[:, None] * rng.standard_normal((steps, 2)) * JERK_STRENGTH
    positions = np.zeros((steps, 2))
    for step in range(1, steps):
        velocity = inertia * velocity + (1.0 - inertia) * nudges[step] + jerks[step]
        positions[step] = positions[step - 1] + velocity
    return positions


def fit_into_square(path: np.ndarray, size: int, extent: float) -> np.ndarray:
    """Scale a path so its longer side spans extent * (size - 1) px, mass-centred in the square."""
    span = float(np.ptp(path, axis=0).max())
    scaled = path * (extent * (size - 1) / span) if span > 0 else path * 0.0
    offset = (size - 1) / 2.0 - scaled.mean(axis=0)
    low = -scaled.min(axis=0)  # keep every point inside [0, size - 1]
    high = (size - 1) - scaled.max(axis=0)
    return scaled + np.clip(offset, low, high)


def densify(path: np.ndarray) -> np.ndarray:
    """Resample a path uniformly in time so consecutive points are at most SPLAT_SPACING apart."""
    longest_step = float(np.linalg.norm(np.diff(path, axis=0), axis=1).max(initial=0.0))
    per_step = max(1, math.ceil(longest_step / SPLAT_SPACING))
    times = np.linspace(0.0, len(path) - 1.0, (len(path) - 1) * per_step + 1)
    index = np.arange(len(path))
    return np.stack([np.interp(times, index, path[:, 0]), np.interp(times, index, path[:, 1])], 1)


def rasterise(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) kernel: bilinear splat of equally weighted x-y points, normalised to sum 1."""
    kernel = np.zeros((size + 1, size + 1))
    points = np.clip(points, 0.0, size - 1.0)
    x0, y0 = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    fx, fy = points[:, 0] - x0, points[:, 1] - y0
    np.add.at(kernel, (y0, x0), (1 - fx) * (1 - fy))
    np.add.at(kernel, (y0, x0 + 1), fx * (1 - fy))
    np.add.at(kernel, (y0 + 1, x0), (1 - fx) * fy)
    np.add.at(kernel, (y0 + 1, x0 + 1), fx * fy)
    kernel = kernel[:size, :size]
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(
    rng: np.random.Generator, size: int | None = None, extent: float | None = None
) -> np.ndarray:
    """Camera-shake kernel: odd side in [7, 31] px (even is rounded up), extent in (0, 1]."""
    side = BLUR.motion_size.pick(rng, size) | 1
    if side < 3:
        raise ValueError(f"motion kernel side must be >= 3 px, got {size}")
    reach = BLUR.motion_extent.pick(rng, extent)
    if not 0.0 < reach <= 1.0:
        raise ValueError(f"motion extent must be in (0, 1], got {extent}")
    inertia = BLUR.motion_inertia.sample(rng)
    path = shake_trajectory(rng, BLUR.motion_steps, inertia)
    return rasterise(densify(fit_into_square(path, side, reach)), side)


def linear_motion_kernel(length: float, angle: float) -> np.ndarray:
    """Straight motion: a segment `length` px long (>= 1, end to end, both ends included) at
    `angle` degrees anticlockwise from the x axis, through the centre of an odd square."""
    if not length >= 1.0:
        raise ValueError(f"linear motion length must be >= 1 px, got {length}")
    half = (length - 1.0) / 2.0
    side = 2 * math.ceil(half) + 1
    steps = max(2, math.ceil(2.0 * half / SPLAT_SPACING) + 1)
    reach = np.linspace(-half, half, steps)
    radians = math.radians(angle)
    centre = (side - 1) / 2.0
    # Image rows grow downwards: anticlockwise on screen is -y.
    points = np.stack([centre + reach * math.cos(radians), centre - reach * math.sin(radians)], 1)
    return rasterise(points, side)


def defocus_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disc of the given radius (> 0 px), normalised to sum 1."""
    if radius <= 0.0:
        raise ValueError(f"defocus radius must be > 0, got {radius}")
    half = math.ceil(radius + 0.5)
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1]
    coverage = np.clip(radius + 0.5 - np.hypot(xs, ys), 0.0, 1.0)
    return (coverage / coverage.sum()).astype(np.float32)


def add_motion_blur(
    img: np.ndarray, rng: np.random.Generator, *, size: int | None = None
) -> np.ndarray:
    """Camera-shake blur; kernel side size in [7, 31] px (None: random)."""
    clean = as_image(img)
    return clip_unit(convolve(clean, motion_kernel(rng, size)))


def add_linear_blur(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    length: float | None = None,
    angle: float | None = None,
) -> np.ndarray:
    """Straight motion blur; length in px (None: uniform in [5, 31]), angle in degrees
    anticlockwise from the x axis (None: uniform in [0, 180))."""
    clean = as_image(img)
    return clip_unit(convolve(clean, linear_kernel(rng, length, angle)))


def add_defocus_blur(
    img: np.ndarray, rng: np.random.Generator, *, radius: float | None = None
) -> np.ndarray:
    """Out-of-focus blur by a disc; radius > 0 px (None: uniform in [1, 6])."""
    clean = as_image(img)
    return clip_unit(convolve(clean, defocus_kernel(BLUR.defocus_radius.pick(rng, radius))))


def linear_kernel(
    rng: np.random.Generator, length: float | None = None, angle: float | None = None
) -> np.ndarray:
    """A straight-motion kernel with its length and angle drawn (or given)."""
    return linear_motion_kernel(
        BLUR.linear_length.pick(rng, length), BLUR.linear_angle.pick(rng, angle)
    )


def blur_kernel(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """The kernel `add_blur` convolves with: its kind drawn (or given), then the kernel."""
    chosen = BLUR.kind.pick(rng, kind)
    if chosen == "motion":
        return motion_kernel(rng)
    if chosen == "linear":
        return linear_kernel(rng)
    return defocus_kernel(BLUR.defocus_radius.sample(rng))


def add_blur(img: np.ndarray, rng: np.random.Generator, *, kind: str | None = None) -> np.ndarray:
    """Camera-shake, straight-motion or defocus blur; kind in ("motion", "linear", "defocus"),
    None draws one (shares 0.4, 0.3, 0.3)."""
    clean = as_image(img)
    return clip_unit(convolve(clean, blur_kernel(rng, kind)))
