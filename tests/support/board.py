"""A collector with a token per role and sites in two provinces, for the access tests.

Real collector, real broker; sites come in as messages through the collector's
decode path (``Collector.handle``), as from agents.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.config import CollectorConfig
from collector.service import Collector
from collector.web.tokens import new_token, pbkdf2_hash, sha256_hex
from contract.wire import Meta
from tests.support.mosquitto import Broker

ROLES = {
    "noc": "noc",
    "hp": "province:hp",
    "qn": "province:qn",
    "ministry": "ministry",
    "admin": "admin",
}
SITES = {
    "hp": ("hp-dc-1", "hp-dc-2", "hp-bts-1"),
    "qn": ("qn-dc-1", "qn-bts-1"),
}


@dataclass
class Board:
    collector: Collector
    tokens: dict[str, str]  # role key -> the token itself

    @property
    def url(self) -> str:
        assert self.collector.api is not None
        return self.collector.api.url

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}


def token_entries(tokens: dict[str, str]) -> list[dict[str, str]]:
    entries = []
    for who, token in tokens.items():
        entry = {"name": f"{who}-token", "role": ROLES[who]}
        if who == "ministry":  # one kept the slow way, so both ways are exercised
            entry["pbkdf2"] = pbkdf2_hash(token, iterations=10_000)
        else:
            entry["sha256"] = sha256_hex(token)
        entries.append(entry)
    return entries


def board_config(
    tmp_path: Path, broker: Broker, tokens: dict[str, str], **http: Any
) -> CollectorConfig:
    return CollectorConfig.model_validate(
        {
            "broker": {
                "url": broker.url,
                "username": None,
                "client_id": f"board-{time.time_ns()}",
                "topic_filter": "kienco/v1/board-nothing/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0, "tokens": token_entries(tokens), **http},
        }
    )


def meta(site: str, province: str) -> bytes:
    return (
        Meta(
            site=site,
            province=province,
            site_kind="meeting_point" if "-dc-" in site else "station",
            name=f"Điểm {site}",
            interval_s=60,
            agent_version="t",
            at=datetime.now(UTC),
        )
        .model_dump_json()
        .encode()
    )


def start_board(tmp_path: Path, broker: Broker, **http: Any) -> Board:
    tokens = {who: new_token() for who in ROLES}
    collector = Collector(board_config(tmp_path, broker, tokens, **http))
    collector.start()
    assert collector.wait_connected(10)
    for province, sites in SITES.items():
        for site in sites:
            collector.handle(f"kienco/v1/{province}/{site}/meta", meta(site, province), 0, 0)
    # A message the collector refuses: a dead letter to list.
    collector.handle("kienco/v1/qn/qn-dc-1/report", b"{not json", 0, 0)
    return Board(collector, tokens)


def wait_until(check: Callable[[], Any], timeout_s: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what}: not reached within {timeout_s} s")
