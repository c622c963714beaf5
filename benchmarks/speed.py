"""Measure MEASNet's speed and write `speed.json` and `speed.md` (a markdown table).

    nice python benchmarks/speed.py --configs full,small --sizes 256,512,1024,2048 --out results/

The same measurement as `measr benchmark speed`, with the library's full defaults; see
docs/protocol.md for what each number means.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from measr.evaluation import DEFAULT_CONFIGS, DEFAULT_SIZES, run_speed, to_markdown, write_json
from measr.evaluation.reports import write_text


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _tiles(text: str) -> list[int | None]:
    return [None if part == "none" else int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--tiles", default="none", help="e.g. none,512")
    parser.add_argument("--devices", default=None, help="cpu,cuda (default: all present)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per point")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()

    report = run_speed(
        args.configs.split(","),
        _ints(args.sizes),
        _tiles(args.tiles),
        args.devices.split(",") if args.devices else None,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        timeout_s=args.timeout,
        on_point=lambda event: print(
            f"[{event.done}/{event.total}] {event.point.config} {event.point.size}px "
            f"tile {event.point.tile or 'none'} {event.point.device} {event.point.mode.value}: "
            f"{event.point.status}",
            flush=True,
        ),
    )
    write_json(args.out / "speed.json", report.to_dict())
    write_text(args.out / "speed.md", to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
