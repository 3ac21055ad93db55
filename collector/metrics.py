"""The collector's own metrics, in Prometheus format (prometheus_client)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from collector.decode import REJECT_REASONS


class CollectorMetrics:
    """One registry per collector, so several can live in one process (tests, demo)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("kienco_messages_received", "MQTT messages received", registry=r)
        self.accepted = Counter(
            "kienco_messages_accepted", "Messages that passed validation", ["kind"], registry=r
        )
        self.rejected = Counter(
            "kienco_messages_rejected",
            "Messages rejected and kept in the dead-letter store",
            ["reason"],
            registry=r,
        )
        # Decode's reasons, and the two a message can get after decode.
        for reason in (*REJECT_REASONS, "unprocessable", "influx_refused"):
            self.rejected.labels(reason)
        self.points_written = Counter(
            "kienco_points_written", "Points InfluxDB accepted", registry=r
        )
        self.points_refused = Counter(
            "kienco_points_refused", "Points InfluxDB refused (partial writes)", registry=r
        )
        self.batches_spooled = Counter(
            "kienco_batches_spooled", "Batches put in the disk spool", registry=r
        )
        self.batches_drained = Counter(
            "kienco_batches_drained", "Spooled batches written later", registry=r
        )
        self.acked = Counter(
            "kienco_messages_acked", "Messages acknowledged to the broker", registry=r
        )
        self.lag = Gauge(
            "kienco_report_lag_seconds",
            "Receive time minus the newest accepted report's taken_at",
            registry=r,
        )
        self.pending = Gauge(
            "kienco_pending_messages", "Messages waiting for a durable write", registry=r
        )
        self.spool_depth = Gauge("kienco_spool_batches", "Batches in the spool", registry=r)
        self.statuses_published = Counter(
            "kienco_statuses_published", "Verdicts published on status topics", registry=r
        )
        self.sites = Gauge("kienco_sites", "Sites in the collector's state", registry=r)
        self.sites_expired = Counter(
            "kienco_sites_expired",
            "Sites forgotten: not in the inventory and silent for limits.unlisted_site_expiry_s",
            registry=r,
        )
        self.connected = Gauge("kienco_broker_connected", "1 when connected", registry=r)
        # Why they fail is text: /healthz says it (broker_failure), not a label.
        self.connect_failures = Counter(
            "kienco_broker_connect_failures",
            "Attempts to connect to the broker that failed (network, TLS, refused)",
            registry=r,
        )
