"""pytest plugin: a real Mosquitto on a free loopback port, from firmware-configs/mosquitto/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kienco.local_services import Mosquitto, ServiceError


class Broker(Mosquitto):
    """The product's local Mosquitto; a missing or broken one fails the test, never skips it."""

    def start(self) -> None:
        try:
            super().start()
        except ServiceError as exc:
            pytest.fail(str(exc))

    def restart(self, down_for_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for_s)
        self.start()


def _broker(workdir: Path, users: dict[str, str] | None = None) -> Broker:
    try:
        return Broker(workdir, users=users)
    except ServiceError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A shared anonymous broker with the shipped tuning; tests use their own topics."""
    broker = _broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of one's own, for tests that stop and restart it."""
    broker = _broker(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker with passwords and the shipped per-site ACL (agents log in as province/site)."""
    users = {"collector": "collector-secret", "hp/hp-bts-001": "s1", "qn/qn-bts-002": "s2"}
    broker = _broker(tmp_path / "mosquitto-acl", users)
    broker.start()
    yield broker
    broker.stop()
