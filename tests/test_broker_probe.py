"""``kienco broker probe``, the watchdog's probe: any answer of a real Mosquitto is alive
(a CONNACK refusing an anonymous login, a TLS handshake refused for want of a client
certificate); a broker that answers nothing (stopped with SIGSTOP, as a wedged one
answers nothing) or a port nobody listens on is not, and only that exits 3, the status
on which the watchdog unit kills the broker. A broker that answers nothing while it
writes its store (a fresh ``mosquitto.db.new``) is busy, not wedged: never killed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kienco import broker_probe
from kienco.broker_probe import SAVE_GRACE_S, Listener, listeners, saving, store
from kienco.cli import main
from kienco.commands.broker import EXIT_NOT_ANSWERING
from kienco.local_services import Mosquitto, ServerTls, free_port
from tests.support.pki import Pki

REPO = Path(__file__).resolve().parents[1]
BROKERS = REPO / "firmware-configs" / "mosquitto"
WATCHDOG = REPO / "firmware-configs" / "systemd" / "mosquitto-kienco-watchdog@.service"
BROKER_UNIT = REPO / "firmware-configs" / "systemd" / "mosquitto-kienco@.service"
FAST = ["--tries", "2", "--timeout", "0.5"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listener 8883\ncafile a\ncertfile b\n", [Listener(8883, "127.0.0.1", True)]),
        ("listener 1883 10.0.0.5\n", [Listener(1883, "10.0.0.5", False)]),
        ("listener 1883 0.0.0.0 # all of them\n", [Listener(1883, "127.0.0.1", False)]),
        ("listener 9001\nprotocol websockets\n", []),
        ("listener 0 /run/m.sock\n", []),
        # a bridge's TLS options are not the listener's
        (
            "listener 1883\nconnection up\naddress c:8883\ncertfile x\n",
            [Listener(1883, "127.0.0.1", False)],
        ),
        ("# listener 1883\nallow_anonymous true\n", []),
        (
            "listener 1883 127.0.0.1\nlistener 8883\ncertfile c\n",
            [Listener(1883, "127.0.0.1", False), Listener(8883, "127.0.0.1", True)],
        ),
    ],
)
def test_listeners_of_a_config(text: str, expected: list[Listener]) -> None:
    assert listeners(text) == expected


@pytest.mark.parametrize("conf", ["provincial-hp.conf", "central-a.conf", "kienco.conf"], ids=str)
def test_every_shipped_broker_has_a_tls_listener_to_probe(conf: str) -> None:
    found = listeners((BROKERS / conf).read_text())
    assert found and all(listener.tls for listener in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("persistence true\npersistence_location /var/lib/m/\n", "/var/lib/m/mosquitto.db"),
        (
            "persistence_location /d/ # the store\npersistence_file k.db\npersistence true\n",
            "/d/k.db",
        ),
        # Mosquitto 2.0.11 adds the slash a location lacks (tried: /d/x gave /d/x/mosquitto.db)
        ("persistence true\npersistence_location /d/x\n", "/d/x/mosquitto.db"),
        ("persistence false\npersistence_location /var/lib/m/\n", None),
        ("persistence true\n", None),  # Mosquitto's working directory: not in the config
        ("# persistence true\npersistence_location /d/\n", None),
        (
            "persistence true\npersistence_location /a/\npersistence_location /b/\n",
            "/b/mosquitto.db",
        ),
    ],
)
def test_the_store_of_a_config(text: str, expected: str | None) -> None:
    found = store(text)
    assert (str(found) if found is not None else None) == expected


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ("provincial-hp.conf", "/var/lib/mosquitto-kienco-hp/mosquitto.db"),
        ("central-a.conf", "/var/lib/mosquitto-kienco-a/mosquitto.db"),
        ("kienco.conf", "/var/lib/mosquitto/mosquitto.db"),
    ],
    ids=str,
)
def test_every_shipped_broker_has_a_store_the_probe_finds(conf: str, expected: str) -> None:
    assert str(store((BROKERS / conf).read_text())) == expected


def test_a_store_is_being_saved_while_its_new_file_is_fresh(tmp_path: Path) -> None:
    database = tmp_path / "mosquitto.db"
    database.write_bytes(b"saved")
    assert saving(database) is None  # no .new: not saving
    partial = tmp_path / "mosquitto.db.new"
    partial.write_bytes(b"\0" * 2**20)
    now = partial.stat().st_mtime
    said = saving(database, now=now + 5)
    assert said is not None and str(partial) in said and "1 MB" in said, said
    # A .new left by a broker killed mid-save ages out.
    assert saving(database, now=now + SAVE_GRACE_S + 1) is None


def test_a_save_that_ends_before_the_last_try_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is looked at after each failed try: a save that ends (its .new renamed)
    between the last try's timeout and a look at the end would leave a healthy broker
    with no proof of life, and killed."""
    database = tmp_path / "mosquitto.db"
    partial = tmp_path / "mosquitto.db.new"
    partial.write_bytes(b"\0" * 4096)
    tries: list[Listener] = []

    def silent(listener: Listener, timeout_s: float) -> str:
        tries.append(listener)
        if len(tries) == 2:
            partial.replace(database)  # the save ends: renamed over the store
        return f"{listener}: no answer in {timeout_s:g} s"

    monkeypatch.setattr(broker_probe, "knock", silent)
    probed = broker_probe.probe(
        [Listener(1883, "127.0.0.1", False)], tries=3, timeout_s=0.1, database=database
    )
    assert probed.busy is not None and "writing its store" in probed.busy, probed
    assert len(tries) == 1  # seen after the first failed try: no kill decided on later ones


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path / "broker", users={"hp/hp-bts-001": "secret"})
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def _probe(conf: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["broker", "probe", "--config", str(conf), *FAST])
    said = capsys.readouterr()
    return status, said.out + said.err


def test_a_broker_that_refuses_an_anonymous_login_has_answered(
    broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    status, said = _probe(broker.conf, capsys)
    assert status == 0, said
    assert f"127.0.0.1:{broker.port}: answered" in said


@pytest.mark.parametrize("require_certificate", [False, True], ids=["tls", "client-cert"])
def test_a_tls_broker_has_answered_even_when_it_wants_a_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], require_certificate: bool
) -> None:
    pki = Pki(tmp_path / "pki")
    server = pki.server()
    tls = ServerTls(pki.ca_file, server.cert, server.key, require_certificate)
    mosquitto = Mosquitto(tmp_path / "broker", users={"hp/x": "secret"}, tls=tls)
    mosquitto.start()
    try:
        status, said = _probe(mosquitto.conf, capsys)
    finally:
        mosquitto.stop()
    assert status == 0, said
    assert f"127.0.0.1:{mosquitto.port} (TLS): answered" in said


def test_a_broker_that_answers_nothing_is_reported_with_the_status_that_kills_it(
    broker: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)  # the kernel still accepts; no one answers
    try:
        started = time.monotonic()
        status, said = _probe(broker.conf, capsys)
        took = time.monotonic() - started
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert status == EXIT_NOT_ANSWERING == 3, said
    assert f"127.0.0.1:{broker.port}: no answer in 0.5 s" in said
    assert "không trả lời / not answering" in said
    assert took < 5, took  # 2 tries of 0.5 s, not more
    # It came back: the same probe says so.
    assert _probe(broker.conf, capsys)[0] == 0


@pytest.mark.parametrize("age_s", [1.0, SAVE_GRACE_S + 60], ids=["saving", "stale"])
def test_a_broker_silent_while_it_writes_its_store_is_busy_not_killed(
    broker: Mosquitto, capsys: pytest.CaptureFixture[str], age_s: float
) -> None:
    """A save answers no one (Mosquitto's one thread writes the whole store): a broker
    silent beside a fresh ``.new`` is not killed; beside a stale one (left by a broker
    killed mid-save), it is."""
    assert broker.process is not None
    database = store(broker.conf.read_text())
    assert database == broker.workdir / "data" / "mosquitto.db"
    partial = database.with_name("mosquitto.db.new")
    partial.write_bytes(b"\0" * 4096)
    written = time.time() - age_s
    os.utime(partial, (written, written))
    os.kill(broker.process.pid, signal.SIGSTOP)  # silent, as during a long save
    try:
        status, said = _probe(broker.conf, capsys)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
        partial.unlink()
    if age_s < SAVE_GRACE_S:
        assert status == 0, said
        assert "busy, not killed: writing its store" in said
        assert "no answer in 0.5 s" in said  # what it saw, said all the same
    else:
        assert status == EXIT_NOT_ANSWERING, said
        assert "not answering" in said


def test_nobody_listening_is_not_answering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "kienco-hp.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\n")
    status, said = _probe(conf, capsys)
    assert status == EXIT_NOT_ANSWERING, said
    assert "Connection refused" in said


@pytest.mark.parametrize("text", [None, "allow_anonymous true\n"], ids=["missing", "no-listener"])
def test_a_config_it_cannot_use_kills_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None
) -> None:
    conf = tmp_path / "kienco-hp.conf"
    if text is not None:
        conf.write_text(text)
    status, said = _probe(conf, capsys)
    assert status == 2, said
    assert str(conf) in said


def test_the_watchdog_probes_the_config_its_broker_runs_and_kills_only_on_no_answer() -> None:
    unit = WATCHDOG.read_text()
    broker_conf = "/etc/mosquitto/kienco-%i.conf"
    assert f"ExecStart=/usr/sbin/mosquitto -c {broker_conf}" in BROKER_UNIT.read_text()
    assert f"kienco broker probe --config {broker_conf}" in unit
    (stop_post,) = [line for line in unit.splitlines() if line.startswith("ExecStopPost=")]
    assert f'[ "$EXIT_STATUS" != {EXIT_NOT_ANSWERING} ] ||' in stop_post
    assert "systemctl kill --signal=SIGKILL mosquitto-kienco@%i.service" in stop_post

    # It runs as the broker's user: it reads the broker's config and looks into its store
    # (a 0700 StateDirectory), which root without capabilities (CapabilityBoundingSet=)
    # cannot; only the lines marked "+" (systemctl) run with full privileges.
    def user(text: str) -> set[str]:
        return {line.split("=", 1)[1] for line in text.splitlines() if line.startswith("User=")}

    assert user(unit) == user(BROKER_UNIT.read_text()) == {"mosquitto"}
    assert "StateDirectoryMode=0700" in BROKER_UNIT.read_text()
    assert "ExecStopPost=+" in unit and "ExecCondition=+" in unit
