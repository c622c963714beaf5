"""`measr.jobs.writes`: every path a command writes is compared with what it reads and with each
other, by place and by file (links, hard links, linked folders), before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from measr.errors import ExitCode, ImageWriteError, MeasrError
from measr.jobs.writes import Write, check_destination, check_writes


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    path.write_bytes(b"a photo")
    return path


def test_a_write_that_is_an_input_by_any_name_is_refused(photo: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    hard = tmp_path / "hard.png"
    os.link(photo, hard)
    linked_folder = tmp_path / "linked"
    linked_folder.symlink_to(photo.parent)
    for same in (photo, tmp_path / "in" / ".." / "in" / "photo.png", link, hard):
        with pytest.raises(MeasrError, match="is an input photo") as refused:
            check_writes([photo], [Write(same, "the log")])
        assert refused.value.exit_code == ExitCode.USAGE
    with pytest.raises(MeasrError, match="the same file as"):
        check_writes([photo], [Write(linked_folder / "photo.png", "the log")])
    check_writes([photo], [Write(tmp_path / "in" / "other.png", "the log")])


def test_two_writes_on_one_file_are_refused_even_before_it_exists(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "out")
    writes = [
        Write(tmp_path / "out" / "x.png", "the output"),
        Write(tmp_path / "alias" / "x.png", "the map"),
    ]
    with pytest.raises(MeasrError, match="the output and the map would both be written"):
        check_writes([], writes)


def test_an_output_replaces_its_own_source_only_when_asked(photo: Path, tmp_path: Path) -> None:
    own = Write(photo, "the output", "choose another -o", source=photo)
    with pytest.raises(MeasrError, match="would be written over itself") as refused:
        check_writes([photo], [own])
    assert "--replace-originals" in refused.value.hint
    check_writes([photo], [own], replace_originals=True)
    other = tmp_path / "in" / "other.png"
    other.write_bytes(b"another photo")
    # Asking to replace the originals never lets one photo's output replace another photo.
    with pytest.raises(MeasrError, match="is an input photo"):
        check_writes(
            [photo, other], [Write(other, "the output", source=photo)], replace_originals=True
        )
    # An output skipped when it exists (batch without --overwrite) never replaces it.
    check_writes([photo], [Write(photo, "the output", source=photo, replaces=False)])


def test_a_destination_is_checked_before_the_work(photo: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="it is a folder"):
        check_destination(tmp_path, "the report")
    with pytest.raises(ImageWriteError, match="is a file, not a folder"):
        check_destination(photo / "sub" / "r.json", "the report")
    with pytest.raises(ImageWriteError, match="already exists") as exists:
        check_destination(photo, "the report", overwrite=False)
    assert exists.value.option == "overwrite"
    check_destination(photo, "the report")
    check_destination(tmp_path / "new" / "r.json", "the report", overwrite=False)
