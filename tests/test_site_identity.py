"""A site's identity is defined once (contract.wire.SiteIdentity) and means the same everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from agent.config import SiteConfig
from agent.meta import meta_message
from collector.inventory import COLUMNS, InventorySite, inventory_meta
from contract.wire import Meta, SiteIdentity
from kienco.demo.scenario import SiteSpec

NOW = datetime(2026, 9, 7, 3, 0, tzinfo=UTC)
IDENTITY = {
    "site": "hp-bts-001",
    "province": "hp",
    "kind": "station",
    "operator": "vnpt",
    "area": "hp-kien-an",
    "area_name": "Kiến An",
    "hardened": True,
    "site_class": "hardened",
    "latitude": 20.81,
    "longitude": 106.63,
}


def _field(model: type[BaseModel], name: str) -> tuple[object, object, object]:
    info = model.model_fields[name]
    return info.annotation, info.default, tuple(info.metadata)


@pytest.mark.parametrize("name", sorted(SiteIdentity.model_fields))
def test_meta_declares_each_identity_field_as_the_identity_does(name: str) -> None:
    """Meta keeps its own declarations (its field order is the published schema's)."""
    on_the_wire = "site_kind" if name == "kind" else name
    assert _field(Meta, on_the_wire) == _field(SiteIdentity, name)


@pytest.mark.parametrize("model", [SiteConfig, SiteSpec, InventorySite])
def test_every_site_model_is_an_identity(model: type[SiteIdentity]) -> None:
    assert issubclass(model, SiteIdentity)
    for name in set(SiteIdentity.model_fields) - {"area", "hardened"}:  # the register's musts
        assert _field(model, name) == _field(SiteIdentity, name), (model.__name__, name)


def test_the_inventory_csv_has_a_column_for_every_field() -> None:
    assert sorted(COLUMNS) == sorted(InventorySite.model_fields)


def test_a_config_and_its_inventory_entry_announce_the_same_identity() -> None:
    config = SiteConfig.model_validate(
        {**IDENTITY, "name": "Trạm Kiến An", "broker": {"url": "mqtt://127.0.0.1:1883"}}
    )
    listed = InventorySite.model_validate({**IDENTITY, "name": "Trạm Kiến An"})
    from_agent = meta_message(config, interval_s=30, now=NOW)
    from_inventory = inventory_meta(listed, interval_s=30)
    wanted = {("site_kind" if k == "kind" else k): v for k, v in IDENTITY.items()}
    for meta in (from_agent, from_inventory):
        assert meta.model_dump(include=set(wanted)) == wanted
        assert meta.name == "Trạm Kiến An"
    nameless = InventorySite.model_validate(IDENTITY)
    assert inventory_meta(nameless, interval_s=30).name == "hp-bts-001"
