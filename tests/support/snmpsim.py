"""A real snmpsim serving firmware-configs/recordings/ on a free loopback UDP port.

The v2c community of a recording is its file name (``ups-mib.snmprec`` ->
``ups-mib``); over SNMPv3 the same file is the context name, read as the USM user
``SnmpSim.v3_user`` with authPriv SHA/AES (``SnmpSim.v3(name)`` gives the
credentials). Records tagged ``:writecache`` can be changed with ``snmp_set``;
the change lives in the snmpsim process, so a test that SETs restores what it set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    UdpTransportTarget,
    get_cmd,
    set_cmd,
)
from pysnmp.proto.rfc1902 import Integer32, OctetString
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from agent.config import SnmpV3Credentials
from agent.snmp_transport import new_engine
from kienco.local_services import free_port

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = REPO / "firmware-configs" / "recordings"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
_NO_VALUE = (NoSuchObject, NoSuchInstance, EndOfMibView)
# Test-only USM user (RFC 3414 wants keys of 8+ characters).
V3_USER, V3_AUTH_KEY, V3_PRIV_KEY = "kienco-test", "auth-key-kienco-1", "priv-key-kienco-1"


class SnmpSetError(AssertionError):
    """A SET the simulator did not take (read-only record, wrong type, no answer)."""


@dataclass(frozen=True)
class SnmpSim:
    host: str
    port: int
    data_dir: Path
    v3_user: str = V3_USER
    v3_auth_key: str = V3_AUTH_KEY  # HMAC-SHA-96
    v3_priv_key: str = V3_PRIV_KEY  # AES-128 (CFB)

    def community(self, name: str) -> str:
        """The community of recording ``name``; fails if there is no such recording."""
        if not (self.data_dir / f"{name}.snmprec").is_file():
            known = sorted(p.stem for p in self.data_dir.glob("*.snmprec"))
            raise LookupError(f"no recording {name}.snmprec in {self.data_dir}; have {known}")
        return name

    def v3(self, name: str, **changes: object) -> SnmpV3Credentials:
        """authPriv SHA/AES credentials reading recording ``name`` (its v3 context)."""
        fields: dict[str, object] = {
            "version": "3",
            "user": self.v3_user,
            "auth_protocol": "sha",
            "auth_key": {"value": self.v3_auth_key},
            "priv_protocol": "aes",
            "priv_key": {"value": self.v3_priv_key},
            "context": self.community(name),
        }
        return SnmpV3Credentials.model_validate({**fields, **changes})


def _responder() -> tuple[Path, Path]:
    """The responder script and snmpsim's own variation modules, or a failed test."""
    binary = Path(sys.executable).parent / "snmpsim-command-responder"
    spec = importlib.util.find_spec("snmpsim")
    if not binary.exists() or spec is None or spec.origin is None:
        pytest.fail(
            f"snmpsim is not installed ({binary} missing): run "
            f"{Path(sys.executable).parent / 'pip'} install -e '.[test]'"
        )
    return binary, Path(spec.origin).parent / "variation"


async def _wait_answering(
    process: subprocess.Popen[bytes], port: int, community: str, within_s: float
) -> bool:
    """GET sysDescr until snmpsim answers (True) or exits or time runs out (False)."""
    engine = new_engine()  # one for all tries, sharing the process's MIB view
    deadline = time.monotonic() + within_s
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=0.3, retries=0)
        while process.poll() is None and time.monotonic() < deadline:
            indication, status, _, binds = await get_cmd(
                engine,
                CommunityData(community, mpModel=1),
                target,
                ContextData(),
                ObjectType(ObjectIdentity(SYS_DESCR)),
                lookupMib=False,
            )
            if not indication and not int(status) and not isinstance(binds[0][1], _NO_VALUE):
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        engine.close_dispatcher()


def _start(workdir: Path, data_dir: Path, community: str) -> tuple[subprocess.Popen[bytes], int]:
    binary, variation_dir = _responder()
    port = free_port(socket.SOCK_DGRAM)
    log = workdir / f"snmpsim-{port}.log"
    command = [
        str(binary),
        f"--data-dir={data_dir}",
        f"--cache-dir={workdir / 'cache'}",  # its index files, apart from other sessions'
        f"--agent-udpv4-endpoint=127.0.0.1:{port}",
        # Only the modules shipped with snmpsim, never whatever is in ~/.snmpsim.
        f"--variation-modules-dir={variation_dir}",
        # v2c stays on: the v3 user is added beside the communities.
        f"--v3-user={V3_USER}",
        f"--v3-auth-key={V3_AUTH_KEY}",
        "--v3-auth-proto=SHA",
        f"--v3-priv-key={V3_PRIV_KEY}",
        "--v3-priv-proto=AES",
    ]
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if asyncio.run(_wait_answering(process, port, community, within_s=30)):
        return process, port
    _stop(process)
    tail = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"snmpsim did not answer on 127.0.0.1:{port} (exit {process.returncode}):\n{tail}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """snmpsim on 127.0.0.1:<free port> serving a per-session copy of the recordings."""
    _responder()  # fail with the install command before copying anything
    workdir = tmp_path_factory.mktemp("snmpsim")
    data_dir = workdir / "data"
    shutil.copytree(RECORDINGS, data_dir)
    community = next(iter(sorted(p.stem for p in data_dir.glob("*.snmprec"))), None)
    if community is None:
        pytest.fail(f"no .snmprec recordings in {RECORDINGS}")
    process, port = _start(workdir, data_dir, community)
    try:
        yield SnmpSim("127.0.0.1", port, data_dir)
    finally:
        _stop(process)


@contextmanager
def serving(workdir: Path, recordings: Mapping[str, str]) -> Iterator[SnmpSim]:
    """snmpsim serving only ``recordings`` (name -> .snmprec text): a device's quirks
    (snmpsim's ``error`` variation answers an error status) without touching the shared
    recordings."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    for name, text in recordings.items():
        (data_dir / f"{name}.snmprec").write_text(text, encoding="utf-8")
    process, port = _start(workdir, data_dir, next(iter(recordings)))
    try:
        yield SnmpSim("127.0.0.1", port, data_dir)
    finally:
        _stop(process)


def _typed(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return Integer32(value)
    if isinstance(value, str | bytes):
        return OctetString(value.encode() if isinstance(value, str) else value)
    return value  # already a pysnmp value (Gauge32, Counter32, …)


async def snmp_set(host: str, port: int, community: str, oid: str, value: object) -> None:
    """SET one value (int -> Integer32, str/bytes -> OctetString, or a pysnmp value)."""
    await snmp_set_many(host, port, community, {oid: value})


async def snmp_set_many(host: str, port: int, community: str, values: Mapping[str, object]) -> None:
    """SET several values in one request; raise SnmpSetError unless every one was taken.

    A SET on a read-only record answers errorStatus 0 with noSuchInstance and
    changes nothing, so each varbind must echo the value that was sent.
    """
    wanted = {oid.lstrip("."): _typed(value) for oid, value in values.items()}
    engine = new_engine()  # cheap with the shared MIB view; still, batch SETs
    try:
        target = await UdpTransportTarget.create((host, port), timeout=2, retries=1)
        indication, status, index, binds = await set_cmd(
            engine,
            CommunityData(community, mpModel=1),
            target,
            ContextData(),
            *(ObjectType(ObjectIdentity(oid), value) for oid, value in wanted.items()),
            lookupMib=False,
        )
    finally:
        engine.close_dispatcher()
    if indication:
        raise SnmpSetError(f"SET {wanted}: {indication}")
    if int(status):
        raise SnmpSetError(f"SET {wanted}: error status {status.prettyPrint()} at {index}")
    for name, answered in binds:
        if isinstance(answered, _NO_VALUE) or answered != wanted.get(str(name)):
            raise SnmpSetError(
                f"SET {name} = {wanted.get(str(name))!r} not taken (answer"
                f" {answered.prettyPrint()}); is the record tagged :writecache in the .snmprec?"
            )
