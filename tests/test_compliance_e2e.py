"""The ministry's report end to end: a collector with an inventory, stations that report (or
not), and `kienco compliance` as table, CSV and a PDF read back page by page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader

from collector.config import CollectorConfig
from collector.service import Collector
from contract.wire import Meta, PathDecl, PowerReading, Report
from kienco.cli import main as kienco_main
from plumbing.labels import LOCAL_TZ
from tests.support.mosquitto import Broker
from tests.test_rules_support import link

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "firmware-configs" / "inventory" / "example.csv"
FIBRE_AND_RADIO = (
    PathDecl(path="fo-vnpt", media="fibre", provider="vnpt", srlg=("duct-5",)),
    PathDecl(path="mw-viettel", media="microwave", provider="viettel", srlg=("tower-2",)),
)


@pytest.fixture
def collector(tmp_path: Path, mosquitto: Broker) -> Iterator[Collector]:
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": mosquitto.url,
                "username": None,
                "client_id": "compliance-test",
                "topic_filter": "kienco/v1/hp/#",
            },
            "influx": None,
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0, "anonymous_read": True},
            "inventory": str(INVENTORY),
        }
    )
    running = Collector(config)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()


def station(collector: Collector, site: str, *, fuel_l: float, at: datetime) -> None:
    meta = Meta(
        site=site,
        province="hp",
        site_kind="station",
        name=site,
        hardened=True,
        site_class="hardened",
        paths=FIBRE_AND_RADIO,
        interval_s=60,
        agent_version="t",
        at=at,
    )
    power = (
        PowerReading(
            device="ups1",
            mains_present=True,
            on_battery=False,
            load_pct=30.0,
            battery_charge_pct=100.0,
            battery_runtime_s=4 * 3600.0,
        ),
        PowerReading(device="gen1", generator_running=False, fuel_l=fuel_l, fuel_burn_l_per_h=5.0),
    )
    links = (link("fo-vnpt", "fibre", "duct-5"), link("mw-viettel", "microwave", "tower-2"))
    report = Report(
        site=site, province="hp", seq=1, taken_at=at, interval_s=60, power=power, links=links
    )
    collector.handle(f"kienco/v1/hp/{site}/meta", meta.model_dump_json().encode(), 0, 0)
    collector.handle(f"kienco/v1/hp/{site}/report", report.model_dump_json().encode(), 0, 0)


def test_compliance_report_table_csv_and_pdf(
    collector: Collector,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    # The collector's clock is the real one: reports of now, not of when the file was
    # imported (a suite that reached this test minutes later judged them silent).
    now = datetime.now(UTC).replace(microsecond=0)
    station(collector, "hp-bts-001", fuel_l=400.0, at=now)  # 80 h of fuel: compliant
    station(collector, "hp-bts-002", fuel_l=50.0, at=now)  # 10 h: generator autonomy short
    # hp-bts-003 and the Thủy Nguyên and Cát Hải stations never report.
    assert collector.api is not None
    url = collector.api.url

    station(collector, "hp-bts-999", fuel_l=400.0, at=now)  # reports, but the inventory lacks it

    # Never-reported inventory sites are unknown in the readiness board too; a reporting
    # site that the inventory does not list is flagged.
    board = httpx.get(f"{url}/api/v1/readiness", params={"province": "hp"}).json()
    by_site = {s["site"]: s for s in board["sites"]}
    assert by_site["hp-bts-011"]["verdict"] == "unknown"
    assert [r["code"] for r in by_site["hp-bts-011"]["reasons"]] == ["no_report_yet"]
    assert "not_in_inventory" in {r["code"] for r in by_site["hp-bts-999"]["reasons"]}
    # Fresh reports: judged on what they say, not silent (stale reports passed this test
    # unseen while it asserted only on the failing sites).
    assert (by_site["hp-bts-001"]["verdict"], by_site["hp-bts-001"]["reasons"]) == ("ready", [])
    assert by_site["hp-bts-002"]["verdict"] == "degraded"
    assert [r["code"] for r in by_site["hp-bts-002"]["reasons"]] == ["backup_hours_short"]

    assert kienco_main(["compliance", "--province", "hp", "--lang", "en", "--url", url]) == 0
    table = capsys.readouterr().out
    assert "An Dương" in table and "Thủy Nguyên" in table

    csv_path = tmp_path / "hp.csv"
    assert (
        kienco_main(
            [
                "compliance",
                "--province",
                "hp",
                "--format",
                "csv",
                "--out",
                str(csv_path),
                "--url",
                url,
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(csv_path.read_bytes().decode("utf-8-sig"))))
    by_site = {row[next(k for k in row if "site" in k.lower())]: row for row in rows}
    assert {"hp-bts-001", "hp-bts-002", "hp-bts-011"} <= set(by_site)

    def judged(site: str) -> tuple[str, str, str, str]:
        row = by_site[site]
        return row["status"], row["failed_codes"], row["autonomy_h"], row["last_report_at"]

    # 4 h of battery and 80 h of fuel, two independent paths, reported now: compliant, and
    # each other station fails for its own reason alone (no "silent" beside it).
    local = now.astimezone(LOCAL_TZ).isoformat()  # Vietnam time, with its offset
    assert judged("hp-bts-001") == ("compliant", "", "84.0", local)
    assert by_site["hp-bts-001"]["independent_paths"] == "2"
    assert judged("hp-bts-002") == (
        "non_compliant",
        "generator_autonomy_short",
        "14.0",
        local,
    )
    assert judged("hp-bts-011") == ("unknown", "never_reported", "", "")
    assert judged("hp-bts-999")[:2] == ("non_compliant", "not_in_inventory")

    pdf_path = tmp_path / "hp.pdf"
    assert (
        kienco_main(
            [
                "compliance",
                "--province",
                "hp",
                "--format",
                "pdf",
                "--out",
                str(pdf_path),
                "--url",
                url,
            ]
        )
        == 0
    )
    pages = [page.extract_text() for page in PdfReader(pdf_path).pages]
    assert "Hải Phòng" in pages[0]
    assert now.astimezone().strftime("%Y") in pages[0]
    assert "default-policy.yaml" in pages[0]
    whole = "\n".join(pages)
    assert "Huyện An Dương" in whole and "hp-bts-002" in whole
    assert "không đạt" in whole.lower() or "chưa đạt" in whole.lower()
