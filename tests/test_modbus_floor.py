"""pyproject's pymodbus range is the range kienco works with, checked at its lowest version.

CI installs the newest pymodbus, so a call that needs a newer one than declared
(``device_id=`` exists only from 3.10) would pass every other test and fail on an
edge box that pip gave an older one. Here the declared minimum is installed into a
folder of its own (pip, from the package index) and run in a child process: the
agent's probe polls the real Modbus server with it, and for the ``devices`` extra it
serves the recording that the installed pymodbus then polls.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from agent.config import DeviceConfig, SiteConfig
from agent.probes import Transports
from agent.probes.modbus import poll_device
from contract.wire import PowerReading
from kienco.local_services import free_port
from tests.support.modbus import GENSET, ThreadedSimulator

REPO = Path(__file__).resolve().parents[1]

DEVICE = {
    "device": "gen-1",
    "role": "generator",
    "protocol": "modbus",
    "host": "127.0.0.1",
    "profile": "dse-gencomm",
    "tank_l": 500,
    "timeout_s": 2.0,
    "retries": 0,
}

POLL = """
import asyncio, sys
import pymodbus
from agent.config import DeviceConfig, SiteConfig
from agent.probes import Transports
from agent.probes.modbus import poll_device
device = DeviceConfig.model_validate({**%(device)r, "port": int(sys.argv[1])})
site = SiteConfig.model_validate(
    {"site": "qn-bts-7", "province": "qn", "kind": "station", "name": "t",
     "broker": {"url": "mqtt://127.0.0.1:1"}, "devices": [device]})
(reading,) = asyncio.run(poll_device(device, site, Transports()))
print(pymodbus.__version__)
print(reading.model_dump_json())
"""

SERVE = """
import asyncio, sys
import pymodbus
from pathlib import Path
from kienco.devices_serve import ModbusSimulator, load_recording
async def main():
    simulator = ModbusSimulator(load_recording(Path(sys.argv[1])), port=int(sys.argv[2]))
    await simulator.start()
    print(pymodbus.__version__, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await simulator.stop()
asyncio.run(main())
"""


def declared(extra: str | None = None) -> SpecifierSet:
    """The pymodbus specifier pyproject.toml declares (in the base dependencies or an extra)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    for line in lines:
        requirement = Requirement(line)
        if requirement.name == "pymodbus":
            return requirement.specifier
    pytest.fail(f"pyproject.toml declares no pymodbus in {extra or 'dependencies'}")


def lowest(specifier: SpecifierSet) -> str:
    floors = [s.version for s in specifier if s.operator in (">=", "==", "~=")]
    assert floors, f"pymodbus{specifier} has no lower bound: say which version kienco needs"
    return max(floors, key=Version)


def site(device: DeviceConfig) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": "qn-bts-7",
            "province": "qn",
            "kind": "station",
            "name": "t",
            "broker": {"url": "mqtt://127.0.0.1:1"},
            "devices": [device],
        }
    )


async def poll(port: int) -> PowerReading:
    device = DeviceConfig.model_validate({**DEVICE, "port": port})
    (reading,) = await poll_device(device, site(device), Transports())
    assert isinstance(reading, PowerReading)
    return reading


@pytest.fixture(scope="module")
def pymodbus_at(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, str]]:
    """The environment of a child process that imports pymodbus ``version`` and this repo."""

    def install(version: str) -> dict[str, str]:
        target = tmp_path_factory.mktemp(f"pymodbus-{version}")
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
        done = subprocess.run(
            [*pip, "--target", str(target), f"pymodbus=={version}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(
                f"could not install pymodbus=={version} from the package index to check the "
                f"declared minimum (this test needs pip to reach it): {done.stderr.strip()}",
                pytrace=False,
            )
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}

    return install


def test_the_installed_pymodbus_is_in_every_declared_range() -> None:
    installed = importlib.metadata.version("pymodbus")
    for extra in (None, "devices"):
        assert Version(installed) in declared(extra), (extra, installed)


async def test_the_agent_polls_the_real_server_with_the_lowest_declared_pymodbus(
    genset: ThreadedSimulator, pymodbus_at: Callable[[str], dict[str, str]]
) -> None:
    floor = lowest(declared())
    env = pymodbus_at(floor)
    done = subprocess.run(
        [sys.executable, "-c", POLL % {"device": DEVICE}, str(genset.port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    version, reading = done.stdout.split()
    assert Version(version) == Version(floor)
    assert PowerReading.model_validate_json(reading) == await poll(genset.port)
    assert PowerReading.model_validate_json(reading).error is None


@pytest.fixture
def served_at_the_devices_floor(
    pymodbus_at: Callable[[str], dict[str, str]],
) -> Iterator[tuple[str, int]]:
    floor = lowest(declared("devices"))
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(GENSET), str(port)],
        env=pymodbus_at(floor),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        version = child.stdout.readline().strip()
        if not version:
            child.kill()
            assert child.stderr is not None
            pytest.fail(f"the simulator did not start with pymodbus {floor}: {child.stderr.read()}")
        yield version, port
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def test_the_devices_simulator_serves_with_the_lowest_declared_pymodbus(
    genset: ThreadedSimulator, served_at_the_devices_floor: tuple[str, int]
) -> None:
    version, port = served_at_the_devices_floor
    assert Version(version) == Version(lowest(declared("devices")))
    assert await poll(port) == await poll(genset.port)
