"""A small province for the board's tests: sites told to the collector through its decode path.

Each site is a meta and a report, handed to ``Collector.handle`` as the broker
would hand them (the agents' own wire messages), with a long interval so they stay
fresh for the length of a test. The browser test adds one real agent on top.
"""

from __future__ import annotations

from datetime import UTC, datetime

from collector.service import Collector
from contract.wire import (
    DeviceDecl,
    LinkReading,
    Meta,
    PathDecl,
    PowerReading,
    Report,
    SiteKind,
)

INTERVAL_S = 600.0
FIBRE = PathDecl(path="fibre-vnpt", media="fibre", provider="vnpt", srlg=("duct-a",))
MICROWAVE = PathDecl(path="mw-viettel", media="microwave", provider="viettel", srlg=("mast-b",))
UPS = DeviceDecl(device="ups1", profile="ups-mib", role="ups")
GENERATOR = DeviceDecl(device="gen1", profile="dse-gencomm", protocol="modbus", role="generator")


def _link(decl: PathDecl, up: bool, rtt_ms: float) -> LinkReading:
    return LinkReading(
        path=decl.path,
        media=decl.media,
        provider=decl.provider,
        srlg=decl.srlg,
        up=up,
        rtt_ms=rtt_ms if up else None,
        jitter_ms=1.5 if up else None,
        loss_pct=0.0 if up else 100.0,
        probes_sent=3,
    )


def tell(
    collector: Collector,
    site: str,
    province: str,
    kind: SiteKind,
    name: str,
    *,
    power: tuple[PowerReading, ...] = (),
    devices: tuple[DeviceDecl, ...] = (UPS,),
    links_up: tuple[bool, bool] = (True, True),
    seq: int = 0,
) -> None:
    """The site's meta and one report, through the collector's decode path."""
    now = datetime.now(UTC)
    meta = Meta(
        site=site,
        province=province,
        site_kind=kind,
        name=name,
        operator="vnpt",
        paths=(FIBRE, MICROWAVE),
        devices=devices,
        interval_s=INTERVAL_S,
        agent_version="test",
        at=now,
    )
    report = Report(
        site=site,
        province=province,
        seq=seq,
        taken_at=now,
        interval_s=INTERVAL_S,
        power=power,
        links=(_link(FIBRE, links_up[0], 12.0), _link(MICROWAVE, links_up[1], 31.0)),
    )
    for message in (meta, report):
        topic = f"kienco/v1/{province}/{site}/{message.kind}"
        collector.handle(topic, message.model_dump_json().encode(), 0, 0)


def on_mains() -> tuple[PowerReading, ...]:
    return (
        PowerReading(
            device="ups1",
            mains_present=True,
            on_battery=False,
            battery_charge_pct=100,
            battery_runtime_s=5400,
        ),
    )


def on_battery(runtime_s: float) -> tuple[PowerReading, ...]:
    return (
        PowerReading(
            device="ups1",
            mains_present=False,
            on_battery=True,
            battery_charge_pct=40,
            battery_runtime_s=runtime_s,
        ),
    )


def on_generator() -> tuple[PowerReading, ...]:
    return (
        PowerReading(device="ups1", mains_present=False, on_battery=False, battery_charge_pct=95),
        PowerReading(
            device="gen1", generator_running=True, fuel_pct=60, fuel_l=300, fuel_burn_l_per_h=9
        ),
    )


def a_province(collector: Collector, province: str) -> None:
    """A station on battery, one on generator, one on mains with a path down, and a
    meeting point on mains: a province in a storm."""
    tell(
        collector,
        f"{province}-bts-kien-an",
        province,
        "station",
        "Trạm BTS Kiến An",
        power=on_battery(4800),
    )
    tell(
        collector,
        f"{province}-bts-do-son",
        province,
        "station",
        "Trạm BTS Đồ Sơn",
        power=on_generator(),
        devices=(UPS, GENERATOR),
    )
    tell(
        collector,
        f"{province}-bts-cat-ba",
        province,
        "station",
        "Trạm BTS Cát Bà",
        power=on_mains(),
        links_up=(True, False),
    )
    tell(
        collector,
        f"{province}-dc-tp",
        province,
        "meeting_point",
        "Điểm cầu UBND thành phố",
        power=on_mains(),
    )
