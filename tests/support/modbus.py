"""pytest plugin: a real pymodbus TCP server serving firmware-configs/recordings/*.modbus.yaml.

The server runs in its own thread and event loop for the whole session, so
tests on any loop can poll it. ``genset.update({address: word})`` changes a
register for the next read; each test starts from the recording.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from kienco.devices_serve import (
    PAGE,
    UNIMPLEMENTED,
    ModbusRecording,
    ModbusSimulator,
    SimulatorError,
    _listening,
    load_recording,
)
from kienco.local_services import free_port

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = REPO / "firmware-configs" / "recordings"
GENSET = RECORDINGS / "dse-gencomm.modbus.yaml"


def recording(path: Path = GENSET) -> ModbusRecording:
    if not path.is_file():
        pytest.fail(f"no Modbus recording {path}")
    return load_recording(path)


class ThreadedSimulator(ModbusSimulator):
    """A ModbusSimulator on a private event loop in a daemon thread."""

    def __init__(self, rec: ModbusRecording) -> None:
        super().__init__(rec, port=free_port())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def run(self) -> None:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(timeout=15)
        except SimulatorError as exc:
            self.close()
            pytest.fail(str(exc))

    def close(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@pytest.fixture(scope="session")
def modbus_server() -> Iterator[ThreadedSimulator]:
    """The DSE GenComm recording served on 127.0.0.1:<free port>, for the whole session."""
    simulator = ThreadedSimulator(recording())
    simulator.run()
    try:
        yield simulator
    finally:
        simulator.close()


@pytest.fixture
def genset(modbus_server: ThreadedSimulator) -> ThreadedSimulator:
    """The shared simulator, back to the recorded registers before the test."""
    modbus_server.reset()
    return modbus_server


class LackingSimulator(ModbusSimulator):
    """The recording's pages, less the registers a controller model lacks: a read that
    touches one answers exception 2 (illegal data address), as pymodbus's own server does.
    A read starting at an address of ``silent_at`` gets no answer (a gateway that hangs
    part-way through a poll) until the simulator stops."""

    def __init__(
        self,
        rec: ModbusRecording,
        port: int,
        lacking: Collection[int],
        silent_at: Collection[int] = (),
    ) -> None:
        super().__init__(rec, port=port)
        self.lacking = frozenset(lacking)
        self.silent_at = frozenset(silent_at)
        self._stopping = asyncio.Event()

    async def _sync(
        self, fc: int, start: int, address: int, count: int, regs: list[int], values: Any
    ) -> None:
        if address in self.silent_at:
            await self._stopping.wait()
        await super()._sync(fc, start, address, count, regs, values)

    async def stop(self) -> None:
        self._stopping.set()
        await super().stop()

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        low = min(self.recording.registers) // PAGE * PAGE
        high = max(self.recording.registers) // PAGE * PAGE + PAGE
        served = [a for a in range(low, high) if a not in self.lacking]
        runs: list[list[int]] = []
        for address in served:
            if runs and runs[-1][1] == address - 1:
                runs[-1][1] = address
            else:
                runs.append([address, address])
        blocks = [
            SimData(a, count=b - a + 1, values=UNIMPLEMENTED, readonly=True,
                    datatype=DataType.REGISTERS)
            for a, b in runs
        ]  # fmt: skip
        device = SimDevice(self.recording.unit_id, simdata=blocks, action=self._sync)
        self._server = ModbusTcpServer([device], address=(self.host, self.port))
        self._task = asyncio.create_task(self._server.serve_forever())
        while not await _listening(self.host, self.port):
            if self._task.done():
                raise SimulatorError(f"Modbus simulator did not listen on port {self.port}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def lacking(
    registers: Collection[int], *, silent_at: Collection[int] = ()
) -> AsyncIterator[LackingSimulator]:
    """The genset recording served on this event loop, without ``registers``; reads
    starting at ``silent_at`` are never answered."""
    simulator = LackingSimulator(recording(), free_port(), registers, silent_at)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()
