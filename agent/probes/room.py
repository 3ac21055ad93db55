"""Room probe: the meeting room's codec (its HTTP API, read through a room profile) and
the meeting PC the agent runs on (V4L2 cameras, ALSA cards, DRM connectors, the app).

Codec: every document of the profile is fetched with Basic auth. No answer at all
(refused, timed out, TLS failed) is a fact: ``codec_reachable=False``. An answer that
is not the document (401, 404, 500) proves the codec is there: reachable, the rest
unknown, and the error says what to fix. PC: read from a filesystem root (``/``, or a
fixture tree in tests); a tree without ``sys/class`` or ``proc`` says nothing (null).
With both, the codec decides ``codec_*`` and each device comes from the codec when it
says, else from the PC.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil as _psutil

from agent.config import CodecConfig, PcRoomConfig, RoomConfig
from agent.room_profiles import RoomProfile, decode, load_room_profile_by_name
from contract.wire import RoomReading

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # a RoomOS status.xml is ~100 kB; refuse a runaway body
DEVICE_FIELDS = ("camera_ok", "microphone_ok", "speaker_ok", "display_ok")

# V4L2 capture nodes (index 0) that are no camera: the hardware codecs and ISPs a
# Raspberry Pi or an ARM board registers, and kernel test drivers.
NOT_CAMERAS = ("bcm2835-codec", "bcm2835-isp", "rpivid", "hantro", "vicodec", "vim2m")


async def collect(
    room: RoomConfig,
    *,
    http: httpx.AsyncClient | None = None,
    root: Path | None = None,
    psutil: ModuleType | Any = _psutil,
) -> RoomReading:
    """The room's reading; what cannot be read is null, and ``error`` says why."""
    pc_task = None
    if room.pc is not None:  # file reads and a process scan: off the event loop
        pc_task = asyncio.create_task(asyncio.to_thread(_pc, room.pc, root, psutil))
    try:
        codec = await _codec(room.codec, http) if room.codec is not None else None
    finally:
        pc = await pc_task if pc_task is not None else None
    return merge(codec, pc)


def merge(codec: RoomReading | None, pc: RoomReading | None) -> RoomReading:
    """The codec decides reachability, registration and calls; devices come from either."""
    if codec is None or pc is None:
        return codec or pc or RoomReading(error="room: configure a codec or a pc to watch")
    values: dict[str, bool | None] = {
        "codec_reachable": codec.codec_reachable,
        "codec_registered": codec.codec_registered,
        "in_call": codec.in_call if codec.in_call is not None else pc.in_call,
    }
    for name in DEVICE_FIELDS:
        said = getattr(codec, name)
        values[name] = said if said is not None else getattr(pc, name)
    return RoomReading(error=_join([codec.error, pc.error]), **values)


def _join(problems: list[str | None]) -> str | None:
    return "; ".join(p for p in problems if p)[:500] or None


# --- the codec ----------------------------------------------------------------------


async def _codec(codec: CodecConfig, http: httpx.AsyncClient | None) -> RoomReading:
    try:
        profile = load_room_profile_by_name(codec.profile)
        password = codec.password.reveal() if codec.password is not None else ""
    except ValueError as exc:  # a bad profile, or a secret's variable or file is missing
        return RoomReading(error=_join([f"codec: {exc}"]))
    url = urlsplit(codec.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        # A config mistake, not an unreachable codec (the URL may hold a password: not echoed).
        return RoomReading(error="codec: room.codec.url needs http:// or https:// and a host")
    auth = httpx.BasicAuth(codec.username, password) if codec.username is not None else None
    # An injected client keeps its own TLS settings; ours follows verify_tls.
    client = http if http is not None else httpx.AsyncClient(verify=codec.verify_tls)
    try:
        return await _poll(profile, codec, client, auth)
    finally:
        if http is None:
            await client.aclose()


async def _poll(
    profile: RoomProfile,
    codec: CodecConfig,
    client: httpx.AsyncClient,
    auth: httpx.BasicAuth | None,
) -> RoomReading:
    base = codec.url.rstrip("/")
    documents: dict[str, bytes] = {}
    problems: list[str | None] = []
    for name, doc in profile.documents.items():
        where = f"GET {doc.path or '/'}"
        try:
            # httpx times each read; this bounds the whole exchange (a slow-drip answer).
            async with asyncio.timeout(codec.timeout_s):
                status, body = await _get(client, base + doc.path, auth, codec.timeout_s)
        except (httpx.TransportError, TimeoutError) as exc:
            # No answer: later documents would only wait out the same timeout.
            why = _why(exc, codec.timeout_s)
            return RoomReading(codec_reachable=False, error=_join([f"codec: {where}: {why}"]))
        if status in (401, 403):
            problems.append(
                f"codec: {where}: HTTP {status}, the codec refused the credentials;"
                " check room.codec.username and password (an ADMIN user)"
            )
        elif status != 200:
            problems.append(f"codec: {where}: HTTP {status}")
        elif body is None:
            problems.append(f"codec: {where}: more than {MAX_DOCUMENT_BYTES} bytes, refused")
        else:
            documents[name] = body
    if not documents:
        # It answered, so it is there; what it would say is unknown.
        return RoomReading(codec_reachable=True, error=_join(problems))
    reading = decode(profile, documents)
    if reading.error:
        problems.append(f"codec: {reading.error}")
    return RoomReading(**{**reading.model_dump(), "error": _join(problems)})


async def _get(
    client: httpx.AsyncClient, url: str, auth: httpx.BasicAuth | None, timeout_s: float
) -> tuple[int, bytes | None]:
    """The status code and the body (None when it is not a 200 or is too large)."""
    async with client.stream("GET", url, auth=auth, timeout=timeout_s) as response:
        if response.status_code != 200:
            return response.status_code, None
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_DOCUMENT_BYTES:
                return 200, None
            chunks.append(chunk)
        return 200, b"".join(chunks)


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    detail = str(exc) or type(exc).__name__
    return f"cannot connect ({detail})"


# --- the meeting PC -----------------------------------------------------------------


def _pc(pc: PcRoomConfig, root: Path | None, psutil: Any) -> RoomReading:
    base = root if root is not None else pc.root
    problems: list[str | None] = []
    if not (base / "sys" / "class").is_dir():
        problems.append(f"pc: no {base / 'sys/class'}; cameras and displays unknown")
    if not (base / "proc").is_dir():
        problems.append(f"pc: no {base / 'proc'}; microphones and speakers unknown")
    microphone, speaker = _audio(base)
    running, why = _meeting_app(pc.meeting_app, psutil)
    problems.append(why)
    return RoomReading(
        error=_join(problems),
        codec_reachable=running,
        camera_ok=_cameras(base),
        microphone_ok=microphone,
        speaker_ok=speaker,
        display_ok=_displays(base),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _cameras(base: Path) -> bool | None:
    """A V4L2 capture node (``index`` 0; a UVC camera adds a metadata node, index 1)."""
    if not (base / "sys" / "class").is_dir():
        return None
    for node in sorted((base / "sys/class/video4linux").glob("video*")):
        name = _read(node / "name") or ""
        if _read(node / "index") in ("0", None) and not name.startswith(NOT_CAMERAS):
            return True
    return False  # the class exists but holds no camera, or videodev is not even loaded


def _audio(base: Path) -> tuple[bool | None, bool | None]:
    """(microphone, speaker): some ALSA card with a capture / a playback PCM device.

    ALSA's procfs lists devices, not what is plugged into an analogue jack: a laptop
    codec's speaker output exists whether or not speakers are connected.
    """
    if not (base / "proc").is_dir():
        return None, None
    asound = base / "proc/asound"
    cards = re.findall(r"^\s*(\d+) \[", _read(asound / "cards") or "", re.MULTILINE)
    capture = any(any((asound / f"card{n}").glob("pcm*c")) for n in cards)
    playback = any(any((asound / f"card{n}").glob("pcm*p")) for n in cards)
    return capture, playback


def _displays(base: Path) -> bool | None:
    """Some DRM connector (``card0-HDMI-A-1``) whose ``status`` reads ``connected``."""
    if not (base / "sys" / "class").is_dir():
        return None
    states = [_read(p) for p in (base / "sys/class/drm").glob("card*-*/status")]
    if "connected" in states:
        return True
    # Only "unknown" (some virtual and writeback connectors) is no answer at all.
    return False if "disconnected" in states or not states else None


def _meeting_app(app: str | None, psutil: Any) -> tuple[bool | None, str | None]:
    """Whether the meeting client runs: the PC's stand-in for a reachable codec."""
    if app is None:
        return None, None
    want = app.casefold()
    errors = (OSError, AttributeError, ValueError, getattr(psutil, "Error", OSError))
    try:
        for proc in psutil.process_iter(["name", "cmdline"]):
            name = (proc.info.get("name") or "").casefold()
            cmdline = proc.info.get("cmdline") or []
            exe = Path(cmdline[0]).name.casefold() if cmdline else ""
            # Linux cuts a process name to 15 characters ("teams-for-linux" just fits).
            if want in (name, exe) or (len(name) == 15 and want.startswith(name)):
                return True, None
    except errors as exc:
        return None, f"pc: cannot list processes: {exc}"
    return False, None
