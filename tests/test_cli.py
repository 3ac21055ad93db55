"""The CLI as a user runs it: schema, agent probe (against snmpsim), config errors, --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from contract.wire import Report
from tests.support.snmpsim import SnmpSim

REPO = Path(__file__).resolve().parents[1]


def kienco(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kienco.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=60,
    )


def test_schema_prints_every_wire_message() -> None:
    done = kienco("schema")
    assert done.returncode == 0
    schemas = json.loads(done.stdout)
    assert set(schemas) == {"report", "event", "meta", "state", "status", "command"}
    report = schemas["report"]
    assert report["additionalProperties"] is False
    assert {"site", "province", "seq", "taken_at", "power", "links", "host"} <= set(
        report["properties"]
    )
    assert json.loads(kienco("schema", "--kind", "state").stdout)["title"] == "State"


def test_schema_is_the_saved_contract() -> None:
    """The wire contract changes only on purpose: a change here is a new protocol version.

    tests/fixtures/contract/schema-v1.json is ``kienco schema`` as it was before the
    contract moved to its own package (contract/); regenerate it only with a version bump,
    or for a new *optional* field that every older message still satisfies (said in the
    commit; so far: ``DeviceDecl.battery``, a site's battery model;
    ``HostReading.outbox_resets_total``, how often the agent replaced a corrupt outbox;
    ``HostReading.clock_synced`` and ``clock_max_error_ms``, the kernel's view of the
    agent's clock; ``Report.outbox``, whose numbering ``seq`` is in;
    ``PowerReading.output_off`` and ``on_bypass``, a UPS whose load is dark or whose
    battery cannot take over; ``PathDecl.priority``, the order the site's router uses its
    paths in;
    ``LinkReading.bandwidth_error``, what failed in a path's last bandwidth test).
    """
    saved = (REPO / "tests" / "fixtures" / "contract" / "schema-v1.json").read_text()
    assert json.loads(kienco("schema").stdout) == json.loads(saved)


def test_agent_probe_prints_one_report_and_publishes_nothing(
    tmp_path: Path, snmpsim: SnmpSim
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "hp-bts-301",
                "province": "hp",
                "kind": "station",
                "name": "Trạm Đồ Sơn 3",
                # Nothing listens there: probe must not need the broker.
                "broker": {
                    "url": "mqtt://127.0.0.1:1",
                    "password": {"env": "NOT_NEEDED_FOR_PROBE"},
                },
                "outbox": {"path": str(tmp_path / "o.sqlite")},
                "disk_path": str(tmp_path),
                "paths": [
                    {
                        "path": "fibre-a",
                        "media": "fibre",
                        "probes": 2,
                        "timeout_s": 0.2,
                        "target": {"host": "127.0.0.1", "port": 1},
                    }
                ],
                "snmp_credentials": {"ro": {"community": {"env": "KIENCO_TEST_COMMUNITY"}}},
                "devices": [
                    {
                        "device": "ups1",
                        "profile": "ups-mib",
                        "host": snmpsim.host,
                        "port": snmpsim.port,
                        "credentials": "ro",
                    }
                ],
            },
            allow_unicode=True,
        )
    )
    done = kienco(
        "agent",
        "probe",
        "--config",
        str(config),
        env={"KIENCO_TEST_COMMUNITY": snmpsim.community("ups-mib")},
    )
    assert done.returncode == 0, done.stderr
    report = Report.model_validate_json(done.stdout)
    assert report.site == "hp-bts-301" and report.power[0].battery_charge_pct == 100.0
    assert report.links[0].up is False and report.links[0].error
    assert report.host is not None and report.host.memory_pct is not None
    if sys.platform.startswith("linux"):  # the kernel's clock, read by the real probe path
        assert isinstance(report.host.clock_synced, bool)
    assert not (tmp_path / "o.sqlite").exists(), "probe must not touch the outbox"


def test_a_bad_config_exits_2_with_the_key_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        "site: Trạm 1\nprovince: hp\nkind: station\nname: x\n"
        "broker: {url: 'mqtt://127.0.0.1:1883'}\n"
    )
    done = kienco("agent", "run", "--config", str(config))
    assert done.returncode == 2
    assert "site: String should match pattern" in done.stderr
    assert "Fix: use a lowercase slug" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_policy_stops_the_collector_with_the_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("freshness:\n  stale_intervls: 3\n")
    config = tmp_path / "collector.yaml"
    config.write_text(f"policy: {policy}\ndata_dir: {tmp_path}\n")
    done = kienco("collector", "run", "--config", str(config))
    assert done.returncode == 2
    assert "stale_intervls" in done.stderr and "stale_intervals" in done.stderr


def test_a_secret_it_cannot_read_stops_it_at_start_with_the_key(tmp_path: Path) -> None:
    """Not a traceback and exit 1 (systemd restarting it every 2 s for ever), nor an agent
    retrying every reconnect: exit 2, the key, the file and the fix."""
    missing = tmp_path / "absent.password"
    config = tmp_path / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "provinces": ["hp"],
                "broker": {"url": "mqtt://127.0.0.1:1", "password": {"file": str(missing)}},
                "influx": {
                    "url": "http://127.0.0.1:1",
                    "password": {"env": "KIENCO_TEST_UNSET_INFLUX_PASSWORD"},
                },
                "data_dir": str(tmp_path / "data"),
            }
        )
    )
    done = kienco("collector", "run", "--config", str(config))
    assert done.returncode == 2, done.stderr
    assert f"broker.password: cannot read secret file {missing}" in done.stderr
    assert "influx.password: environment variable KIENCO_TEST_UNSET_INFLUX_PASSWORD" in done.stderr
    assert "Fix: " in done.stderr and "Traceback" not in done.stderr
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: hp-bts-001\nprovince: hp\nkind: station\nname: x\n"
        f"broker: {{url: 'mqtt://127.0.0.1:1', password: {{file: {missing}}}}}\n"
        f"outbox: {{path: {tmp_path / 'outbox.sqlite'}}}\n"
    )
    done = kienco("agent", "run", "--config", str(site))
    assert done.returncode == 2, done.stderr
    assert f"broker.password: cannot read secret file {missing}" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_every_command() -> None:
    done = kienco("--help")
    for command in ("schema", "agent", "collector", "demo", "readiness"):
        assert command in done.stdout
