"""The national topology on real Mosquitto, from the shipped files: provincial brokers
bridged to central brokers (firmware-configs/mosquitto/), collector shards by province."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kienco.credentials import create
from kienco.fleet.fleet import make_sites
from kienco.local_services import Mosquitto, ServerTls
from plumbing.data import firmware_configs
from tests.support.influx import InfluxServer
from tests.support.pki import KeyPair, Pki
from tests.support.relay import Relay
from tests.support.subscriber import Subscriber, use_tls
from tests.support.topology import (
    CENTRAL,
    PROVINCIAL,
    Shard,
    central_broker,
    enabled,
    provincial_broker,
)

COLLECTOR = {"collector-a1": "collector-secret"}


def _publish(
    port: int,
    user: str,
    password: str,
    topic: str,
    payload: bytes,
    *,
    ca_file: Path | None = None,
    certificate: KeyPair | None = None,
) -> int:
    """One QoS 1 publish over MQTT 5 (over TLS trusting ``ca_file`` alone, if given, with
    the client's ``certificate``); the PUBACK's reason code (135: not authorized)."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    if ca_file is not None:
        use_tls(client, ca_file, certificate)
    codes: list[int] = []
    client.on_publish = lambda _c, _u, _mid, reason, _p: codes.append(reason.value)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=topic.endswith(("/meta", "/status")))
        deadline = time.monotonic() + 10
        while not codes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    assert codes, f"no PUBACK for {topic}"
    return codes[0]


@pytest.fixture
def hp_to_centre(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    central = central_broker(tmp_path / "central-a", ["hp", "qn"], COLLECTOR)
    central.start()
    provincial = provincial_broker(
        tmp_path / "hp",
        "hp",
        centre_port=central.port,
        agents={"hp/hp-bts-001": "s1", "hp/hp-bts-002": "s2"},
    )
    provincial.start()
    yield provincial, central
    provincial.stop()
    central.stop()


def test_shipped_bridge_carries_reports_in_and_statuses_out(
    hp_to_centre: tuple[Mosquitto, Mosquitto],
) -> None:
    provincial, central = hp_to_centre
    centre = Subscriber(
        central.port,
        "kienco/v1/#",
        client_id="collector-a1",
        username="collector-a1",
        password="collector-secret",
    )
    agent = Subscriber(
        provincial.port,
        "kienco/v1/hp/hp-bts-001/status",
        client_id="kienco-agent-hp-bts-001",
        username="hp/hp-bts-001",
        password="s1",
    )
    try:
        # The bridge connects within its restart timeout: retry the first report until through.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not centre.received():
            report = "kienco/v1/hp/hp-bts-001/report"
            assert _publish(provincial.port, "hp/hp-bts-001", "s1", report, b"r") == 0
            centre.wait_for(1, lambda t: True, 1)
        assert ("kienco/v1/hp/hp-bts-001/report", b"r") in centre.received()
        # The collector's status on the centre comes back to the agent over the bridge.
        status = "kienco/v1/hp/hp-bts-001/status"
        assert _publish(central.port, "collector-a1", "collector-secret", status, b"ok") == 0
        assert agent.wait_for(1, lambda t: t == status, 10) == [(status, b"ok")]
        # The agent's ACL on the provincial broker still binds its province and site...
        spoof = "kienco/v1/qn/hp-bts-001/report"
        assert _publish(provincial.port, "hp/hp-bts-001", "s1", spoof, b"x") == 135
        # ... and on the centre, hp's bridge account writes hp's topics only.
        other = "kienco/v1/qn/qn-bts-001/report"
        assert _publish(central.port, "bridge-hp", "bridge-hp-secret", other, b"x") == 135
        mine = "kienco/v1/hp/hp-bts-009/report"
        assert _publish(central.port, "bridge-hp", "bridge-hp-secret", mine, b"y") == 0
    finally:
        centre.close()
        agent.close()


class BridgePki:
    """Throwaway CAs as an operator has them: the centre's CA signs the central broker's
    certificate (its provinces hold that CA as ``centre-ca.crt``, the bridge's
    ``bridge_cafile``) and the client certificates the centre trusts (the bridge's, the
    collector's); the province's CA its broker's and its agents' (the agents'
    ``ca_file``); another CA stands for a wrong ``centre-ca.crt``, and signs a
    ``stranger``'s certificate for hp's bridge."""

    def __init__(self, folder: Path, central_names: tuple[str, ...]) -> None:
        self.centre = Pki(folder / "centre", "kienco centre CA")
        self.province = Pki(folder / "province", "kienco hp CA")
        self.other = Pki(folder / "other", "someone else CA")
        central = self.centre.server("central-a", central_names)
        provincial = self.province.server("provincial-hp")
        self.central = ServerTls(self.centre.ca_file, central.cert, central.key)
        self.provincial = ServerTls(self.province.ca_file, provincial.cert, provincial.key)
        self.bridge = self.centre.client("bridge-hp")
        self.collector = self.centre.client("collector-a1")
        self.agent = self.province.client("hp/hp-bts-001")
        self.stranger = self.other.client("bridge-hp")


@contextmanager
def _tls_bridge(
    tmp_path: Path,
    bridge_cafile: Path,
    pki: BridgePki,
    centre_host: str = "127.0.0.1",
    *,
    require_certificate: bool = False,
    bridge_certificate: KeyPair | None = None,
) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """central-a.conf on its TLS listener and provincial-hp.conf on its own, its bridge
    dialling ``centre_host`` over TLS and checking the centre with ``bridge_cafile``.
    ``require_certificate``: both files' commented ``require_certificate true`` enabled;
    ``bridge_certificate``: provincial-hp.conf's ``bridge_certfile``/``bridge_keyfile``
    enabled with its files."""
    enable = ["require_certificate"] if require_certificate else []
    central = central_broker(
        tmp_path / "central-a", ["hp", "qn"], COLLECTOR, tls=pki.central, enable=enable
    )
    # Both made before either starts: a file that fails the test (an option it does not
    # ship commented out) leaves no broker running.
    provincial = provincial_broker(
        tmp_path / "hp",
        "hp",
        centre_port=central.port,
        agents={"hp/hp-bts-001": "s1"},
        tls=pki.provincial,
        bridge_cafile=bridge_cafile,
        centre_host=centre_host,
        bridge_certificate=bridge_certificate,
        enable=enable,
    )
    try:
        central.start()
        provincial.start()
        yield provincial, central
    finally:
        provincial.stop()
        central.stop()


REPORT = "kienco/v1/hp/hp-bts-001/report"


def _agent_reports(provincial: Mosquitto, pki: BridgePki) -> None:
    """hp-bts-001 reports to its provincial broker over TLS (with its certificate, asked
    for only where required); acknowledged, the report is queued there for the centre."""
    code = _publish(
        provincial.port,
        "hp/hp-bts-001",
        "s1",
        REPORT,
        b"r",
        ca_file=pki.province.ca_file,
        certificate=pki.agent,
    )
    assert code == 0


def _centre_subscriber(central: Mosquitto, pki: BridgePki) -> Subscriber:
    """The shard's account on the central broker, over TLS, subscribed to every report
    (with its client certificate, which the centre asks for only where it requires one)."""
    return Subscriber(
        central.port,
        "kienco/v1/#",
        client_id="collector-a1",
        username="collector-a1",
        password="collector-secret",
        ca_file=pki.centre.ca_file,
        certificate=pki.collector,
    )


@pytest.mark.parametrize(
    "client_certificates", [False, True], ids=["server-certificate", "client-certificates"]
)
def test_shipped_bridge_over_tls_carries_reports_in_and_statuses_out(
    tmp_path: Path, client_certificates: bool
) -> None:
    """The bridge as shipped (bridge_cafile, the central's TLS listener, hostname checked),
    with the CA that signed the central's certificate: both directions cross it. With
    client certificates, as the files' comments say to enable them: both brokers
    ``require_certificate true``, the bridge gives its certificate (bridge_certfile,
    bridge_keyfile) signed by the CA the centre trusts, the collector and the agent theirs."""
    pki = BridgePki(tmp_path / "pki", ("127.0.0.1", "localhost"))
    bridge_certificate = pki.bridge if client_certificates else None
    with _tls_bridge(
        tmp_path,
        pki.centre.ca_file,
        pki,
        require_certificate=client_certificates,
        bridge_certificate=bridge_certificate,
    ) as (provincial, central):
        centre = _centre_subscriber(central, pki)
        agent = Subscriber(
            provincial.port,
            "kienco/v1/hp/hp-bts-001/status",
            client_id="kienco-agent-hp-bts-001",
            username="hp/hp-bts-001",
            password="s1",
            ca_file=pki.province.ca_file,
            certificate=pki.agent,
        )
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not centre.received():
                _agent_reports(provincial, pki)
                centre.wait_for(1, lambda t: True, 1)
            log = (provincial.workdir / "mosquitto.log").read_text()
            assert (REPORT, b"r") in centre.received(), f"the bridge did not connect: {log}"
            status = "kienco/v1/hp/hp-bts-001/status"
            code = _publish(
                central.port,
                "collector-a1",
                "collector-secret",
                status,
                b"ok",
                ca_file=pki.centre.ca_file,
                certificate=pki.collector,
            )
            assert code == 0
            assert agent.wait_for(1, lambda t: t == status, 10) == [(status, b"ok")]
        finally:
            centre.close()
            agent.close()


def _refusals(broker: Mosquitto, reason: str) -> int:
    """How many times ``broker``'s log says the bridge was refused for ``reason``."""
    return len(re.findall(reason, (broker.workdir / "mosquitto.log").read_text()))


@dataclass(frozen=True)
class Refusal:
    """A bridge that must never connect: how it is set up, and which broker's log says
    why at each attempt (the province's when its bridge refuses the centre, the centre's
    when the centre refuses the bridge's certificate)."""

    reason: str
    logged_by: Literal["provincial", "central"]
    bridge_ca: Literal["centre", "other"] = "centre"  # the CA in bridge_cafile
    central_names: tuple[str, ...] = ("127.0.0.1", "localhost")  # in its certificate
    centre_host: str = "127.0.0.1"  # in the bridge's address
    require_certificate: bool = False
    bridge_certificate: Literal["centre", "other"] | None = None  # the CA that signed it


REFUSALS = [
    # bridge_cafile is another CA than the one that signed the central's certificate.
    pytest.param(
        Refusal("certificate verify failed", "provincial", bridge_ca="other"), id="another-CA"
    ),
    # The right CA, but the certificate does not name the host the bridge dials
    # (its address): bridge_insecure false, the shipped line, checks the name.
    pytest.param(
        Refusal(
            "host name verification failed",
            "provincial",
            central_names=("127.0.0.1",),
            centre_host="localhost",
        ),
        id="another-name",
    ),
    # The centre requires a client certificate (central-a.conf's line enabled); the bridge
    # gives none (its bridge_certfile/bridge_keyfile left commented out).
    pytest.param(
        Refusal("peer did not return a certificate", "central", require_certificate=True),
        id="no-client-certificate",
    ),
    # The bridge gives a certificate, signed by a CA the centre does not trust.
    pytest.param(
        Refusal(
            "certificate verify failed",
            "central",
            require_certificate=True,
            bridge_certificate="other",
        ),
        id="client-certificate-of-another-CA",
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_shipped_bridge_over_tls_never_connects_to_a_centre_it_cannot_verify(
    tmp_path: Path, refusal: Refusal
) -> None:
    """A report the provincial broker acknowledged stays there: the bridge refuses the
    centre's certificate, or the centre the bridge's, at each attempt (the log says why)
    and nothing reaches the centre."""
    pki = BridgePki(tmp_path / "pki", refusal.central_names)
    cas = {"centre": pki.centre, "other": pki.other}
    certificates = {"centre": pki.bridge, "other": pki.stranger, None: None}
    with _tls_bridge(
        tmp_path,
        cas[refusal.bridge_ca].ca_file,
        pki,
        refusal.centre_host,
        require_certificate=refusal.require_certificate,
        bridge_certificate=certificates[refusal.bridge_certificate],
    ) as (provincial, central):
        logged_by = provincial if refusal.logged_by == "provincial" else central
        centre = _centre_subscriber(central, pki)
        try:
            _agent_reports(provincial, pki)
            # The bridge tries again (restart_timeout 1 2): two more attempts with reports
            # queued, each refused for that reason, and nothing crossed. The agent goes on
            # reporting meanwhile, as agents do: an idle provincial broker, once its bridge
            # was refused, can wedge after 2-3 attempts (Mosquitto 2.0.11; docs/topology.md,
            # "A provincial broker that stops answering").
            before = _refusals(logged_by, refusal.reason)
            deadline = time.monotonic() + 15
            while _refusals(logged_by, refusal.reason) < before + 2:
                assert not centre.received(), "a report crossed a bridge that must be refused"
                log = (logged_by.workdir / "mosquitto.log").read_text()
                assert time.monotonic() < deadline, f"not refused twice for {refusal}: {log}"
                time.sleep(0.2)
                _agent_reports(provincial, pki)
            assert centre.received() == []
        finally:
            centre.close()


def _session(port: int, client_id: str, user: str, password: str, got: list[str]) -> mqtt.Client:
    """A persistent MQTT 5 session (as the collector and the agents keep), connected."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(user, password)
    client.on_message = lambda _c, _u, message: got.append(message.topic)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.is_connected(), f"{user} could not connect"
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_one_account_cannot_take_over_another_accounts_session(
    hp_to_centre: tuple[Mosquitto, Mosquitto], tmp_path: Path
) -> None:
    """Credentials taken from one box (an agent's, or a bridge's from a provincial broker's
    config) must not reach another account's session by naming its client id: on the
    centre that is the collector's persistent session, with every report queued for it;
    on a province, any agent's. (Without use_username_as_clientid the intruder took the
    collector's session and the 50 queued reports were gone.)"""
    provincial, central = hp_to_centre
    for broker in (provincial, central):  # and no listener but the one configured
        assert broker.process is not None
        listening = {
            c.laddr.port
            for c in psutil.Process(broker.process.pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {broker.port}, f"{broker.shipped_conf.name}: {listening}"
    got: list[str] = []
    shard = _session(central.port, "kienco-collector-a1", "collector-a1", "collector-secret", got)
    shard.subscribe("kienco/v1/hp/#", qos=1)
    time.sleep(0.5)
    _close(shard)  # the shard restarts: its reports wait in its session
    for seq in range(50):
        topic = "kienco/v1/hp/hp-bts-009/report"
        assert _publish(central.port, "bridge-hp", "bridge-hp-secret", topic, b"%d" % seq) == 0
    # hp's bridge account (its password is in every copy of provincial-hp.conf) names the shard.
    stolen: list[str] = []
    intruder = _session(
        central.port, "kienco-collector-a1", "bridge-hp", "bridge-hp-secret", stolen
    )
    time.sleep(1)
    _close(intruder)
    shard = _session(central.port, "kienco-collector-a1", "collector-a1", "collector-secret", got)
    try:
        deadline = time.monotonic() + 10
        while len(got) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) == 50 and not stolen
    finally:
        _close(shard)
    # On the provincial broker an agent cannot knock another site's agent off either.
    drops: list[object] = []
    honest = _session(provincial.port, "kienco-agent-hp-bts-002", "hp/hp-bts-002", "s2", [])
    honest.on_disconnect = lambda *args: drops.append(args)
    intruder = _session(provincial.port, "kienco-agent-hp-bts-002", "hp/hp-bts-001", "s1", [])
    time.sleep(1)
    try:
        assert not drops and honest.is_connected()
    finally:
        _close(intruder)
        _close(honest)


def test_every_shipped_broker_names_sessions_by_account_on_its_listener() -> None:
    """kienco.conf too (the test above runs the provincial and central files): the option
    follows the listener line, or Mosquitto opens a plain listener on 1883 to carry it."""
    for conf in sorted((firmware_configs() / "mosquitto").glob("*.conf")):
        keys = [line.split()[0] for line in conf.read_text().splitlines() if line.strip()]
        keys = [key for key in keys if not key.startswith("#")]
        assert "use_username_as_clientid" in keys, conf.name
        assert keys.index("listener") < keys.index("use_username_as_clientid"), conf.name


def test_every_shipped_require_certificate_is_its_listeners_once_enabled() -> None:
    """The commented ``require_certificate true`` of each file (the wire tests above
    enable them) is among its listener's options: after "listener", before the bridge's
    "connection" (Mosquitto applies it to the last listener above it)."""
    for conf in (CENTRAL, PROVINCIAL):
        keys = [line.split()[0] for line in enabled(conf, ["require_certificate"]) if line]
        keys = [key for key in keys if not key.startswith("#")]
        at = keys.index("require_certificate")
        assert keys.index("listener") < at, conf.name
        assert "connection" not in keys[:at], conf.name


PROVINCES = {"hp": "a", "qn": "a", "hn": "b"}  # province -> the central instance carrying it
SHARDS = {"a1": ["hp"], "a2": ["qn"], "b1": ["hn"]}  # shard -> its provinces (on a or b)
SITES_PER_PROVINCE = 8
INTERVAL_S, DURATION_S = 0.5, 24.0


def _report_seqs(influxdb: InfluxServer, db: str) -> dict[str, list[int]]:
    """site -> every report seq InfluxDB holds for it, in time order."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in influxdb.query(db, 'SELECT "seq" FROM "report" GROUP BY "site"'):
        seqs[row["site"]].append(int(row["seq"]))
    return seqs


def test_national_topology_loses_nothing_through_a_killed_shard_a_cut_bridge_and_a_broker_restart(
    tmp_path: Path, influxdb: InfluxServer
) -> None:
    """3 provincial brokers bridged to 2 central ones, 3 collector shards by province, all
    from the shipped files; sites report sequence numbers while a shard is SIGKILLed and
    started again, hp's backhaul is cut and restored, and qn's provincial broker is stopped
    and started again. In InfluxDB every site's sequence has no gap and no duplicate, and
    each site was judged by exactly one shard: its province's."""
    db = influxdb.fresh_database("topology")
    sites = make_sites(SITES_PER_PROVINCE * len(PROVINCES), list(PROVINCES))
    secrets = tmp_path / "credentials"
    create([site.username for site in sites], tmp_path / "all.passwd", secrets)
    password = {s.username: (secrets / f"{s.username}.password").read_text().strip() for s in sites}
    shard_secret = {name: f"{name}-secret" for name in SHARDS}
    centrals = {
        instance: central_broker(
            tmp_path / f"central-{instance}",
            [p for p, i in PROVINCES.items() if i == instance],
            {f"collector-{n}": shard_secret[n] for n in SHARDS if n.startswith(instance)},
            instance=instance,
        )
        for instance in ("a", "b")
    }
    started: list[Mosquitto | Shard | Relay] = []
    try:
        for central in centrals.values():
            central.start()
            started.append(central)
        backhaul = Relay(centrals["a"].port)  # hp's link to the centre
        started.append(backhaul)
        provincials = {}
        for province, instance in PROVINCES.items():
            port = backhaul.port if province == "hp" else centrals[instance].port
            accounts = {s.username: password[s.username] for s in sites if s.province == province}
            broker = provincial_broker(
                tmp_path / province, province, centre_port=port, agents=accounts
            )
            broker.start()
            started.append(broker)
            provincials[province] = broker
        shards = {}
        for name, provinces in SHARDS.items():
            shard = Shard(
                tmp_path / f"shard-{name}",
                name,
                provinces,
                broker_port=centrals[name[0]].port,
                password=shard_secret[name],
                influx_url=influxdb.url,
                database=db,
            )
            shard.start()
            started.append(shard)
            shards[name] = shard
        command = [
            sys.executable, "-m", "kienco.cli", "simulate",
            "--sites", str(len(sites)), "--interval", str(INTERVAL_S),
            "--duration", str(DURATION_S), "--scenario", "calm", "--secrets-dir", str(secrets),
            "--drain", "60", "--json", "--seqs", "--progress-every", "5",
            *(arg for p in PROVINCES for arg in ("--province", p)),
            *(arg for p, b in provincials.items() for arg in ("--broker", f"{p}={b.url}")),
        ]  # fmt: skip
        log = (tmp_path / "simulate.log").open("wb")
        simulator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        time.sleep(5)
        shards["a2"].kill()  # qn's shard dies with reports in flight
        backhaul.cut()  # hp's bridge to the centre: the fibre is cut
        time.sleep(3)
        shards["a2"].start()
        provincials["qn"].stop()  # qn's own broker stops (and saves its queue)...
        time.sleep(4)
        provincials["qn"].start()  # ... and comes back; its agents resend what is unacked
        time.sleep(2)
        backhaul.restore()  # hp's link returns after 9 s: its broker kept the reports
        out, _ = simulator.communicate(timeout=DURATION_S + 120)
        log.close()
        assert simulator.returncode == 0, (tmp_path / "simulate.log").read_text()[-3000:]
        last = json.loads(out)["last_seq"]
        assert len(last) == len(sites) and min(last.values()) >= DURATION_S / INTERVAL_S - 1
        # Every report acknowledged by a provincial broker reaches InfluxDB, whatever broke.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seqs = _report_seqs(influxdb, db)
            if sum(map(len, seqs.values())) >= sum(last.values()):
                break
            time.sleep(0.5)
        for site, final in last.items():
            held = seqs.get(site, [])
            missing = sorted(set(range(1, final + 1)) - set(held))
            assert not missing, f"{site}: seqs {missing} never stored"
            assert len(held) == len(set(held)), f"{site}: a seq stored twice"
            assert max(held) == final
        assert backhaul.cuts == 1
        # Each site judged by exactly one shard, the one of its province.
        time.sleep(1.5)  # a readiness list may be 1 s old
        judged_by = {name: shard.sites() for name, shard in shards.items()}
        for site in sites:
            judges = [name for name, judged in judged_by.items() if site.site in judged]
            expected = next(n for n, provinces in SHARDS.items() if site.province in provinces)
            assert judges == [expected], f"{site.site} ({site.province}) judged by {judges}"
    finally:
        for thing in reversed(started):
            if isinstance(thing, Relay):
                thing.close()
            else:
                thing.stop()
