"""Modbus TCP probe: read a generator controller's holding registers and decode them.

Gensets and ATS panels speak Modbus more often than SNMP. The device's profile
(``<profile>.modbus.yaml``) says which registers to read; they are read in as
few requests as the profile allows, over one connection. Registers the controller's
model lacks (exception 2 for a read) are unknown, the rest still read: a merged read
refused that way is read again value by value. A controller that does not answer, or
serves none of them, gives a reading with ``error`` set, never an exception. One that
stops answering part-way (a hung gateway, a request timed out) gives what it had
answered, the rest unknown, with ``error`` saying why: the values already read are
measurements as good as any, and dropping them made a genset that served its state and
fuel an unknown one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from agent.config import DeviceConfig, SiteConfig
from agent.modbus_profile import blocks, decode, load_modbus_profile_by_name, value_spans
from agent.probes import DeviceReading, Transports
from contract.wire import PowerReading

__all__ = [
    "ILLEGAL_DATA_ADDRESS",
    "ModbusReadError",
    "ModbusRefused",
    "poll_device",
    "read_registers",
]

_MAX_ERROR = 500  # PowerReading.error's limit

ReadRegisters = Callable[..., Awaitable[dict[int, int]]]
"""``read(host, port, unit_id, spans, *, timeout_s, into) -> {address: word}``, filling
``into`` as the answers come (what was read before a failure stays there); tests may swap
it through ``Transports.extra["modbus"]``."""


class ModbusReadError(Exception):
    """No connection, no answer, or a broken one: worth another try."""


class ModbusRefused(ModbusReadError):
    """The controller answered with a Modbus exception: asking again won't help."""


ILLEGAL_DATA_ADDRESS = 2  # Modbus exception code: "no such register here"


async def read_registers(
    host: str,
    port: int,
    unit_id: int,
    spans: Sequence[tuple[int, int]],
    *,
    timeout_s: float,
    into: dict[int, int] | None = None,
) -> dict[int, int]:
    """Read each (start, count) span of holding registers (function 3) over one connection.

    A span the controller answers exception 2 for (illegal data address: a register its
    model lacks) is left out, its registers unknown, and the other spans are still read;
    any other exception, or exception 2 for every span, is a ModbusRefused. The words go
    into ``into`` (when given) as each span is answered: when a later span fails, or the
    caller's timeout cancels the read, the spans answered before are still there.
    """
    where = f"modbus {host}:{port} unit {unit_id}"
    # Retries are the probe's, per poll; pymodbus would retry each request on its own.
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)
    try:
        if not await client.connect():
            raise ModbusReadError(f"{where}: cannot connect")
        words: dict[int, int] = {} if into is None else into
        lacking = ""
        for start, count in spans:
            response = await client.read_holding_registers(start, count=count, device_id=unit_id)
            if response.isError():
                code = getattr(response, "exception_code", "?")
                refused = f"{where}: exception {code} reading {count} registers at {start}"
                if code != ILLEGAL_DATA_ADDRESS:
                    raise ModbusRefused(refused)
                lacking = lacking or refused
                continue
            if len(response.registers) != count:
                raise ModbusReadError(
                    f"{where}: asked {count} registers at {start}, got {len(response.registers)}"
                )
            words.update(zip(range(start, start + count), response.registers, strict=True))
        if lacking and not words:
            raise ModbusRefused(lacking)
        return words
    except ModbusException as exc:
        raise ModbusReadError(f"{where}: {exc}") from None
    finally:
        client.close()


def _unread(span: tuple[int, int], words: dict[int, int]) -> bool:
    start, count = span
    return any(address not in words for address in range(start, start + count))


async def _read_lacking(
    read: ReadRegisters,
    device: DeviceConfig,
    spans: list[tuple[int, int]],
    words: dict[int, int],
) -> None:
    """Values read one by one into ``words``; none of them answered is none of them
    known. Those answered before a failure (no answer, a timeout) are kept, and the
    failure is raised."""
    more: dict[int, int] = {}
    try:
        await read(
            device.host,
            device.port_or_default,
            device.unit_id,
            spans,
            timeout_s=device.timeout_s,
            into=more,
        )
    except ModbusRefused:
        pass
    finally:
        words.update(more)


def _failed(device: DeviceConfig, reason: str) -> list[DeviceReading]:
    return [PowerReading(device=device.device, profile=device.profile, error=reason[:_MAX_ERROR])]


async def poll_device(
    device: DeviceConfig, config: SiteConfig, transports: Transports
) -> list[DeviceReading]:
    """The :data:`agent.probes.DevicePoller` for Modbus TCP controllers."""
    assert device.profile is not None  # the config requires it for protocol "modbus"
    profile = load_modbus_profile_by_name(device.profile)
    spans = blocks(profile)
    read: ReadRegisters = transports.extra.get("modbus", read_registers)
    host, port = device.host, device.port_or_default
    # Each request may take the whole timeout; the connect too.
    budget_s = device.timeout_s * (len(spans) + 1)
    reason = "not polled"
    kept: dict[int, int] = {}  # the most any attempt read before it failed
    for _attempt in range(device.retries + 1):
        words: dict[int, int] = {}
        phase, alone_s = "", 0.0
        try:
            async with asyncio.timeout(budget_s):
                await read(
                    host, port, device.unit_id, spans, timeout_s=device.timeout_s, into=words
                )
            # A merged read refused for a register no value uses: each value alone.
            alone = [s for s in value_spans(profile) if s not in spans and _unread(s, words)]
            if alone:
                phase, alone_s = "values re-read one by one: ", device.timeout_s * (len(alone) + 1)
                async with asyncio.timeout(alone_s):
                    await _read_lacking(read, device, alone, words)
        except TimeoutError:
            within = alone_s if phase else budget_s
            reason = f"modbus {host}:{port}: {phase}no answer within {within:g} s"
        except ModbusRefused as exc:
            reason = f"{phase}{exc}"
            if len(words) > len(kept):
                kept = words
            break  # asking again won't help
        except ModbusReadError as exc:
            reason = f"{phase}{exc}"
        else:
            return [decode(profile, device.device, words, tank_l=device.tank_l)]
        if len(words) > len(kept):
            kept = words
    if not kept:
        return _failed(device, reason)
    reading = decode(profile, device.device, kept, tank_l=device.tank_l)
    suffix = "; the values not read are unknown"
    if len(reason) + len(suffix) > _MAX_ERROR:
        reason = reason[: _MAX_ERROR - len(suffix) - 1] + "…"
    return [reading.model_copy(update={"error": reason + suffix})]
