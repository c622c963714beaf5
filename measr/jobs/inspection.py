"""Which experts MEASNet picks for which degradation: routing of many images, grouped by task
(the folder they are in), aggregated per group, optionally drawn as routing maps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measr.engine.damage import DamageReading
from measr.engine.options import RestoreOptions
from measr.engine.restorer import Restorer
from measr.engine.routing import RoutingSummary, check_routing_level, merge_summaries
from measr.engine.routing_map import render_routing_map
from measr.errors import ExitCode, MeasrError, quoted
from measr.io import check_output, image_from_array, read_image, write_image
from measr.jobs.batch import describe_error, find_images
from measr.jobs.writes import Write, check_destination, check_writes

DEFAULT_MAP_LEVEL = "encoder1"


@dataclass
class GroupRouting:
    """The routing of one group of images: each image's summary, and the group's."""

    images: dict[str, RoutingSummary] = field(default_factory=dict)  # path -> summary
    failed: dict[str, str] = field(default_factory=dict)  # path -> error
    damage: dict[str, DamageReading] = field(default_factory=dict)  # path -> what was found

    @property
    def summary(self) -> RoutingSummary | None:
        """All images of the group merged (None when none could be restored)."""
        return merge_summaries(self.images.values()) if self.images else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        summary = self.summary
        return {
            "images": len(self.images),
            "routing": summary.to_dict() if summary else None,
            "per_image": {path: s.to_dict() for path, s in self.images.items()},
            "damage": {path: d.to_dict() for path, d in self.damage.items()},
            "failed": self.failed,
        }

    def detected(self) -> dict[str, int]:
        """How many of the group's images the prompt read as each kind of damage."""
        counts: dict[str, int] = {}
        for reading in self.damage.values():
            counts[detected_group(reading)] = counts.get(detected_group(reading), 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))


UNSURE = "unsure"


def detected_group(reading: DamageReading) -> str:
    """The group an image joins when grouped by detected damage: its most probable kind, or
    'unsure' when the prompt is not confident."""
    return reading.most_likely if reading.confident else UNSURE


def regroup_by_damage(report: dict[str, GroupRouting]) -> dict[str, GroupRouting]:
    """The same images grouped by the damage the prompt detected instead of by folder (images
    of weights whose prompt names no kinds stay in their folder's group)."""
    regrouped: dict[str, GroupRouting] = {}
    for group, routing in report.items():
        for path, summary in routing.images.items():
            reading = routing.damage.get(path)
            target = regrouped.setdefault(
                detected_group(reading) if reading else group, GroupRouting()
            )
            target.images[path] = summary
            if reading is not None:
                target.damage[path] = reading
        if routing.failed:
            regrouped.setdefault(group, GroupRouting()).failed.update(routing.failed)
    return regrouped


def group_inputs(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """Images grouped by task: a folder's subfolders are tasks (`<task>/<images>`), images
    loose in a folder form a group named after that folder, and image paths given one by one
    are grouped by their folder's name."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        if path.is_dir():
            for image in find_images(path):
                parts = image.relative_to(path).parts
                task = parts[0] if len(parts) > 1 else path.resolve().name
                groups.setdefault(task, []).append(image)
        elif path.exists():
            groups.setdefault(path.resolve().parent.name, []).append(path)
        else:
            raise MeasrError(f"'{path}' does not exist", "check the path", ExitCode.INPUT)
    if not groups:
        raise MeasrError("no images found", "pass image files or folders of images", ExitCode.INPUT)
    return groups


def map_path(maps_dir: Path, group: str, image: Path, level: str) -> Path:
    """Where an image's routing map goes: <maps>/<group>/<stem>_<level>.png."""
    return maps_dir / group / f"{image.stem}_{level}.png"


def check_paths(
    groups: dict[str, list[Path]],
    *,
    maps_dir: Path | None,
    map_level: str,
    report: Path | None,
    overwrite: bool,
) -> None:
    """Before any work: the report and the routing maps land on no image inspected and on
    no one another, and can be written (without `overwrite`, none exists yet)."""
    maps = [
        Write(
            map_path(maps_dir, group, path, map_level),
            f"the routing map of {quoted(path)}",
            "choose another folder for the maps",
            clash_hint="rename one of the images, or inspect them in separate runs",
        )
        for group, paths in groups.items()
        for path in paths
        if maps_dir is not None
    ]
    reports = [] if report is None else [Write(report, "the JSON report", "choose another path")]
    check_writes([path for paths in groups.values() for path in paths], reports + maps)
    if report is not None:
        check_destination(report, "the JSON report", overwrite=overwrite)
    for routing_map in maps:
        check_output(routing_map.path, overwrite=overwrite)


def inspect_experts(
    restorer: Restorer,
    groups: dict[str, list[Path]],
    *,
    options: RestoreOptions | None = None,
    maps_dir: Path | None = None,
    map_level: str = DEFAULT_MAP_LEVEL,
    overwrite: bool = True,
    on_image: Callable[[str, Path], None] | None = None,
) -> dict[str, GroupRouting]:
    """Restore every image with routing capture and gather the routing per group; with
    `maps_dir`, write each image's routing map at `map_level` (replacing one that exists only
    with `overwrite`). A bad image is recorded in its group's `failed` and the rest go on."""
    check_routing_level(restorer.model, map_level)
    report: dict[str, GroupRouting] = {}
    for group, paths in groups.items():
        routing = report.setdefault(group, GroupRouting())
        for path in paths:
            if on_image is not None:
                on_image(group, path)
            try:
                image = read_image(path)
                restoration = restorer.restore(image.pixels, options, record_routing=True)
                if maps_dir is not None:
                    picture = render_routing_map(
                        image.pixels,
                        restoration.expert_maps[map_level],
                        restorer.config.pixel_experts,
                    )
                    target = map_path(maps_dir, group, path, map_level)
                    write_image(target, image_from_array(picture), overwrite=overwrite)
            except Exception as error:  # one bad image must not stop the inspection
                routing.failed[str(path)] = describe_error(error)
                continue
            if restoration.routing is not None:
                routing.images[str(path)] = restoration.routing
            if restoration.damage is not None:
                routing.damage[str(path)] = restoration.damage
    return report
