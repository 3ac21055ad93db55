"""The collector's own health as points, so Grafana shows every shard side by side.

kienco has no Prometheus: ``/metrics`` and ``/healthz`` answer whoever asks one collector,
and nobody asks all of them. So each collector writes a few figures of its own health
into InfluxDB every ``influx.health_every_s`` (10 s), through its own writer like any
other point: batched, spooled while InfluxDB is down and written when it is back, with
their own timestamps. The system dashboard reads them (kienco/dashboards/shards.py).

The figures are read where ``/metrics`` and ``/healthz`` read them — a :class:`Reading`
is the registry's samples, ``/healthz``'s body and the brokers' runs of drops that the
``BrokerDroppedReports`` alert reads (collector/broker_watch.py) — and turned into points
by :func:`health_points`, a pure function: one account of the collector's health, never
a second one kept beside it. Rates are a counter's change between two readings, over the
time between them (none at the first reading after a start).

Measurement ``kienco_collector``, every series tagged ``collector`` (the name the
collector's own alerts carry: ``alerts.system.collector``, else ``broker.client_id``):

==================  ===================================================================
series (tags)       fields
==================  ===================================================================
collector           ``at_ms`` (the reading's time: InfluxQL cannot subtract from
                    ``time``, a panel's age is ``${__to}`` minus it); from /healthz:
                    ``ok``, ``problems``, ``broker_connected``, ``influx_writing``,
                    ``spooled_batches``, ``loops_failing``, ``provinces_late`` and
                    ``late_s`` (its ``reports_late``: how far behind the most late
                    province's reports are read, 0 when none); from /metrics:
                    ``received_per_s``, ``reports_per_s`` (accepted reports),
                    ``rejected_per_s`` (dead-lettered), ``points_per_s`` (InfluxDB took),
                    ``lag_s``, ``pending`` (messages waiting for a durable write),
                    ``sites``, ``thread_errors_per_s``, ``gc_pause_max_s`` (since
                    start), ``gc_paused_pct`` (of the time between readings); from the
                    brokers' watch: ``brokers_dropping`` (``BrokerDroppedReports``
                    firing), ``broker_drops`` (their runs' drops), ``bridges_down``
collector, reason   ``dead_letters_per_s``: one reason of ``kienco_messages_rejected``
collector, broker   ``dropped``, ``stored`` (the broker's own counts), ``bridge_up``
                    (a province's bridge, once known), ``dropped_new`` (since the
                    previous reading), ``dropping`` (its alert firing)
collector, thread   ``thread_ok``, ``thread_alive``, ``thread_stuck``,
                    ``heartbeat_age_s``, ``errors_per_s``: each loop of /healthz
==================  ===================================================================

Field names differ across the series, so a query grouped by ``collector`` alone reads
each field from the one series that has it. Counts are integers, the rest floats,
always (InfluxDB refuses a field that changes type).

Cardinality, per collector: 1 + the reject reasons (9) + its loops (4-6: mqtt, writer,
staleness, api, and state-saver and alerts when on) + its brokers (``own`` and one per
province; at most 65 without ``provinces``, broker_watch.MAX_BROKERS): 15 to 81 series,
26 for a shard of 9 provinces, 51 for one of all 34; a national deployment of a few
shards, a few hundred series, against ~1 M for the fleet. Each is one point a reading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from collector.line_protocol import FieldValue, Point, encode_many
from collector.points import time_ns
from collector.system_alerts import DropRun, dropping

__all__ = [
    "LATE_AFTER_S",
    "LOST_AFTER_S",
    "MEASUREMENT",
    "HealthPoints",
    "Reading",
    "Samples",
    "health_points",
    "samples_of",
]

MEASUREMENT = "kienco_collector"
LATE_AFTER_S = 30.0
LOST_AFTER_S = 60.0
"""How old a collector's newest health may be before the system dashboard shows it late
(orange), then lost (red): three, then six readings at the default 10 s. The config
refuses a period that would make a healthy shard read late (collector/config.py)."""

Labels = tuple[tuple[str, str], ...]
Samples = Mapping[str, Mapping[Labels, float]]
"""``/metrics`` as read: sample name → its labels (sorted pairs) → value."""


def samples_of(families: Iterable[Metric]) -> dict[str, dict[Labels, float]]:
    """The registry's samples by name and labels (``registry.collect()``: what /metrics prints)."""
    samples: dict[str, dict[Labels, float]] = {}
    for family in families:
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


@dataclass(frozen=True, slots=True)
class Reading:
    """The collector's health at one moment, from where /metrics and /healthz take it."""

    at: datetime
    metrics: Samples  # the registry's samples (samples_of)
    health: Mapping[str, Any]  # /healthz's body (collector/health.py)
    drops: Mapping[str, DropRun]  # each broker's run of drops (BrokerWatch.runs)

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics.get(name, {}).get(tuple(sorted(labels.items())))

    def by(self, name: str, label: str) -> dict[str, float]:
        """Every sample of ``name`` by the value of its ``label``."""
        return {
            dict(labels)[label]: value
            for labels, value in self.metrics.get(name, {}).items()
            if label in dict(labels)
        }

    def total(self, name: str) -> float:
        return sum(self.metrics.get(name, {}).values())


def _rate(now: float | None, before: float | None, seconds: float) -> float | None:
    if now is None or before is None or seconds <= 0:
        return None
    return max(0.0, now - before) / seconds


def _flag(value: object) -> int:
    return 1 if value else 0


def health_points(collector: str, now: Reading, before: Reading | None) -> list[Point]:
    """The ``kienco_collector`` points of one reading (rates against ``before``, the
    previous reading of the same process, if any)."""
    at_ns = time_ns(now.at)
    seconds = (now.at - before.at).total_seconds() if before is not None else 0.0

    def rate(name: str, **labels: str) -> float | None:
        # A counter's labels are made at its first count: not there before is 0 then.
        then = (before.value(name, **labels) or 0.0) if before is not None else None
        return _rate(now.value(name, **labels), then, seconds)

    def rate_of_total(name: str) -> float | None:
        then = before.total(name) if before is not None else None
        return _rate(now.total(name), then, seconds)

    health = now.health
    influx = health.get("influx", {})
    threads: Mapping[str, Mapping[str, Any]] = health.get("threads", {})
    late: Mapping[str, Mapping[str, Any]] = health.get("reports_late", {})
    bridges = now.by("kienco_broker_bridge_up", "broker")
    runs = {broker: dropping(run, now.at) for broker, run in now.drops.items()}
    lag = now.value("kienco_report_lag_seconds")
    paused = rate_of_total("kienco_gc_pause_seconds_sum")
    longest = now.by("kienco_gc_pause_max_seconds", "generation").values()
    tags = {"collector": collector}
    main: dict[str, FieldValue | None] = {
        "at_ms": time_ns(now.at) // 1_000_000,
        "ok": _flag(health.get("ok")),
        "problems": len(health.get("problems", ())),
        "broker_connected": _flag(health.get("broker_connected")),
        "influx_writing": _flag(influx.get("taking_writes")),
        "spooled_batches": int(influx.get("spooled_batches", 0)),
        "loops_failing": sum(1 for t in threads.values() if not t["alive"] or t["stuck"]),
        "provinces_late": len(late),
        "late_s": float(max((entry["behind_s"] for entry in late.values()), default=0.0)),
        "received_per_s": rate("kienco_messages_received_total"),
        "reports_per_s": rate("kienco_messages_accepted_total", kind="report"),
        "rejected_per_s": rate_of_total("kienco_messages_rejected_total"),
        "points_per_s": rate("kienco_points_written_total"),
        "lag_s": None if lag is None else float(lag),
        "pending": int(now.value("kienco_pending_messages") or 0),
        "sites": int(now.value("kienco_sites") or 0),
        "thread_errors_per_s": rate_of_total("kienco_thread_errors_total"),
        "gc_pause_max_s": float(max(longest, default=0.0)),
        "gc_paused_pct": None if paused is None else paused * 100.0,
        "brokers_dropping": sum(runs.values()),
        "broker_drops": sum(run.dropped for b, run in now.drops.items() if runs[b]),
        "bridges_down": sum(1 for up in bridges.values() if not up),
    }
    points = [Point.make(MEASUREMENT, tags, main, at_ns)]
    for reason in sorted(now.by("kienco_messages_rejected_total", "reason") if before else ()):
        fields: dict[str, FieldValue | None] = {
            "dead_letters_per_s": rate("kienco_messages_rejected_total", reason=reason)
        }
        points.append(Point.make(MEASUREMENT, {**tags, "reason": reason}, fields, at_ns))
    dropped = now.by("kienco_broker_dropped_messages", "broker")
    stored = now.by("kienco_broker_stored_messages", "broker")
    dropped_before = before.by("kienco_broker_dropped_messages", "broker") if before else {}
    for broker in sorted({*dropped, *stored, *bridges, *now.drops}):
        count, then = dropped.get(broker), dropped_before.get(broker)
        new = 0.0  # first seen: what it dropped before is the alert's to say (before_look)
        if count is not None and then is not None:
            # Lower than the last: the broker restarted, all of it is new (broker_watch).
            new = count - then if count >= then else count
        up = bridges.get(broker)
        fields = {
            "dropped": None if count is None else int(count),
            "stored": None if broker not in stored else int(stored[broker]),
            "bridge_up": None if up is None else _flag(up),
            "dropped_new": int(new),
            "dropping": _flag(runs.get(broker)),
        }
        points.append(Point.make(MEASUREMENT, {**tags, "broker": broker}, fields, at_ns))
    for thread, loop in sorted(threads.items()):
        fields = {
            "thread_ok": _flag(loop["alive"] and not loop["stuck"]),
            "thread_alive": _flag(loop["alive"]),
            "thread_stuck": _flag(loop["stuck"]),
            "heartbeat_age_s": float(loop["heartbeat_age_s"]),
            "errors_per_s": rate("kienco_thread_errors_total", thread=thread),
        }
        points.append(Point.make(MEASUREMENT, {**tags, "thread": thread}, fields, at_ns))
    return points


class HealthPoints:
    """Reads the collector's health once per ``every_s`` slot and makes its points.

    Called from the sweeper's thread only (collector/service.py): its previous reading
    is its own."""

    def __init__(
        self,
        collector: str,
        every_s: float,
        *,
        registry: CollectorRegistry,
        health: Callable[[], Mapping[str, Any]],
        drops: Callable[[], Mapping[str, DropRun]],
    ) -> None:
        self.collector = collector
        self.every_s = every_s
        self._registry = registry
        self._health = health
        self._drops = drops
        self._slot: int | None = None
        self._before: Reading | None = None

    def read(self, at: datetime) -> Reading:
        return Reading(at, samples_of(self._registry.collect()), self._health(), self._drops())

    def due(self, now: datetime) -> list[Point]:
        """The points of a reading taken now, once per slot of ``every_s`` (whole
        multiples since the epoch: the shards read at the same moments); else none."""
        slot = int(now.timestamp() // self.every_s)
        if slot == self._slot:
            return []
        self._slot = slot
        reading = self.read(now)
        points = health_points(self.collector, reading, self._before)
        self._before = reading
        return points

    def lines(self, now: datetime) -> str:
        """:meth:`due`'s points as line protocol, for the writer."""
        return encode_many(self.due(now))
