"""The simulated fleet: sites, a storm that happens to them, and their wire messages.

Sites are spread over the provinces (``hp-bts-000017``), one in 30 a meeting point, half
of the stations hardened (a generator with its tank). Every report is what the agent of
such a site sends (benchmarks/_common.py's realistic report: a UPS with ten values, a
generator, three paths on shared-risk groups, the host), rendered from a template: the
simulator makes thousands a second and must not spend a core on pydantic. The tests
validate rendered messages against the wire contract.

The storm (``Storm``) is a pure function of the time since the run began, in fractions
of the run: the first province loses mains at 20 % (batteries drain, hardened sites'
generators start a minute of scenario later), the fibre duct of the first two provinces
is cut at 30 %, sites whose battery runs out go dark (their agent stops: the rules see
them go stale), mains and fibre return at 80 %. So verdicts change and the rules do
real work, not idle reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from contract.wire import BatteryDecl, DeviceDecl, Meta, PathDecl, State

# Provinces by the codes kienco uses as topic levels (34 since July 2025; a sample).
PROVINCES: tuple[str, ...] = (
    "hn", "hp", "qn", "hcm", "dn", "ct", "th", "na", "ht", "qt", "hue", "qng", "kh", "gl",
    "dl", "ld", "dni", "tn", "lci", "lc", "cb", "ls", "tq", "pt", "bn", "hy", "ninhb", "sl",
    "dbn", "ag", "cm", "vl", "dt", "tni",
)  # fmt: skip
MEETING_EVERY = 30  # ~3 400 meeting points among ~103 000 sites
UPS_FULL_LOAD_RUNTIME_S = 3 * 3600.0
UPS_LOAD_PCT = 40.0


@dataclass(frozen=True, slots=True)
class Site:
    index: int
    province: str
    site: str
    kind: str  # station | meeting_point
    hardened: bool  # a generator and a tank

    def topic(self, kind: str) -> str:
        return f"kienco/v1/{self.province}/{self.site}/{kind}"

    @property
    def username(self) -> str:
        return f"{self.province}/{self.site}"


def make_sites(count: int, provinces: Sequence[str] = PROVINCES) -> list[Site]:
    sites = []
    for index in range(count):
        province = provinces[index % len(provinces)]
        meeting = index % MEETING_EVERY == MEETING_EVERY - 1
        kind = "meeting_point" if meeting else "station"
        name = f"{province}-{'dc' if meeting else 'bts'}-{index:06d}"
        # Every other site of a province (not of the fleet: that would follow the province).
        hardened = meeting or (index // len(provinces)) % 2 == 0
        sites.append(Site(index, province, name, kind, hardened=hardened))
    return sites


def _paths(site: Site) -> tuple[tuple[str, str, str, str], ...]:
    """(path, media, provider, shared-risk group): a fibre duct per province, a tower each."""
    return (
        ("fibre-vnpt", "fibre", "vnpt", f"duct-{site.province}"),
        ("mw-viettel", "microwave", "viettel", f"tower-{site.site}"),
        ("vsat", "vsat", "vnpt", ""),
    )


def meta_payload(site: Site, interval_s: float, at: datetime) -> bytes:
    devices = [
        DeviceDecl(
            device="ups1",
            profile="ups-mib",
            role="ups",
            battery=BatteryDecl(full_load_runtime_s=UPS_FULL_LOAD_RUNTIME_S),
        )
    ]
    if site.hardened:
        devices.append(
            DeviceDecl(device="gen1", profile="dse-gencomm", protocol="modbus", role="generator")
        )
    meta = Meta(
        site=site.site,
        province=site.province,
        site_kind=site.kind,  # type: ignore[arg-type]
        name=("Trạm BTS " if site.kind == "station" else "Điểm cầu ") + site.site,
        operator="vnpt",
        area=f"{site.province}-a{site.index % 20}",
        hardened=site.hardened and site.kind == "station",
        site_class="hardened" if site.hardened and site.kind == "station" else "ordinary",
        paths=tuple(
            PathDecl(path=p, media=m, provider=pr, srlg=(s,) if s else ())  # type: ignore[arg-type]
            for p, m, pr, s in _paths(site)
        ),
        devices=tuple(devices),
        interval_s=interval_s,
        agent_version="simulator",
        at=at,
    )
    return meta.model_dump_json(exclude_none=True).encode()


def state_payload(site: Site, state: str, at: datetime) -> bytes:
    message = State(site=site.site, province=site.province, state=state, at=at)  # type: ignore[arg-type]
    return message.model_dump_json().encode()


@dataclass(frozen=True)
class Storm:
    """What the storm does at a fraction ``f`` of the run (0 <= f <= 1), by province.

    ``drain_f``: the fraction of the run a full battery lasts on its own; a hardened
    site's generator starts ``generator_delay_f`` after mains fail and recharges it.
    """

    provinces_dark: tuple[str, ...] = ("hn",)
    provinces_cut: tuple[str, ...] = ("hn", "hp")
    mains_fail_f: float = 0.2
    fibre_cut_f: float = 0.3
    restore_f: float = 0.8
    drain_f: float = 0.3
    generator_delay_f: float = 0.02

    @classmethod
    def over(cls, provinces: Sequence[str]) -> Storm:
        """The storm on a fleet of these provinces: the first loses mains, the first two
        their fibre duct."""
        return cls(provinces_dark=tuple(provinces[:1]), provinces_cut=tuple(provinces[:2]))

    @classmethod
    def calm(cls) -> Storm:
        return cls(provinces_dark=(), provinces_cut=())

    def mains(self, province: str, f: float) -> bool:
        return not (province in self.provinces_dark and self.mains_fail_f <= f < self.restore_f)

    def fibre(self, province: str, f: float) -> bool:
        return not (province in self.provinces_cut and self.fibre_cut_f <= f < self.restore_f)

    def generator(self, site: Site, f: float) -> bool:
        return (
            site.hardened
            and not self.mains(site.province, f)
            and f >= self.mains_fail_f + self.generator_delay_f
        )

    def charge_pct(self, site: Site, f: float) -> float:
        if self.mains(site.province, f):
            return 100.0
        on_battery = f - self.mains_fail_f
        if site.hardened:  # the generator takes over after its delay
            on_battery = min(on_battery, self.generator_delay_f)
        return max(0.0, 100.0 * (1.0 - on_battery / self.drain_f))

    def dark(self, site: Site, f: float) -> bool:
        """No mains, no generator, an empty battery: the agent is down, nothing is sent."""
        return (
            not self.mains(site.province, f) and not site.hardened and self.charge_pct(site, f) <= 0
        )


_STATION = (
    '{"kind":"report","v":1,"site":"%s","province":"%s","seq":%d,"taken_at":"%s",'
    '"interval_s":%.1f,"power":[{"device":"ups1","profile":"ups-mib","mains_present":%s,'
    '"on_battery":%s,"battery_status":"%s","battery_charge_pct":%.1f,'
    '"battery_runtime_s":%.1f,"battery_voltage_v":%.2f,"battery_temperature_c":%.1f,'
    '"input_v":%.1f,"output_v":%.1f,"load_pct":%.1f}%s],'
    '"links":[{"path":"fibre-vnpt","media":"fibre","provider":"vnpt","srlg":["duct-%s"],%s},'
    '{"path":"mw-viettel","media":"microwave","provider":"viettel","srlg":["tower-%s"],"up":true,'
    '"rtt_ms":%.3f,"jitter_ms":%.3f,"loss_pct":0.0,"probes_sent":5},'
    '{"path":"vsat","media":"vsat","provider":"vnpt","srlg":[],"up":true,"rtt_ms":%.3f,'
    '"jitter_ms":%.3f,"loss_pct":0.0,"probes_sent":5}],'
    '"host":{"cpu_pct":%.1f,"memory_pct":%.1f,"disk_pct":%.1f,"temperature_c":%.1f,'
    '"uptime_s":%.1f,"outbox_depth":0%s}}'
)
_GENERATOR = (
    ',{"device":"gen1","profile":"dse-gencomm","on_generator":%s,"generator_running":%s,'
    '"fuel_pct":%.1f,"fuel_l":%.1f,"fuel_burn_l_per_h":3.5}'
)
_FIBRE_UP = '"up":true,"rtt_ms":%.3f,"jitter_ms":%.3f,"loss_pct":0.0,"probes_sent":5'
_FIBRE_DOWN = '"up":false,"loss_pct":100.0,"probes_sent":5'
_BOOL = ("false", "true")


def _noise(site: Site, seq: int, salt: int) -> float:
    """A cheap, repeatable number in [0, 1) for a site's reading at a seq."""
    return (math.sin(site.index * 12.9898 + seq * 78.233 + salt * 37.719) * 43758.5453) % 1.0


def report_payload(
    site: Site,
    seq: int,
    taken_at: str,
    interval_s: float,
    storm: Storm,
    f: float,
    *,
    clock_synced: bool | None = None,
) -> bytes:
    """The report of ``site`` number ``seq`` taken at ``taken_at`` (ISO, ``…Z``), at ``f``;
    its host says ``clock_synced`` when given (else nothing, as an older agent)."""
    mains = storm.mains(site.province, f)
    generator = storm.generator(site, f)
    charge = storm.charge_pct(site, f)
    on_battery = not mains and not generator
    status = "normal" if charge > 25 else "low" if charge > 0 else "depleted"
    runtime = UPS_FULL_LOAD_RUNTIME_S * 100 / UPS_LOAD_PCT * charge / 100
    n = _noise(site, seq, 1)
    gen = ""
    if site.hardened:
        fuel = 90.0 - (20.0 if generator else 0.0) * n
        gen = _GENERATOR % (_BOOL[generator], _BOOL[generator], fuel, fuel * 2.0)
    up = storm.fibre(site.province, f)
    fibre = _FIBRE_UP % (5 + 30 * n, 0.1 + 4 * n) if up else _FIBRE_DOWN
    text = _STATION % (
        site.site,
        site.province,
        seq,
        taken_at,
        interval_s,
        _BOOL[mains],
        _BOOL[on_battery],
        status,
        charge,
        runtime,
        53.5 + n if mains or generator else 48.0 + 4 * charge / 100,
        24 + 6 * n,
        220 + 10 * n if mains else 0.0,
        230.0 if mains or generator or charge > 0 else 0.0,
        UPS_LOAD_PCT,
        gen,
        site.province,
        fibre,
        site.site,
        10 + 30 * n,
        0.1 + n,
        550 + 150 * n,
        1 + 4 * n,
        2 + 18 * n,
        30 + 20 * n,
        10 + 20 * n,
        40 + 20 * n,
        10_000.0 + seq * interval_s,
        "" if clock_synced is None else f',"clock_synced":{_BOOL[clock_synced]}',
    )
    return text.encode()


def utc_iso(epoch_s: float) -> str:
    """``2026-12-04T18:02:24.428524Z``: the wire's UTC time, cheaper than datetime's isoformat."""
    whole = int(epoch_s)
    micro = int((epoch_s - whole) * 1_000_000)
    return f"{datetime.fromtimestamp(whole, UTC):%Y-%m-%dT%H:%M:%S}.{micro:06d}Z"
