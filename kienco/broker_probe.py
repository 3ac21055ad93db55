"""Is a Mosquitto broker still answering its clients? A probe for the broker watchdog.

Mosquitto 2.0.11 (Debian 12's) can wedge: an idle provincial broker whose TLS bridge the
centre closed during the handshake stops retrying the bridge, spins a core and completes
no connection from its own agents, and SIGTERM does not stop it (docs/topology.md,
"A provincial broker that stops answering"; ``benchmarks/bridge_refused_idle.py``).
systemd sees it running. ``mosquitto-kienco-watchdog@.timer`` runs this probe; a
broker that answers none of its tries is killed, and its unit restarts it.

The probe logs in as no one and sends nothing secret: on each listener of the broker's
config it opens a connection (TLS where the listener has a ``certfile``, the broker's
certificate not checked: nothing is sent that needs it) and sends an MQTT 3.1.1 CONNECT
without credentials. Any answer proves the broker's loop runs: a CONNACK whatever its
code ("not authorised" included), or the broker closing the connection (a listener that
requires a client certificate). No answer within the timeout, or no connection, is not.

Except while the broker writes its store. Mosquitto saves its whole database at each
``autosave_interval`` (and on SIGUSR1) in its one thread, answering no client meanwhile:
a queue kept through a backhaul cut takes seconds per million reports to write
(docs/topology.md, "A broker busy with its store"). Killing it then would lose every
report it acknowledged since its previous save, in the storm, when its queue is largest.
It writes ``<persistence_file>.new`` and renames it when done, so a broker whose
``.new`` was written to within :data:`SAVE_GRACE_S` is saving, not wedged
(:func:`saving`). A ``.new`` left by a broker killed mid-save is old, and does not count.
Pure standard library: the watchdog runs on a provincial machine, beside the broker.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keepalive 30 s, client id
# "kienco-probe" (the shipped brokers name sessions by account: this one has none).
_CLIENT_ID = b"kienco-probe"
_CONNECT = (
    bytes([0x10, 12 + len(_CLIENT_ID)])
    + b"\x00\x04MQTT\x04\x02\x00\x1e"
    + len(_CLIENT_ID).to_bytes(2, "big")
    + _CLIENT_ID
)
_CONNACK = 0x20


@dataclass(frozen=True, slots=True)
class Listener:
    """One ``listener`` of a Mosquitto config: where to knock, and whether TLS is spoken."""

    port: int
    host: str
    tls: bool

    def __str__(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"


def _directives(config_text: str) -> Iterator[tuple[str, list[str]]]:
    """Each option line of a Mosquitto config: its key and values, comments left out."""
    for raw in config_text.splitlines():
        words = raw.split("#", 1)[0].split()
        if words:
            yield words[0], words[1:]


def listeners(config_text: str) -> list[Listener]:
    """The TCP listeners of a Mosquitto config, each with the options under it.

    A ``listener <port> [address]`` line opens a section (a ``connection`` line, a
    bridge, ends it); ``certfile`` in it makes it TLS. Unix sockets (port 0) and
    websockets listeners are left out: the agents speak MQTT over TCP. An address of
    ``0.0.0.0`` or none is probed on the loopback.
    """
    found: list[Listener] = []
    section: dict[str, str] | None = None
    sections: list[dict[str, str]] = []
    for key, values in _directives(config_text):
        if key == "listener":
            section = {
                "port": values[0] if values else "",
                "host": values[1] if len(values) > 1 else "",
            }
            sections.append(section)
        elif key == "connection":
            section = None  # a bridge's options: not a listener's
        elif section is not None and values:
            section.setdefault(key, values[0])
    for item in sections:
        if not item["port"].isdigit() or int(item["port"]) == 0:
            continue
        if item.get("protocol", "mqtt") != "mqtt":
            continue
        host = item["host"] if item["host"] not in ("", "0.0.0.0", "::") else "127.0.0.1"
        found.append(Listener(int(item["port"]), host, "certfile" in item))
    return found


# A store whose .new was written to within this long is being saved. Generous: after its
# last write the save still flushes the file to disk, which on a slow card takes a while,
# and a stale .new (a broker killed mid-save) is older than any wedge worth catching.
SAVE_GRACE_S = 120.0


def store(config_text: str) -> Path | None:
    """The broker's persistence database (``persistence_location`` + ``persistence_file``,
    by default ``mosquitto.db``), or None: persistence off, or no ``persistence_location``
    (Mosquitto then uses its working directory, which the config does not say)."""
    wanted = ("persistence", "persistence_location", "persistence_file")
    # Global options: the last one counts.
    settings = {
        key: values[0] for key, values in _directives(config_text) if key in wanted and values
    }
    if settings.get("persistence") != "true" or "persistence_location" not in settings:
        return None
    return Path(settings["persistence_location"]) / settings.get("persistence_file", "mosquitto.db")


def saving(database: Path, *, now: float | None = None) -> str | None:
    """How the broker is busy saving ``database``, or None when it is not."""
    partial = database.with_name(database.name + ".new")
    try:
        written = partial.stat()
    except OSError:
        return None
    age = (time.time() if now is None else now) - written.st_mtime
    if age > SAVE_GRACE_S:
        return None
    return (
        f"writing its store ({partial}, {written.st_size / 2**20:,.0f} MB, {max(age, 0):.0f} s ago)"
    )


def knock(listener: Listener, timeout_s: float) -> str | None:
    """None when the broker answered on ``listener`` within ``timeout_s``; else why not."""
    try:
        with socket.create_connection((listener.host, listener.port), timeout=timeout_s) as raw:
            raw.settimeout(timeout_s)
            sock: socket.socket = raw
            if listener.tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # nothing secret is sent
                try:
                    sock = context.wrap_socket(raw, server_hostname=listener.host)
                except ssl.SSLError:
                    return None  # the broker answered the handshake, if only to refuse it
            try:
                sock.sendall(_CONNECT)
                first = sock.recv(1)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                return None  # refused by the broker (a client certificate it requires)
            if not first or first[0] == _CONNACK:
                return None  # a CONNACK, or the broker closed the connection: it answered
            return f"{listener}: answered 0x{first[0]:02x}, not a CONNACK"
    except TimeoutError:
        return f"{listener}: no answer in {timeout_s:g} s"
    except OSError as exc:
        return f"{listener}: {exc.strerror or exc}"


@dataclass(frozen=True, slots=True)
class Probed:
    """What the probe found: why listeners did not answer (empty: all did), and, when the
    broker was writing its store while one did not, how (then it is busy, not wedged)."""

    problems: list[str]
    busy: str | None = None


def probe(
    targets: Iterable[Listener],
    *,
    tries: int = 3,
    timeout_s: float = 10.0,
    database: Path | None = None,
) -> Probed:
    """Knock on every listener, up to ``tries`` times each.

    A listener counts as down only when all of its tries failed: a broker busy for a
    moment is not killed for it. After each failed try the store (``database``) is looked
    at: a broker seen writing it is busy, and the probe stops there. Looking after each
    try, not once at the end, sees a save that ends between the last try's timeout and
    the look.
    """
    problems: list[str] = []
    for listener in targets:
        said: str | None = "no try"
        for _ in range(max(1, tries)):
            said = knock(listener, timeout_s)
            if said is None:
                break
            busy = saving(database) if database is not None else None
            if busy is not None:
                return Probed([*problems, said], busy)
        if said is not None:
            problems.append(said)
    return Probed(problems)
