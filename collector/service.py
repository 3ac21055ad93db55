"""The collector: subscribe, validate, keep site state, write durably, then acknowledge.

Threads: paho's network thread decodes each message and queues its points;
the writer thread batches them (by count and time), makes the batch durable
(InfluxDB, or the disk spool), and only then acknowledges the batch's messages
to the broker. A collector killed at any moment loses nothing: unacknowledged
messages are redelivered by the broker (persistent session), and writing the
same point twice stores it once.

Every message ends in exactly one of two ways: durable and acknowledged, or
kept in the dead-letter store with its reason and acknowledged (the order and
connection rules of acks live in collector/delivery.py). Every loop runs under
collector/supervision.py: an error is logged once per kind, counted, and the
loop goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter

from collector.admission import Admission
from collector.alert_sender import AlertSender
from collector.api import Api
from collector.backlog import Backlog
from collector.board.live import Changes
from collector.board.ports import BoardParts
from collector.broker_watch import ROUTES as BROKER_COUNT_ROUTES
from collector.broker_watch import BrokerWatch, watch_filters
from collector.config import CollectorConfig
from collector.connection_log import ConnectionLog
from collector.deadletter import DeadLetterStore
from collector.decode import Decoded, Rejected, decode_within
from collector.delivery import Delivery, NoHistory, Pending
from collector.health import Health, assess
from collector.health_points import HealthPoints
from collector.heap import GcPauses
from collector.history import meeting_point, rehearsal_point
from collector.influx import InfluxQueryError, InfluxV1Client
from collector.inventory import Inventory, inventory_meta, load_inventory
from collector.line_protocol import Point, encode_many
from collector.meetings import (
    Meeting,
    MeetingRequest,
    MeetingStatus,
    MeetingStore,
    meeting_status,
    rehearsal_from,
)
from collector.metrics import CollectorMetrics
from collector.mqtt_client import CollectorClient
from collector.points import event_points, report_lines, site_tags, state_points
from collector.readiness import Verdicts
from collector.rejection_log import RejectionLog
from collector.replay import Replayer
from collector.retention_floor import RetentionFloor
from collector.risk import RiskChange, RiskEntry, RiskLevelOf, RiskLevels
from collector.shard_plan import own_problems
from collector.spool import Spool
from collector.state import SiteStates
from collector.state_store import open_and_restore
from collector.subscription_retry import SubscriptionRetry
from collector.summaries import Summaries
from collector.supervision import Loop, Supervisor
from collector.system_watch import Sources, SystemWatch
from collector.web.ports import AreaLevel, Desks
from collector.web.serve import make_api
from collector.whatif_route import WhatIfQuery
from collector.writer import InfluxWriter
from contract.topics import topic as topic_of
from contract.wire import Command, Event, Meta, Report, Status, utc_now
from plumbing.untrusted import one_line
from rules import Policy, SiteSnapshot, load_policy
from rules.compliance import ComplianceReport, build_report
from rules.whatif import WhatIf, forecast

log = logging.getLogger("kienco.collector")

StatusListener = Callable[[Status], None]
T = TypeVar("T")

# paho doubles its reconnect wait up to this cap. A broker back from a restart must find
# the collector again within seconds (it was 41-44 s with a 60 s cap); one client
# knocking every 2 s on a broker that is down costs nothing.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 2
# A site's charts on the board wait this long for InfluxDB, then the page shows without them.
BOARD_HISTORY_TIMEOUT_S = 2.0
# A loop is stuck when it has not beaten for this many of its periods.
STUCK_PERIODS = 10
# The reason a message gets when something raised after it was decoded.
UNPROCESSABLE = "unprocessable"
# The sweeper judges the sites its timers name this many at a time, and waits this long
# between two slices: the GIL is free for paho's thread then. 1 000 sites fall due in the
# same second (their metas came together at start); judged in one go they held the
# ingest path ~270 ms (benchmarks/verdicts.py). ~25 sites are ~5 ms of work here.
SWEEP_SLICE_SITES = 25
SWEEP_PAUSE_S = 0.002


def in_slices(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``, in order."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _refusals(reasons: Sequence[Any]) -> str:
    """A SUBACK's reason codes as text: ``Not authorized (0x87)``, each once (MQTT 5 names
    why; 3.1.1 has one failure code, 0x80, which paho calls "Unspecified error")."""
    said = [f"{r} (0x{int(getattr(r, 'value', 0)):02x})" for r in reasons if r.is_failure]
    return ", ".join(dict.fromkeys(said))


class Collector:
    """``start()``, then ``stop()``. Verdicts are published retained on each site's status topic."""

    def __init__(
        self,
        config: CollectorConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        policy: Policy | None = None,
        risk_level: RiskLevelOf | None = None,
        on_status: StatusListener | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = CollectorMetrics()
        self._watch_mid: int | None = None
        self._stopping_since: float | None = None
        self.backlog = Backlog(  # provinces read late; agents' clocks vouched behind
            config.status.late_after_s, future_tolerance_s=config.limits.future_tolerance_s
        )
        # Subscriptions a SUBACK refused are asked for again (collector/subscription_retry.py).
        self._reports_retry = SubscriptionRetry()
        self._watch_retry = SubscriptionRetry()
        self._accepted: dict[str, Counter] = {}  # kienco_messages_accepted by kind
        self.gc_pauses = GcPauses(self.metrics.registry)  # /metrics: kienco_gc_pause_*
        self.supervisor = Supervisor(self.metrics.registry, logger=log)
        self._stopping = self.supervisor.stopping
        self._loops = self._make_loops()
        self.states = SiteStates(clock=clock)
        self.policy = policy or load_policy(config.policy)
        data = config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        # The brokers' dropped and stored messages (collector/broker_watch.py).
        self.broker_watch = BrokerWatch(
            self.metrics.registry, config.provinces, wall=clock, saved=data / "broker_counts.json"
        )
        self.risk = RiskLevels(data / "risk.sqlite")
        self.risk_of: RiskLevelOf = risk_level or self.risk.level
        self.inventory = load_inventory(config.inventory) if config.inventory else Inventory(())
        if config.provinces is not None:  # a shard judges only the sites it receives
            if config.inventory:  # a province of its with no inventory site: a typo?
                for problem in own_problems(config.provinces, self.inventory):
                    log.warning("collector: %s", problem.en)
            self.inventory = self.inventory.only(config.provinces)
        self.verdicts = Verdicts(
            self.states,
            self.policy,
            risk_level=self.risk_of,
            listed=self.inventory.__contains__ if config.inventory else None,
        )
        self.meetings = MeetingStore(data / "meetings.sqlite")
        saved_list = data / "attention.json" if config.state.persist else None
        self.summaries = Summaries(self.policy, self.inventory, saved_list, risk_level=self.risk_of)
        # Before the inventory: its metas apply over what is restored, as over any meta.
        self.saved_state = open_and_restore(
            config.state,
            data / "state.sqlite",
            self.states,
            self.verdicts,
            self.inventory,
            self.metrics.registry,
            clock(),
            limits=config.limits,
            stopping=self._stopping,
        )
        interval = self.policy.freshness.default_interval_s
        for expected in self.inventory:  # never heard from: unknown, and missing everywhere
            self.states.apply_meta(inventory_meta(expected, interval))
        self.admission = Admission(
            self.states,
            self.verdicts,
            self.inventory,
            config.limits,
            offline_after_s=self.policy.freshness.offline_after_s,
        )
        self.on_status = on_status
        self.changes = Changes()  # which sites changed, for the board's open pages
        self._board_history: InfluxV1Client | None = None
        self.dead_letters = DeadLetterStore(data / "deadletter.sqlite")
        self.rejection_log = RejectionLog(log)
        influx = config.influx
        self.influx: InfluxV1Client | None = None
        self.spool: Spool | None = None
        self.writer: InfluxWriter | NoHistory = NoHistory()
        self.health_points: HealthPoints | None = None
        if influx is not None:
            # A CA file it cannot use: ConfigError, at start.
            self.influx = influx.client()
            self.spool = Spool(data / "spool.sqlite", max_bytes=influx.spool_max_bytes)
            self.writer = InfluxWriter(
                self.influx,
                self.spool,
                attempts=influx.retry_attempts,
                beat=self._loops["writer"].beat,
                retention=RetentionFloor(self.influx.retention_s),
            )
            # Its own health as points, written like any (collector/health_points.py).
            self.health_points = HealthPoints(
                config.collector_name,
                influx.health_every_s,
                registry=self.metrics.registry,
                health=lambda: self.health().body,
                drops=lambda: self.broker_watch.runs,
            )
        self._connected = threading.Event()
        self._trust_seen: tuple[object, ...] = ()  # the problems the board last showed
        self.client = self._make_client()
        self.delivery = Delivery(
            writer=self.writer,
            spool=self.spool,
            dead_letters=self.dead_letters,
            metrics=self.metrics,
            batch=config.batch,
            ack=self.client.ack_many,
            now=self.clock,
            stopping=self._stopping,
        )
        self.replayer = Replayer(
            self.dead_letters,
            process=lambda topic, payload, now: self.process(topic, payload, now, heard=False),
            write=self.writer.write_durably,
            now=self.clock,
        )
        self._writer_thread = self.supervisor.spawn(
            self._loops["writer"], self.delivery.step, daemon=False
        )
        self._sweeper_thread = self.supervisor.spawn(
            self._loops["staleness"], self._sweep_step, daemon=True
        )
        self._saver_thread: threading.Thread | None = None
        if self.saved_state is not None:
            every_s = config.state.save_every_s
            saver = self.supervisor.loop(
                "state-saver", every_s=every_s, stuck_after_s=max(30.0, STUCK_PERIODS * every_s)
            )
            self._saver_thread = self.supervisor.spawn(saver, self.saved_state.step, daemon=True)
        self.api: Api | None = None
        self.alerts: AlertSender | None = None
        if config.alerts is not None:
            own = config.alerts.system
            itself = SystemWatch(
                config.collector_name,
                own,
                Sources(
                    health=self.health,
                    failing=lambda: self.connection_log.failing,  # replaced whole by paho's
                    brokers=self.broker_watch,
                    stopping=self._stopping.is_set,
                    late=self.backlog.late,
                ),
                started_at=clock(),
            )
            self.alerts = AlertSender(
                config.alerts,
                verdicts=self.verdicts,
                states=self.states,
                meetings=self.meetings,
                policy=self.policy,
                inventory=self.inventory,
                risk_of=self.risk_of,
                registry=self.metrics.registry,
                supervisor=self.supervisor,
                data_dir=data,
                clock=clock,
                listening=self._connected.is_set,
                system=itself.alerts if own.enabled else None,
            )

    def _make_loops(self) -> dict[str, Loop]:
        sup = self.supervisor
        sweep_s = self.config.status.sweep_s
        # The writer beats after each InfluxDB request; its longest quiet stretch is one
        # request timing out plus a backoff, after the batch wait.
        influx = self.config.influx
        write_s = self.config.batch.max_delay_s + (influx.timeout_s + 1.0 if influx else 0.0)
        loops = [
            sup.loop("mqtt", every_s=None, stuck_after_s=30.0, alive=self._mqtt_alive),
            sup.loop("writer", every_s=write_s, stuck_after_s=max(10.0, STUCK_PERIODS * write_s)),
            sup.loop("staleness", every_s=sweep_s, stuck_after_s=max(2.0, STUCK_PERIODS * sweep_s)),
            sup.loop("api", every_s=None, stuck_after_s=None, alive=self._api_alive),
        ]
        return {loop.name: loop for loop in loops}

    def _mqtt_alive(self) -> bool:
        # paho's network thread (loop_start); paho offers no public handle on it.
        thread = getattr(self.client, "_thread", None)
        return isinstance(thread, threading.Thread) and thread.is_alive()

    def _api_alive(self) -> bool:
        return self.api is None or self.api.alive

    def health(self) -> Health:
        """What /healthz says: broker, InfluxDB, and every loop alive and beating."""
        # One value, replaced whole by paho's thread: connected (subscribed) exactly when
        # there is no reason to give, never one without the other.
        failing = self.connection_log.failing
        health = assess(
            broker_connected=failing is None,
            broker_failure=failing,  # its since: when the broker was lost (or the start)
            influx_configured=self.influx is not None,
            influx_down=self.writer.influx_down,
            influx_down_since=self.writer.down_since,
            spooled_batches=self.spool.depth() if self.spool is not None else 0,
            loops=self.supervisor.health(),
            stopping_since=self._stopping_since,
            late=self.backlog.late(),
        )
        if self.api is not None:
            health.body["http"] = self.api.state()
        return health

    def desks(self) -> Desks:
        """What the API and the board may use of this collector (collector/web/ports.py)."""
        return Desks(
            statuses=self.verdicts,
            sites=self.states,
            risk=self.risk,
            set_risk=self.set_risk,
            meetings=self.meetings,
            plan_meeting=self.plan_meeting,
            judge_meeting=self.judge_meeting,
            request_rehearsal=self.request_rehearsal,
            compliance=self.compliance_report,
            dead_letters=self.dead_letters,
            replay=self.replayer.replay,
            whatif=self.whatif,
        )

    def board_parts(self, desks: Desks) -> BoardParts:
        """What the board's pages use besides the API's parts (collector/board/)."""
        history = None
        influx = self.config.influx
        if influx is not None:  # its own client, its own short timeout: charts never wait
            history = self._board_history = influx.client(timeout_s=BOARD_HISTORY_TIMEOUT_S)
        return BoardParts(
            desks,
            self.changes,
            self.meetings.latest_rehearsals,
            history,
            clock=self.clock,
            health=lambda: self.health().problems,
            poll_s=self.config.http.board_poll_s,
        )

    # --- lifecycle -----------------------------------------------------------------

    def start(self, *, serve_http: bool = True) -> None:
        self.connection_log.connecting()  # /healthz says why nothing comes in, from the start
        if self.influx is not None:
            try:
                self.influx.create_database()
            except InfluxQueryError as exc:  # it answered: an account that is not an admin
                log.info(
                    "InfluxDB %s: database %s not created by the collector (%s); an admin "
                    "makes it (firmware-configs/influxdb/influxdb.conf), writes spool until then",
                    self.influx.url,
                    self.influx.database,
                    exc,
                )
            except Exception as exc:  # InfluxDB down at start: spool until it returns
                log.warning(
                    "InfluxDB %s not reachable at start (%s); spooling", self.influx.url, exc
                )
        if serve_http:
            desks = self.desks()
            self.api = make_api(
                self.config.http,
                desks,
                board=self.board_parts(desks),
                data_dir=self.config.data_dir,
                registry=self.metrics.registry,
                health=lambda: (h := self.health(), (h.ok, h.body))[1],
                supervisor=self.supervisor,
                loop=self._loops["api"],
                clock=self.clock,
            )
            self.api.start()
        self._sweeper_thread.start()
        self._writer_thread.start()
        if self._saver_thread is not None:
            self._saver_thread.start()
        broker = self.config.broker
        properties = None
        if broker.protocol == 5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = broker.session_expiry_s
            # Let the broker keep a whole batch in flight while we make it durable.
            properties.ReceiveMaximum = 65535
        self.client.connect_async(
            broker.host,
            broker.port,
            keepalive=broker.keepalive_s,
            clean_start=False if broker.protocol == 5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()
        if self.alerts is not None:  # last: every loop it watches runs (system_alerts)
            self.alerts.start()

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        """Flush what is pending (durably, then acknowledged) and disconnect."""
        self._stopping_since = time.time()  # /healthz says so while it flushes
        self._stopping.set()
        self.delivery.flush_now.set()
        if self._sweeper_thread.is_alive():  # before paho stops: it must not restart it
            self._sweeper_thread.join(timeout=10)
        if self._writer_thread.is_alive():
            self._writer_thread.join(timeout=60)
        self.client.disconnect()
        self.client.loop_stop()
        if self.saved_state is not None:  # nothing changes the state any more: save it all
            self.saved_state.close()
        self.changes.close()  # the board's live streams end now, not at the server's timeout
        if self.api is not None:
            self.api.stop()
        if self._board_history is not None:
            self._board_history.close()
        if self.alerts is not None:
            self.alerts.stop()
        self.dead_letters.close()
        self.risk.close()
        self.meetings.close()
        self.gc_pauses.close()

    # --- MQTT ----------------------------------------------------------------------

    def _make_client(self) -> CollectorClient:
        broker = self.config.broker
        # Its segments no larger than on a LAN (collector/broker_link.py), its reads buffered
        # and a batch's acks in one write (collector/mqtt_client.py).
        client = CollectorClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=broker.client_id,
            protocol=mqtt.MQTTv5 if broker.protocol == 5 else mqtt.MQTTv311,
            clean_session=None if broker.protocol == 5 else False,
            manual_ack=True,
            read_window_s=broker.read_window_ms / 1000,
        )
        if broker.username:
            password = broker.password.reveal() if broker.password else None
            client.username_pw_set(broker.username, password)
        tls_context = broker.ssl_context()  # a file it cannot use: ConfigError, at start
        if tls_context is not None:
            client.tls_set_context(tls_context)
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        # Why each attempt failed, with the fix, not once per retry (collector/connection_log.py).
        self.connection_log = ConnectionLog(
            log,
            broker.url,
            (RECONNECT_MIN_S, RECONNECT_MAX_S),
            on_failure=self.metrics.connect_failures.inc,
        )
        # paho's callbacks run in its network thread: each one is a step of the mqtt loop.
        mqtt_loop = self._loops["mqtt"]
        client.on_connect = mqtt_loop.guarded(self._on_connect)
        client.on_connect_fail = mqtt_loop.guarded(self._on_connect_fail)
        client.on_disconnect = mqtt_loop.guarded(self._on_disconnect)
        client.on_subscribe = mqtt_loop.guarded(self._on_subscribe)
        client.on_message = mqtt_loop.guarded(self._on_message)
        on_count = mqtt_loop.guarded(self._on_broker_count)
        for route in BROKER_COUNT_ROUTES:
            client.message_callback_add(route, on_count)
        return client

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.connection_log.refused(str(reason))
            return
        self.connection_log.connected()
        self.delivery.connected()
        self._reports_retry.reset()
        self._watch_retry.reset()
        self._subscribe_reports(client)
        self._subscribe_watch(client)
        self.broker_watch.subscribed()
        if getattr(flags, "session_present", False):
            # The session kept our subscription: messages flow now, and after a restart
            # the SUBACK may queue behind the whole backlog the broker kept for us.
            self._subscribed("resumed the session")
        if self.delivery.generation == 1 and len(self.inventory):
            # Sites of the inventory that never reported get their verdict (unknown) now;
            # those restored from disk keep theirs (collector/state_store.py).
            unjudged = [s.site for s in self.inventory if self.verdicts.get(s.site) is None]
            self._judge_sites(unjudged, self.clock())

    def _subscribe_reports(self, client: mqtt.Client) -> None:
        client.subscribe([(topic_filter, 1) for topic_filter in self.config.topic_filters])

    def _subscribe_watch(self, client: mqtt.Client) -> None:
        # Apart, at QoS 0: a broker that refuses them must not hold up the reports (Mosquitto
        # 2.0 grants one its ACL denies, and sends nothing: broker_watch.check_heard).
        _, self._watch_mid = client.subscribe(
            [(topic_filter, 0) for topic_filter in watch_filters(self.config.provinces)]
        )

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, reasons: list[Any], _p: object
    ) -> None:
        # Connected means subscribed: before the SUBACK, a first session gets nothing yet.
        refused = any(getattr(r, "is_failure", False) for r in reasons)
        if mid == self._watch_mid:
            if refused:
                retry_in_s = self._watch_retry.refused()
                counts = watch_filters(self.config.provinces)
                self.broker_watch.subscription_refused(counts, _refusals(reasons), retry_in_s)
            else:
                self._watch_retry.reset()
            return
        if refused:
            # Nothing comes in: not connected for /healthz and /metrics, and it says why
            # (even when a resumed session had said connected before this SUBACK).
            retry_in_s = self._reports_retry.refused()
            filters = " ".join(self.config.topic_filters)
            self.connection_log.subscription_refused(filters, _refusals(reasons), retry_in_s)
            self.metrics.connected.set(0)
            self._connected.clear()
            return
        self._reports_retry.reset()
        self._subscribed("subscribed")

    def _ask_again(self) -> None:
        """Subscriptions the broker refused, asked for again when due: an ACL fixed on a
        live broker is heard without a reconnection (collector/subscription_retry.py)."""
        if self._stopping.is_set():
            return
        if self._reports_retry.take_due():
            log.info("asking the broker again for %s", " ".join(self.config.topic_filters))
            self._subscribe_reports(self.client)
        if self._watch_retry.take_due():
            self._subscribe_watch(self.client)

    def _subscribed(self, how: str) -> None:
        if self._connected.is_set():
            self.connection_log.subscribed()
            return
        self.metrics.connected.set(1)
        self._connected.set()
        self.connection_log.subscribed()  # after: /healthz reads connected from it
        log.info("%s: subscribed to %s", how, " ".join(self.config.topic_filters))

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        # paho's reconnect() raised (TCP, TLS handshake): it says nothing more.
        self.connection_log.connect_failed(self.client.take_link_error())

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        self.delivery.disconnected()
        self.metrics.connected.set(0)
        self._connected.clear()
        error = self.client.take_link_error()
        if not self._stopping.is_set():
            self.connection_log.disconnected(str(reason), error)

    def _on_broker_count(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        # QoS 0: nothing to acknowledge; not a report: never dead-lettered.
        self.broker_watch.observe(msg.topic, bytes(msg.payload))

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        # Raising here (the dead-letter store cannot write) leaves the message unacked:
        # the broker delivers it again. The mqtt loop logs, counts and goes on.
        self.handle(msg.topic, bytes(msg.payload), msg.mid, msg.qos)

    def handle(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """Decode one message and queue its points, or dead-letter it; either way its ack."""
        self.metrics.received.inc()
        now = self.clock()
        generation = self.delivery.generation
        outcome = self.process(topic, payload, now)
        lines = ""
        if isinstance(outcome, Rejected):
            self._dead_letter(now, topic, outcome.reason, outcome.detail, payload)
        else:
            lines = outcome
        # Rejects and ignored messages are acked in their turn, behind earlier messages
        # still waiting for a durable write: MQTT wants acks in the order of receipt.
        self.delivery.queue(Pending(lines, mid, qos, generation, topic, payload))

    def process(
        self, topic: str, payload: bytes, now: datetime, *, heard: bool = True
    ) -> str | Rejected:
        """The decode path: a message's lines to store (maybe none), or why it is refused.

        ``heard`` is False for a dead letter replayed: the site was not heard from now.
        """
        result = decode_within(self.config.limits, topic, payload, now)
        if isinstance(result, Decoded):  # against what we know: province binding, site cap
            result = self.admission.check(result) or result
        if not isinstance(result, Decoded):
            if isinstance(result, Rejected) and result.ahead is not None and heard:
                self.supervisor.attempt(self._refused_ahead, result.ahead, result.ahead_s, now)
            return result if isinstance(result, Rejected) else ""
        try:
            return self._apply(result, topic, payload, now, heard=heard)
        except Exception as exc:  # a bug or an input we did not foresee: kept, never retried
            self.supervisor.record(self.supervisor.current(), exc)
            return Rejected(UNPROCESSABLE, f"{type(exc).__name__}: {exc}"[:1000])

    def _refused_ahead(self, decoded: Decoded, ahead_s: float, now: datetime) -> None:
        """A report refused for its clock ahead: its site (if admitted) says so, not a
        silence (rules/freshness.py, ``clock_ahead_refused``); still dead-lettered."""
        report = decoded.message
        if not isinstance(report, Report) or self.admission.check(decoded) is not None:
            return
        tolerance_s = self.config.limits.future_tolerance_s
        if self.states.note_refused_ahead(report, now, ahead_s, tolerance_s):
            self._judge_sites((report.site,), now)

    def _dead_letter(
        self, now: datetime, topic: str, reason: str, detail: str, payload: bytes
    ) -> None:
        self.dead_letters.put(
            received_at=now, topic=topic, reason=reason, detail=detail, payload=payload
        )
        self.metrics.rejected.labels(reason).inc()
        self.rejection_log.refused(now, topic, reason, detail)

    def _apply(
        self, decoded: Decoded, topic: str, payload: bytes, now: datetime, *, heard: bool
    ) -> str:
        """Fold one message into its site; its lines, then those of what it caused.

        The message's own points are encoded first: a message that cannot be stored
        raises here having changed nothing, and is dead-lettered. What it causes (its
        site judged again, a rehearsal recorded) are steps of their own: if one fails
        (counted, logged once), the message is still stored.
        """
        message = decoded.message
        # Tagged with what is fixed with the site, as its verdicts (collector/points.py).
        kind, operator = site_tags(self.states.get(message.site))
        if isinstance(message, Report):  # the commonest: encoded without making points
            parts = [report_lines(message, site_kind=kind, operator=operator)]
        elif isinstance(message, Event):
            parts = [encode_many(event_points(message, site_kind=kind, operator=operator))]
        elif isinstance(message, Meta):
            parts = []
        else:
            parts = [encode_many(state_points(message, site_kind=kind, operator=operator))]
        vouched = False
        if isinstance(message, Report):
            lag_s = (now - message.taken_at).total_seconds()
            vouched = heard and self.backlog.vouches(message.province, lag_s)
        changed = self.states.apply(message, received_at=now if heard else None, vouched=vouched)
        if self.saved_state is not None:  # logged as it came, for a restart (state_store.py)
            self.saved_state.folded((message.site, topic, payload, now, heard, vouched))
        if isinstance(message, Report):
            self.metrics.lag.set(lag_s)
            self.backlog.observe(message.province, lag_s)
        accepted = self._accepted.get(message.kind)
        if accepted is None:  # prometheus_client's labels() takes a lock and a dict each time
            accepted = self._accepted[message.kind] = self.metrics.accepted.labels(message.kind)
        accepted.inc()
        self.metrics.sites.set(len(self.states))
        attempt = self.supervisor.attempt
        if isinstance(message, Event) and message.event == "rehearsal" and message.detail:
            parts.append(attempt(self._rehearsal_lines, message.detail, message.site, now) or "")
        if changed:
            parts.append(attempt(self._judged_lines, message.site, now) or "")
        return "\n".join(part for part in parts if part)

    def _rehearsal_lines(self, meeting_id: str, site: str, now: datetime) -> str:
        return encode_many(self._record_rehearsal(meeting_id, site, now))

    def _judged_lines(self, site: str, now: datetime) -> str:
        return encode_many(self._judge(site, now))

    def _judge_sites(self, sites: Iterable[str], now: datetime) -> None:
        """Judge sites outside any message; each is a step of its own, so one that fails
        (counted, logged once) leaves the others judged."""
        lines = [self.supervisor.attempt(self._judged_lines, site, now) for site in sites]
        self.delivery.queue_lines("\n".join(line for line in lines if line))

    def _judge(self, site: str, now: datetime) -> list[Point]:
        """Re-evaluate one site; publish its status if it changed (or always, by config).

        Under the site's lock: statuses leave in the order the evaluations were made,
        so the retained one on the broker is the newest.
        """
        with self.verdicts.serial(site):
            judged = self.verdicts.evaluate(site, now)
            if judged is None:
                return []
            status, changed, points = judged
            if changed or self.config.status.publish == "always":
                payload = self.verdicts.json_of(site) or b""
                self.client.publish(
                    topic_of(status.province, site, "status"), payload, qos=1, retain=True
                )
                self.metrics.statuses_published.inc()
                if self.on_status is not None:
                    self.on_status(status)
                if self.alerts is not None:
                    self.alerts.notify(site)
                self.changes.site(site, status.province)
        return points

    def set_risk(self, change: RiskChange) -> RiskEntry:
        """Record a province's risk level and judge its sites again under it, at once."""
        now = self.clock()
        entry = self.risk.set(change, now)
        log.warning(  # reason and author as typed or pasted: one line of text in the log
            "risk level %d for %s (%s), set by %s",
            entry.level,
            entry.province,
            one_line(entry.reason),
            one_line(entry.set_by),
        )
        self._judge_sites((s.site for s in self.states.all() if s.province == change.province), now)
        return entry

    def request_rehearsal(self, meeting: Meeting) -> list[str]:
        """Ask every point of the meeting to run its pre-meeting check now."""
        now = self.clock()
        asked = []
        for site in meeting.points:
            snapshot = self.states.get(site)
            if snapshot is None:
                continue  # never reported: nobody to ask; its status says so
            command = Command(
                site=site,
                province=snapshot.province,
                command="rehearse",
                meeting=meeting.id,
                at=now,
            )
            self.client.publish(
                topic_of(snapshot.province, site, "command"), command.model_dump_json(), qos=1
            )
            asked.append(site)
        return asked

    def plan_meeting(self, request: MeetingRequest, points: list[str]) -> Meeting:
        """Keep a planned meeting, and write it to history stamped at its start."""
        meeting = self.meetings.create(request, points, self.clock())
        provinces = {s.province for s in map(self.states.get, meeting.points) if s is not None}
        province = meeting.province or (provinces.pop() if len(provinces) == 1 else None)
        point = meeting_point(
            meeting.id,
            meeting.title,
            meeting.starts_at,
            meeting.duration_s,
            meeting.points,
            province=province,
            created_by=meeting.created_by,
        )
        self.delivery.queue_lines(encode_many([point]))
        return meeting

    def judge_meeting(self, meeting: Meeting) -> MeetingStatus:
        """Every point of the meeting judged for it now, with its latest rehearsal."""
        return meeting_status(
            meeting, self.states, self.meetings, self.policy, self.clock(), risk_level=self.risk_of
        )

    def compliance_report(self, province: str, area_level: AreaLevel | None) -> ComplianceReport:
        return build_report(
            {s.site: s for s in self.states.all()},
            self.inventory,
            self.policy,
            self.clock(),
            province=province,
            area_level=area_level,
            policy_source=str(self.config.policy or "rules/default-policy.yaml"),
        )

    def whatif(self, query: WhatIfQuery) -> WhatIf:
        """Mains forced off in a province: who goes dark by when (rules/whatif.py)."""
        return forecast(
            self.states.all(),
            self.policy,
            self.clock(),
            province=query.province,
            at=query.at,
            hours=query.hours,
            meeting_s=query.meeting_s,
            risk_level=self.risk_of,
            inventory=self.inventory,
        )

    def _record_rehearsal(self, meeting_id: str, site: str, now: datetime) -> list[Point]:
        """A point says its check ran: judge it for the meeting now and keep the result."""
        meeting = self.meetings.get(meeting_id)
        if meeting is None or site not in meeting.points:
            log.warning("rehearsal from %s for unknown meeting %r", site, meeting_id)
            return []
        alone = meeting.model_copy(update={"points": (site,)})
        status = meeting_status(
            alone, self.states, self.meetings, self.policy, now, risk_level=self.risk_of
        )
        rehearsal = rehearsal_from(status.points[0], now)
        self.meetings.record(meeting_id, rehearsal)
        self.changes.site(site, status.points[0].province)  # its meeting's pages show it
        province = status.points[0].province
        return [rehearsal_point(meeting_id, province, rehearsal, self.states.get(site))]

    def _sweep_step(self) -> bool:
        """Judge silent sites when their silence may have made them stale or offline;
        write the periodic summaries when due."""
        if self._stopping.wait(self.config.status.sweep_s):
            return False
        self._watch_mqtt_thread()
        now = self.clock()
        for number, due in enumerate(in_slices(self.verdicts.due(now), SWEEP_SLICE_SITES)):
            if number:  # give way to the ingest path; no pause once stopping
                self._stopping.wait(SWEEP_PAUSE_S)
            self._judge_sites(due, now)
        # Steps of their own: a summary or an expiry that fails must never stop the
        # silence checks.
        summary = self.supervisor.attempt(self._summary_lines, now)
        self.delivery.queue_lines(summary or "")
        if self.health_points is not None:
            own = self.supervisor.attempt(self.health_points.lines, now)
            self.delivery.queue_lines(own or "")
        self.supervisor.attempt(self._expire, now)
        self.supervisor.attempt(self.broker_watch.check_heard)
        self.supervisor.attempt(self._watch_trust)
        self.supervisor.attempt(self._ask_again)
        return True

    def _watch_trust(self) -> None:
        """When the collector's problems change (the broker lost or back, InfluxDB down or
        up, a loop dead or stuck), every open board page fetches its live part again: its
        banner comes and goes within a sweep, not at the next 30 s poll."""
        seen = tuple((p.code, p.thread, p.provinces) for p in self.health().problems)
        if seen != self._trust_seen:
            self._trust_seen = seen
            self.changes.everything()

    def _summary_lines(self, now: datetime) -> str:
        return encode_many(self.summaries.due(now, self._judged))

    def _expire(self, now: datetime) -> None:
        """Forget silent unlisted sites, and clear their retained statuses on the broker."""
        gone = self.admission.expire_due(now)
        for snapshot in gone:
            log.info("forgot site %s/%s: not listed, silent", snapshot.province, snapshot.site)
            self.client.publish(
                topic_of(snapshot.province, snapshot.site, "status"), b"", qos=1, retain=True
            )
        if gone:
            self.metrics.sites_expired.inc(len(gone))
            self.metrics.sites.set(len(self.states))

    def _judged(self) -> list[tuple[SiteSnapshot, Status]]:
        """Every site with its verdict shown now."""
        pairs = []
        for snapshot in self.states.all():
            status = self.verdicts.get(snapshot.site)
            if status is not None:
                pairs.append((snapshot, status))
        return pairs

    def _watch_mqtt_thread(self) -> None:
        """paho's network thread runs our guarded callbacks, but paho itself could still
        fail: if the thread is gone, count it and start another."""
        if self._stopping.is_set() or self._mqtt_alive():
            return
        loop = self._loops["mqtt"]
        self.supervisor.record(loop, RuntimeError("paho's network thread ended; restarted"))
        self.client.loop_start()
