"""`measr restore IN`: restore one image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from measr.cli.options import (
    DEFAULT_TILE_OVERLAP,
    BackendOption,
    CompileOption,
    DeviceOption,
    HalfOption,
    NoSharedContextOption,
    StrengthOption,
    ThreadsOption,
    TileOption,
    TileOverlapOption,
    WeightsOption,
    open_restorer,
    refuse_existing,
    restore_settings,
)
from measr.cli.render import progress_bar, restore_line, stderr, stdout
from measr.engine.inspection import DEFAULT_MAP_LEVEL
from measr.engine.onnx_backend import DEFAULT_BACKEND
from measr.engine.routing import check_routing_level
from measr.engine.routing_map import render_routing_map
from measr.errors import ImageWriteError
from measr.io import image_from_array, is_supported_path, read_image, write_image

RESTORED_SUFFIX = "_restored"


def default_output(source: Path) -> Path:
    """`<stem>_restored.<ext>` beside the input."""
    return source.with_name(f"{source.stem}{RESTORED_SUFFIX}{source.suffix}")


def refuse_unwritable(target: Path) -> None:
    """Stop before the restoration when the output's format cannot be written (GIF, say)."""
    if not is_supported_path(target):
        kind = f"{target.suffix} files" if target.suffix else "files without an extension"
        raise ImageWriteError(
            f"cannot write '{target}': measr does not write {kind}",
            "choose the output with -o NAME.png (or .jpg, .tif, .webp, .bmp)",
        )


def restore(
    # readable=False: Typer's own check answers an unreadable file with a usage error (exit
    # 2); read_image says "permission denied" with exit code 4, as for every bad input.
    source: Annotated[
        Path, typer.Argument(metavar="IN", readable=False, help="The image to restore.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="OUT",
            readable=False,
            help="Default: <stem>_restored.<ext>.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
    quality: Annotated[
        int, typer.Option(min=1, max=100, help="JPEG/WebP quality of the output.")
    ] = 95,
    routing_map: Annotated[
        Path | None,
        typer.Option(help="Also write a picture of each pixel's top expert (PNG)."),
    ] = None,
    map_level: Annotated[
        str, typer.Option(help="STP-G-MESE level of the routing map.")
    ] = DEFAULT_MAP_LEVEL,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    threads: ThreadsOption = None,
    half: HalfOption = False,
    compile: CompileOption = "no",
    backend: BackendOption = DEFAULT_BACKEND,
    tile: TileOption = None,
    tile_overlap: TileOverlapOption = DEFAULT_TILE_OVERLAP,
    no_shared_context: NoSharedContextOption = False,
    strength: StrengthOption = 1.0,
) -> None:
    """Restore one image; prints one line: size, time, device, weights, the prompt's dominant
    atoms and the most-used experts."""
    target = output or default_output(source)
    refuse_existing(target, overwrite)
    if routing_map is not None:
        refuse_existing(routing_map, overwrite)
        refuse_unwritable(routing_map)
    image = read_image(source)
    refuse_unwritable(target)  # after reading, so that an animated GIF is named as such
    restorer = open_restorer(weights, device, threads, half, compile, backend)
    check_routing_level(restorer.model, map_level)
    settings = restore_settings(tile, tile_overlap, no_shared_context, strength)
    with progress_bar(stderr()) as bar:
        task = bar.add_task("restoring", total=None)

        def show(done: int, total: int) -> None:
            what = f"restoring {total} tiles" if total > 1 else "restoring"
            bar.update(task, completed=done, total=total, description=what)

        restoration = settings.restore(restorer, image.pixels, progress=show)
    write_image(target, image.with_pixels(restoration.pixels), quality=quality, overwrite=overwrite)
    if routing_map is not None:
        picture = render_routing_map(
            image.pixels, restoration.expert_maps[map_level], restorer.config.pixel_experts
        )
        write_image(routing_map, image_from_array(picture), overwrite=overwrite)
    line = restore_line(
        source.name, target.name, (image.height, image.width), restoration, restorer
    )
    stdout().print(line, soft_wrap=True)
