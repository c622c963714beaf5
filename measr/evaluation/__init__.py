"""Measuring measr: image quality against clean references, and speed, beside baselines.

Public API:
    psnr(restored, reference), ssim(restored, reference), quantise(), PROTOCOL,
    colour_shift(restored, reference) -> ColourShift (mean RGB and Lab change: casts)
    parse_set("[NAME=]FOLDER[:SPEC]"), paired_set(), synthetic_set(), EvalSet
    build_methods(names, weights=..., tile=..., device=...), METHOD_NAMES, BASELINES
    run_quality(sets, methods, seed=..., limit=...) -> QualityReport
    run_speed(configs, sizes, tiles, devices, repeats=...) -> SpeedReport, to_markdown()
    write_json(path, report.to_dict()), write_csv(path, report.rows()), write_text()
"""

from measr.evaluation.baselines import BASELINES, INSTALL_HINT, Baseline
from measr.evaluation.methods import (
    DEFAULT_METHODS,
    METHOD_NAMES,
    Method,
    build_methods,
    parse_method_names,
)
from measr.evaluation.metrics import (
    PROTOCOL,
    ColourShift,
    MetricProtocol,
    colour_shift,
    psnr,
    quantise,
    ssim,
)
from measr.evaluation.quality import (
    ImageScore,
    MethodScore,
    QualityProgress,
    QualityReport,
    SetSummary,
    Status,
    run_quality,
)
from measr.evaluation.reports import write_csv, write_json, write_text
from measr.evaluation.sets import EvalSet, paired_set, parse_set, synthetic_set
from measr.evaluation.speed import (
    DEFAULT_CONFIGS,
    DEFAULT_SIZES,
    MachineInfo,
    MatmulPeak,
    Mode,
    SpeedPoint,
    SpeedProgress,
    SpeedReport,
    run_speed,
    to_markdown,
)

__all__ = [
    "BASELINES",
    "DEFAULT_CONFIGS",
    "DEFAULT_METHODS",
    "DEFAULT_SIZES",
    "INSTALL_HINT",
    "METHOD_NAMES",
    "PROTOCOL",
    "Baseline",
    "ColourShift",
    "EvalSet",
    "ImageScore",
    "MachineInfo",
    "MatmulPeak",
    "Method",
    "MethodScore",
    "MetricProtocol",
    "Mode",
    "QualityProgress",
    "QualityReport",
    "SetSummary",
    "SpeedPoint",
    "SpeedProgress",
    "SpeedReport",
    "Status",
    "build_methods",
    "colour_shift",
    "paired_set",
    "parse_method_names",
    "parse_set",
    "psnr",
    "quantise",
    "run_quality",
    "run_speed",
    "ssim",
    "synthetic_set",
    "to_markdown",
    "write_csv",
    "write_json",
    "write_text",
]
