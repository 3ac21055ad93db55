"""The national topology's brokers, started from the shipped files on loopback ports.

A provincial broker runs ``firmware-configs/mosquitto/provincial-hp.conf`` with ``hp``
replaced by its province, as the file tells an operator to do, and its bridge's
``address`` and ``remote_password`` pointed at the test's central broker (no TLS on the
bridge here: tests/test_tls.py covers TLS). A central broker runs ``central-a.conf``
with ``central-a.acl``. Only the listener, the paths and those settings change.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kienco.local_services import Mosquitto, ServiceError
from plumbing.data import firmware_configs

SHIPPED = firmware_configs() / "mosquitto"
PROVINCIAL = SHIPPED / "provincial-hp.conf"
CENTRAL = SHIPPED / "central-a.conf"
CENTRAL_ACL = SHIPPED / "central-a.acl"


def provincial_conf(province: str, into: Path) -> Path:
    """The shipped provincial config for ``province``: every ``hp`` outside comments replaced."""
    lines = [
        line if line.startswith("#") else re.sub(r"\bhp\b", province, line)
        for line in PROVINCIAL.read_text().splitlines()
    ]
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"provincial-{province}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def bridge_password(province: str) -> str:
    return f"bridge-{province}-secret"


def central_broker(workdir: Path, provinces: list[str], collectors: dict[str, str]) -> Mosquitto:
    """central-a.conf and its ACL; accounts for the provinces' bridges and the collectors."""
    users = {f"bridge-{p}": bridge_password(p) for p in provinces} | collectors
    try:
        return Mosquitto(workdir, users=users, conf=CENTRAL, acl=CENTRAL_ACL)
    except ServiceError as exc:
        pytest.fail(str(exc))


def provincial_broker(
    workdir: Path, province: str, *, centre_port: int, agents: dict[str, str] | None = None
) -> Mosquitto:
    """provincial-hp.conf made ``province``'s, bridged to 127.0.0.1:``centre_port``."""
    settings: dict[str, str | None] = {
        "address": f"127.0.0.1:{centre_port}",
        "remote_password": bridge_password(province),
        "bridge_cafile": None,  # a plain TCP bridge on loopback
        # Seconds, not the shipped 2-30 s: a test waits for the bridge's return.
        "restart_timeout": "1 2",
    }
    try:
        return Mosquitto(
            workdir,
            users=agents or {},
            conf=provincial_conf(province, workdir),
            settings=settings,
        )
    except ServiceError as exc:
        pytest.fail(str(exc))
