"""The wire contract: every message an agent sends, and the status the collector returns.

The agent owns this module (it is what the agent promises to send); the collector
imports it to validate what arrives. ``kienco schema`` prints the JSON Schema of
each model so agents in other languages can be written against it.

Conventions, everywhere:
- units are in the field names (``_s``, ``_pct``, ``_v``, ``_a``, ``_l``, ``_ms``,
  ``_c``, ``_mbps``), one unit per quantity;
- unknown is ``null``, never 0;
- times are UTC with an explicit offset; naive times are refused;
- ids are lowercase slugs (they become MQTT topic levels and InfluxDB tags);
- unknown fields, wrong types, NaN/inf and physically absurd values are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

SCHEMA_VERSION: Literal[1] = 1

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=64)]
"""A short lowercase id: province, site, device, path, provider, shared-risk group."""


# The times kienco can store: InfluxDB's int64 nanoseconds since the epoch.
EARLIEST = datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)


def _to_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+07:00 has no UTC form; pydantic wants ValueError
        raise ValueError(
            f"{value.isoformat()} has no UTC form (before year 1 or after 9999)"
        ) from None
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(
            f"{utc.isoformat()} is outside the times kienco can store "
            f"({EARLIEST.isoformat()} to {LATEST.isoformat()}): check the sender's clock"
        )
    return utc


def _each_once(key: Callable[[Any], object], what: str) -> AfterValidator:
    """A tuple of readings (or declarations) that names each thing once: two readings of
    one path taken at one time are ambiguous (the collector's fold would keep one, another
    consumer of the broker the other), so a message that gives one twice is refused."""

    def check(items: tuple[Any, ...]) -> tuple[Any, ...]:
        seen: set[object] = set()
        for item in items:
            name = key(item)
            if name in seen:
                raise ValueError(f"{what} {name!r} given twice: each must be given once")
            seen.add(name)
        return items

    return AfterValidator(check)


def utc_text(value: datetime) -> str:
    """The one written form of a time in kienco's JSON: UTC, ISO 8601, ``Z``
    (``2026-12-07T07:00:00Z``, ``2026-12-07T07:00:00.250000Z``), as pydantic writes
    a UTC time. The API, /healthz and the CLI's JSON write every time through it."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no time zone: which UTC time is it?")
    return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    # Written by pydantic itself, as utc_text writes it (UTC, "Z"): every value is UTC
    # once validated, and a time taken from outside is made UTC where it comes in (the
    # what-if's "at"). A serializer calling utc_text cost 1.7 µs a field, on every
    # verdict's JSON.
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
"""A timezone-aware time, normalised to UTC, that InfluxDB's nanoseconds can hold;
written as :func:`utc_text` in JSON."""

SiteKind = Literal["station", "power_room", "meeting_point"]
Media = Literal["fibre", "microwave", "vsat", "cellular", "copper", "other"]
Verdict = Literal["ready", "degraded", "not_ready", "unknown"]
StationState = Literal[
    "up_commercial",
    "up_generator",
    "up_battery",
    "down_power",
    "down_transport",
    "down_damage",
    "unknown",
]
Severity = Literal["info", "warning", "critical"]

Pct = Annotated[float, Field(ge=0, le=100)]
LoadPct = Annotated[float, Field(ge=0, le=300)]  # overload is real; 300 % is not
Volts = Annotated[float, Field(ge=-1000, le=1000)]  # DC plants report -48 V
Amps = Annotated[float, Field(ge=-10_000, le=10_000)]
Celsius = Annotated[float, Field(ge=-60, le=150)]
Seconds = Annotated[float, Field(ge=0, le=366 * 86_400)]
Millis = Annotated[float, Field(ge=0, le=600_000)]
Litres = Annotated[float, Field(ge=0, le=1_000_000)]
Count = Annotated[int, Field(ge=0, le=2**53)]
ErrorText = Annotated[str, StringConstraints(max_length=500)]


class WireModel(BaseModel):
    """Base of every wire model: strict, closed, immutable, finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class PowerReading(WireModel):
    """One power device (UPS, rectifier plant, generator controller, ATS) at one poll."""

    device: Slug
    profile: Annotated[str, StringConstraints(max_length=64)] | None = None
    error: ErrorText | None = None
    mains_present: bool | None = None
    on_battery: bool | None = None
    on_generator: bool | None = None
    battery_status: Literal["normal", "low", "depleted", "unknown"] | None = None
    battery_charge_pct: Pct | None = None
    battery_runtime_s: Seconds | None = None
    battery_voltage_v: Volts | None = None
    battery_temperature_c: Celsius | None = None
    battery_capacity_ah: Annotated[float, Field(ge=0, le=100_000)] | None = None
    on_battery_for_s: Seconds | None = None
    input_v: Volts | None = None
    output_v: Volts | None = None
    load_pct: LoadPct | None = None
    load_w: Annotated[float, Field(ge=0, le=10_000_000)] | None = None
    dc_voltage_v: Volts | None = None
    dc_load_a: Amps | None = None
    generator_running: bool | None = None
    fuel_pct: Pct | None = None
    fuel_l: Litres | None = None
    fuel_burn_l_per_h: Annotated[float, Field(ge=0, le=10_000)] | None = None
    alarms_count: Count | None = None
    input_line_bads_count: Count | None = None
    # Added to v1, optional: the UPS says its output is switched off (UPS-MIB
    # upsOutputSource none, APC off or sleeping, NUT OFF): what it feeds is dark,
    # whatever its input and battery say. This and on_bypass are sent by every UPS
    # profile; collectors before them refuse the report: upgrade the collectors first.
    output_off: bool | None = None
    # Added to v1, optional: the UPS feeds its load from the mains through its bypass
    # (a fault, an overload, a maintenance switch): if the mains fails now, its battery
    # does not take over.
    on_bypass: bool | None = None


class LinkReading(WireModel):
    """One declared link path, measured over several probes in one cycle."""

    path: Slug
    media: Media
    provider: Slug | None = None
    srlg: tuple[Slug, ...] = ()
    error: ErrorText | None = None
    up: bool | None = None
    rtt_ms: Millis | None = None
    jitter_ms: Millis | None = None
    loss_pct: Pct | None = None
    # How many probes measured ``up``, ``rtt_ms``, ``loss_pct``. With none (0, the default
    # for agents that leave it out) nothing measured the path: the rules count it unknown,
    # neither up nor down (rules/paths.py). Taken, not refused: refusing it would refuse
    # the report's power readings with it.
    probes_sent: Annotated[int, Field(ge=0, le=10_000)] = 0
    bandwidth_up_mbps: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    bandwidth_down_mbps: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    # Added to v1, optional: the path's last bandwidth test failed, in one direction or
    # both (what failed); that direction's figure is null: not known now, never the figure
    # of an earlier test. Sent only then (null fields are left out). Collectors before it
    # refuse reports that carry it (no unknown field passes): upgrade the collectors first.
    bandwidth_error: ErrorText | None = None


class InterfaceReading(WireModel):
    """One transmission port of the site router or radio (IF-MIB, radio MIBs)."""

    device: Slug
    port: Slug
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    error: ErrorText | None = None
    oper_up: bool | None = None
    admin_up: bool | None = None
    speed_mbps: Annotated[float, Field(ge=0, le=10_000_000)] | None = None
    in_octets_total: Count | None = None
    out_octets_total: Count | None = None
    in_errors_total: Count | None = None
    out_errors_total: Count | None = None
    # Microwave radios: the received signal level falls before a link fails in heavy rain.
    rsl_dbm: Annotated[float, Field(ge=-150, le=30)] | None = None
    snr_db: Annotated[float, Field(ge=-50, le=100)] | None = None


class HostReading(WireModel):
    """The edge box itself."""

    error: ErrorText | None = None
    cpu_pct: Pct | None = None
    memory_pct: Pct | None = None
    disk_pct: Pct | None = None
    temperature_c: Celsius | None = None
    uptime_s: Annotated[float, Field(ge=0, le=100 * 366 * 86_400)] | None = None
    # While synchronised: the offset the kernel's NTP loop is still correcting, positive
    # when the clock is behind its time source (ntpq's sign); null otherwise.
    clock_offset_ms: Annotated[float, Field(ge=-86_400_000, le=86_400_000)] | None = None
    outbox_depth: Count | None = None
    outbox_dropped_total: Count | None = None
    # Added to v1, optional: how many times the outbox file was found corrupt and replaced.
    outbox_resets_total: Count | None = None
    # Added to v1, optional: the kernel says its clock is synchronised to a time source
    # (NTP, chrony or systemd-timesyncd disciplines it), as timedatectl says it; null
    # where it cannot be read (not Linux, the call refused).
    clock_synced: bool | None = None
    # Added to v1, optional: while synchronised, the kernel's bound on the clock's error
    # (its maxerror); it grows 0.5 ms a second while the time source is silent, and at
    # 16 s the clock is unsynchronised. Null otherwise.
    clock_max_error_ms: Annotated[float, Field(ge=0, le=16_000)] | None = None


class RoomReading(WireModel):
    """The meeting room's conference system (meeting points only)."""

    error: ErrorText | None = None
    codec_reachable: bool | None = None
    codec_registered: bool | None = None
    camera_ok: bool | None = None
    microphone_ok: bool | None = None
    speaker_ok: bool | None = None
    display_ok: bool | None = None
    in_call: bool | None = None


class Report(WireModel):
    """A periodic report: everything one poll cycle measured at one site."""

    kind: Literal["report"] = "report"
    v: Literal[1] = SCHEMA_VERSION
    site: Slug
    province: Slug
    # Rises by one per message of the agent (reports and events), kept across restarts
    # by its outbox; a new outbox starts from its clock's Unix seconds, above any earlier
    # box's at the site (agent/outbox.py).
    seq: Count
    # Which outbox numbered ``seq``: a random number made with the outbox and kept with
    # it (agent/outbox.py). ``seq`` orders the reports of one outbox only; another one at
    # the same site (a box replaced, its outbox deleted or unreadable) is a new numbering,
    # whatever its clock says (rules/snapshot.py). Optional: agents before it do not send
    # it. Collectors before it refuse reports that carry it (no unknown field passes):
    # upgrade the collectors first.
    outbox: Annotated[int, Field(ge=0, le=2**53)] | None = None
    taken_at: UtcTime
    interval_s: Annotated[float, Field(gt=0, le=86_400)]
    power: Annotated[tuple[PowerReading, ...], _each_once(lambda r: r.device, "device")] = ()
    links: Annotated[tuple[LinkReading, ...], _each_once(lambda r: r.path, "path")] = ()
    interfaces: Annotated[
        tuple[InterfaceReading, ...], _each_once(lambda r: (r.device, r.port), "port")
    ] = ()
    host: HostReading | None = None
    room: RoomReading | None = None


EventName = Literal[
    "on_battery",
    "on_mains",
    "battery_low",
    "alarm",
    "alarm_cleared",
    "test",
    "threshold",
    "rehearsal",  # a pre-meeting check ran; detail names the meeting
]


class Event(WireModel):
    """Something that should not wait for the next poll (an SNMP trap, a threshold)."""

    kind: Literal["event"] = "event"
    v: Literal[1] = SCHEMA_VERSION
    site: Slug
    province: Slug
    seq: Count
    at: UtcTime
    event: EventName
    device: Slug | None = None
    detail: ErrorText | None = None
    power: PowerReading | None = None


class Command(WireModel):
    """What the collector asks of an agent, on its site's ``command`` topic."""

    kind: Literal["command"] = "command"
    v: Literal[1] = SCHEMA_VERSION
    site: Slug
    province: Slug
    command: Literal["rehearse"]
    meeting: Slug | None = None
    at: UtcTime


PathPriority = Annotated[int, Field(ge=1, le=99)]


class PathDecl(WireModel):
    """A link path as the site declares it."""

    path: Slug
    media: Media
    provider: Slug | None = None
    srlg: tuple[Slug, ...] = ()
    # Added to v1, optional: the order in which the site's router sends its traffic over
    # its paths, 1 first (static routes, a floating route's distance): a call rides the up
    # path of the lowest number, whatever the others measure. None: the router picks the
    # best path itself (SD-WAN), or the order is not known. Collectors before it refuse a
    # meta that gives it: upgrade the collectors first.
    priority: PathPriority | None = None


class BatteryDecl(WireModel):
    """What the site config says of one device's battery (added to v1: optional).

    Vendors' runtime figures lie (a 16-bit cap of 65 535 s, 0 on line): the rules
    then estimate the runtime from the charge and *this* battery's full-load runtime,
    and say the hours are unknown when the site gives none.
    """

    full_load_runtime_s: Annotated[float, Field(gt=0, le=7 * 86_400)]


class DeviceDecl(WireModel):
    device: Slug
    profile: Annotated[str, StringConstraints(max_length=64)] | None = None
    protocol: Literal["snmp", "nut", "modbus"] = "snmp"
    role: Literal["ups", "rectifier", "generator", "ats", "router", "radio", "other"]
    battery: BatteryDecl | None = None  # optional: agents before it still validate


HumanName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
SiteClass = Literal["ordinary", "hardened", "core"]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class SiteIdentity(BaseModel):
    """Who and where a site is, defined once: its config, the demo's scenario and the
    expected fleet (the inventory) all say it, and its ``Meta`` carries it.

    No model config of its own: each model that builds on it keeps its own (a wire
    message is strict, a YAML config is not). The human ``name`` is each model's own: the
    inventory may leave it out. ``Meta`` declares the same fields in place (``kind`` as
    ``site_kind``): its field order is the published schema's, which the JSON Schema and
    every meta message print in; tests/test_site_identity.py holds them equal.
    """

    site: Slug
    province: Slug
    kind: SiteKind
    operator: Slug | None = None
    area: Slug | None = None
    area_name: HumanName | None = None
    hardened: bool = False
    site_class: SiteClass = "ordinary"
    latitude: Latitude | None = None
    longitude: Longitude | None = None

    def meta_fields(self) -> dict[str, Any]:
        """These fields as ``Meta`` names them."""
        fields = {name: getattr(self, name) for name in SiteIdentity.model_fields}
        fields["site_kind"] = fields.pop("kind")
        return fields


class Meta(WireModel):
    """The retained description of a site, as its agent announces it."""

    kind: Literal["meta"] = "meta"
    v: Literal[1] = SCHEMA_VERSION
    # SiteIdentity's fields, in the published order.
    site: Slug
    province: Slug
    site_kind: SiteKind
    name: HumanName
    operator: Slug | None = None
    area: Slug | None = None
    area_name: HumanName | None = None
    hardened: bool = False
    site_class: SiteClass = "ordinary"
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    paths: Annotated[tuple[PathDecl, ...], _each_once(lambda d: d.path, "path")] = ()
    devices: Annotated[tuple[DeviceDecl, ...], _each_once(lambda d: d.device, "device")] = ()
    interval_s: Annotated[float, Field(gt=0, le=86_400)]
    agent_version: Annotated[str, StringConstraints(max_length=40)]
    at: UtcTime


class State(WireModel):
    """Retained birth (``online``) or Last Will (``offline``) of an agent."""

    kind: Literal["state"] = "state"
    v: Literal[1] = SCHEMA_VERSION
    site: Slug
    province: Slug
    state: Literal["online", "offline"]
    at: UtcTime


class Reason(WireModel):
    """Why a site is not ready: a code, texts in Vietnamese and English, the numbers."""

    rule: Slug
    code: Slug
    severity: Severity
    text_vi: str
    text_en: str
    numbers: dict[str, float | None] = Field(default_factory=dict)


class Status(WireModel):
    """The verdict on one site, published retained by the collector."""

    kind: Literal["status"] = "status"
    v: Literal[1] = SCHEMA_VERSION
    site: Slug
    province: Slug
    site_kind: SiteKind | None = None
    name: HumanName | None = None
    verdict: Verdict
    station_state: StationState
    evaluated_at: UtcTime
    risk_level: Annotated[int, Field(ge=0, le=5)] = 0
    backup_hours: Annotated[float, Field(ge=0)] | None = None
    dark_in_s: Annotated[float, Field(ge=0)] | None = None
    independent_paths_up: Annotated[int, Field(ge=0)] | None = None
    last_report_at: UtcTime | None = None
    reasons: tuple[Reason, ...] = ()


Message = Report | Event | Meta | State | Status | Command
MESSAGE_MODELS: dict[str, type[WireModel]] = {
    "report": Report,
    "event": Event,
    "meta": Meta,
    "state": State,
    "status": Status,
    "command": Command,
}


def json_schemas() -> dict[str, object]:
    """The JSON Schema of every wire message, keyed by message kind."""
    return {name: model.model_json_schema() for name, model in MESSAGE_MODELS.items()}


def utc_now() -> datetime:
    return datetime.now(UTC)
