"""The shipped systemd units: ``systemd-analyze verify`` finds nothing to say, the hardening
holds (``systemd-analyze security``), and their paths agree with the configs they run."""

from __future__ import annotations

import configparser
import glob
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent.config import OutboxConfig
from collector.config import load_collector_config
from kienco.local_services import find_binary

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "firmware-configs" / "systemd"
MOSQUITTO = REPO / "firmware-configs" / "mosquitto"
SHIPPED_KIENCO = "/opt/kienco/bin/kienco"
# systemd-analyze security: 0 is locked down, 10 is nothing done. The agent keeps one
# capability (traps on port 162) and sees other processes (the meeting client).
MAX_EXPOSURE = {"kienco-agent.service": 2.5, "kienco-collector@.service": 2.0}


def _systemd_analyze() -> str:
    binary = find_binary("systemd-analyze")
    if binary is None:
        pytest.fail("systemd-analyze is not installed: apt-get install -y systemd")
    return binary


def _installable(unit: Path, into: Path, text: str | None = None) -> Path:
    """A copy of the unit as installed, but running this checkout's ``kienco`` (verify needs
    ExecStart's program to exist); a template gets an instance name, as systemctl would."""
    kienco = Path(sys.executable).parent / "kienco"
    assert kienco.exists(), kienco
    name = unit.name.replace("@.", "@a1.")
    copy = into / name
    copy.write_text((text or unit.read_text()).replace(SHIPPED_KIENCO, str(kienco)))
    return copy


def _verify(unit: Path) -> str:
    done = subprocess.run(
        [_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    return (done.stdout + done.stderr).strip() + ("" if done.returncode == 0 else " (failed)")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.service")), ids=lambda p: p.name)
def test_systemd_analyze_verify_says_nothing(unit: Path, tmp_path: Path) -> None:
    # verify exits 0 on an unknown key or a bad value: it only warns. Any output fails.
    assert _verify(_installable(unit, tmp_path)) == ""


def test_the_check_itself_catches_a_bad_unit(tmp_path: Path) -> None:
    unit = UNITS / "kienco-agent.service"
    broken = unit.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes")
    said = _verify(_installable(unit, tmp_path, broken))
    assert "Unknown key 'ProtectHomme'" in said


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_units_are_hardened(name: str, tmp_path: Path) -> None:
    unit = _installable(UNITS / name, tmp_path)
    done = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE[name], done.stdout
    service = _unit(name)["Service"]
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[option] == "yes"
    assert service["ProtectSystem"] == "strict" and service["Restart"] == "on-failure"
    assert service["User"] == "kienco"
    # A bad config (exit 2, kienco.cli.EXIT_CONFIG) is not restarted in a loop.
    assert service["RestartPreventExitStatus"].split()[0] == "2"


def test_the_agent_may_bind_the_trap_port_and_nothing_more() -> None:
    service = _unit("kienco-agent.service")["Service"]
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert _unit("kienco-collector@.service")["Service"]["CapabilityBoundingSet"] == ""


def test_unit_paths_agree_with_the_configs() -> None:
    agent = _unit("kienco-agent.service")["Service"]
    # The outbox's default path lies in the agent's StateDirectory, the only place it may write.
    assert OutboxConfig().path.parent == Path("/var/lib") / agent["StateDirectory"]
    assert "--config /etc/kienco/site.yaml" in agent["ExecStart"]
    collector = _unit("kienco-collector@.service")["Service"]
    assert collector["StateDirectory"] == "kienco-collector/%i"
    assert "--config /etc/kienco/collector-%i.yaml" in collector["ExecStart"]
    shard = load_collector_config(REPO / "firmware-configs" / "collector-shard.yaml")
    assert shard.data_dir == Path("/var/lib/kienco-collector/a1")  # StateDirectory of @a1
    # Each secret the shard reads from /run/credentials/<its unit>/ is one the unit loads
    # there (without LoadCredential= that folder does not exist and the shard cannot start).
    assert shard.influx is not None
    secrets = (shard.broker.password, shard.influx.password, shard.http.admin_token)
    read = {str(s.file) for s in secrets if s is not None and s.file is not None}
    loaded = {
        "/run/credentials/kienco-collector@a1.service/" + line.split("=", 1)[1].split(":")[0]
        for line in (UNITS / "kienco-collector@.service").read_text().splitlines()
        if line.startswith("LoadCredential=")
    }
    assert read and read == loaded
    assert "243" in collector["RestartPreventExitStatus"].split()  # a credential file missing
    broker = _unit("mosquitto-kienco@.service")["Service"]
    assert broker["StateDirectory"] == "mosquitto-kienco-%i"
    assert int(broker["LimitNOFILE"]) >= 100_000  # a province's agents, one fd each
    for conf, instance in (("central-a.conf", "a"), ("provincial-hp.conf", "hp")):
        text = (MOSQUITTO / conf).read_text()
        assert f"persistence_location /var/lib/mosquitto-kienco-{instance}/" in text


def test_units_leave_the_config_folder_readable_by_their_user() -> None:
    """ConfigurationDirectoryMode=0750 made systemd chmod /etc/kienco 0750 at each start
    while leaving it root:root (systemd.exec(5): ConfigurationDirectory= alone is not
    chowned to User=): the user kienco could no longer open its own config."""
    for name in ("kienco-agent.service", "kienco-collector@.service"):
        service = _unit(name)["Service"]
        assert service["User"] == "kienco"
        assert "ConfigurationDirectory" not in service, name
        assert "ConfigurationDirectoryMode" not in service, name


@pytest.mark.parametrize("unit", sorted(UNITS.glob("*.service")), ids=lambda p: p.name)
def test_units_that_restart_never_give_up(unit: Path) -> None:
    """systemd stops restarting a unit after 5 starts in 10 s unless told otherwise: a
    broker or collector failing fast (a disk full for a minute, a peer not up yet) would
    stay down until someone logs in. mosquitto-kienco@ lacked it. (A oneshot run by a
    timer, the broker's watchdog, is not a long-lived service: its timer runs it again.)"""
    parsed = _unit(unit.name)
    if parsed["Service"].get("Type") == "oneshot":
        assert (unit.parent / unit.name.replace(".service", ".timer")).exists(), unit.name
        return
    assert parsed["Service"].get("Restart") in ("on-failure", "always"), unit.name
    assert parsed["Unit"].get("StartLimitIntervalSec") == "0", unit.name


def test_the_sysusers_file_creates_the_user(tmp_path: Path) -> None:
    binary = find_binary("systemd-sysusers") or shutil.which("systemd-sysusers")
    if binary is None:
        pytest.fail("systemd-sysusers is not installed: apt-get install -y systemd")
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [binary, f"--root={tmp_path}", str(UNITS / "kienco.sysusers.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    users = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^kienco:x:\d+:\d+:[^:]*:/var/lib/kienco:/usr/sbin/nologin$", users, re.M)


def test_units_and_topology_files_are_packaged() -> None:
    """A pip install puts them under <prefix>/share/kienco/ (the units' Documentation=)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["data-files"].values()
    packaged = {
        REPO / f for patterns in globs for g in patterns for f in glob.glob(g, root_dir=REPO)
    }
    shipped = {
        *UNITS.iterdir(),
        *MOSQUITTO.iterdir(),
        REPO / "firmware-configs/collector-shard.yaml",
        REPO / "firmware-configs/influxdb/influxdb.conf",
    }
    assert not shipped - packaged, f"not in [tool.setuptools.data-files]: {shipped - packaged}"


@pytest.mark.parametrize("timer", sorted(UNITS.glob("*.timer")), ids=lambda p: p.name)
def test_timers_verify_beside_the_service_they_run(timer: Path, tmp_path: Path) -> None:
    service = _installable(timer.with_suffix(".service"), tmp_path)
    copy = tmp_path / service.name.replace(".service", ".timer")
    copy.write_text(timer.read_text())
    assert _verify(copy) == ""


# benchmarks/broker_queue.py --messages 1000000 --save: the store of 1 000 000 queued
# reports (1 127 bytes of JSON each) is 1 201 MiB on disk (the benchmark's "MB" are 2**20
# bytes: ~1 260 000 000 bytes), written in 4.2-6.2 s and read in 3.6-4.0 s on this machine,
# cold or warm (docs/topology.md, "A broker busy with its store").
STORE_BYTES_PER_REPORT = 1_260
SLOW_DISK_BYTES_S = 20_000_000  # an SD card, a degraded RAID: what the unit must still allow


def _seconds(timespan: str) -> float:
    said = subprocess.run(
        [_systemd_analyze(), "timespan", timespan], capture_output=True, text=True, timeout=30
    )
    (micro,) = re.findall(r"μs: (\d+)", said.stdout)
    return int(micro) / 1e6


def test_the_broker_unit_waits_for_a_full_queue_to_be_written_and_read() -> None:
    """Mosquitto writes its whole store at exit and reads it whole before it is ready:
    systemd's 90 s default would kill a broker with a full queue mid-save (losing what it
    acknowledged since its last autosave) or mid-read (at every restart: the queue never
    drains). The largest shipped queue must fit, twice over, on a slow disk."""
    queued = max(
        int(match[1])
        for conf in MOSQUITTO.glob("*.conf")
        if (match := re.search(r"^max_queued_messages (\d+)", conf.read_text(), re.M))
    )
    assert queued >= 10_000_000  # central-a.conf's: the test reads the shipped files
    need_s = 2 * queued * STORE_BYTES_PER_REPORT / SLOW_DISK_BYTES_S
    service = _unit("mosquitto-kienco@.service")["Service"]
    for key in ("TimeoutStartSec", "TimeoutStopSec"):
        assert _seconds(service[key]) >= need_s, (key, service.get(key), need_s)
