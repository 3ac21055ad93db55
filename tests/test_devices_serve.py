"""``kienco devices serve``: the printed snippet, pasted into a site config, polls both devices."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from agent.config import SiteConfig
from agent.cycle import poll_once
from agent.probes import Transports
from contract.wire import utc_now
from kienco.commands.devices import main
from kienco.devices_serve import RECORDINGS
from kienco.local_services import free_port

SNIPPET = "Site config snippet"
WANTED = ("sim-ups-mib", "sim-dse-gencomm")
READY = "Serving"


class Served:
    """The running command and what it printed up to "Serving…"."""

    def __init__(self, process: subprocess.Popen[str], lines: list[str]) -> None:
        self.process = process
        self.lines = lines

    def snippet(self) -> dict[str, Any]:
        start = next(i for i, line in enumerate(self.lines) if line.startswith(SNIPPET))
        text = "\n".join(line for line in self.lines[start + 1 :] if not line.startswith(READY))
        parsed = yaml.safe_load(text)
        assert isinstance(parsed, dict)
        return parsed


@pytest.fixture
def served() -> Iterator[Served]:
    snmp_port, modbus_port = free_port(socket.SOCK_DGRAM), free_port()
    command = [sys.executable, "-m", "kienco.commands.devices", "--duration", "60"]
    command += ["--snmp-port", str(snmp_port), "--modbus-port", str(modbus_port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 40
    while not lines or not lines[-1].startswith(READY):
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            pytest.fail("devices serve did not start:\n" + "\n".join(lines) + line)
        lines.append(line.rstrip("\n"))
    try:
        yield Served(process, lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def test_serves_snmp_and_modbus_and_the_snippet_polls_them(served: Served) -> None:
    table = "\n".join(served.lines)
    assert "sim-ups-mib  " in table and "snmp" in table and "community/unit" in table
    assert "sim-dse-gencomm" in table and "unit 1" in table
    snippet = served.snippet()
    protocols = {d["device"]: d["protocol"] for d in snippet["devices"]}
    assert {"sim-ups-mib": "snmp", "sim-dse-gencomm": "modbus"}.items() <= protocols.items()
    # One of each, pasted as a user would (other recordings are other engineers' to test).
    snippet["devices"] = [d for d in snippet["devices"] if d["device"] in WANTED]
    config = SiteConfig.model_validate(
        {
            "site": "hp-sim-001",
            "province": "hp",
            "kind": "station",
            "name": "Simulated site",
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            **snippet,
        }
    )
    transports = Transports()
    try:
        report = await poll_once(config, transports, seq=1, now=utc_now())
    finally:
        if transports.snmp_transport is not None:
            transports.snmp_transport.close()
    readings = {r.device: r for r in report.power}
    ups, genset = readings["sim-ups-mib"], readings["sim-dse-gencomm"]
    assert (ups.error, ups.on_battery, ups.battery_status) == (None, False, "normal")
    assert (genset.error, genset.generator_running, genset.mains_present) == (None, True, False)
    assert (genset.fuel_pct, genset.fuel_l) == (62, 310)

    served.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert served.process.wait(timeout=15) == 0


def test_no_recordings_is_an_error(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--recordings", str(tmp_path), "--duration", "0"]) == 1
    assert "no recordings in" in capsys.readouterr().err


def test_the_shipped_recordings_are_there() -> None:
    assert sorted(p.name for p in RECORDINGS.glob("*.snmprec"))
    assert sorted(p.name for p in RECORDINGS.glob("*.modbus.yaml"))


def test_a_broken_register_dump_is_named(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.modbus.yaml").write_text("profile: dse-gencomm\nregisters: {1027: 70000}\n")
    assert main(["--recordings", str(tmp_path), "--duration", "0"]) == 1
    err = capsys.readouterr().err
    assert "bad.modbus.yaml" in err and "registers.1027" in err and "description" in err
