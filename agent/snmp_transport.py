"""A thin SNMPv2c GET transport over pysnmp 7 (asyncio), returning plain Python values.

pysnmp stays behind this module: probes and ``agent.profiles.decode`` see
``{oid: int | str | bytes | None}`` and one error type, ``SnmpError``.

Errors::

    SnmpError            the device did not answer, or answered with an error status
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pyasn1.type import univ  # type: ignore[import-untyped]  # pyasn1 ships no types
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from agent.profiles import RawValue

__all__ = ["SnmpError", "SnmpTransport", "SnmpV2cTransport", "to_python"]

# snmpsim answers up to 64 varbinds and many embedded agents far fewer; 20 keeps
# a request well inside one unfragmented UDP datagram.
DEFAULT_OIDS_PER_REQUEST = 20


class SnmpError(Exception):
    """A GET that failed: which device, why (timeout, errorStatus, …) and at which OID."""

    def __init__(self, host: str, port: int, reason: str, oid: str | None = None) -> None:
        self.host, self.port, self.reason, self.oid = host, port, reason, oid
        where = f" at {oid}" if oid else ""
        super().__init__(f"snmp {host}:{port}: {reason}{where}")


class SnmpTransport(Protocol):
    """What a probe needs from SNMP: one GET of many OIDs."""

    async def get(
        self,
        host: str,
        port: int,
        community: str,
        oids: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
    ) -> dict[str, RawValue]: ...


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


class SnmpV2cTransport:
    """SNMPv2c GETs through one pysnmp engine, bound to the event loop that first uses it."""

    def __init__(self, *, oids_per_request: int = DEFAULT_OIDS_PER_REQUEST) -> None:
        if oids_per_request < 1:
            raise ValueError("oids_per_request must be at least 1")
        self._oids_per_request = oids_per_request
        # One engine for all devices: it caches the MIB view and the target table,
        # and its request ids keep concurrent GETs apart.
        self._engine = SnmpEngine()

    async def get(
        self,
        host: str,
        port: int,
        community: str,
        oids: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
    ) -> dict[str, RawValue]:
        """GET every OID (several per request); raise SnmpError if any request fails."""
        try:
            target = await UdpTransportTarget.create(
                (host, port), timeout=timeout_s, retries=retries
            )
        except PySnmpError as exc:
            raise SnmpError(host, port, f"bad address: {exc}") from exc
        answer: dict[str, RawValue] = {}
        step = self._oids_per_request
        for start in range(0, len(oids), step):
            chunk = [oid.lstrip(".") for oid in oids[start : start + step]]
            answer.update(await self._get_chunk(host, port, community, target, chunk))
        return answer

    async def _get_chunk(
        self,
        host: str,
        port: int,
        community: str,
        target: UdpTransportTarget,
        chunk: list[str],
    ) -> dict[str, RawValue]:
        try:
            error_indication, error_status, error_index, var_binds = await get_cmd(
                self._engine,
                CommunityData(community, mpModel=1),  # mpModel 1 = v2c
                target,
                ContextData(),
                *(ObjectType(ObjectIdentity(oid)) for oid in chunk),
                lookupMib=False,  # numeric OIDs in and out: no MIB files needed
            )
        except PySnmpError as exc:
            raise SnmpError(host, port, f"request failed: {exc}") from exc
        if error_indication:
            raise SnmpError(host, port, str(error_indication))
        if int(error_status):
            index = int(error_index)
            oid = chunk[index - 1] if 0 < index <= len(chunk) else None
            status = getattr(error_status, "prettyPrint", error_status.__str__)()
            raise SnmpError(host, port, f"error status {status}", oid)
        return {str(name): to_python(value) for name, value in var_binds}

    def close(self) -> None:
        """Release the engine's socket; the transport cannot be used afterwards."""
        self._engine.close_dispatcher()
