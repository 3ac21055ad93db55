"""The collector: subscribe, validate, keep site state, write durably, then acknowledge.

Threads: paho's network thread decodes each message and queues its points;
the writer thread batches them (by count and time), makes the batch durable
(InfluxDB, or the disk spool), and only then acknowledges the batch's messages
to the broker. A collector killed at any moment loses nothing: unacknowledged
messages are redelivered by the broker (persistent session), and writing the
same point twice stores it once.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.admission import Admission
from collector.api import Api
from collector.config import CollectorConfig
from collector.deadletter import DeadLetterStore
from collector.decode import Decoded, Ignored, Rejected, decode
from collector.endpoints import Endpoints
from collector.history import meeting_point, rehearsal_point
from collector.influx import InfluxV1Client
from collector.inventory import Inventory, inventory_meta, load_inventory
from collector.line_protocol import Point, encode_many
from collector.meetings import (
    Meeting,
    MeetingRequest,
    MeetingStore,
    meeting_status,
    rehearsal_from,
)
from collector.metrics import CollectorMetrics
from collector.points import event_points, report_points, state_points
from collector.readiness import RiskLevelOf, Verdicts
from collector.risk import RiskChange, RiskEntry, RiskLevels
from collector.spool import Spool
from collector.state import SiteStates
from collector.summaries import Summaries
from collector.writer import InfluxWriter, Outcome
from contract.topics import topic as topic_of
from contract.wire import Command, Event, Meta, Report, State, Status, utc_now
from rules import Policy, SiteSnapshot, load_policy

log = logging.getLogger("kienco.collector")

StatusListener = Callable[[Status], None]


class _NoHistory:
    """Stands in for InfluxDB when the collector runs without one (the demo without influxd)."""

    def write_durably(self, lines: str) -> Outcome:
        return Outcome("written", 0)

    def drain_spool(self, max_batches: int = 10) -> int:
        return 0


@dataclass(slots=True)
class _Pending:
    lines: str
    mid: int
    qos: int
    generation: int


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
        self.states = SiteStates(clock=clock)
        self.policy = policy or load_policy(config.policy)
        data = config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.risk = RiskLevels(data / "risk.sqlite")
        self.risk_of: RiskLevelOf = risk_level or self.risk.level
        self.inventory = load_inventory(config.inventory) if config.inventory else Inventory(())
        self.verdicts = Verdicts(
            self.states,
            self.policy,
            risk_level=self.risk_of,
            listed=self.inventory.__contains__ if config.inventory else None,
        )
        self.meetings = MeetingStore(data / "meetings.sqlite")
        self.summaries = Summaries(
            self.policy,
            self.inventory,
            fleet_every_s=config.summaries.fleet_every_s,
            compliance_every_s=config.summaries.compliance_every_s,
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
        self.dead_letters = DeadLetterStore(data / "deadletter.sqlite")
        influx = config.influx
        self.influx: InfluxV1Client | None = None
        self.spool: Spool | None = None
        self.writer: InfluxWriter | _NoHistory = _NoHistory()
        if influx is not None:
            self.influx = InfluxV1Client(
                influx.url,
                influx.database,
                username=influx.username,
                password=influx.password.reveal() if influx.password else None,
                timeout_s=influx.timeout_s,
            )
            self.spool = Spool(data / "spool.sqlite", max_bytes=influx.spool_max_bytes)
            self.writer = InfluxWriter(self.influx, self.spool, attempts=influx.retry_attempts)
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._flush_now = threading.Event()
        self._stopping = threading.Event()
        self._generation = 0
        self._connected = threading.Event()
        self._writer_thread = threading.Thread(target=self._writer_loop, name="influx-writer")
        self._sweeper_thread = threading.Thread(
            target=self._sweep_loop, name="staleness", daemon=True
        )
        self.client = self._make_client()
        self.api: Api | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self, *, serve_http: bool = True) -> None:
        if self.influx is not None:
            try:
                self.influx.create_database()
            except Exception as exc:  # InfluxDB down at start: spool until it returns
                log.warning(
                    "InfluxDB %s not reachable at start (%s); spooling", self.influx.url, exc
                )
        if serve_http:
            http = self.config.http
            self.api = Api(
                Endpoints(self),
                self.metrics.registry,
                healthy=self._connected.is_set,
                admin_token=http.revealed_token(),
                host=http.host,
                port=http.port,
            )
            self.api.start()
        self._sweeper_thread.start()
        self._writer_thread.start()
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

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        """Flush what is pending (durably, then acknowledged) and disconnect."""
        self._stopping.set()
        self._flush_now.set()
        if self._writer_thread.is_alive():
            self._writer_thread.join(timeout=60)
        self.client.disconnect()
        self.client.loop_stop()
        if self.api is not None:
            self.api.stop()
        self.dead_letters.close()
        self.risk.close()
        self.meetings.close()

    # --- MQTT ----------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        broker = self.config.broker
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=broker.client_id,
            protocol=mqtt.MQTTv5 if broker.protocol == 5 else mqtt.MQTTv311,
            clean_session=None if broker.protocol == 5 else False,
            manual_ack=True,
        )
        if broker.username:
            password = broker.password.reveal() if broker.password else None
            client.username_pw_set(broker.username, password)
        if broker.tls or broker.ca_file is not None:
            client.tls_set_context(
                ssl.create_default_context(cafile=str(broker.ca_file) if broker.ca_file else None)
            )
        client.max_inflight_messages_set(1000)
        client.reconnect_delay_set(1, 60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        sock = client.socket()
        if isinstance(sock, socket.socket):  # small PUBACKs and statuses: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe(self.config.broker.topic_filter, qos=1)
        if self._generation == 1 and len(self.inventory):
            # Sites of the inventory that never reported get their verdict (unknown) now.
            now = self.clock()
            self._queue_unacked(self._judge(site.site, now) for site in self.inventory)
        self.metrics.connected.set(1)
        self._connected.set()
        log.info("subscribed to %s", self.config.broker.topic_filter)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        self.metrics.connected.set(0)
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from the broker: %s; reconnecting", reason)

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        except Exception:  # nothing crashes the loop; the message stays unacknowledged
            log.exception("unexpected error handling a message on %s", msg.topic)

    def handle(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """Decode one message and queue its points (or dead-letter it)."""
        self.metrics.received.inc()
        now = self.clock()
        limits = self.config.limits
        result = decode(
            topic,
            payload,
            now=now,
            max_bytes=limits.max_payload_bytes,
            future_tolerance_s=limits.future_tolerance_s,
        )
        if isinstance(result, Decoded):  # against what we know: province binding, site cap
            result = self.admission.check(result) or result
        if isinstance(result, Rejected):
            self.dead_letters.put(
                received_at=now,
                topic=topic,
                reason=result.reason,
                detail=result.detail,
                payload=payload,
            )
            self.metrics.rejected.labels(result.reason).inc()
            log.warning("rejected %s: %s: %s", topic, result.reason, result.detail)
            self._ack(mid, qos)
            return
        if isinstance(result, Ignored):
            self._ack(mid, qos)
            return
        lines = self._apply(result, now)
        with self._pending_lock:
            self._pending.append(_Pending(lines, mid, qos, self._generation))
            full = len(self._pending) >= self.config.batch.max_messages
        if full:
            self._flush_now.set()

    def _apply(self, decoded: Decoded, now: datetime) -> str:
        message = decoded.message
        self.metrics.accepted.labels(message.kind).inc()
        points: list[Point]
        if isinstance(message, Report):
            changed = self.states.apply_report(message, received_at=now)
            self.metrics.lag.set((now - message.taken_at).total_seconds())
            points = report_points(message, site_kind=None)
        elif isinstance(message, Event):
            changed = self.states.apply_event(message)
            points = event_points(message)
            if message.event == "rehearsal" and message.detail:
                points += self._record_rehearsal(message.detail, message.site, now)
        elif isinstance(message, Meta):
            changed = self.states.apply_meta(message)
            points = []
        else:
            assert isinstance(message, State)
            changed = self.states.apply_state(message)
            points = state_points(message)
        self.metrics.sites.set(len(self.states))
        if changed:
            points += self._judge(message.site, now)
        return encode_many(points)

    def _judge(self, site: str, now: datetime) -> list[Point]:
        """Re-evaluate one site; publish its status if it changed (or always, by config)."""
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
        return points

    def set_risk(self, change: RiskChange) -> RiskEntry:
        """Record a province's risk level and judge its sites again under it, at once."""
        now = self.clock()
        entry = self.risk.set(change, now)
        log.warning(
            "risk level %d for %s (%s), set by %s",
            entry.level,
            entry.province,
            entry.reason,
            entry.set_by,
        )
        sites = [s.site for s in self.states.all() if s.province == change.province]
        self._queue_unacked(self._judge(site, now) for site in sites)
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
        self._queue_unacked([[point]])
        return meeting

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
        return [rehearsal_point(meeting_id, status.points[0].province, rehearsal)]

    def _queue_unacked(self, point_lists: Iterable[list[Point]]) -> None:
        """Points that belong to no MQTT message (timer and API judgements)."""
        lines = [line for line in (encode_many(points) for points in point_lists) if line]
        if lines:
            with self._pending_lock:
                self._pending.append(_Pending("\n".join(lines), 0, 0, self._generation))

    def _sweep_loop(self) -> None:
        """Judge silent sites when their silence may have made them stale or offline;
        write the periodic summaries when due."""
        while not self._stopping.wait(self.config.status.sweep_s):
            now = self.clock()
            self._queue_unacked(self._judge(site, now) for site in self.verdicts.due(now))
            try:
                self._queue_unacked([self.summaries.due(now, self._judged)])
            except Exception:  # a summary must never stop the silence checks above
                log.exception("could not build the periodic summaries")
            try:
                self._expire(now)
            except Exception:  # nor a failed expiry
                log.exception("could not expire silent unlisted sites")

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

    def _ack(self, mid: int, qos: int) -> None:
        if qos > 0:
            self.client.ack(mid, qos)
            self.metrics.acked.inc()

    # --- durable writes --------------------------------------------------------------

    def _writer_loop(self) -> None:
        delay = self.config.batch.max_delay_s
        while True:
            self._flush_now.wait(delay)
            self._flush_now.clear()
            with self._pending_lock:
                batch, self._pending = self._pending, []
            self.metrics.pending.set(len(batch))
            if batch:
                self._flush(batch)
            elif self.spool is not None and self.spool.depth():
                self._drain_spool()
            if self._stopping.is_set() and not self._pending:
                return

    def _flush(self, batch: list[_Pending]) -> None:
        lines = "\n".join(p.lines for p in batch if p.lines)
        while True:
            try:
                outcome = self.writer.write_durably(lines) if lines else None
                break
            except Exception:  # the spool itself failed (disk full?): keep trying, never ack
                log.exception("could not make a batch durable; retrying in 5 s")
                time.sleep(5)
        if outcome is not None:
            self._count(outcome)
        generation = self._generation
        for pending in batch:
            # A message from an earlier connection must not be acked on this one: its
            # packet id may now belong to another message. The broker redelivers it.
            if pending.generation == generation:
                self._ack(pending.mid, pending.qos)

    def _count(self, outcome: Outcome) -> None:
        self.metrics.points_written.inc(outcome.written_points)
        self.metrics.points_refused.inc(outcome.refused_points)
        if outcome.status == "partial":
            log.error("InfluxDB refused %d point(s): %s", outcome.refused_points, outcome.error)
        if outcome.spooled:
            self.metrics.batches_spooled.inc()
        if self.spool is not None:
            self.metrics.spool_depth.set(self.spool.depth())

    def _drain_spool(self) -> None:
        drained = self.writer.drain_spool(max_batches=10)
        if drained:
            self.metrics.batches_drained.inc(drained)
        if self.spool is not None:
            self.metrics.spool_depth.set(self.spool.depth())
