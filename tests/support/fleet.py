"""A small synthetic fleet for tests that drive a real collector with wire messages.

Messages go through ``Collector.handle`` exactly as paho hands them over (topic and
bytes), so decoding, state, verdicts and everything after them are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from collector.service import Collector
from contract.topics import topic as topic_of
from contract.wire import (
    DeviceDecl,
    LinkReading,
    Media,
    Meta,
    PathDecl,
    PowerReading,
    Report,
    SiteKind,
)

PATHS: tuple[tuple[str, Media, str], ...] = (
    ("fibre-a", "fibre", "duct-1"),
    ("mw-b", "microwave", "tower-2"),
    ("vsat-c", "vsat", "sky-3"),
)


@dataclass
class FleetSite:
    site: str
    province: str = "hp"
    kind: SiteKind = "station"
    operator: str = "vnpt"
    name: str | None = None
    hardened: bool = False
    seq: int = field(default=0)

    def meta(self, at: datetime, *, interval_s: float = 60) -> Meta:
        return Meta(
            site=self.site,
            province=self.province,
            site_kind=self.kind,
            name=self.name or f"Trạm {self.site}",
            operator=self.operator,
            hardened=self.hardened,
            paths=tuple(PathDecl(path=p, media=m, srlg=(g,)) for p, m, g in PATHS),
            devices=(DeviceDecl(device="rect1", role="rectifier"),),
            interval_s=interval_s,
            agent_version="test",
            at=at,
        )

    def report(
        self,
        at: datetime,
        *,
        mains: bool = True,
        runtime_s: float = 6 * 3600,
        down: Iterable[str] = (),
        interval_s: float = 60,
    ) -> Report:
        """A DC plant (its own runtime figure, 30 % load) and three paths, some down."""
        self.seq += 1
        cut = set(down)
        power = PowerReading(
            device="rect1",
            mains_present=mains,
            on_battery=not mains,
            battery_status="normal",
            battery_charge_pct=100.0 if mains else 90.0,
            battery_runtime_s=runtime_s,
            load_pct=30.0,
        )
        links = tuple(
            LinkReading(
                path=p,
                media=m,
                srlg=(g,),
                up=p not in cut,
                rtt_ms=None if p in cut else 20.0,
                loss_pct=100.0 if p in cut else 0.0,
                probes_sent=5,
            )
            for p, m, g in PATHS
        )
        return Report(
            site=self.site,
            province=self.province,
            seq=self.seq,
            taken_at=at,
            interval_s=interval_s,
            power=(power,),
            links=links,
        )


def send(collector: Collector, message: Meta | Report) -> None:
    """Hand one message to the collector as its MQTT client would."""
    topic = topic_of(message.province, message.site, message.kind)
    collector.handle(topic, message.model_dump_json(exclude_none=True).encode(), 0, 0)


def send_all(collector: Collector, messages: Iterable[Meta | Report]) -> None:
    for message in messages:
        send(collector, message)


def by_site(alerts: Iterable[Mapping[str, object]]) -> dict[tuple[str, str], dict[str, str]]:
    """Alertmanager's sites' alerts keyed by (site, alertname): their labels (the
    collectors' alerts about themselves, which name no site, are left out)."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for alert in alerts:
        labels = alert["labels"]
        assert isinstance(labels, dict)
        if "site" not in labels:
            continue
        found[(labels["site"], labels["alertname"])] = labels
    return found
