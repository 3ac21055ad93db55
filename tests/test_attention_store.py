"""The attention list kept across restarts (collector/attention_store.py): site ids of any
text round-trip, a missing or unreadable file is an empty list logged once, a save is
whole or not at all, and the summaries start from it and survive a disk that refuses it.
Through the real collector: tests/test_restart.py."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from collector.attention_store import AttentionStore
from collector.inventory import Inventory
from collector.line_protocol import Point
from collector.summaries import Summaries
from contract.wire import Status
from rules import SiteSnapshot, load_policy
from tests.support.disk import fill, small_tmpfs
from tests.test_dashboards_history import NOW, meta, status

ODD_IDS = {
    "hp-bts-001",
    'quo"te',
    "it's",
    "new\nline",
    "cr\r\nlf",
    "tab\tnul\x00bell\x07esc\x1b[31m",
    "<script>alert(1)</script>&amp;",
    "back\\slash\\",
    "Trạm Đồ Sơn",
    "",
    " ",
    "\ud800 unpaired surrogate",
    '{"format": 1, "sites": []}',
    "\u2028line separator",
}


def test_site_ids_of_any_text_round_trip(tmp_path: Path) -> None:
    store = AttentionStore(tmp_path / "attention.json")
    store.save(ODD_IDS)
    assert AttentionStore(store.path).load() == ODD_IDS
    text = store.path.read_bytes()
    assert text.isascii() and b"\n" not in text  # every odd character escaped
    assert [p.name for p in tmp_path.iterdir()] == ["attention.json"]  # no temporary left


def test_a_save_replaces_the_whole_list(tmp_path: Path) -> None:
    store = AttentionStore(tmp_path / "attention.json")
    store.save({"a", "b"})
    store.save({"c"})
    assert store.load() == {"c"}
    store.save(set())
    assert store.load() == set()


def test_a_missing_file_is_an_empty_list_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "kienco.collector")
    store = AttentionStore(tmp_path / "attention.json")
    assert store.load() == set()
    assert len(caplog.records) == 1 and "no attention list" in caplog.text
    assert not store.path.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b'{"format": 1, "sites": ["a", "b"',  # cut short
        b"\xff\xfe\x00garbage",  # not UTF-8
        b"null",
        b'["a", "b"]',
        b'{"format": 2, "sites": ["a"]}',  # a later version's
        b'{"sites": ["a"]}',
        b'{"format": 1, "sites": "a"}',
        b'{"format": 1, "sites": ["a", 1]}',
        b"[" * 100_000,  # deeper than the parser recurses
    ],
)
def test_an_unreadable_file_is_an_empty_list_logged_once_then_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = tmp_path / "attention.json"
    path.write_bytes(content)
    store = AttentionStore(path)
    assert store.load() == set()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0].getMessage()
    store.save({"a"})
    assert store.load() == {"a"}


def test_a_file_that_cannot_be_read_is_an_empty_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "attention.json"
    path.mkdir()  # a folder where the file should be: read fails, the collector starts
    assert AttentionStore(path).load() == set()
    assert "unreadable" in caplog.text


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A tiny filesystem of its own, an attention list on it, then filled to the last byte."""
    with small_tmpfs(tmp_path, "256k") as mount:
        AttentionStore(mount / "attention.json").save({"before"})
        fill(mount)
        yield mount


def test_a_save_on_a_full_disk_raises_and_leaves_the_previous_list(full_disk: Path) -> None:
    store = AttentionStore(full_disk / "attention.json")
    with pytest.raises(OSError) as raised:
        store.save({f"hp-bts-{n:05d}" for n in range(1000)})
    assert raised.value.errno == errno.ENOSPC
    assert store.load() == {"before"}
    assert sorted(p.name for p in full_disk.iterdir()) == ["attention.json", "filler"]


# --- the summaries over it ----------------------------------------------------------------


def judged(site: str, verdict: str, state: str) -> tuple[SiteSnapshot, Status]:
    snapshot = SiteSnapshot(site=site, province="hp").with_meta(meta(site))
    return snapshot, status(site, verdict, state)


def attention_of(points: list[Point]) -> dict[str, bool]:
    """Each site's attention point this slot: True when it says ``listed``."""
    return {
        dict(p.tags)["site"]: bool(p.fields.get("listed"))
        for p in points
        if p.measurement == "attention"
    }


def test_summaries_start_from_the_saved_list_so_a_site_that_left_gets_its_point(
    tmp_path: Path,
) -> None:
    path = tmp_path / "attention.json"
    AttentionStore(path).save({"hp-back", "hp-still", "hp-forgotten"})
    summaries = Summaries(load_policy(), Inventory(()), path)
    assert summaries.listed == {"hp-back", "hp-still", "hp-forgotten"}
    sites = [
        judged("hp-back", "ready", "up_commercial"),  # recovered while the collector was down
        judged("hp-still", "degraded", "up_battery"),
        judged("hp-new", "unknown", "unknown"),
        judged("hp-fine", "ready", "up_commercial"),
    ]
    first = summaries.due(NOW, lambda: sites)
    assert attention_of(first) == {"hp-back": False, "hp-still": True, "hp-new": True}
    # Saved with the site that just left: its point is only queued yet.
    assert AttentionStore(path).load() == {"hp-back", "hp-still", "hp-new", "hp-forgotten"}
    second = summaries.due(NOW + timedelta(minutes=1), lambda: sites)
    assert attention_of(second) == {"hp-still": True, "hp-new": True}
    assert AttentionStore(path).load() == {"hp-still", "hp-new"}


def test_without_a_saved_list_the_summaries_start_empty(tmp_path: Path) -> None:
    summaries = Summaries(load_policy(), Inventory(()))
    points = summaries.due(NOW, lambda: [judged("hp-back", "ready", "up_commercial")])
    assert attention_of(points) == {} and summaries.store is None


def test_a_list_the_disk_refuses_costs_no_points_and_is_saved_when_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "gone"  # the data folder removed under a running collector
    summaries = Summaries(load_policy(), Inventory(()), folder / "attention.json")
    for minute, state in enumerate(("up_battery", "up_generator", "up_battery")):
        sites = [judged("hp-a", "degraded", state)]
        points = summaries.due(NOW + timedelta(minutes=minute), sites.copy)
        assert attention_of(points) == {"hp-a": True}  # a save is tried at each slot
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "not saved" in errors[0].getMessage()
    folder.mkdir()
    summaries.due(NOW + timedelta(minutes=3), lambda: [judged("hp-a", "degraded", "up_battery")])
    assert AttentionStore(folder / "attention.json").load() == {"hp-a"}
    assert "saved to" in caplog.records[-1].getMessage()
