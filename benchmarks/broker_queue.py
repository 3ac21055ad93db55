"""A province's backhaul cut: what the provincial broker's queue costs, how fast it drains,
and what happens at its limit.

A provincial Mosquitto runs the shipped ``firmware-configs/mosquitto/provincial-hp.conf``
(only its listener, paths and the bridge's address and password changed, as
tests/test_topology.py runs it), bridged to a central one running the shipped
``central-a.conf``; a persistent QoS 1 subscriber on the central broker stands for the
collector shard. Then, in one run (loopback ports only):

1. The cut: the central broker is stopped (SIGTERM; its store keeps the subscriber's
   session). A publisher sends ``--messages`` realistic reports (a UPS, a generator, 3
   paths and the host: ~1.1 KB of JSON, ``--sites`` sites round-robin, each report's seq
   unique) at QoS 1 and ``--rate`` per second into the provincial broker, which queues
   them for its bridge. Its RSS is read before and after: bytes of RSS per queued
   message, against the payload's own size (the ratio is the broker's overhead).
2. The return: the central broker is started again on the same port and store; the bridge
   reconnects and drains the queue. Measured: the drain rate (queued messages / seconds
   until the provincial broker's store is empty, from ``$SYS``) and the rate at which the
   subscriber received them; then the count: every (site, seq) sent received, none lost,
   duplicates counted (QoS 1 allows them).
3. ``--save``: before the backhaul comes back, the queue full, the provincial broker is
   told to save its store (SIGUSR1: what each ``autosave_interval`` does), and
   ``kienco broker probe``'s knock is sent at once. Measured: how long the save takes
   (its ``mosquitto.db.new`` written and renamed), the database's size, and how long
   the knock waits for its CONNACK meanwhile (Mosquitto is single-threaded: it answers
   no client while it saves). The broker watchdog must not take a save for a wedge
   (docs/topology.md, "A provincial broker that stops answering"). Then the broker is
   restarted on that store: SIGTERM to its exit (it saves the store again), and its
   start to its first CONNACK (it reads the whole store before it listens): what the
   unit's ``TimeoutStopSec`` and ``TimeoutStartSec`` must allow.
   ``--cold`` (with ``--save``): the start as after a reboot, the store not in the page
   cache. After the SIGTERM the store's own pages are evicted (``fsync``, then
   ``posix_fadvise(DONTNEED)`` on that file alone: the machine's other caches are left
   alone), the share still resident checked with ``mincore``; the disk's raw sequential
   read of the same file is timed (evicted again first, and with ``O_DIRECT``), the file
   evicted once more, and the start timed to its first CONNACK; then a second SIGTERM and
   a start with the store in the cache (warm), for comparison in the same run.
4. ``--max-queued N`` (a separate run): the shipped ``max_queued_messages`` replaced by a
   small N, to see the limit: how many arrive, how many are lost, and whether the broker
   says so (``$SYS/broker/publish/messages/dropped``, its log).

Run (as root: the shipped config runs Mosquitto as ``user root`` here):

    .venv/bin/python benchmarks/broker_queue.py --messages 500000 --rate 5000
    .venv/bin/python benchmarks/broker_queue.py --messages 1000000 --rate 8000 --save
    .venv/bin/python benchmarks/broker_queue.py --messages 1000000 --rate 8000 --save --cold
    .venv/bin/python benchmarks/broker_queue.py --messages 20000 --rate 5000 --max-queued 5000

A full provincial queue (5 000 000) adds ``--drain-timeout 1200 --still-s 90``: each of its
autosaves silences the broker for ~27 s, longer than the default ``--still-s``.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from _common import Sampler, log, make_report, make_sites, print_summary, wire
from _page_cache import evict, read_seconds, resident_share
from paho.mqtt.enums import CallbackAPIVersion

from kienco.broker_probe import Listener, knock
from kienco.local_services import Mosquitto
from plumbing.data import firmware_configs

SHIPPED = firmware_configs() / "mosquitto"
PROVINCIAL = SHIPPED / "provincial-hp.conf"
CENTRAL = SHIPPED / "central-a.conf"
CENTRAL_ACL = SHIPPED / "central-a.acl"
BRIDGE_PASSWORD = "bridge-hp-secret"
COLLECTOR = ("collector-a1", "collector-secret")
SEQ_PLACEHOLDER = 987654321
SEQ = re.compile(rb'"seq":(\d+)')


def provincial_conf(into: Path) -> Path:
    """The shipped provincial file as is, plus $SYS every second and notices in the log
    (Mosquitto says there when it drops messages for a client)."""
    into.mkdir(parents=True, exist_ok=True)
    path = into / "provincial-hp.conf"
    path.write_text(PROVINCIAL.read_text() + "\nsys_interval 1\nlog_type notice\n")
    return path


class SysWatch:
    """The provincial broker's ``$SYS`` figures, kept as they come (every second)."""

    def __init__(self, port: int) -> None:
        self.values: dict[str, float] = {}
        self.history: list[tuple[float, str, float]] = []
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("$SYS/broker/#", qos=0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            value = float(message.payload.split()[0])
        except (ValueError, IndexError):
            return
        topic = message.topic.removeprefix("$SYS/broker/")
        self.values[topic] = value
        self.history.append((time.monotonic(), topic, value))

    def bridge_up(self) -> bool | None:
        states = [v for k, v in self.values.items() if k.startswith("connection/")]
        return bool(states[-1]) if states else None

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Receiver:
    """The collector shard's stand-in: a persistent QoS 1 session on the central broker;
    counts each (topic, seq) it receives, and the second copy of one as a duplicate."""

    def __init__(self, port: int) -> None:
        self.seen: set[tuple[str, int]] = set()
        self.duplicates = 0
        self.received = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=COLLECTOR[0],
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(*COLLECTOR)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe("kienco/v1/hp/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the receiver could not subscribe on the central broker")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        match = SEQ.search(message.payload)
        if match is None:
            return
        key = (message.topic, int(match.group(1)))
        now = time.monotonic()
        with self.lock:
            if not self.received:
                self.first_at = now
            self.received += 1
            self.last_at = now
            if key in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(key)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def templates(count: int) -> list[tuple[str, bytes, bytes]]:
    """One report per site, encoded once; each message only changes the seq in it."""
    rng = random.Random(13)
    now = datetime.now(UTC)
    out = []
    for site in make_sites(count, provinces=("hp",)):
        report = make_report(site, SEQ_PLACEHOLDER, now, interval_s=10.0, rng=rng)
        payload = wire(report)
        head, tail = payload.split(str(SEQ_PLACEHOLDER).encode(), 1)
        out.append((f"{site.base_topic}/report", head, tail))
    return out


def publish(port: int, count: int, rate: float, sites: int) -> tuple[float, float, float]:
    """``count`` QoS 1 reports at ``rate``/s; returns (seconds, reports/s, mean payload bytes)
    once the broker has acknowledged every one."""
    forms = templates(sites)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-publisher",
        protocol=mqtt.MQTTv311,
    )
    window = 1000
    client.max_inflight_messages_set(window)
    acked = 0
    acked_lock = threading.Lock()

    def on_publish(*_: Any) -> None:
        nonlocal acked
        with acked_lock:
            acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    payload_bytes = 0
    step = 0.01
    for i in range(count):
        topic, head, tail = forms[i % sites]
        payload = head + str(i // sites).encode() + tail
        payload_bytes += len(payload)
        # Never more in flight than paho's window: past it paho queues the message and,
        # seen once on a loaded machine, never sent the 562 000 queued after 437 000 acks.
        while i - acked >= window - 100:
            time.sleep(0.001)
        client.publish(topic, payload, qos=1)
        if i % 200 == 199:
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > step:
                time.sleep(ahead)
        if i % 100_000 == 99_999:
            log(f"published {i + 1:,}, acked {acked:,}")
    deadline = time.monotonic() + 600
    while acked < count and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    if acked < count:
        raise RuntimeError(f"the provincial broker acked {acked} of {count}")
    return elapsed, count / elapsed, payload_bytes / count


def rss(process: Any) -> int:
    return int(psutil.Process(process.pid).memory_info().rss)


def mb(size: float) -> float:
    return size / 2**20


def cpu_s(process: Any) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def wait_until(condition: Any, timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return bool(condition())


def forced_save(provincial: Mosquitto, timeout_s: float) -> list[tuple[str, Any]]:
    """SIGUSR1 (Mosquitto writes its whole store into ``mosquitto.db.new``, then renames it
    over ``mosquitto.db``: what each autosave does), and the watchdog's knock meanwhile."""
    assert provincial.process is not None
    db = provincial.workdir / "data" / "mosquitto.db"
    new = db.with_name(db.name + ".new")
    before = db.stat().st_mtime_ns if db.exists() else 0
    knocked: dict[str, Any] = {}

    def knock_now() -> None:
        began = time.monotonic()
        knocked["said"] = knock(Listener(provincial.port, "127.0.0.1", False), timeout_s)
        knocked["s"] = time.monotonic() - began

    log("forcing a save of the provincial store (SIGUSR1), knocking meanwhile")
    began = time.monotonic()
    provincial.process.send_signal(signal.SIGUSR1)
    prober = threading.Thread(target=knock_now, name="knock", daemon=True)
    prober.start()
    seen_new = wait_until(new.exists, 10, every_s=0.005)
    saved = wait_until(
        lambda: not new.exists() and db.exists() and db.stat().st_mtime_ns != before,
        timeout_s,
        every_s=0.01,
    )
    saved_s = time.monotonic() - began
    prober.join(timeout_s)
    size = db.stat().st_size if db.exists() else 0
    log(f"saved in {saved_s:.2f} s ({size / 2**20:,.0f} MB); knock: {knocked}")
    return [
        ("forced save: saw mosquitto.db.new / renamed", f"{seen_new} / {saved}"),
        ("forced save: SIGUSR1 to mosquitto.db renamed (s)", saved_s),
        ("forced save: database size (MB)", mb(size)),
        ("forced save: the watchdog's knock answered after (s)", knocked.get("s")),
        ("forced save: the knock's verdict", knocked.get("said") or "answered"),
    ]


def stop_timed(provincial: Mosquitto, timeout_s: float) -> float:
    """SIGTERM to exit: Mosquitto saves its whole store as it exits."""
    assert provincial.process is not None
    began = time.monotonic()
    provincial.process.terminate()
    provincial.process.wait(timeout_s)
    return time.monotonic() - began


def start_timed(provincial: Mosquitto, timeout_s: float) -> tuple[float | str, float]:
    """A start on the store left: seconds to its first CONNACK (it reads the whole store
    before it listens), or why none; and the CPU seconds the broker spent until then."""
    listener = Listener(provincial.port, "127.0.0.1", False)
    with (provincial.workdir / "mosquitto.log").open("ab") as out:
        began = time.monotonic()
        provincial.process = subprocess.Popen(
            [provincial.binary, "-c", str(provincial.conf)], stdout=out, stderr=out
        )
    answered = wait_until(lambda: knock(listener, 1.0) is None, timeout_s, every_s=0.05)
    start_s = time.monotonic() - began
    cpu = cpu_s(provincial.process)
    return (start_s if answered else f"none in {timeout_s:g} s"), cpu


def seconds(value: float | str) -> str:
    return f"{value:.2f} s" if isinstance(value, float) else value


def store_of(provincial: Mosquitto) -> Path:
    return provincial.workdir / "data" / "mosquitto.db"


def restart_timed(provincial: Mosquitto, timeout_s: float) -> list[tuple[str, Any]]:
    """SIGTERM (Mosquitto saves its whole store as it exits), then a start on that store
    (it reads it all before it listens): how long each takes, what systemd's
    ``TimeoutStopSec`` and ``TimeoutStartSec`` must allow."""
    log("restarting the provincial broker on its full store")
    stop_s = stop_timed(provincial, timeout_s)
    db = store_of(provincial)
    size = db.stat().st_size if db.exists() else 0
    start_s, _ = start_timed(provincial, timeout_s)
    log(f"stopped in {stop_s:.2f} s, {mb(size):,.0f} MB; answering after {seconds(start_s)}")
    return [
        ("restart: SIGTERM to exit, the store saved (s)", stop_s),
        ("restart: store at exit (MB)", mb(size)),
        ("restart: start to the first CONNACK, the store read (s)", start_s),
    ]


def cold_restart_timed(provincial: Mosquitto, timeout_s: float) -> list[tuple[str, Any]]:
    """As after a reboot: SIGTERM, the store's pages evicted from the page cache (this file
    only: ``fsync`` + ``POSIX_FADV_DONTNEED``, checked with ``mincore``), the disk's raw
    sequential read of the same file timed, then a start on it (cold); then SIGTERM again
    and a start with the store just written, in the cache (warm), for comparison."""
    log("restarting the provincial broker on its full store, the store evicted (cold)")
    stop_s = stop_timed(provincial, timeout_s)
    db = store_of(provincial)
    size = db.stat().st_size
    resident_at_exit = resident_share(db)
    evict(db)
    resident_evicted = resident_share(db)
    buffered_s = read_seconds(db, direct=False)
    resident_read = resident_share(db)
    direct_s = read_seconds(db, direct=True)
    evict(db)
    resident_cold = resident_share(db)
    log(
        f"{mb(size):,.0f} MB; resident at exit {resident_at_exit:.1%}, evicted"
        f" {resident_evicted:.1%}; read {mb(size) / buffered_s:,.0f} MB/s (evicted),"
        f" {mb(size) / direct_s:,.0f} MB/s (O_DIRECT); resident at the cold start"
        f" {resident_cold:.1%}"
    )
    cold_s, cold_cpu = start_timed(provincial, timeout_s)
    resident_started = resident_share(db)
    log(f"cold start answered after {seconds(cold_s)} (broker CPU {cold_cpu:.2f} s)")
    stop2_s = stop_timed(provincial, timeout_s)
    resident_warm = resident_share(db)
    warm_s, warm_cpu = start_timed(provincial, timeout_s)
    log(f"stopped again in {stop2_s:.2f} s; warm start answered after {seconds(warm_s)}")

    def ratio(a: float | str, b: float | str) -> float | str:
        return a / b if isinstance(a, float) and isinstance(b, float) else "n/a"

    return [
        ("cold: SIGTERM to exit, the store saved (s)", stop_s),
        ("cold: store at exit (MB)", mb(size)),
        ("cold: store resident at exit / evicted / after its read / at the start",
         f"{resident_at_exit:.1%} / {resident_evicted:.1%} / {resident_read:.1%}"
         f" / {resident_cold:.1%}"),
        ("cold: raw sequential read, evicted, 8 MiB reads (s)", buffered_s),
        ("cold: raw sequential read, evicted (MB/s)", mb(size) / buffered_s),
        ("cold: raw sequential read, O_DIRECT, 8 MiB reads (s)", direct_s),
        ("cold: raw sequential read, O_DIRECT (MB/s)", mb(size) / direct_s),
        ("cold: start to the first CONNACK, the store evicted (s)", cold_s),
        ("cold: broker CPU until then (s)", cold_cpu),
        ("cold: store resident after the cold start", f"{resident_started:.1%}"),
        ("cold: start / raw read (evicted)", ratio(cold_s, buffered_s)),
        ("cold: start / raw read (O_DIRECT)", ratio(cold_s, direct_s)),
        ("warm: SIGTERM to exit again, the store saved (s)", stop2_s),
        ("warm: store resident at the warm start", f"{resident_warm:.1%}"),
        ("warm: start to the first CONNACK, the store in the cache (s)", warm_s),
        ("warm: broker CPU until then (s)", warm_cpu),
        ("cold start / warm start", ratio(cold_s, warm_s)),
    ]  # fmt: skip


def run(args: argparse.Namespace, workdir: Path) -> list[tuple[str, Any]]:
    central = Mosquitto(
        workdir / "central-a",
        users={"bridge-hp": BRIDGE_PASSWORD, COLLECTOR[0]: COLLECTOR[1]},
        conf=CENTRAL,
        acl=CENTRAL_ACL,
    )
    central.start()
    settings: dict[str, str | None] = {
        "address": f"127.0.0.1:{central.port}",
        "remote_password": BRIDGE_PASSWORD,
        "bridge_cafile": None,  # a plain TCP bridge on loopback
        "restart_timeout": "1 2",  # back within seconds, as in tests/test_topology.py
    }
    if args.max_queued is not None:
        settings["max_queued_messages"] = str(args.max_queued)
    provincial = Mosquitto(
        workdir / "hp", users=None, conf=provincial_conf(workdir / "hp"), settings=settings
    )
    provincial.start()
    watch = receiver = None
    rows: list[tuple[str, Any]] = []
    try:
        watch = SysWatch(provincial.port)
        receiver = Receiver(central.port)
        if not wait_until(lambda: watch.bridge_up() is True, 20):
            raise RuntimeError(f"the bridge never came up: {sorted(watch.values)}")
        time.sleep(1.5)
        log("cutting the backhaul: stopping the central broker")
        central.stop()
        time.sleep(1.5)
        rss_before = rss(provincial.process)
        baseline = watch.values.get("store/messages/count", 0.0)
        log(f"provincial RSS before: {rss_before / 2**20:.1f} MB; publishing {args.messages:,}")
        pub_s, pub_rate, payload = publish(provincial.port, args.messages, args.rate, args.sites)
        time.sleep(2.5)
        rss_after = rss(provincial.process)
        stored = watch.values.get("store/messages/count", float("nan"))
        stored_bytes = watch.values.get("store/messages/bytes", float("nan"))
        dropped_cut = watch.values.get("publish/messages/dropped", 0.0)
        per_message = (rss_after - rss_before) / args.messages
        log(f"provincial RSS after: {rss_after / 2**20:.1f} MB ({per_message:,.0f} B/message)")
        rows += [
            ("max_queued_messages", args.max_queued or "shipped (5 000 000)"),
            ("messages published (QoS 1, acked)", args.messages),
            ("publish rate asked / achieved (/s)", f"{args.rate:,.0f} / {pub_rate:,.0f}"),
            ("publish window (s)", pub_s),
            ("payload mean (bytes)", payload),
            ("provincial RSS before / after (MB)", f"{mb(rss_before):.1f} / {mb(rss_after):.1f}"),
            ("RSS per queued message (bytes)", per_message),
            ("RSS per message / payload", per_message / payload),
            ("$SYS store/messages/count before / after", f"{baseline:,.0f} / {stored:,.0f}"),
            ("$SYS store/messages/bytes after the cut", stored_bytes),
            ("$SYS publish/messages/dropped after the cut", dropped_cut),
        ]  # fmt: skip
        if args.save:
            rows += forced_save(provincial, args.drain_timeout)
            if args.cold:
                rows += cold_restart_timed(provincial, args.drain_timeout)
            else:
                rows += restart_timed(provincial, args.drain_timeout)

        log("restoring the backhaul: starting the central broker")
        restored = time.monotonic()
        assert provincial.process is not None
        draining = Sampler({"provincial": provincial.process.pid}, every_s=0.2).start()
        central.start()
        total_expected = args.messages

        # Until every message came, or none came for --still-s once they flowed (at the
        # limit fewer arrive), or --drain-timeout.
        deadline = restored + args.drain_timeout
        last, still_since = -1, time.monotonic()
        while receiver.received < total_expected and time.monotonic() < deadline:
            time.sleep(0.5)
            if receiver.received != last:
                last, still_since = receiver.received, time.monotonic()
                log(f"received {last:,}")
            elif last > 0 and time.monotonic() - still_since > args.still_s:
                break
        drained_s = receiver.last_at - restored
        drain = draining.stop()["provincial"]
        lost = args.messages - len(receiver.seen)
        log_text = (provincial.workdir / "mosquitto.log").read_text(errors="replace")

        def sys_value(topic: str) -> float:
            return watch.values.get(topic, float("nan")) if watch is not None else float("nan")

        rows += [
            ("bridge back to last message (s)", drained_s),
            ("drain rate, all received (/s)", receiver.received / max(drained_s, 1e-9)),
            ("drain rate, receiver's first to last (/s)",
             receiver.received / max(receiver.last_at - receiver.first_at, 1e-9)),
            ("received (with duplicates)", receiver.received),
            ("distinct (site, seq) received", len(receiver.seen)),
            ("duplicates", receiver.duplicates),
            ("lost", lost),
            ("$SYS store/messages/count at the end", sys_value("store/messages/count")),
            ("$SYS publish/messages/dropped at the end", sys_value("publish/messages/dropped")),
            ("provincial log: 'being dropped' lines", log_text.count("being dropped")),
            ("provincial RSS peak while draining (MB)", drain.peak_rss_mb),
            ("peak RSS while draining per queued message (bytes)",
             (drain.peak_rss_mb * 2**20 - rss_before) / args.messages),
            ("provincial CPU while draining (% of a core)", drain.cpu_pct),
            ("provincial RSS at the end (MB)", mb(rss(provincial.process))),
            ("provincial broker CPU total (s)", cpu_s(provincial.process)),
        ]  # fmt: skip
        return rows
    finally:
        if receiver is not None:
            receiver.stop()
        if watch is not None:
            watch.stop()
        provincial.stop()
        central.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5_000.0, help="reports/s during the cut")
    parser.add_argument("--sites", type=int, default=1_000, help="sites the reports come from")
    parser.add_argument(
        "--max-queued", type=int, default=None, help="replace the shipped max_queued_messages"
    )
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument(
        "--still-s",
        type=float,
        default=10.0,
        help="stop counting once nothing came for this long (at the limit fewer arrive);"
        " longer than an autosave for a large queue: 26.6 s at 5 000 000",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="force a save of the full queue (SIGUSR1) and time it, the watchdog knocking",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="with --save: evict the store from the page cache before the restart (as after"
        " a reboot), time the disk's raw read of it, and a warm start after",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cold and not args.save:
        parser.error("--cold times the restart of --save: give both")
    with tempfile.TemporaryDirectory(prefix="kienco-bench-queue-") as tmp:
        rows = run(args, Path(tmp))
    print_summary("Provincial broker: queue during a backhaul cut", rows, as_json=args.json)


if __name__ == "__main__":
    main()
