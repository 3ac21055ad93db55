"""SNMP traps from the site's UPSes, turned into immediate events.

Two parts: :class:`TrapReceiver` listens for v1/v2c/v3 traps with pysnmp's
notification receiver (asyncio), and :func:`trap_to_event` dispatches one trap: it
finds the notification among the profiles' ``traps:`` sections (:class:`TrapCatalogue`),
the device by address, and lets :func:`agent.trap_profile.decode_trap` say what it
means (``None`` for traps no profile knows). What a trap means is data, in the
profiles; nothing here knows a MIB. The runner stores the event in the outbox and
publishes it at once.

SNMPv3 traps are sent by the UPS as the *authoritative* engine: their keys are
localised to the UPS's engine ID, so the receiver must know it in advance (as
net-snmp's snmptrapd does with ``createUser -e ENGINEID``). Each v3 user is
registered for every engine ID given in :class:`V3TrapUser` (``snmptrap -e
0x8000...`` sends with that ID). The site config has no field for it yet; see
``engine_ids_from_config``.

Which device sent a trap is decided by address: the UDP source, else the v1
agent-address (``snmpTrapAddress.0``), matched against the configured devices'
hosts. A trap from an address no device has gives an event with ``device=None``
and no power reading: it is reported (an unknown UPS on battery is worth a
line), but it cannot change any device's state at the collector.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1155, rfc1902

from agent.config import DeviceConfig, SiteConfig, SnmpV3Credentials
from agent.profiles import Profile, ProfileError, load_profile, snmp_profile_paths
from agent.trap_profile import decode_trap
from contract.wire import Event

log = logging.getLogger("kienco.agent.traps")

TrapValue = int | str | bytes | None
"""A varbind value, plain: integers, OIDs and IP addresses as dotted ``str``, octets as bytes."""

VarBinds = Sequence[tuple[str, TrapValue]]

# SNMPv2-MIB (RFC 3418) and SNMP-COMMUNITY-MIB (RFC 3584, the v1 -> v2 translation).
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"  # a v1 trap's agent-addr field


@dataclass(frozen=True)
class TrapCatalogue:
    """Every notification the profiles' ``traps:`` sections declare, by snmpTrapOID."""

    by_oid: Mapping[str, tuple[Profile, str]]

    @classmethod
    def load(cls, search_dirs: Sequence[Path] | None = None) -> TrapCatalogue:
        """From every SNMP profile with traps; a profile that cannot be loaded is logged."""
        by_oid: dict[str, tuple[Profile, str]] = {}
        for path in snmp_profile_paths(search_dirs):
            try:
                profile = load_profile(path)
            except ProfileError as exc:
                log.error("traps of %s not understood: %s", path.name, exc)
                continue
            if not isinstance(profile, Profile) or profile.traps is None:
                continue
            for name, notification in profile.traps.notifications.items():
                other = by_oid.setdefault(notification.oid, (profile, name))
                if other[0] is not profile:
                    log.warning(
                        "trap %s (%s) is in profiles %s and %s; %s decodes it",
                        name, notification.oid, other[0].profile, profile.profile,
                        other[0].profile,
                    )  # fmt: skip
        return cls(by_oid)

    def find(self, oid: str) -> tuple[Profile, str] | None:
        """The profile and notification name of a snmpTrapOID, in either of its forms.

        A v1 trap (enterprise E, specific N) arrives translated as E.0.N (RFC 3584
        §3.1); a notification defined as E.N (UPS-MIB's upsTraps.1) is the same trap.
        """
        found = self.by_oid.get(oid)
        if found is None:
            prefix, zero, last = oid.rpartition(".0.")
            if zero and last.isdigit():
                found = self.by_oid.get(f"{prefix}.{last}")
        return found


@cache
def shipped_catalogue() -> TrapCatalogue:
    """The catalogue of the profiles in ``firmware-configs/profiles/``, loaded once."""
    return TrapCatalogue.load()


def trap_oid(varbinds: VarBinds) -> str | None:
    """The trap's snmpTrapOID.0 value (v1 traps arrive translated, RFC 3584)."""
    for oid, value in varbinds:
        if oid == SNMP_TRAP_OID and isinstance(value, str):
            return value
    return None


def device_for(
    source_ip: str,
    varbinds: VarBinds,
    devices: Sequence[DeviceConfig],
    aliases: Mapping[str, str] | None = None,
) -> str | None:
    """The configured device that sent the trap: by UDP source, else by the v1 agent-address."""
    agent_addr = dict(varbinds).get(SNMP_TRAP_ADDRESS)
    # SNMP devices first: a NUT or Modbus "host" is a server or controller, not the UPS card.
    ordered = sorted(devices, key=lambda d: d.protocol != "snmp")
    for address in (source_ip, agent_addr):
        if not isinstance(address, str) or not address:
            continue
        for device in ordered:
            if device.host == address:
                return device.device
        if aliases and address in aliases:
            return aliases[address]
    return None


def trap_to_event(
    source_ip: str,
    varbinds: VarBinds,
    *,
    devices: Sequence[DeviceConfig],
    site: str,
    province: str,
    seq: int,
    now: datetime,
    aliases: Mapping[str, str] | None = None,
    via: str = "",
    catalogue: TrapCatalogue | None = None,
) -> Event | None:
    """The event one trap means, or None for a trap no profile knows.

    ``aliases`` maps resolved addresses of devices configured by host name to their ids;
    ``via`` (e.g. ``v2c``) only goes into the detail text; ``catalogue`` defaults to the
    shipped profiles'.
    """
    oid = trap_oid(varbinds)
    found = None if oid is None else (catalogue or shipped_catalogue()).find(oid)
    if found is None:
        return None
    profile, name = found
    device = device_for(source_ip, varbinds, devices, aliases)
    meaning = decode_trap(profile, name, dict(varbinds), device)
    origin = f"from {source_ip}" + (f" {via}" if via else "")
    detail = f"{name}: {meaning.words} ({origin})" if meaning.words else f"{name} ({origin})"
    return Event(
        site=site,
        province=province,
        seq=seq,
        at=now,
        event=meaning.event,
        device=device,
        detail=detail[:500],
        power=meaning.power,
    )


# --- the receiver ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trap:
    """One trap as received: who sent it, how it was authenticated, its varbinds."""

    source: str
    varbinds: tuple[tuple[str, TrapValue], ...]
    via: str  # "v1", "v2c" or "v3 <user>"


@dataclass(frozen=True, slots=True)
class V3TrapUser:
    """An SNMPv3 user accepted for traps, from each sender engine ID listed."""

    credentials: SnmpV3Credentials
    engine_ids: tuple[bytes, ...]


def parse_engine_id(text: str) -> bytes:
    """``0x80001f88…``, ``80:00:1f:88…`` or plain hex, as net-snmp's ``-e`` takes it."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    engine_id = bytes.fromhex(cleaned)
    if not 5 <= len(engine_id) <= 32:  # RFC 3411 SnmpEngineID: 5..32 octets
        raise ValueError(f"engine ID {text!r} must be 5 to 32 octets")
    return engine_id


def engine_ids_from_config(config: SiteConfig) -> tuple[bytes, ...]:
    """Sender engine IDs for v3 traps from ``traps.v3_engine_ids``, once that field exists."""
    raw: Iterable[str] = getattr(config.traps, "v3_engine_ids", ()) or ()
    return tuple(parse_engine_id(text) for text in raw)


_AUTH = {
    "md5": snmp_config.USM_AUTH_HMAC96_MD5,
    "sha": snmp_config.USM_AUTH_HMAC96_SHA,
    "sha224": snmp_config.USM_AUTH_HMAC128_SHA224,
    "sha256": snmp_config.USM_AUTH_HMAC192_SHA256,
    "sha384": snmp_config.USM_AUTH_HMAC256_SHA384,
    "sha512": snmp_config.USM_AUTH_HMAC384_SHA512,
}
_PRIV = {
    "des": snmp_config.USM_PRIV_CBC56_DES,
    "aes": snmp_config.USM_PRIV_CFB128_AES,
    "aes192": snmp_config.USM_PRIV_CFB192_AES,
    "aes256": snmp_config.USM_PRIV_CFB256_AES,
}


def _plain(value: Any) -> TrapValue:
    """A pysnmp value as a plain Python one (see :data:`TrapValue`)."""
    # pyasn1 base classes: v1 traps carry RFC 1155 types, v2c/v3 RFC 1902 ones.
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, rfc1902.IpAddress | rfc1155.IpAddress):
        return str(ipaddress.IPv4Address(bytes(value.asOctets())))
    if isinstance(value, univ.OctetString):
        return bytes(value.asOctets())
    if isinstance(value, univ.Integer):
        return int(value)
    return None


_SECURITY_MODELS = {1: "v1", 2: "v2c"}


@dataclass
class TrapReceiver:
    """Receives traps on ``host:port`` (UDP) and hands each to ``on_trap``.

    Accepts the given v1/v2c communities and v3 users; pysnmp drops anything else
    (a wrong community or unknown user never reaches ``on_trap``).
    """

    host: str
    port: int
    communities: Sequence[str] = ()
    v3_users: Sequence[V3TrapUser] = ()
    received_total: int = 0
    _engine: Any = field(default=None, init=False, repr=False)
    _receiver: Any = field(default=None, init=False, repr=False)
    _sock: socket.socket | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(
        cls, config: SiteConfig, *, engine_ids: Sequence[bytes] | None = None
    ) -> TrapReceiver:
        """The receiver ``config.traps`` describes; v3 users need sender engine IDs."""
        traps = config.traps
        ids = tuple(engine_ids) if engine_ids is not None else engine_ids_from_config(config)
        users = []
        for key in traps.v3_users:
            credentials = config.snmp_credentials.get(key)
            if not isinstance(credentials, SnmpV3Credentials):
                raise ValueError(f"traps.v3_users: {key!r} is not a version 3 snmp_credentials key")
            if not ids:
                log.warning(
                    "traps.v3_users %r: no sender engine IDs known, so no v3 trap can be "
                    "authenticated; give the UPS's engine ID (snmptrap -e)",
                    key,
                )
            users.append(V3TrapUser(credentials, ids))
        return cls(
            traps.host,
            traps.port,
            communities=[c.reveal() for c in traps.communities],
            v3_users=users,
        )

    @property
    def bound_port(self) -> int:
        """The UDP port listened on (useful when ``port`` was 0)."""
        assert self._sock is not None, "start() first"
        return int(self._sock.getsockname()[1])

    async def start(self, on_trap: Callable[[Trap], object]) -> None:
        """Bind and start receiving; raises OSError when the port cannot be bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # Bound here, not by pysnmp in a background task: a taken port or a missing
            # CAP_NET_BIND_SERVICE for 162 fails now, with the reason.
            sock.bind((self.host, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        shipped_catalogue()  # the trap profiles now: a broken one is logged at start
        engine = snmp_engine.SnmpEngine()
        carrier = udp6 if family == socket.AF_INET6 else udp
        snmp_config.add_transport(
            engine, carrier.DOMAIN_NAME, carrier.UdpAsyncioTransport().open_server_mode(sock=sock)
        )
        for index, community in enumerate(self.communities):
            snmp_config.add_v1_system(engine, f"kienco-trap-{index}", community)
        for user in self.v3_users:
            self._add_v3_user(engine, user)
        self._engine = engine

        def received(
            snmp: Any, _ref: Any, _engine_id: Any, _context: Any, varbinds: Any, _ctx: Any
        ) -> None:
            # Called inside pysnmp's datagram handling: never let an error escape into it.
            try:
                request = snmp.observer.get_execution_context("rfc3412.receiveMessage:request")
                address = request["transportAddress"]
                model = int(request["securityModel"])
                via = _SECURITY_MODELS.get(model) or f"v3 {request['securityName']}"
                trap = Trap(
                    source=str(address[0]),
                    varbinds=tuple((str(name), _plain(value)) for name, value in varbinds),
                    via=via,
                )
                self.received_total += 1
                on_trap(trap)
            except Exception:
                log.exception("could not handle a trap")

        self._receiver = ntfrcv.NotificationReceiver(engine, received)
        log.info(
            "listening for SNMP traps on %s:%d (%d communities, %d v3 users)",
            self.host,
            self.bound_port,
            len(self.communities),
            len(self.v3_users),
        )

    @staticmethod
    def _add_v3_user(engine: Any, user: V3TrapUser) -> None:
        creds = user.credentials
        auth = _AUTH[creds.auth_protocol] if creds.auth_key else snmp_config.USM_AUTH_NONE
        priv = _PRIV[creds.priv_protocol] if creds.priv_key else snmp_config.USM_PRIV_NONE
        for engine_id in user.engine_ids:
            snmp_config.add_v3_user(
                engine,
                creds.user,
                auth,
                creds.auth_key.reveal() if creds.auth_key else None,
                priv,
                creds.priv_key.reveal() if creds.priv_key else None,
                securityEngineId=rfc1902.OctetString(engine_id),
            )

    def close(self) -> None:
        """Stop receiving and release the port."""
        if self._receiver is not None:
            self._receiver.close(self._engine)
            self._receiver = None
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
