"""SNMP traps from the site's UPSes, turned into immediate events.

Two parts: :class:`TrapReceiver` listens for v1/v2c/v3 traps with pysnmp's
notification receiver (asyncio), and :func:`trap_to_event`, a pure function,
maps one trap to an :class:`contract.wire.Event` (or ``None`` for traps kienco does
not know). The runner stores the event in the outbox and publishes it at once.

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
from typing import Any, Literal

from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as snmp_config
from pysnmp.entity import engine as snmp_engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1155, rfc1902

from agent.config import DeviceConfig, SiteConfig, SnmpV3Credentials
from contract.wire import Event, EventName, PowerReading

log = logging.getLogger("kienco.agent.traps")

TrapValue = int | str | bytes | None
"""A varbind value, plain: integers, OIDs and IP addresses as dotted ``str``, octets as bytes."""

VarBinds = Sequence[tuple[str, TrapValue]]

# --- OIDs ------------------------------------------------------------------------------
# SNMPv2-MIB (RFC 3418) and SNMP-COMMUNITY-MIB (RFC 3584, the v1 -> v2 translation).
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SNMP_TRAP_ADDRESS = "1.3.6.1.6.3.18.1.3.0"  # a v1 trap's agent-addr field

# UPS-MIB, RFC 1628 (checked against a pysmi-compiled UPS-MIB: upsTraps = upsMIB 2, the four
# notifications are upsTraps 1..4 with no ".0" level; a v1 trap with enterprise upsTraps and
# specific-trap N is translated by RFC 3584 to upsTraps.0.N, so both forms are accepted).
UPS_MIB = "1.3.6.1.2.1.33"
UPS_TRAPS = f"{UPS_MIB}.2"
UPS_TRAP_ON_BATTERY = f"{UPS_TRAPS}.1"  # OBJECTS upsEstimatedMinutesRemaining, upsSecondsOnBattery
UPS_TRAP_TEST_COMPLETED = f"{UPS_TRAPS}.2"  # OBJECTS upsTestId … upsTestResultsSummary, Detail
UPS_TRAP_ALARM_ADDED = f"{UPS_TRAPS}.3"  # OBJECTS upsAlarmId, upsAlarmDescr
UPS_TRAP_ALARM_REMOVED = f"{UPS_TRAPS}.4"  # OBJECTS upsAlarmId, upsAlarmDescr
UPS_BATTERY_STATUS = f"{UPS_MIB}.1.2.1.0"  # 1 unknown, 2 normal, 3 low, 4 depleted
UPS_SECONDS_ON_BATTERY = f"{UPS_MIB}.1.2.2.0"
UPS_MINUTES_REMAINING = f"{UPS_MIB}.1.2.3.0"
UPS_CHARGE_REMAINING = f"{UPS_MIB}.1.2.4.0"
UPS_ALARM_DESCR = f"{UPS_MIB}.1.6.2.1.2"  # upsAlarmEntry 2, indexed by upsAlarmId
UPS_TEST_RESULTS_SUMMARY = f"{UPS_MIB}.1.7.3.0"
UPS_TEST_RESULTS_DETAIL = f"{UPS_MIB}.1.7.4.0"
UPS_WELL_KNOWN_ALARMS = f"{UPS_MIB}.1.6.3"
ALARM_ON_BATTERY = f"{UPS_WELL_KNOWN_ALARMS}.2"
ALARM_LOW_BATTERY = f"{UPS_WELL_KNOWN_ALARMS}.3"
ALARM_DEPLETED_BATTERY = f"{UPS_WELL_KNOWN_ALARMS}.4"
UPS_ALARM_NAMES = {
    f"{UPS_WELL_KNOWN_ALARMS}.{n}": name
    for n, name in enumerate(
        (
            "upsAlarmBatteryBad",
            "upsAlarmOnBattery",
            "upsAlarmLowBattery",
            "upsAlarmDepletedBattery",
            "upsAlarmTempBad",
            "upsAlarmInputBad",
            "upsAlarmOutputBad",
            "upsAlarmOutputOverload",
            "upsAlarmOnBypass",
            "upsAlarmBypassBad",
            "upsAlarmOutputOffAsRequested",
            "upsAlarmUpsOffAsRequested",
            "upsAlarmChargerFailed",
            "upsAlarmUpsOutputOff",
            "upsAlarmUpsSystemOff",
            "upsAlarmFanFailure",
            "upsAlarmFuseFailure",
            "upsAlarmGeneralFault",
            "upsAlarmDiagnosticTestFailed",
            "upsAlarmCommunicationsLost",
            "upsAlarmAwaitingPower",
            "upsAlarmShutdownPending",
            "upsAlarmShutdownImminent",
            "upsAlarmTestInProgress",
        ),
        start=1,
    )
}
UPS_TEST_RESULTS = {
    1: "donePass",
    2: "doneWarning",
    3: "doneError",
    4: "aborted",
    5: "inProgress",
    6: "noTestsInitiated",
}
BATTERY_STATUS: dict[int, Literal["normal", "low", "depleted", "unknown"]] = {
    1: "unknown",
    2: "normal",
    3: "low",
    4: "depleted",
}

# APC PowerNet-MIB v4.2.6 (librenms/librenms, mibs/apc/PowerNet-MIB): SMIv1 TRAP-TYPEs with
# ENTERPRISE apc (1.3.6.1.4.1.318); as SNMPv2 notifications (RFC 3584) they are apc.0.N.
# Each carries mtrapargsString as its last varbind ("always appears as the last variable").
APC = "1.3.6.1.4.1.318"
APC_TRAPS = f"{APC}.0"

PowerKind = Literal["on_battery", "on_mains", "low", "low_on_battery", "depleted"]


@dataclass(frozen=True, slots=True)
class _Meaning:
    event: EventName
    name: str
    power: PowerKind | None = None


_APC: dict[int, _Meaning] = {
    1: _Meaning("alarm", "communicationLost"),  # ::= 1, agent lost the UPS
    3: _Meaning("test", "upsDiagnosticsFailed"),  # ::= 3
    # ::= 4 "batteries are discharged; if utility power fails an immediate low battery …"
    4: _Meaning("battery_low", "upsDischarged", "low"),
    5: _Meaning("on_battery", "upsOnBattery", "on_battery"),  # ::= 5
    # ::= 7 "batteries are low … If utility power is not restored …": it is on battery
    7: _Meaning("battery_low", "lowBattery", "low_on_battery"),
    8: _Meaning("alarm_cleared", "communicationEstablished"),  # ::= 8
    9: _Meaning("on_mains", "powerRestored", "on_mains"),  # ::= 9 "Utility power restored"
    10: _Meaning("test", "upsDiagnosticsPassed"),  # ::= 10
    11: _Meaning("alarm_cleared", "returnFromLowBattery"),  # ::= 11
    38: _Meaning("alarm_cleared", "dischargeCleared"),  # ::= 38
}

# What an alarm entry (added / removed) of a well-known UPS-MIB alarm means.
_ALARM_ADDED: dict[str, _Meaning] = {
    ALARM_ON_BATTERY: _Meaning("on_battery", "upsAlarmOnBattery", "on_battery"),
    ALARM_LOW_BATTERY: _Meaning("battery_low", "upsAlarmLowBattery", "low"),
    ALARM_DEPLETED_BATTERY: _Meaning("battery_low", "upsAlarmDepletedBattery", "depleted"),
}
_ALARM_REMOVED: dict[str, _Meaning] = {
    # UPS-MIB has no "back on mains" trap: the on-battery alarm going away is that.
    ALARM_ON_BATTERY: _Meaning("on_mains", "upsAlarmOnBattery", "on_mains"),
}

# Vendor 16-bit caps and sentinels are not runtimes (DOMAIN.md, NUT issues 1740, 731).
_RUNTIME_CAP_MIN = 65535


def trap_oid(varbinds: VarBinds) -> str | None:
    """The trap's snmpTrapOID.0 value (v1 traps arrive translated, RFC 3584)."""
    for oid, value in varbinds:
        if oid == SNMP_TRAP_OID and isinstance(value, str):
            return value
    return None


def _canonical(oid: str) -> str:
    # v1 form upsTraps.0.N (RFC 3584 translation) is the same notification as upsTraps.N.
    prefix = f"{UPS_TRAPS}.0."
    return f"{UPS_TRAPS}.{oid[len(prefix) :]}" if oid.startswith(prefix) else oid


def _values(varbinds: VarBinds) -> dict[str, TrapValue]:
    return {oid: value for oid, value in varbinds}


def _int(values: Mapping[str, TrapValue], oid: str) -> int | None:
    value = values.get(oid)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: TrapValue) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip() or None
    return value if isinstance(value, str) and value else None


def _alarm_descr(values: Mapping[str, TrapValue]) -> str | None:
    for oid, value in values.items():
        if oid.startswith(f"{UPS_ALARM_DESCR}.") and isinstance(value, str):
            return value
    return None


def _meaning(oid: str, values: Mapping[str, TrapValue]) -> tuple[_Meaning, str] | None:
    """What the trap means, and extra words for the detail; None if kienco does not know it."""
    if oid == UPS_TRAP_ON_BATTERY:
        return _Meaning("on_battery", "upsTrapOnBattery", "on_battery"), ""
    if oid == UPS_TRAP_TEST_COMPLETED:
        summary = _int(values, UPS_TEST_RESULTS_SUMMARY)
        words = UPS_TEST_RESULTS.get(summary, "") if summary is not None else ""
        detail = _text(values.get(UPS_TEST_RESULTS_DETAIL))
        return _Meaning("test", "upsTrapTestCompleted"), " ".join(w for w in (words, detail) if w)
    if oid in (UPS_TRAP_ALARM_ADDED, UPS_TRAP_ALARM_REMOVED):
        added = oid == UPS_TRAP_ALARM_ADDED
        name = "upsTrapAlarmEntryAdded" if added else "upsTrapAlarmEntryRemoved"
        descr = _alarm_descr(values)
        alarm = UPS_ALARM_NAMES.get(descr or "", descr or "alarm not named")
        known = (_ALARM_ADDED if added else _ALARM_REMOVED).get(descr or "")
        if known is not None:
            return _Meaning(known.event, name, known.power), alarm
        return _Meaning("alarm" if added else "alarm_cleared", name), alarm
    if oid.startswith(f"{APC_TRAPS}.") and oid[len(APC_TRAPS) + 1 :].isdigit():
        apc = _APC.get(int(oid[len(APC_TRAPS) + 1 :]))
        if apc is None:
            return None
        # mtrapargsString: the last octet-string varbind under the apc enterprise.
        args = [
            _text(v) for o, v in values.items() if o.startswith(f"{APC}.") and isinstance(v, bytes)
        ]
        return apc, next((a for a in reversed(args) if a), "")
    return None


def _runtime_s(values: Mapping[str, TrapValue]) -> float | None:
    minutes = _int(values, UPS_MINUTES_REMAINING)
    if minutes is None or minutes < 0 or minutes >= _RUNTIME_CAP_MIN:
        return None
    return float(minutes * 60)


def _power(device: str, kind: PowerKind, values: Mapping[str, TrapValue]) -> PowerReading:
    """What the trap says about the device: only what it says, or plainly implies."""
    seconds = _int(values, UPS_SECONDS_ON_BATTERY)
    charge = _int(values, UPS_CHARGE_REMAINING)
    status = BATTERY_STATUS.get(_int(values, UPS_BATTERY_STATUS) or 0)
    reading: dict[str, Any] = {
        "battery_runtime_s": _runtime_s(values),
        "on_battery_for_s": float(seconds) if seconds is not None and seconds >= 0 else None,
        "battery_charge_pct": float(charge) if charge is not None and 0 <= charge <= 100 else None,
        "battery_status": status,
    }
    if kind in ("on_battery", "low_on_battery"):
        reading |= {"on_battery": True, "mains_present": False}
    elif kind == "on_mains":
        # UPS-MIB: upsSecondsOnBattery is zero when the unit is not on battery.
        reading |= {"on_battery": False, "mains_present": True, "on_battery_for_s": 0.0}
    if kind in ("low", "low_on_battery"):
        reading["battery_status"] = "low"
    elif kind == "depleted":
        reading["battery_status"] = "depleted"
    if reading["on_battery_for_s"] is not None and reading["on_battery_for_s"] > 366 * 86_400:
        reading["on_battery_for_s"] = None
    return PowerReading(device=device, **{k: v for k, v in reading.items() if v is not None})


def device_for(
    source_ip: str,
    varbinds: VarBinds,
    devices: Sequence[DeviceConfig],
    aliases: Mapping[str, str] | None = None,
) -> str | None:
    """The configured device that sent the trap: by UDP source, else by the v1 agent-address."""
    agent_addr = _values(varbinds).get(SNMP_TRAP_ADDRESS)
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
) -> Event | None:
    """The event one trap means, or None for a trap kienco does not know.

    ``aliases`` maps resolved addresses of devices configured by host name to their ids;
    ``via`` (e.g. ``v2c``) only goes into the detail text.
    """
    oid = trap_oid(varbinds)
    if oid is None:
        return None
    values = _values(varbinds)
    found = _meaning(_canonical(oid), values)
    if found is None:
        return None
    meaning, words = found
    device = device_for(source_ip, varbinds, devices, aliases)
    origin = f"from {source_ip}" + (f" {via}" if via else "")
    detail = f"{meaning.name}: {words} ({origin})" if words else f"{meaning.name} ({origin})"
    power = None
    if device is not None and meaning.power is not None:
        power = _power(device, meaning.power, values)
    return Event(
        site=site,
        province=province,
        seq=seq,
        at=now,
        event=meaning.event,
        device=device,
        detail=detail[:500],
        power=power,
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
