"""plumbing/atomic_file.py: the old file or the new, never half, and no leftovers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from plumbing.atomic_file import replace_file


def test_the_new_content_replaces_the_old_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_bytes(b"old")
    replace_file(path, b'{"a": "\\n\\"<b>"}', mode=0o640)
    assert path.read_bytes() == b'{"a": "\\n\\"<b>"}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["list.json"]


def test_a_failure_before_the_rename_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_bytes(b"old")

    def refuse(temporary: Path) -> None:
        assert temporary.read_bytes() == b"new"  # written and synced before
        raise PermissionError("chown refused")

    with pytest.raises(PermissionError):
        replace_file(path, b"new", before_rename=refuse)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["passwd"]


def test_a_missing_folder_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "gone" / "f", b"x")
    assert list(tmp_path.iterdir()) == []
