"""A raw InfluxQL target for the Grafana Foundation SDK, which has no InfluxDB builder.

:class:`InfluxQLQuery` is the model (what a panel's ``targets`` hold, as Grafana's
InfluxDB data source stores a raw query); :class:`InfluxQL` builds one. Importing
this module registers the model for data source type ``influxdb``, so
``Dashboard.from_json`` reads our targets back as ``InfluxQLQuery``.

A builder also says what its query must return (:class:`Expect`): the tests run
every query on a real InfluxDB and check it; the JSON does not carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = [
    "DATASOURCE",
    "DATASOURCE_MIN_INTERVAL",
    "DATASOURCE_UID",
    "Expect",
    "InfluxQL",
    "InfluxQLQuery",
    "ResultFormat",
]

DATASOURCE_UID = "kienco-influxdb"  # dashboards/provisioning/datasources/kienco.yaml
DATASOURCE = DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
DATASOURCE_MIN_INTERVAL = "30s"  # the provisioned timeInterval: the agents' report interval

ResultFormat = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target, as Grafana's InfluxDB data source saves one."""

    def __init__(
        self,
        ref_id: str = "A",
        query: str = "",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        datasource: DataSourceRef | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        datasource = data.get("datasource")
        return cls(
            ref_id=data["refId"],
            query=data["query"],
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource=None if datasource is None else DataSourceRef.from_json(datasource),
        )


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier="influxdb", from_json_hook=InfluxQLQuery.from_json)
)


@dataclass(frozen=True, slots=True)
class Expect:
    """What a query must return for its panel, checked on a real InfluxDB.

    ``columns``: value columns every series carries, each with a value somewhere;
    ``tags``: the GROUP BY tags each series is keyed by; ``single``: one row per series
    (a stat, a "now" table row); ``sparse``: columns that may rightly be empty at a
    given moment (time to dark while no site is off mains).
    """

    columns: tuple[str, ...]
    tags: tuple[str, ...] = ()
    single: bool = False
    sparse: tuple[str, ...] = ()


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builds one raw InfluxQL target on the kienco data source."""

    def __init__(
        self,
        query: str,
        expect: Expect,
        *,
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        ref_id: str = "A",
    ) -> None:
        self.query = " ".join(query.split())  # one line, as Grafana's editor keeps it
        self.expect = expect
        self.result_format: ResultFormat = result_format
        self.alias = alias
        self.ref_id = ref_id

    def build(self) -> InfluxQLQuery:
        return InfluxQLQuery(self.ref_id, self.query, self.result_format, self.alias, DATASOURCE)
