"""pytest plugin: net-snmp's ``snmptrap`` as a UPS sends traps, and trap recordings.

A trap recording (``firmware-configs/recordings/<profile>.traps.yaml``) is a YAML list
of traps, each its snmpTrapOID (``trap``) and its varbinds as ``snmptrap`` takes them
(``[OID, TYPE, VALUE]``); :meth:`SnmpTrapSender.send_recorded` plays one as a v2c
trap, or as the v1 trap it translates from (RFC 3584).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

INSTALL_HINT = "apt-get install -y snmp"
Oid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)+$")]
# snmptrap's type letters: INTEGER, Unsigned32, Counter32, TimeTicks, IpAddress, OID,
# string, hex string.
VarbindType = Literal["i", "u", "c", "t", "a", "o", "s", "x"]


class RecordedTrap(BaseModel):
    """One trap of a recording: its snmpTrapOID and its varbinds, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trap: Oid
    varbinds: tuple[tuple[Oid, VarbindType, int | str], ...] = Field(default=())

    def v1_header(self) -> tuple[str, str]:
        """(enterprise, specific-trap) of the v1 trap RFC 3584 §3.2 makes of this one."""
        parent, _, specific = self.trap.rpartition(".")
        # A notification E.0.N is enterprise E, specific N; one defined as E.N likewise
        # has enterprise E (the receiver sees it back as E.0.N).
        enterprise = parent.removesuffix(".0")
        return enterprise, specific


def load_trap_recording(path: Path) -> list[RecordedTrap]:
    """The traps of a recording file, validated; a bad one fails the test naming the file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data:
        pytest.fail(f"{path}: a trap recording is a non-empty YAML list of traps")
    return [RecordedTrap.model_validate(item) for item in data]


@pytest.fixture(scope="session")
def snmptrap() -> str:
    """net-snmp's snmptrap; missing, the trap tests fail with the install command."""
    found = shutil.which("snmptrap") or (
        "/usr/bin/snmptrap" if Path("/usr/bin/snmptrap").exists() else None
    )
    if found is None:
        pytest.fail(f"net-snmp's snmptrap is not installed; the trap tests need it: {INSTALL_HINT}")
    return found


class SnmpTrapSender:
    """Runs snmptrap against one port, isolated from any ~/.snmp or /var/lib/snmp state."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary, self.port = binary, port
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "MIBS": "",  # numeric OIDs only: no MIB loading, no warnings
            "SNMPCONFPATH": str(workdir),
            "SNMP_PERSISTENT_DIR": str(workdir),
        }

    async def send(self, *args: str) -> float:
        """Send one trap; return time.monotonic() when snmptrap has returned."""
        process = await asyncio.create_subprocess_exec(
            self.binary,
            "-Ln",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, f"snmptrap {args}: {out!r} {err!r}"
        return time.monotonic()

    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def send_recorded(
        self, trap: RecordedTrap, community: str, version: Literal["v2c", "v1"]
    ) -> float:
        """Send a recorded trap as v2c, or as its v1 form (agent-addr: the sender's own)."""
        varbinds = [str(part) for varbind in trap.varbinds for part in varbind]
        if version == "v2c":
            target = self.target()
            return await self.send("-v", "2c", "-c", community, target, "", trap.trap, *varbinds)
        enterprise, specific = trap.v1_header()
        return await self.send(
            "-v", "1", "-c", community, self.target(), enterprise, "", "6", specific, "",
            *varbinds,
        )  # fmt: skip
