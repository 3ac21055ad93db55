"""A thin SNMP transport over pysnmp 7 (asyncio): GETs and table walks, v2c and v3.

pysnmp stays behind this module: probes and ``agent.profile_decode`` see
``{oid: int | str | bytes | None}`` and one error type, ``SnmpError``. Credentials
come with each call as an auth object (:class:`CommunityAuth` or :class:`UsmAuth`,
or a bare community string); their secrets never print.

An object the device lacks is None, whether it says so the v2c way (a noSuchObject
varbind) or the v1 way (errorStatus noSuchName for the whole GET, which is asked again
without that object).

Every call is bounded: it answers or fails within ``timeout_s × (retries + 1)``,
so a dead device never holds up the devices polled beside it for longer.

Errors::

    SnmpError            no answer in time, an error status, a bad address, bad credentials
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch import asyncio as hlapi
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
)
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject
from pysnmp.smi import builder, view
from pysnmp.smi import mibs as _pysnmp_mibs

from agent.profiles import RawValue

__all__ = [
    "CommunityAuth",
    "PySnmpTransport",
    "SnmpAuth",
    "SnmpError",
    "SnmpTransport",
    "SnmpV2cTransport",
    "UsmAuth",
    "new_engine",
    "to_python",
]

T = TypeVar("T")
_PYSNMP_MIBS = str(Path(_pysnmp_mibs.__file__).parent)  # the MIBs pysnmp ships compiled

# snmpsim answers up to 64 varbinds and many embedded agents far fewer; 20 keeps
# a request well inside one unfragmented UDP datagram.
DEFAULT_OIDS_PER_REQUEST = 20
DEFAULT_MAX_REPETITIONS = 25  # rows asked for per GETBULK, before the varbind cap below
DEFAULT_MAX_ROWS = 1000  # a walk stops here: a runaway table never eats the cycle
VARBINDS_PER_RESPONSE = 60  # rows × columns per GETBULK answer, under snmpsim's 64
_OBJECTS_KEPT = 8192  # OIDs kept resolved (a site's profiles ask for a few hundred)

_AUTH = {
    "md5": hlapi.usmHMACMD5AuthProtocol,
    "sha": hlapi.usmHMACSHAAuthProtocol,
    "sha224": hlapi.usmHMAC128SHA224AuthProtocol,
    "sha256": hlapi.usmHMAC192SHA256AuthProtocol,
    "sha384": hlapi.usmHMAC256SHA384AuthProtocol,
    "sha512": hlapi.usmHMAC384SHA512AuthProtocol,
}
# aes192/aes256 are the widely deployed "Reeder" key extension (Cisco, Net-SNMP's
# AES-256-C, snmpsim's AES256), not the Blumenthal draft.
_PRIV = {
    "aes": hlapi.usmAesCfb128Protocol,
    "aes192": hlapi.usmAesCfb192Protocol,
    "aes256": hlapi.usmAesCfb256Protocol,
    "des": hlapi.usmDESPrivProtocol,
    "3des": hlapi.usm3DESEDEPrivProtocol,
}


class SnmpError(Exception):
    """A request that failed: which device, why (timeout, errorStatus, …) and at which OID."""

    def __init__(self, host: str, port: int, reason: str, oid: str | None = None) -> None:
        self.host, self.port, self.reason, self.oid = host, port, reason, oid
        where = f" at {oid}" if oid else ""
        super().__init__(f"snmp {host}:{port}: {reason}{where}")


@dataclass(frozen=True)
class CommunityAuth:
    """SNMPv2c: a community string (a password: it never prints)."""

    community: str = field(repr=False)

    def __repr__(self) -> str:
        return "CommunityAuth(community=<secret>)"


@dataclass(frozen=True)
class UsmAuth:
    """SNMPv3 USM user: noAuthNoPriv, authNoPriv or authPriv by the keys given."""

    user: str
    auth_protocol: str = "sha"
    auth_key: str | None = field(default=None, repr=False)
    priv_protocol: str = "aes"
    priv_key: str | None = field(default=None, repr=False)
    context: str = ""

    def __post_init__(self) -> None:
        if self.auth_protocol not in _AUTH:
            raise ValueError(f"auth_protocol {self.auth_protocol!r}: use one of {sorted(_AUTH)}")
        if self.priv_protocol not in _PRIV:
            raise ValueError(f"priv_protocol {self.priv_protocol!r}: use one of {sorted(_PRIV)}")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("a priv_key needs an auth_key (SNMPv3 has no privacy without auth)")


SnmpAuth = CommunityAuth | UsmAuth


class SnmpTransport(Protocol):
    """What a probe needs from SNMP: a GET of many OIDs and a walk of table columns."""

    async def get(
        self,
        host: str,
        port: int,
        auth: str | SnmpAuth,
        oids: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
    ) -> dict[str, RawValue]: ...

    async def walk(
        self,
        host: str,
        port: int,
        auth: str | SnmpAuth,
        columns: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> dict[str, dict[str, RawValue]]: ...


def to_python(value: Any) -> RawValue:
    """Convert one pysnmp value: integers to int, strings to bytes, the "no such" kinds to None."""
    # NoSuch* are OctetString subclasses in pyasn1: test them first.
    if isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView | univ.Null):
        return None
    if isinstance(value, univ.Integer):  # Integer32, Gauge32, Counter32/64, TimeTicks
        return int(value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque, Bits
        return bytes(value.asOctets())
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    return None


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


class _NoMibCompiler:
    """Stands in for pysmi's compiler: numeric OIDs never need a MIB compiled from ASN.1."""

    def compile(self, *names: str, **options: Any) -> dict[str, str]:
        return dict.fromkeys(names, "missing")  # pysnmp then reports the MIB as not found


_MIB_VIEW: list[Any] = []  # one MibViewController for the process, made on first use


def new_engine() -> SnmpEngine:
    """A pysnmp engine sharing the process's MIB view, which never compiles MIBs.

    Otherwise each engine builds its own view on its first request and, with pysmi
    installed, pysmi's parser with it: ~0.35 s of CPU and ~6 MB per engine, for
    numeric OIDs that never need it.
    """
    if not _MIB_VIEW:
        mib_builder = builder.MibBuilder()
        mib_builder.set_mib_compiler(_NoMibCompiler(), _PYSNMP_MIBS)
        _MIB_VIEW.append(view.MibViewController(mib_builder))
    engine = SnmpEngine()
    engine.cache["mibViewController"] = _MIB_VIEW[0]  # the key pysnmp's hlapi looks up
    return engine


_NO_SUCH_NAME = 2  # errorStatus noSuchName (RFC 1157)


class _NoSuchName(SnmpError):
    """errorStatus noSuchName for the varbind at ``position`` of the request."""

    def __init__(self, host: str, port: int, reason: str, oid: str, position: int) -> None:
        super().__init__(host, port, reason, oid)
        self.position = position


@dataclass(frozen=True)
class _Session:
    """One device, one credential: what each request of a poll needs."""

    host: str
    port: int
    engine: SnmpEngine
    credentials: Any  # CommunityData | UsmUserData
    context: ContextData
    target: UdpTransportTarget

    async def request(self, command: Any, *args: Any) -> list[Any]:
        call = (self.engine, self.credentials, self.target, self.context, *args)
        try:
            indication, status, index, var_binds = await command(*call, lookupMib=False)
        except PySnmpError as exc:
            raise SnmpError(self.host, self.port, f"request failed: {exc}") from exc
        if indication:
            raise SnmpError(self.host, self.port, str(indication))
        if int(status):
            names = [str(name) for name, _ in var_binds]
            position = int(index) - 1
            oid = names[position] if 0 <= position < len(names) else None
            reason = f"error status {status.prettyPrint()}"
            if int(status) == _NO_SUCH_NAME and oid is not None:
                raise _NoSuchName(self.host, self.port, reason, oid, position)
            raise SnmpError(self.host, self.port, reason, oid)
        return list(var_binds)


async def _bounded(host: str, port: int, timeout_s: float, retries: int, work: Awaitable[T]) -> T:
    """Await work, or fail once every try of its requests could have timed out."""
    budget = timeout_s * (retries + 1)
    try:
        async with asyncio.timeout(budget):
            return await work
    except TimeoutError:
        reason = f"no answer within {budget:g} s (timeout {timeout_s:g} s x {retries + 1} tries)"
        raise SnmpError(host, port, reason) from None


class PySnmpTransport:
    """GETs and walks through pysnmp engines bound to the event loop that first uses them."""

    def __init__(
        self,
        *,
        oids_per_request: int = DEFAULT_OIDS_PER_REQUEST,
        max_repetitions: int = DEFAULT_MAX_REPETITIONS,
    ) -> None:
        if oids_per_request < 1 or max_repetitions < 1:
            raise ValueError("oids_per_request and max_repetitions must be at least 1")
        self._oids_per_request = oids_per_request
        self._max_repetitions = max_repetitions
        # One engine for all v2c devices: it caches the target table, and its request
        # ids keep concurrent requests apart.
        self._engine = new_engine()
        # pysnmp keys a USM user by name alone: two devices with one user name and
        # different keys would overwrite each other's keys in one engine.
        self._usm_engines: dict[tuple[str | None, ...], SnmpEngine] = {}
        # pysnmp resolves every request OID against its MIB view (~0.2 ms each); an
        # object once resolved is reused, and polls ask for the same OIDs every cycle
        # (a walk's continuation points too, as long as the table does not change).
        self._objects: dict[str, ObjectType] = {}

    def _object(self, oid: str) -> ObjectType:
        found = self._objects.get(oid)
        if found is None:
            if len(self._objects) >= _OBJECTS_KEPT:
                self._objects.clear()
            found = self._objects[oid] = ObjectType(ObjectIdentity(oid))
        return found

    async def _open(
        self, host: str, port: int, auth: str | SnmpAuth, timeout_s: float, retries: int
    ) -> _Session:
        if isinstance(auth, str):
            auth = CommunityAuth(auth)
        try:
            target = await UdpTransportTarget.create(
                (host, port), timeout=timeout_s, retries=retries
            )
        except PySnmpError as exc:
            raise SnmpError(host, port, f"bad address: {exc}") from exc
        if isinstance(auth, CommunityAuth):
            credentials = CommunityData(auth.community, mpModel=1)
            return _Session(host, port, self._engine, credentials, ContextData(), target)
        key = (auth.user, auth.auth_protocol, auth.auth_key, auth.priv_protocol, auth.priv_key)
        if key not in self._usm_engines:
            self._usm_engines[key] = new_engine()
        user = UsmUserData(
            auth.user,
            authKey=auth.auth_key,
            privKey=auth.priv_key,
            authProtocol=_AUTH[auth.auth_protocol] if auth.auth_key else hlapi.usmNoAuthProtocol,
            privProtocol=_PRIV[auth.priv_protocol] if auth.priv_key else hlapi.usmNoPrivProtocol,
        )
        context = ContextData(contextName=auth.context.encode("utf-8"))
        return _Session(host, port, self._usm_engines[key], user, context, target)

    async def get(
        self,
        host: str,
        port: int,
        auth: str | SnmpAuth,
        oids: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
    ) -> dict[str, RawValue]:
        """GET every OID (several per request); raise SnmpError if any request fails."""

        async def work() -> dict[str, RawValue]:
            session = await self._open(host, port, auth, timeout_s, retries)
            answer: dict[str, RawValue] = {}
            step = self._oids_per_request
            for start in range(0, len(oids), step):
                chunk = [o.lstrip(".") for o in oids[start : start + step]]
                answer.update(await self._get_some(session, chunk))
            return answer

        return await _bounded(host, port, timeout_s, retries, work())

    async def _get_some(self, session: _Session, oids: list[str]) -> dict[str, RawValue]:
        """One GET of ``oids``. An object the device answers noSuchName for (a v1 agent's
        "no such object", RFC 3584 §4.4: noSuchObject for that varbind) is unknown, and
        the others are asked again without it: one object a card lacks must not make
        every other one it serves unknown."""
        lacking: dict[str, RawValue] = {}
        asked = list(oids)
        while asked:
            try:
                binds = await session.request(get_cmd, *(self._object(o) for o in asked))
            except _NoSuchName as exc:
                lacking[asked.pop(exc.position)] = None
                continue
            return {**{str(name): to_python(value) for name, value in binds}, **lacking}
        return lacking

    async def walk(
        self,
        host: str,
        port: int,
        auth: str | SnmpAuth,
        columns: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> dict[str, dict[str, RawValue]]:
        """Walk table columns with GETBULK: ``{column: {index: value}}``, at most max_rows each."""

        async def work() -> dict[str, dict[str, RawValue]]:
            session = await self._open(host, port, auth, timeout_s, retries)
            return await self._walk(session, [c.lstrip(".") for c in columns], max_rows)

        return await _bounded(host, port, timeout_s, retries, work())

    async def _walk(
        self, session: _Session, columns: list[str], max_rows: int
    ) -> dict[str, dict[str, RawValue]]:
        walked: dict[str, dict[str, RawValue]] = {column: {} for column in columns}
        cursor = {column: column for column in walked}  # last OID seen, per unfinished column
        while cursor:
            active = list(cursor)
            # All columns in one GETBULK: the answer interleaves them row by row.
            rows = max(1, min(self._max_repetitions, VARBINDS_PER_RESPONSE // len(active)))
            asked = [self._object(cursor[c]) for c in active]
            binds = await session.request(bulk_cmd, 0, rows, *asked)
            if not binds:
                break
            for position, (name, value) in enumerate(binds):
                column = active[position % len(active)]
                if column not in cursor:
                    continue  # this column ended earlier in the answer
                oid = str(name)
                if isinstance(value, EndOfMibView) or not oid.startswith(column + "."):
                    del cursor[column]  # walked past the column: it is complete
                    continue
                if _oid_key(oid) <= _oid_key(cursor[column]):
                    raise SnmpError(session.host, session.port, "OID not increasing", oid)
                walked[column][oid[len(column) + 1 :]] = to_python(value)
                cursor[column] = oid
                if len(walked[column]) >= max_rows:
                    del cursor[column]
        return walked

    def close(self) -> None:
        """Release the engines' sockets; the transport cannot be used afterwards."""
        for engine in (self._engine, *self._usm_engines.values()):
            engine.close_dispatcher()


SnmpV2cTransport = PySnmpTransport
"""The former name (v2c only then), still what ``agent.probes.Transports`` builds."""
