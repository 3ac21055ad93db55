"""The site config an agent runs from (YAML), validated at start.

A bad config stops the agent with the key, the bad value and the fix
(see :mod:`agent.config_errors`). Ids are slugs; human names go in ``name``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.config_errors import ConfigError, load_yaml_model
from agent.secrets import SecretRef
from agent.wire import HumanName, Media, SiteKind, Slug


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttEndpoint(_Strict):
    """A broker address: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

    url: str = Field(description="mqtt://host:1883 or mqtts://host:8883")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("use mqtt://host:port or mqtts://host:port")
        return value

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None  # the validator checked it
        return host

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class BrokerConfig(MqttEndpoint):
    username: str | None = Field(default=None, description="defaults to the site id")
    password: SecretRef | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
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
    target: TcpTarget
    probes: Annotated[int, Field(ge=1, le=100)] = 5
    spacing_s: Annotated[float, Field(ge=0, le=10)] = 0.2
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 1.0


class SnmpCredentials(_Strict):
    version: Literal["2c"] = "2c"
    community: SecretRef


class DeviceConfig(_Strict):
    device: Slug
    role: Literal["ups", "rectifier", "generator", "ats", "router", "radio", "other"] = "ups"
    profile: str
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 161
    credentials: str
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1


class SiteConfig(_Strict):
    site: Slug
    province: Slug
    kind: SiteKind
    name: HumanName
    operator: Slug | None = None
    area: Slug | None = None
    area_name: HumanName | None = None
    hardened: bool = False
    site_class: Literal["ordinary", "hardened", "core"] = "ordinary"
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    interval_s: Annotated[float, Field(ge=1, le=3600)] = 30
    broker: BrokerConfig
    outbox: OutboxConfig = OutboxConfig()
    paths: tuple[PathConfig, ...] = ()
    snmp_credentials: dict[str, SnmpCredentials] = Field(default_factory=dict)
    devices: tuple[DeviceConfig, ...] = ()
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
            if device.credentials not in self.snmp_credentials:
                known = sorted(self.snmp_credentials) or "none defined"
                raise ValueError(
                    f"devices.{index}.credentials: {device.credentials!r} is not defined; "
                    f"add it under snmp_credentials (defined: {known})"
                )
        return self

    @property
    def mqtt_username(self) -> str:
        return self.broker.username or self.site


def load_site_config(path: Path) -> SiteConfig:
    """Load and validate a site config; raise ConfigError naming every problem."""
    config = load_yaml_model(path, SiteConfig)
    from agent.profiles import ProfileError, load_profile_by_name  # profiles are data files

    problems = []
    for index, device in enumerate(config.devices):
        try:
            load_profile_by_name(device.profile)
        except ProfileError as exc:
            problems.append(f"devices.{index}.profile: {exc}")
    if problems:
        raise ConfigError(str(path), problems)
    return config
