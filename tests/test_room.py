"""Room devices: profile decoding (pure), the codec probe against recordings served on
loopback, and the meeting-PC probe against fixture sysfs/procfs trees."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from agent.config import CodecConfig, PcRoomConfig, RoomConfig
from agent.probes import room as room_probe
from agent.room_profiles import (
    ROOM_PROFILES_DIR,
    RoomProfile,
    RoomProfileError,
    decode,
    load_room_profile,
    load_room_profile_by_name,
)
from contract.wire import RoomReading
from plumbing.secrets import SecretRef

REPO = Path(__file__).parents[1]
RECORDINGS = REPO / "firmware-configs" / "recordings" / "room"
PC_ROOMS = Path(__file__).parent / "fixtures" / "pc-rooms"
FIELDS = ("codec_reachable", "codec_registered", "camera_ok", "microphone_ok", "speaker_ok",
          "display_ok", "in_call")  # fmt: skip


def recording(profile: str, case: str) -> dict[str, bytes]:
    """The documents of one recorded case: ``<profile>.<case>.<document>.<ext>``."""
    found = {p.name.split(".")[2]: p.read_bytes() for p in RECORDINGS.glob(f"{profile}.{case}.*")}
    assert found, f"no recording {profile}.{case}"
    return found


def values(reading: RoomReading) -> tuple[bool | None, ...]:
    return tuple(getattr(reading, name) for name in FIELDS)


# --- decode: the recordings, pure ----------------------------------------------------

T, F, N = True, False, None

DECODE_CASES = [
    # profile, case: reachable, registered, camera, microphone, speaker, display, in_call
    ("cisco-roomos", "healthy", (T, T, T, T, T, T, F)),
    ("cisco-roomos", "camera-unplugged-unregistered", (T, F, F, T, T, T, F)),
    # integrated mics and speaker, Webex registered, its display in standby reads Unknown
    ("cisco-roomos", "room-kit-standby", (T, T, T, T, T, N, F)),
    ("cisco-roomos", "malformed", (T, N, N, N, N, N, N)),
    ("teams-rooms-health", "in-call", (T, T, T, T, T, T, T)),
    # Graph's documented example: device offline, room camera and both displays unplugged
    ("teams-rooms-health", "offline-camera-unplugged", (F, T, F, T, T, F, N)),
    # the health document is cut short: all it would say is unknown; the device doc still reads
    ("teams-rooms-health", "malformed", (N, N, N, N, N, N, F)),
]


@pytest.mark.parametrize(("profile", "case", "expected"), DECODE_CASES)
def test_decode_recordings(profile: str, case: str, expected: tuple[bool | None, ...]) -> None:
    reading = decode(load_room_profile_by_name(profile), recording(profile, case))
    assert values(reading) == expected
    assert (reading.error is None) == (case != "malformed")


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("cisco-roomos.malformed", "status: not well-formed XML (no element found: line 58"),
        ("teams-rooms-health.malformed", "health: not valid JSON (Expecting value: line 68"),
    ],
)
def test_malformed_documents_give_a_short_reason_not_an_exception(case: str, error: str) -> None:
    profile, name = case.split(".")
    reading = decode(load_room_profile_by_name(profile), recording(profile, name))
    assert reading.error is not None and reading.error.startswith(error)


def test_every_shipped_profile_loads_and_has_recordings() -> None:
    for path in sorted(ROOM_PROFILES_DIR.glob("*.yaml")):
        profile = load_room_profile(path)
        assert list(RECORDINGS.glob(f"{profile.profile}.healthy.*")) or list(
            RECORDINGS.glob(f"{profile.profile}.in-call.*")
        ), f"{path.name} has no recording of a working room"


def _profile(fmt: str, readings: dict[str, Any], **documents: Any) -> RoomProfile:
    docs = documents or {"doc": {"path": "/status"}}
    return RoomProfile.model_validate(
        {"profile": "t", "description": "t", "format": fmt, "documents": docs, "readings": readings}
    )


XML = b"""<?xml version="1.0"?>
<Status><Out item="1"><Connected>True</Connected></Out><Out item="2"><Connected>Unknown</Connected>
</Out><Out item="3"><Connected>False</Connected></Out><Calls>2</Calls><Name>n/a</Name>
<Reg item="1" status="Registered"/></Status>"""
JSON = b'{"a": {"list": [{"s": "ok"}, {"s": "bad"}], "n": 3, "flag": true, "nothing": null}}'

VOCABULARY = [
    # format, rule, document, expected
    ("xml", {"path": "Status/Out/Connected", "equals": "True"}, XML, T),
    ("xml", {"path": "Status/Out/Connected", "equals": "TRUE", "match": "all"}, XML, F),
    # with all, one value that cannot tell makes the reading unknown, never healthy
    (
        "xml",
        {
            "path": "Status/Out/Connected",
            "equals": ["True", "False"],
            "unknown": ["Unknown"],
            "match": "all",
        },
        XML,
        N,
    ),
    (
        "xml",
        {"path": "Status/Out/Connected", "equals": ["True", "Unknown"], "match": "all"},
        XML,
        F,
    ),
    ("xml", {"path": "Status/Out/Connected", "equals": "False", "unknown": ["Unknown"]}, XML, T),
    ("xml", {"path": "Status/Out/Connected", "equals": "Yes", "unknown": ["Unknown"]}, XML, N),
    ("xml", {"path": "Status/Calls", "above": 1}, XML, T),
    ("xml", {"path": "Status/Calls", "below": 1}, XML, F),
    ("xml", {"path": "Status/Name", "above": 0}, XML, N),  # not a number: unknown
    ("xml", {"path": "Status/Gone", "equals": "x"}, XML, N),  # absent: unknown
    ("xml", {"path": "Status/Gone", "equals": "x", "missing": False}, XML, F),
    ("xml", {"path": "Status/Gone", "exists": False}, XML, T),
    ("xml", {"path": "Status/Out", "exists": True}, XML, T),
    ("xml", {"path": "Status/Out", "equals": "x"}, XML, N),  # an element with children
    ("xml", {"path": "Status/Reg/@status", "equals": "registered"}, XML, T),
    ("xml", {"path": "*/Calls", "above": 0}, XML, T),
    ("xml", {"path": "Other/Calls", "above": 0}, XML, N),  # the root element is named
    ("json", {"path": "a/list/s", "equals": "ok"}, JSON, T),
    ("json", {"path": "a/list/s", "equals": "ok", "match": "all"}, JSON, F),
    ("json", {"path": "a/*/s", "equals": "bad"}, JSON, T),
    ("json", {"path": "a/flag", "equals": True}, JSON, T),
    ("json", {"path": "a/flag", "equals": "true"}, JSON, T),
    ("json", {"path": "a/n", "equals": 3}, JSON, T),
    ("json", {"path": "a/nothing", "equals": "x"}, JSON, N),
    ("json", {"any": [{"path": "a/n", "above": 5}, {"path": "a/gone", "exists": True}]}, JSON, F),
    ("json", {"any": [{"path": "a/n", "above": 5}, {"path": "a/nothing", "equals": 1}]}, JSON, N),
    ("json", {"any": [{"path": "a/n", "above": 5}, {"path": "a/flag", "equals": True}]}, JSON, T),
    ("json", {"all": [{"path": "a/n", "above": 1}, {"path": "a/nothing", "equals": 1}]}, JSON, N),
    ("json", {"all": [{"path": "a/n", "above": 5}, {"path": "a/nothing", "equals": 1}]}, JSON, F),
    (
        "json",
        {"all": [{"any": [{"path": "a/n", "above": 2}]}, {"path": "a/flag", "exists": True}]},
        JSON,
        T,
    ),
]


@pytest.mark.parametrize(("fmt", "rule", "document", "expected"), VOCABULARY)
def test_vocabulary(fmt: str, rule: dict[str, Any], document: bytes, expected: bool | None) -> None:
    reading = decode(_profile(fmt, {"camera_ok": rule}), {"doc": document})
    assert reading.camera_ok is expected
    assert reading.codec_reachable is True and reading.error is None


def test_decode_edges() -> None:
    profile = _profile("xml", {"in_call": {"path": "Status/Calls", "above": 0}})
    assert values(decode(profile, {})) == (N,) * 7  # no answer: not even reachable is known
    refused = decode(profile, {"doc": b'<!DOCTYPE x [<!ENTITY a "b">]><Status/>'})
    assert refused.error == "doc: an XML document with a DOCTYPE is refused"
    expecting = _profile(
        "xml", {"in_call": {"path": "Status/Calls", "above": 0}}, doc={"path": "", "expect": "X/Y"}
    )
    odd = decode(expecting, {"doc": b"<html><body>Login</body></html>"})
    assert odd.error == "doc: no X/Y in the answer; is it a t?" and odd.in_call is None
    assert decode(_profile("json", {"in_call": {"path": "a", "exists": True}}), {"doc": b"[]"}) == (
        RoomReading(codec_reachable=True, in_call=False)
    )


PROFILE_OK = """\
profile: {name}
description: test
format: xml
documents:
  status: {{path: /status.xml}}
readings:
  camera_ok: {{path: Status/Cameras/Camera/Connected, equals: "True"}}
"""

PROFILE_ERRORS = [
    # replace, with, the message names
    ("camera_ok: {path:", "camera_ok: {pth: x, path:", "readings.camera_ok: unknown key 'pth'"),
    ("camera_ok:", "camera_working:", "readings.camera_working: not a RoomReading field"),
    ('equals: "True"', 'equals: "True", above: 1', "give exactly one of exists, equals, above"),
    (', equals: "True"', "", "(got none)"),
    ('equals: "True"', "equals: True", "readings.camera_ok: xml values are text; quote them"),
    ("equals:", "document: sttaus, equals:", "readings.camera_ok.document: 'sttaus' is not a doc"),
    ("Status/Cameras", "Status//Cameras", "readings.camera_ok.path: String should match pattern"),
    ("Status/Cameras", "Status/@item/Cameras", "an @attribute can only be the last step"),
    ("format: xml", "format: yaml", "format: Input should be 'xml' or 'json'"),
    ("path: /status.xml", "path: status.xml", "documents.status.path: String should match"),
    ("documents:\n  status: {path: /status.xml}", "documents: {}", "documents: Dictionary should"),
    ("  status: {path: /status.xml}\n", "", "documents: Input should be a valid dictionary"),
    ("description: test\n", "", "description: required key missing; add it"),
    ('equals: "True"}', 'exists: true, match: all}', "match mean nothing with exists"),
    ('equals: "True"}', 'exists: true, missing: false}', "missing mean nothing with exists"),
    ("camera_ok: {path: Status/Cameras/Camera/Connected, equals: \"True\"}",
     "camera_ok: {any: [{path: A, exists: true}], path: B}", "split it in two"),
    ("camera_ok: {path: Status/Cameras/Camera/Connected, equals: \"True\"}",
     "camera_ok: {any: [{path: A, exists: true}, {path: B}]}",
     "readings.camera_ok.any.1: give exactly one of"),
    ("camera_ok: {path: Status/Cameras/Camera/Connected, equals: \"True\"}",
     "camera_ok: {all: [{path: A, exists: true, document: other}]}",
     "readings.camera_ok.all.0.document: 'other' is not a document of this profile"),
    ("format: xml", "format: json", "readings.camera_ok.path"),  # @ below, json: no attributes
    ("readings:", "readings:\n  camera_ok: {path: A, exists: true}", "duplicate key 'camera_ok'"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), PROFILE_ERRORS)
def test_profile_errors_name_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = PROFILE_OK.format(name="t")
    if message == "readings.camera_ok.path":
        text = text.replace("Status/Cameras/Camera/Connected", "Status/Camera/@connected")
        message = "readings.camera_ok: @attributes exist in xml only"
    assert old in text
    path = tmp_path / "t.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(RoomProfileError) as caught:
        load_room_profile(path)
    assert message in str(caught.value), str(caught.value)
    assert str(path) in str(caught.value)


def test_profile_file_and_name_errors(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(PROFILE_OK.format(name="t"))
    with pytest.raises(RoomProfileError, match=r"key 'profile' is 't' but the file is other\.yaml"):
        load_room_profile(tmp_path / "other.yaml")
    with pytest.raises(RoomProfileError, match=r"no room profile 'nope' .*known: other"):
        load_room_profile_by_name("nope", [tmp_path])
    with pytest.raises(RoomProfileError, match="is not a slug"):
        load_room_profile_by_name("../etc/passwd")
    (tmp_path / "bad.yaml").write_text("profile: [unclosed\n")
    with pytest.raises(RoomProfileError, match=r"bad.yaml:2:1: not valid YAML"):
        load_room_profile(tmp_path / "bad.yaml")


# --- the codec probe, against recordings served on loopback --------------------------

USER, PASSWORD = "kienco", "s3cret-pass"
GOOD_AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
ROUTES: dict[str, tuple[str, str]] = {
    "/pro/status.xml": ("cisco-roomos", "healthy"),
    "/faulty/status.xml": ("cisco-roomos", "camera-unplugged-unregistered"),
    "/broken/status.xml": ("cisco-roomos", "malformed"),
    "/teams/health": ("teams-rooms-health", "in-call"),
    "/teams": ("teams-rooms-health", "in-call"),
    "/teams-half/health": ("teams-rooms-health", "in-call"),  # and no device document: 404
}


class _Codec(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(1.5)
        if self.headers.get("Authorization") != GOOD_AUTH or self.path.startswith("/denied/"):
            self._send(401, b"", {"WWW-Authenticate": 'Basic realm="codec"'})
            return
        if self.path not in ROUTES:
            self._send(404, b"<html>Not Found</html>", {})
            return
        profile, case = ROUTES[self.path]
        document = "device" if self.path == "/teams" else self.path.rsplit("/", 1)[-1]
        document = "status" if document == "status.xml" else document
        self._send(200, recording(profile, case)[document], {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the probe gave up waiting; nothing to answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    block_on_close = False  # do not wait for the slow route's sleeping thread
    daemon_threads = True


@pytest.fixture(scope="module")
def codec_base() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Codec)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def codec_room(url: str, profile: str = "cisco-roomos", password: str = PASSWORD) -> RoomConfig:
    secret = SecretRef.model_validate({"value": password})
    codec = CodecConfig(profile=profile, url=url, username=USER, password=secret, timeout_s=0.5)
    return RoomConfig(codec=codec)


async def test_codec_healthy_over_http_matches_the_pure_decode(codec_base: str) -> None:
    reading = await room_probe.collect(codec_room(f"{codec_base}/pro/"))
    assert reading == decode(load_room_profile_by_name("cisco-roomos"), recording(
        "cisco-roomos", "healthy"))  # fmt: skip
    assert values(reading) == (T, T, T, T, T, T, F) and reading.error is None


async def test_codec_with_an_injected_client(codec_base: str) -> None:
    async with httpx.AsyncClient() as client:
        reading = await room_probe.collect(codec_room(f"{codec_base}/faulty"), http=client)
        assert values(reading) == (T, F, F, T, T, T, F)
        assert not client.is_closed  # the caller's client stays the caller's


@pytest.mark.parametrize(
    ("path", "password", "expected", "error"),
    [
        ("/pro", "wrong", (T, N, N, N, N, N, N), "HTTP 401, the codec refused the credentials"),
        ("/denied", PASSWORD, (T, N, N, N, N, N, N), "check room.codec.username and password"),
        ("/nowhere", PASSWORD, (T, N, N, N, N, N, N), "codec: GET /status.xml: HTTP 404"),
        (
            "/slow",
            PASSWORD,
            (F, N, N, N, N, N, N),
            "codec: GET /status.xml: no answer within 0.5 s",
        ),
        ("/broken", PASSWORD, (T, N, N, N, N, N, N), "codec: status: not well-formed XML"),
    ],
)
async def test_codec_failures(
    codec_base: str, path: str, password: str, expected: tuple[bool | None, ...], error: str
) -> None:
    reading = await room_probe.collect(codec_room(codec_base + path, password=password))
    assert values(reading) == expected
    assert reading.error is not None and error in reading.error
    assert PASSWORD not in reading.error and "wrong" not in reading.error


async def test_codec_runaway_answer_is_refused(
    codec_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(room_probe, "MAX_DOCUMENT_BYTES", 1000)
    reading = await room_probe.collect(codec_room(f"{codec_base}/pro"))
    assert values(reading) == (T, N, N, N, N, N, N)
    assert reading.error == "codec: GET /status.xml: more than 1000 bytes, refused"


async def test_a_closed_port_is_unreachable_a_fact_not_unknown() -> None:
    started = time.monotonic()
    reading = await room_probe.collect(codec_room(f"http://127.0.0.1:{closed_port()}"))
    assert values(reading) == (F, N, N, N, N, N, N)
    assert reading.error is not None and "cannot connect" in reading.error
    assert time.monotonic() - started < 2


async def test_codec_two_documents_and_a_missing_one(codec_base: str) -> None:
    whole = await room_probe.collect(codec_room(f"{codec_base}/teams", "teams-rooms-health"))
    assert values(whole) == (T, T, T, T, T, T, T) and whole.error is None
    half = await room_probe.collect(codec_room(f"{codec_base}/teams-half", "teams-rooms-health"))
    assert values(half) == (T, T, T, T, T, T, N)
    assert half.error == "codec: GET /: HTTP 404"


async def test_codec_config_problems_are_error_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIENCO_TEST_CODEC_PW", raising=False)
    secret = SecretRef.model_validate({"env": "KIENCO_TEST_CODEC_PW"})
    url = f"http://127.0.0.1:{closed_port()}"
    codec = CodecConfig(profile="cisco-roomos", url=url, username=USER, password=secret)
    reading = await room_probe.collect(RoomConfig(codec=codec))
    assert reading == RoomReading(
        error="codec: environment variable KIENCO_TEST_CODEC_PW is not set"
    )
    unknown = await room_probe.collect(codec_room(url, profile="polycom-x"))
    assert unknown.error is not None and "no room profile 'polycom-x'" in unknown.error
    bad_url = await room_probe.collect(codec_room("10.0.0.20"))
    assert bad_url == RoomReading(
        error="codec: room.codec.url needs http:// or https:// and a host"
    )


# --- the meeting PC, against fixture trees ------------------------------------------


class FakePsutil:
    """process_iter as psutil gives it: each process with the asked-for ``info``."""

    class Error(Exception):
        pass

    def __init__(self, processes: list[dict[str, Any]], fail: bool = False) -> None:
        self._processes = processes
        self._fail = fail

    def process_iter(self, attrs: list[str]) -> Iterator[Any]:
        if self._fail:
            raise self.Error("psutil.AccessDenied (pid=1)")
        return iter(SimpleNamespace(info=info) for info in self._processes)


ZOOM = FakePsutil([{"name": "systemd", "cmdline": None}, {"name": "zoom", "cmdline": ["zoom"]}])


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        # reachable = the meeting app runs; registration and calls are not knowable here
        ("healthy", (T, N, T, T, T, T, N)),
        ("no-camera", (T, N, F, T, T, T, N)),
        ("hdmi-disconnected", (T, N, T, T, T, F, N)),
        ("no-sound-card", (T, N, T, F, F, T, N)),
    ],
)
async def test_pc_fixture_trees(tree: str, expected: tuple[bool | None, ...]) -> None:
    pc = RoomConfig(pc=PcRoomConfig(meeting_app="zoom"))
    reading = await room_probe.collect(pc, root=PC_ROOMS / tree, psutil=ZOOM)
    assert values(reading) == expected and reading.error is None
    # the config's root is used when no root is passed
    configured = RoomConfig(pc=PcRoomConfig(root=PC_ROOMS / tree, meeting_app="zoom"))
    assert await room_probe.collect(configured, psutil=ZOOM) == reading


@pytest.mark.parametrize(
    ("app", "processes", "running"),
    [
        ("zoom", [{"name": "bash", "cmdline": ["bash"]}], F),
        (None, [{"name": "zoom", "cmdline": ["zoom"]}], N),
        ("teams", [{"name": "electron", "cmdline": ["/opt/teams/Teams", "--x"]}], T),
        ("teams-for-linux", [{"name": "teams-for-linux", "cmdline": None}], T),
        ("teams-for-linux-beta", [{"name": "teams-for-linu", "cmdline": None}], F),
        ("teams-for-linux-b", [{"name": "teams-for-linux", "cmdline": None}], T),  # cut to 15
    ],
)
async def test_pc_meeting_app(
    app: str | None, processes: list[dict[str, Any]], running: Any
) -> None:
    pc = RoomConfig(pc=PcRoomConfig(meeting_app=app))
    reading = await room_probe.collect(pc, root=PC_ROOMS / "healthy", psutil=FakePsutil(processes))
    assert reading.codec_reachable is running


async def test_pc_unreadable_is_unknown_with_the_reason(tmp_path: Path) -> None:
    pc = RoomConfig(pc=PcRoomConfig(meeting_app="zoom"))
    failing = FakePsutil([], fail=True)
    reading = await room_probe.collect(pc, root=tmp_path, psutil=failing)
    assert values(reading) == (N,) * 7
    assert reading.error == (
        f"pc: no {tmp_path}/sys/class; cameras and displays unknown; pc: no {tmp_path}/proc;"
        " microphones and speakers unknown; pc: cannot list processes: psutil.AccessDenied (pid=1)"
    )


async def test_pc_board_codecs_are_not_cameras(tmp_path: Path) -> None:
    for node, name in (("video10", "bcm2835-codec-decode"), ("video13", "bcm2835-isp")):
        (tmp_path / "sys/class/video4linux" / node).mkdir(parents=True)
        (tmp_path / "sys/class/video4linux" / node / "name").write_text(f"{name}\n")
        (tmp_path / "sys/class/video4linux" / node / "index").write_text("0\n")
    (tmp_path / "sys/class/drm/card0-HDMI-A-1").mkdir(parents=True)
    (tmp_path / "sys/class/drm/card0-HDMI-A-1/status").write_text("unknown\n")
    reading = await room_probe.collect(RoomConfig(pc=PcRoomConfig()), root=tmp_path)
    assert (reading.camera_ok, reading.display_ok) == (False, None)


# --- both: the codec decides codec_*, devices from whichever reports them ------------


async def test_codec_and_pc_together(codec_base: str) -> None:
    pc = PcRoomConfig(root=PC_ROOMS / "healthy", meeting_app="zoom")
    faulty = codec_room(f"{codec_base}/faulty").codec
    both = await room_probe.collect(RoomConfig(codec=faulty, pc=pc), psutil=ZOOM)
    assert values(both) == (T, F, F, T, T, T, F)  # the codec's camera is the meeting's camera
    broken = codec_room(f"{codec_base}/broken").codec
    filled = await room_probe.collect(RoomConfig(codec=broken, pc=pc), psutil=ZOOM)
    assert values(filled) == (T, N, T, T, T, T, N)  # what the codec cannot say, the PC says
    assert filled.error is not None and filled.error.startswith("codec: status: not well-formed")
    down = codec_room(f"http://127.0.0.1:{closed_port()}").codec
    gone = await room_probe.collect(RoomConfig(codec=down, pc=pc), psutil=ZOOM)
    assert values(gone) == (F, N, T, T, T, T, N)  # the app runs, but the codec is the codec


async def test_nothing_configured() -> None:
    reading = await room_probe.collect(RoomConfig())
    assert reading == RoomReading(error="room: configure a codec or a pc to watch")


async def test_the_poll_cycle_reports_the_room_of_a_meeting_point() -> None:
    from datetime import UTC, datetime

    from agent.config import SiteConfig
    from agent.cycle import Probes, poll_once

    healthy = Path(__file__).parent / "fixtures" / "pc-rooms" / "healthy"
    config = SiteConfig.model_validate(
        {
            "site": "hp-dc-9",
            "province": "hp",
            "kind": "meeting_point",
            "name": "Điểm cầu xã",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "room": {"pc": {"root": str(healthy)}},
        }
    )
    report = await poll_once(config, Probes(), seq=0, now=datetime.now(UTC))
    assert report.room is not None
    assert (report.room.camera_ok, report.room.display_ok) == (True, True)
