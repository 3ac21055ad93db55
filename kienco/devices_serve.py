"""``kienco devices serve``: simulated power devices on loopback, from the recordings.

Every recording in ``firmware-configs/recordings/`` becomes a device an agent
can poll: ``*.snmprec`` through one snmpsim (the community is the file's stem),
``*.modbus.yaml`` through one pymodbus server each (a register dump: address ->
16-bit word; other registers of the dump's 256-register pages answer GenComm's
"unimplemented" 0xFFFF). It prints what it serves and a ``devices:`` snippet
for a site config.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from contract.wire import Slug
from kienco.local_services import free_port
from plumbing.config_errors import load_yaml_model
from plumbing.data import firmware_configs

if TYPE_CHECKING:  # pymodbus is imported when a simulator starts: `kienco --help` stays quick
    from pymodbus.server import ModbusTcpServer

RECORDINGS = firmware_configs() / "recordings"
HOST = "127.0.0.1"  # simulated devices never leave the box
UNIMPLEMENTED = 0xFFFF
PAGE = 256
Word = Annotated[int, Field(ge=0, le=0xFFFF)]


class SimulatorError(RuntimeError):
    """A simulator would not start; the message says why (and how to install what is missing)."""


class ModbusRecording(BaseModel):
    """A Modbus register dump (``<name>.modbus.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    profile: Slug
    role: Literal["generator", "ats", "ups", "rectifier", "other"] = "generator"
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    tank_l: Annotated[float, Field(gt=0)] | None = None
    registers: dict[Annotated[int, Field(ge=0, le=0xFFFF)], Word] = Field(min_length=1)


def load_recording(path: Path) -> ModbusRecording:
    """Load a register dump; a bad one raises ConfigError naming the key and the fix."""
    return load_yaml_model(path, ModbusRecording)


class ModbusSimulator:
    """One pymodbus TCP server answering holding-register reads from a register dump.

    ``registers`` is live: assign a new dict (or call ``update``) and the next
    read sees it, from any thread.
    """

    def __init__(self, recording: ModbusRecording, port: int, host: str = HOST) -> None:
        self.recording = recording
        self.host, self.port = host, port
        self.registers: dict[int, int] = dict(recording.registers)
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None

    def update(self, changes: Mapping[int, int]) -> None:
        self.registers = {**self.registers, **changes}  # one rebinding: atomic for readers

    def reset(self) -> None:
        self.registers = dict(self.recording.registers)

    async def _sync(
        self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any
    ) -> None:
        current = self.registers
        for addr in range(address, address + count):
            regs[addr - start] = current.get(addr, UNIMPLEMENTED)

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        # Whole 256-register pages: in GenComm every defined register answers, an
        # unimplemented one with 0xFFFF (GenComm §8.1 note 2), never an exception.
        low = min(self.recording.registers) // PAGE * PAGE
        high = max(self.recording.registers) // PAGE * PAGE + PAGE - 1
        # Read-only: a monitor never writes; a write is refused like a locked panel's.
        block = SimData(
            low,
            count=high - low + 1,
            values=UNIMPLEMENTED,
            readonly=True,
            datatype=DataType.REGISTERS,
        )
        device = SimDevice(self.recording.unit_id, simdata=[block], action=self._sync)
        self._server = ModbusTcpServer([device], address=(self.host, self.port))
        self._task = asyncio.create_task(self._server.serve_forever())
        deadline = time.monotonic() + 10
        while not await _listening(self.host, self.port):
            if self._task.done() or time.monotonic() > deadline:
                raise SimulatorError(f"Modbus simulator did not listen on {self.host}:{self.port}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def _listening(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


try:  # looked up now: a forked child must not load libraries (another thread may hold a lock)
    _PRCTL: Any = ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the thread that started it dies, even by kill -9."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class SnmpSimulator:
    """snmpsim serving every ``*.snmprec`` of a folder on one UDP port."""

    data_dir: Path
    port: int
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kienco-snmpsim-")))
    process: subprocess.Popen[bytes] | None = None

    def start(self, within_s: float = 30) -> None:
        binary = Path(sys.executable).parent / "snmpsim-command-responder"
        spec = importlib.util.find_spec("snmpsim")
        if not binary.exists() or spec is None or spec.origin is None:
            raise SimulatorError("snmpsim is not installed: pip install 'kienco[devices]'")
        log = self.workdir / "snmpsim.log"
        command = [
            str(binary),
            f"--data-dir={self.data_dir}",
            f"--cache-dir={self.workdir / 'cache'}",
            f"--agent-udpv4-endpoint={HOST}:{self.port}",
            # Only the modules shipped with snmpsim, never whatever is in ~/.snmpsim.
            f"--variation-modules-dir={Path(spec.origin).parent / 'variation'}",
        ]
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
            )
        deadline = time.monotonic() + within_s
        # snmpsim says so once its UDP socket is bound; requests queue from then on.
        while "Listening at UDP/IPv4" not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SimulatorError(f"snmpsim did not start: {log.read_text()[-1500:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class Served:
    """One simulated device: a row of the table and an entry of the ``devices:`` snippet."""

    recording: str
    who: str  # the SNMP community, or the Modbus unit
    entry: dict[str, Any]  # as a site config's devices: list holds it


def _served_snmp(path: Path, port: int) -> Served:
    entry: dict[str, Any] = {"device": f"sim-{path.stem}", "role": _guess_role(path.stem)}
    entry["protocol"] = "snmp"
    entry |= {"profile": path.stem, "host": HOST, "port": port, "credentials": f"sim-{path.stem}"}
    return Served(path.name, path.stem, entry)


def _served_modbus(path: Path, dump: ModbusRecording, port: int) -> Served:
    name = path.name.removesuffix(".modbus.yaml")
    entry: dict[str, Any] = {"device": f"sim-{name}", "role": dump.role, "protocol": "modbus"}
    entry |= {"profile": dump.profile, "host": HOST, "port": port, "unit_id": dump.unit_id}
    entry |= {"tank_l": dump.tank_l} if dump.tank_l is not None else {}
    return Served(path.name, f"unit {dump.unit_id}", entry)


_ROLE_WORDS = {"ups": "ups", "router": "router", "switch": "router", "radio": "radio"}
_ROLE_WORDS |= {"dc": "rectifier", "rectifier": "rectifier", "gen": "generator", "ats": "ats"}


def _guess_role(stem: str) -> str:
    """A role from the recording's name (``vertiv-netsure-dc`` -> rectifier); edit it if wrong."""
    words = ["ups" if w.endswith("ups") else w for w in re.split(r"[-_.]", stem)]  # xups
    return next((_ROLE_WORDS[w] for w in words if w in _ROLE_WORDS), "other")


def snippet(served: Sequence[Served]) -> str:
    """The ``snmp_credentials:`` and ``devices:`` keys a site config needs for these devices."""
    snmp = {
        s.entry["credentials"]: {"version": "2c", "community": {"value": s.who}}
        for s in served
        if s.entry["protocol"] == "snmp"
    }
    doc = ({"snmp_credentials": snmp} if snmp else {}) | {"devices": [s.entry for s in served]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def table(served: Sequence[Served]) -> str:
    rows = [("device", "protocol", "address", "community/unit", "profile", "recording")]
    for s in served:
        e = s.entry
        rows.append(
            (e["device"], e["protocol"], f"{HOST}:{e['port']}", s.who, e["profile"], s.recording)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


async def serve(
    recordings: Path, *, snmp_port: int, modbus_port: int, duration_s: float | None
) -> int:
    """Run the simulators until Ctrl-C, SIGTERM or ``duration_s``; print what is served."""
    logging.getLogger("pymodbus").setLevel(logging.WARNING)  # one line per request is noise
    served: list[Served] = []
    snmprecs = sorted(recordings.glob("*.snmprec"))
    snmp: SnmpSimulator | None = None
    modbus: list[ModbusSimulator] = []
    try:
        if snmprecs:
            snmp = SnmpSimulator(recordings, snmp_port or free_port(socket.SOCK_DGRAM))
            snmp.start()  # from the main thread: the child's death signal follows this thread
            served += [_served_snmp(path, snmp.port) for path in snmprecs]
        for index, path in enumerate(sorted(recordings.glob("*.modbus.yaml"))):
            dump = load_recording(path)
            sim = ModbusSimulator(dump, modbus_port + index if modbus_port else free_port())
            await sim.start()
            modbus.append(sim)
            served.append(_served_modbus(path, dump, sim.port))
        if not served:
            print(f"kienco devices serve: no recordings in {recordings}", file=sys.stderr)
            return 1
        print(f"Simulated devices on {HOST} ({recordings}):\n\n{table(served)}\n")
        print(f"Site config snippet (paste into a site config):\n\n{snippet(served)}")
        print(
            "Serving until Ctrl-C." if duration_s is None else f"Serving for {duration_s:g} s.",
            flush=True,
        )
        await _until_stopped(duration_s)
        return 0
    finally:
        for sim in modbus:
            await sim.stop()
        if snmp is not None:
            snmp.stop()


async def _until_stopped(duration_s: float | None) -> None:
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration_s)
