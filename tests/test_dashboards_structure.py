"""The dashboards' JSON and provisioning as files: fresh, readable back by the Grafana
Foundation SDK's models, laid out without overlap, every query on the provisioned data
source, and provisioning YAML that Grafana's provisioning format accepts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard
from pydantic import BaseModel, ConfigDict, field_validator

from collector.config import InfluxConfig
from kienco.cli import main as kienco_main
from kienco.dashboards import build
from kienco.dashboards.common import SCHEMA_VERSION, TIMEZONE
from kienco.dashboards.influxql import DATASOURCE_MIN_INTERVAL, DATASOURCE_UID, InfluxQLQuery

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = REPO / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"
FILES = sorted(DASHBOARDS.glob("*.json"))
GRAFANA_MACROS = {"timeFilter", "interval", "__interval", "__interval_ms"}
ENV = re.compile(r"^\$\{[A-Z][A-Z0-9_]*\}$")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(data["panels"])


def test_the_four_dashboards_are_committed_and_fresh() -> None:
    assert [p.name for p in FILES] == sorted(b.filename for b in build.build_all())
    assert len(FILES) == 4
    assert build.stale(DASHBOARDS) == [], "run: kienco dashboards build"
    assert kienco_main(["dashboards", "build", "--check", "--out", str(DASHBOARDS)]) == 0


def test_a_stale_or_missing_file_fails_the_check(tmp_path: Path) -> None:
    assert kienco_main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    assert kienco_main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 0
    edited = tmp_path / FILES[0].name
    edited.write_text(edited.read_text(encoding="utf-8").replace("Tỉnh", "Tinh"), "utf-8")
    (tmp_path / FILES[1].name).unlink()
    assert build.stale(tmp_path) == sorted(
        [FILES[0].name, FILES[1].name], key=[b.filename for b in build.build_all()].index
    )
    assert kienco_main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_generated_marker_and_schema(path: Path) -> None:
    data = load(path)
    assert next(iter(data)) == "__generated" and "kienco dashboards build" in data["__generated"]
    assert data["schemaVersion"] == SCHEMA_VERSION == 41
    assert data["timezone"] == TIMEZONE == "Asia/Ho_Chi_Minh"
    assert data["editable"] is False
    assert re.fullmatch(r"kienco-[a-z-]+", data["uid"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_round_trips_through_the_sdk_models(path: Path) -> None:
    data = load(path)
    del data["__generated"]
    model = Dashboard.from_json(data)
    targets = [t for p in model.panels or [] for t in getattr(p, "targets", None) or []]
    assert targets and all(isinstance(t, InfluxQLQuery) for t in targets)
    assert json.loads(JSONEncoder().encode(model)) == data


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_panel_ids_unique_and_grid_without_overlap(path: Path) -> None:
    items = panels(load(path))
    ids = [p["id"] for p in items]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], int] = {}
    for panel in items:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"panel {panel['id']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["id"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_query_on_the_provisioned_data_source(path: Path) -> None:
    data = load(path)
    defined = {v["name"] for v in data["templating"]["list"]}
    for variable in data["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        else:  # the data the time series read: raw or trend (kienco/dashboards/retention.py)
            assert variable["name"] == "rp" and variable["type"] == "custom"
            values = [part.split(" : ")[-1] for part in variable["query"].split(",")]
            assert values == ["autogen", "trend"]
            assert [o["value"] for o in variable["options"]] == values
    queries = [v["query"] for v in data["templating"]["list"]]
    for panel in panels(data):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
            assert target["rawQuery"] is True
            assert target["resultFormat"] in ("time_series", "table")
            queries.append(target["query"])
    for query in queries:
        used = set(re.findall(r"\$(\w+)", query))
        assert used <= defined | GRAFANA_MACROS, (used - defined - GRAFANA_MACROS, query)
        if query.startswith("SELECT"):  # bounded in time: never a scan of all history
            assert "$timeFilter" in query or "now() - " in query or "${__to}ms - " in query


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_titles_in_vietnamese_descriptions_in_both(path: Path) -> None:
    data = load(path)
    vietnamese = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.I)
    assert vietnamese.search(data["title"]) or data["uid"] == "kienco-system"
    for panel in panels(data):
        assert vietnamese.search(panel["title"]), panel["title"]
        if panel["type"] != "row":
            vi, en = panel["description"].split("\n\n")
            assert vietnamese.search(vi) and not vietnamese.search(en), panel["title"]


def test_the_sdk_is_not_an_edge_box_dependency() -> None:
    code = (
        "import sys, kienco.cli; kienco.cli.build_parser(); "
        "print('grafana_foundation_sdk' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    dependencies = pyproject.split("[project.optional-dependencies]")[0]
    assert "grafana" not in dependencies
    assert '"grafana-foundation-sdk==1769699379!11.6.0"' in pyproject


# --- provisioning: Grafana's format (apiVersion 1), as models -------------------------------


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasourceJson(_Closed):
    version: Literal["InfluxQL"]
    dbName: str
    httpMode: Literal["GET", "POST"]
    timeInterval: str
    tlsAuthWithCACert: bool
    tlsSkipVerify: Literal[False]


class Datasource(_Closed):
    name: str
    uid: str
    type: Literal["influxdb"]
    access: Literal["proxy", "direct"]
    url: str
    user: str
    isDefault: bool
    editable: bool
    jsonData: DatasourceJson
    secureJsonData: dict[Literal["password", "tlsCACert"], str]

    @field_validator("url", "user")
    @classmethod
    def _from_env(cls, value: str) -> str:
        assert ENV.match(value), f"{value!r} must come from Grafana's environment"
        return value


class Datasources(_Closed):
    apiVersion: Literal[1]
    datasources: tuple[Datasource, ...]


class ProviderOptions(_Closed):
    path: str
    foldersFromFilesStructure: bool


class Provider(_Closed):
    name: str
    orgId: int
    folder: str
    folderUid: str
    type: Literal["file"]
    disableDeletion: bool
    allowUiUpdates: bool
    updateIntervalSeconds: int
    options: ProviderOptions


class Providers(_Closed):
    apiVersion: Literal[1]
    providers: tuple[Provider, ...]


def test_datasource_provisioning() -> None:
    (path,) = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    (source,) = Datasources.model_validate(yaml.safe_load(path.read_text("utf-8"))).datasources
    assert source.uid == DATASOURCE_UID
    assert source.jsonData.dbName == InfluxConfig().database  # what the collector writes to
    assert source.jsonData.httpMode == "POST"
    assert source.jsonData.timeInterval == DATASOURCE_MIN_INTERVAL  # what the replay assumes
    assert ENV.match(source.secureJsonData["password"]), "the password comes from the environment"
    assert "password" not in path.read_text("utf-8").split("secureJsonData")[0]
    # HTTPS as the collectors do it: a CA file, read by Grafana at start, and verification on.
    assert source.jsonData.tlsAuthWithCACert
    assert re.fullmatch(r"\$__file\{/[^{}]+\.crt\}", source.secureJsonData["tlsCACert"])


def test_dashboard_provider_reads_the_folder_from_the_environment() -> None:
    (path,) = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    (provider,) = Providers.model_validate(yaml.safe_load(path.read_text("utf-8"))).providers
    assert ENV.match(provider.options.path)
    assert provider.allowUiUpdates is False  # the JSON is generated: UI edits would be lost


def test_the_readme_says_how_to_point_a_grafana_at_them() -> None:
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "dashboards/provisioning" in readme and "KIENCO_DASHBOARDS" in readme
    assert "not rendered in a Grafana here" in readme
