"""The whole collector path under hostile input: decode → state → rules → points → line
protocol → InfluxDB, on a real Mosquitto, a real InfluxDB 1.6 and the real collector.

Hypothesis generates messages from the wire models (tests/support/wire_fuzz.py):
arbitrary Unicode in every free-text field (control characters, line breaks, escape
sequences, bidi controls, rich markup, quotes, backslashes), numbers on and beyond
their bounds, times from year 1 to 9999, keys given twice, mangled payloads. Then:

- nothing escapes: no exception out of the path, none logged by a collector thread,
  nothing dead-lettered as ``unprocessable`` (the safety net for a bug);
- every message ends durable or dead-lettered: each one sent is either in the
  dead-letter store with its reason, or ignored (our own status topic), or stored
  (every accepted report is a point in InfluxDB), and InfluxDB refused no point;
- the staleness sweep still turns a silent site ``unknown`` at the end.

In CI (by default) each message goes through ``Collector.handle`` on the test's
thread, so a failure is attributed to its message and shrunk. By hand, a long run
publishes through Mosquitto at QoS 1 (the acknowledgements are counted too):

    KIENCO_FUZZ_MESSAGES=100000 .venv/bin/pytest -p no:cacheprovider -q -s \\
        tests/test_fuzz_collector.py

and prints what was sent, stored and dead-lettered, by reason. Run on 2026-12-04 (shared
2-core box, 22 min): 140 000 messages (107 701 reports, 16 415 events, 9 257 metas,
5 051 states, 1 576 status topics), all acknowledged; 22 179 dead-lettered (schema
14 559, invalid_json 4 701, site_mismatch 2 843, future_timestamp 76), 1 576 ignored,
every accepted report in InfluxDB (15 728 distinct site/time points); 0 escaped
exceptions, 0 unprocessable, 0 points refused, 0 thread errors; the silent site then
turned unknown. Found and fixed on the way: a time with no UTC form (OverflowError
out of decode), a time before 1677 (unwritable), autonomy from a 5e-324 L/h burn rate
or DC load (infinite, then OverflowError in the texts).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import CollectorConfig
from collector.points import time_ns
from collector.service import Collector
from contract.wire import Meta, Report
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Broker
from tests.support.wire_fuzz import wire_messages

BY_HAND = int(os.environ.get("KIENCO_FUZZ_MESSAGES", "0"))
CI_EXAMPLES = int(os.environ.get("KIENCO_FUZZ_CI_EXAMPLES", "150"))

pytestmark = [
    pytest.mark.broker,
    pytest.mark.influx,
    pytest.mark.timeout(180 + max(BY_HAND, CI_EXAMPLES) // 20),
]


@pytest.fixture
def collector(  # a broker of its own: no other test's retained messages come in
    tmp_path: Path, fresh_broker: Broker, influxdb: InfluxServer
) -> Iterator[Collector]:
    db = influxdb.fresh_database("fuzz")
    config = CollectorConfig.model_validate(
        {
            "broker": {
                "url": fresh_broker.url,
                "username": None,
                "client_id": f"c-{db}",
                "topic_filter": "kienco/v1/+/+/#",
            },
            "influx": {"url": influxdb.url, "database": db},
            "data_dir": str(tmp_path / "collector"),
            "http": {"port": 0},
            "status": {"sweep_s": 0.2},
        }
    )
    running = Collector(config)  # the shipped policy
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()


def _until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout_s:.0f} s: {what}")


def _metric(collector: Collector, name: str, **labels: str) -> float:
    value = collector.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class _Publisher:
    """QoS 1 publishes, as fast as the broker takes them; waits for every PUBACK."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="fuzz-publisher",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def close(self) -> None:
        _until(lambda: all(i.is_published() for i in self.infos), 600, "every PUBACK")
        self.client.disconnect()
        self.client.loop_stop()


def test_hostile_messages_end_durable_or_dead_lettered(
    collector: Collector,
    fresh_broker: Broker,
    influxdb: InfluxServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="kienco")  # rejects log warnings: not kept
    sent: list[tuple[str, bytes]] = []
    publisher = _Publisher(fresh_broker.port) if BY_HAND else None
    started = time.monotonic()

    @settings(
        max_examples=BY_HAND or CI_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate,) if BY_HAND else tuple(Phase),
    )
    @given(wire_messages(datetime.now(UTC)))
    def one(message: tuple[str, bytes]) -> None:
        sent.append(message)
        if publisher is not None:
            publisher.publish(*message)
        else:  # on this thread: an exception fails this example, and is shrunk
            collector.handle(*message, 0, 0)

    one()
    generated_s = time.monotonic() - started
    if publisher is not None:
        publisher.close()

        # It receives its own statuses back too (ignored, acked): every message it got
        # is acknowledged, ours and those.
        def all_acked() -> bool:
            received = _metric(collector, "kienco_messages_received_total")
            acked = _metric(collector, "kienco_messages_acked_total")
            return received >= len(sent) and acked == received

        _until(all_acked, 600, "the collector acknowledged every message")

    # Each message is dead-lettered, ignored, or stored.
    dead = Counter((d.topic, d.payload) for d in collector.dead_letters.recent(len(sent) + 10))
    reasons = collector.dead_letters.counts()
    assert sum(dead.values()) == sum(reasons.values()) <= len(sent)
    kept = Counter(sent) - dead
    assert sum(kept.values()) == len(sent) - sum(reasons.values()), "a dead letter never sent"
    stored: set[tuple[str, int]] = set()
    ignored = 0
    for topic, payload in kept.elements():
        kind = topic.rsplit("/", 1)[1]
        if kind == "status":
            ignored += 1
        elif kind == "report":  # accepted, so it parses
            report = Report.model_validate_json(payload)
            stored.add((report.site, time_ns(report.taken_at)))
    db = collector.config.influx.database  # type: ignore[union-attr]

    def reports_in_influx() -> int:
        rows = influxdb.query(db, "SELECT count(seq) FROM report")
        return int(rows[0]["count"]) if rows else 0

    _until(lambda: reports_in_influx() >= len(stored), 120, f"{len(stored)} reports stored")
    assert reports_in_influx() == len(stored)

    # Nothing escaped.
    assert not reasons.get("unprocessable"), collector.dead_letters.recent(5)
    assert _metric(collector, "kienco_points_refused_total") == 0
    escaped = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not escaped, [r.getMessage() for r in escaped[:5]]

    # The sweep is alive: a site that falls silent turns unknown on its timer.
    now = datetime.now(UTC)
    meta = Meta(
        site="fz-last",
        province="fz",
        site_kind="station",
        name="Trạm cuối",
        interval_s=1,
        agent_version="fuzz",
        at=now,
    )
    collector.handle("kienco/v1/fz/fz-last/meta", meta.model_dump_json().encode(), 0, 0)
    last = Report(site="fz-last", province="fz", seq=1, taken_at=now, interval_s=1)
    collector.handle("kienco/v1/fz/fz-last/report", last.model_dump_json().encode(), 0, 0)
    silent = _until(
        lambda: (
            (s := collector.verdicts.get("fz-last"))
            and any(r.code == "no_recent_report" for r in s.reasons)
            and s
        ),
        20,
        "the silent site turned unknown",
    )
    assert silent.verdict == "unknown"
    kinds = Counter(topic.rsplit("/", 1)[1] for topic, _ in sent)
    print(
        f"\nfuzz: {len(sent)} messages ({dict(kinds.most_common())}) generated in "
        f"{generated_s:.0f} s "
        f"({'MQTT QoS 1' if BY_HAND else 'Collector.handle'}); "
        f"{len(stored)} distinct reports stored, {ignored} ignored, "
        f"{sum(reasons.values())} dead-lettered {dict(sorted(reasons.items()))}; "
        f"escaped exceptions: {len(escaped)}, unprocessable: {reasons.get('unprocessable', 0)}"
    )
