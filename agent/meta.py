"""The retained ``meta`` message: how a site describes itself, from its config or a simulation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, Protocol

from agent import __version__
from contract.wire import BatteryDecl, DeviceDecl, Media, Meta, PathDecl

Role = Literal["ups", "rectifier", "generator", "ats", "router", "radio", "other"]


class _Path(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def media(self) -> Media: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def srlg(self) -> tuple[str, ...]: ...


class _Device(Protocol):
    @property
    def device(self) -> str: ...
    @property
    def profile(self) -> str | None: ...
    @property
    def role(self) -> Role: ...


class SiteDescription(Protocol):
    """A site config or a simulated site's spec: a ``contract.wire.SiteIdentity`` with a
    name, paths and devices."""

    def meta_fields(self) -> dict[str, Any]: ...
    @property
    def name(self) -> str: ...
    @property
    def paths(self) -> Iterable[_Path]: ...
    @property
    def devices(self) -> Iterable[_Device]: ...


def _battery(device: _Device) -> BatteryDecl | None:
    """The battery model the site config gives for this device, if any (batteries only)."""
    runtime = getattr(getattr(device, "battery", None), "full_load_runtime_s", None)
    return None if runtime is None else BatteryDecl(full_load_runtime_s=float(runtime))


def meta_message(
    site: SiteDescription, *, interval_s: float, now: datetime, agent_version: str = __version__
) -> Meta:
    return Meta(
        **site.meta_fields(),
        name=site.name,
        paths=tuple(
            PathDecl(
                path=p.path,
                media=p.media,
                provider=p.provider,
                srlg=tuple(p.srlg),
                priority=getattr(p, "priority", None),  # a site config's; a demo spec has none
            )
            for p in site.paths
        ),
        devices=tuple(
            DeviceDecl(
                device=d.device,
                profile=d.profile,
                role=d.role,
                protocol=getattr(d, "protocol", "snmp"),
                battery=_battery(d),
            )
            for d in site.devices
        ),
        interval_s=interval_s,
        agent_version=agent_version,
        at=now,
    )
