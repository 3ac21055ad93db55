"""The site config an agent runs from (YAML), validated at start.

A bad config stops the agent with the key, the bad value and the fix
(see :mod:`plumbing.config_errors`). Ids are slugs; human names go in ``name``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.wire import HumanName, Media, PathPriority, SiteIdentity, Slug
from plumbing.config_errors import ConfigError, load_yaml_model
from plumbing.mqtt_endpoint import MqttEndpoint
from plumbing.secrets import SecretRef


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(MqttEndpoint):
    username: str | None = Field(
        default=None,
        description="defaults to <province>/<site>, what the shipped broker ACL binds to "
        "this site's topics in this province",
    )
    password: SecretRef | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    protocol: Literal[5, 4] = 5  # 5 = MQTT 5 (PUBACK reason codes), 4 = 3.1.1
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 86_400
    reconnect_min_s: Annotated[float, Field(gt=0)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0)] = 120.0


class OutboxConfig(_Strict):
    path: Path = Path("/var/lib/kienco/outbox.sqlite")
    max_age_h: Annotated[float, Field(ge=72, description="keep at least 72 h of reports")] = 96
    max_bytes: Annotated[int, Field(ge=1_000_000)] = 512 * 1024 * 1024
    drain_batch: Annotated[int, Field(ge=1, le=10_000)] = 200


class TcpTarget(_Strict):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]


class PathConfig(_Strict):
    path: Slug
    media: Media
    provider: Slug | None = None
    srlg: tuple[Slug, ...] = Field(default=(), description="shared-risk groups (duct, tower…)")
    priority: PathPriority | None = Field(
        default=None,
        description="the order the router uses this path in, 1 first (static routes, a "
        "floating route); leave out where the router picks the best path itself (SD-WAN)",
    )
    target: TcpTarget
    source: str | None = Field(
        default=None,
        description=(
            "this box's address on the path, for per-path tests; needs policy routing"
            " (ip rule from <source> lookup <the path's table>): without it the path is"
            " not probed and its reading says so"
        ),
    )
    probes: Annotated[int, Field(ge=1, le=100)] = 5
    spacing_s: Annotated[float, Field(ge=0, le=10)] = 0.2
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0


class SnmpV2cCredentials(_Strict):
    version: Literal["2c"] = "2c"
    community: SecretRef


class SnmpV3Credentials(_Strict):
    """An SNMPv3 USM user; authPriv (SHA + AES) when both keys are given."""

    version: Literal["3"]
    user: str
    auth_protocol: Literal["sha", "sha224", "sha256", "sha384", "sha512", "md5"] = "sha"
    auth_key: SecretRef | None = None
    priv_protocol: Literal["aes", "aes192", "aes256", "des"] = "aes"
    priv_key: SecretRef | None = None
    context: str = ""

    @model_validator(mode="after")
    def _keys(self) -> SnmpV3Credentials:
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("a priv_key needs an auth_key (SNMPv3 has no privacy without auth)")
        return self


# "version" may be left out for v2c, so the union is matched by shape, not by a tag.
SnmpCredentials = SnmpV2cCredentials | SnmpV3Credentials


class BatteryModel(_Strict):
    """This device's battery, as the site knows it: announced in meta for the rules.

    A UPS's own runtime figure is often a lie (65 535 s, 0 on line); the rules then
    estimate from the charge and this model, and call the hours unknown without it.
    """

    full_load_runtime_s: Annotated[float, Field(gt=0, le=7 * 86_400)] = Field(
        description="runtime from a full charge at 100 % load (datasheet or a measured test)"
    )


class DeviceConfig(_Strict):
    """A power device or router: polled over SNMP (a profile), NUT's upsd, or Modbus TCP."""

    device: Slug
    role: Literal["ups", "rectifier", "generator", "ats", "router", "radio", "other"] = "ups"
    protocol: Literal["snmp", "nut", "modbus"] = "snmp"
    profile: str | None = Field(
        default=None, description="the device profile (nut: optional, default nut)"
    )
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, description="default: 161 snmp, 3493 nut, 502 modbus"
    )
    credentials: str | None = Field(default=None, description="snmp: a key of snmp_credentials")
    ups: str | None = Field(default=None, description="nut: the UPS name upsd serves")
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # A generator controller seldom reports its burn rate: the site knows it, either
    # as a fixed rate or as the full-load rate scaled to the current load (agent/fuel.py).
    fuel_burn_l_per_h: Annotated[float, Field(gt=0, le=10_000)] | None = None
    fuel_burn_full_load_l_per_h: Annotated[float, Field(gt=0, le=10_000)] | None = None
    tank_l: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    battery: BatteryModel | None = None

    @model_validator(mode="after")
    def _per_protocol(self) -> DeviceConfig:
        needs = {"snmp": ("profile", "credentials"), "nut": ("ups",), "modbus": ("profile",)}
        missing = [key for key in needs[self.protocol] if getattr(self, key) is None]
        if missing:
            raise ValueError(f"a {self.protocol} device needs {', '.join(missing)}")
        if self.battery is not None and self.role not in ("ups", "rectifier", "other"):
            raise ValueError(f"a {self.role} has no battery: move battery to the ups or rectifier")
        return self

    @property
    def port_or_default(self) -> int:
        return self.port or {"snmp": 161, "nut": 3493, "modbus": 502}[self.protocol]


class TrapListener(_Strict):
    """SNMP traps (UPS on battery, alarms) become an event at once, not at the next poll."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=1, le=65535)] = 162
    communities: tuple[SecretRef, ...] = ()
    v3_users: tuple[str, ...] = Field(
        default=(), description="keys of snmp_credentials (version 3) accepted for v3 traps"
    )
    v3_engine_ids: tuple[str, ...] = Field(
        default=(),
        description="engine IDs of the devices sending v3 traps, hex as snmptrap -e takes (0x80…)",
    )


class CodecConfig(_Strict):
    """A hardware video codec with an HTTP status API (device knowledge in a room profile)."""

    profile: str = Field(description="firmware-configs/room-profiles/<profile>.yaml")
    url: str = Field(description="base URL of the codec's API, e.g. https://10.0.0.20")
    username: str | None = None
    password: SecretRef | None = None
    verify_tls: bool = False  # codecs ship self-signed certificates
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0


class PcRoomConfig(_Strict):
    """The meeting PC the agent runs on: its camera, audio and display, read from the OS."""

    root: Path = Field(default=Path("/"), description="filesystem root (tests use a fixture tree)")
    meeting_app: str | None = Field(
        default=None, description="process name of the meeting client, e.g. 'zoom' or 'teams'"
    )


class ThroughputConfig(_Strict):
    """A bounded throughput test against the collector, never during a call."""

    url: str = Field(description="the collector's API, e.g. https://collector:9108")
    max_bytes: Annotated[int, Field(ge=10_000, le=100_000_000)] = 2_000_000
    max_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    every_s: Annotated[float, Field(ge=60)] = 3600.0


class RoomConfig(_Strict):
    codec: CodecConfig | None = None
    pc: PcRoomConfig | None = None


class SiteConfig(SiteIdentity, _Strict):
    """A site config: the site's identity (contract.wire.SiteIdentity), then how to watch it."""

    name: HumanName
    interval_s: Annotated[float, Field(ge=1, le=3600)] = 30
    broker: BrokerConfig
    outbox: OutboxConfig = OutboxConfig()
    paths: tuple[PathConfig, ...] = ()
    snmp_credentials: dict[str, SnmpCredentials] = Field(default_factory=dict)
    devices: tuple[DeviceConfig, ...] = ()
    traps: TrapListener = TrapListener()
    room: RoomConfig | None = Field(default=None, description="meeting points: the room's devices")
    throughput: ThroughputConfig | None = None
    disk_path: Path = Path("/")

    @model_validator(mode="after")
    def _cross_checks(self) -> SiteConfig:
        seen_paths = [p.path for p in self.paths]
        if len(set(seen_paths)) != len(seen_paths):
            raise ValueError(f"paths: each path id must be unique (got {seen_paths})")
        seen_devices = [d.device for d in self.devices]
        if len(set(seen_devices)) != len(seen_devices):
            raise ValueError(f"devices: each device id must be unique (got {seen_devices})")
        for index, device in enumerate(self.devices):
            if device.protocol == "snmp" and device.credentials not in self.snmp_credentials:
                known = sorted(self.snmp_credentials) or "none defined"
                raise ValueError(
                    f"devices.{index}.credentials: {device.credentials!r} is not defined; "
                    f"add it under snmp_credentials (defined: {known})"
                )
        return self

    @property
    def mqtt_username(self) -> str:
        return self.broker.username or f"{self.province}/{self.site}"


def load_site_config(path: Path) -> SiteConfig:
    """Load and validate a site config; raise ConfigError naming every problem."""
    config = load_yaml_model(path, SiteConfig)
    # Profiles are data files: a typo in one stops the agent at start, not at the first poll.
    from agent.modbus_profile import ModbusProfileError, load_modbus_profile_by_name
    from agent.nut_profile import NutProfileError, load_nut_profile_by_name
    from agent.profiles import ProfileError, load_profile_by_name

    problems = []
    for index, device in enumerate(config.devices):
        if device.profile is None:
            continue  # a NUT device without one uses the shipped profile "nut"
        try:
            if device.protocol == "modbus":
                load_modbus_profile_by_name(device.profile)
            elif device.protocol == "nut":
                load_nut_profile_by_name(device.profile)
            else:
                load_profile_by_name(device.profile)
        except (ProfileError, ModbusProfileError, NutProfileError, ConfigError) as exc:
            problems.append(f"devices.{index}.profile: {exc}")
    if config.room is not None and config.room.codec is not None:
        from agent.room_profiles import RoomProfileError, load_room_profile_by_name

        try:
            load_room_profile_by_name(config.room.codec.profile)
        except RoomProfileError as exc:
            problems.append(f"room.codec.profile: {exc}")
    if problems:
        raise ConfigError(str(path), problems)
    return config
