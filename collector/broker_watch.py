"""The brokers' own counts, watched: how many messages they dropped, how many they hold.

A Mosquitto broker whose queue for a client is full (``max_queued_messages``) drops what
comes next for it, acknowledges it to the publisher all the same, and says so once in
its log, never again (docs/capacity.md, "At the limit"): reports lost in the storm, the
agents' outboxes already emptied, and nothing in kienco's figures to tell a lost report
from a silent site. Each broker counts them in ``$SYS/broker/publish/messages/dropped``
and its stored messages in ``$SYS/broker/store/messages/count`` (published every
``sys_interval``, retained). The collector reads them:

- from its own broker (a central instance, or the one broker of a small deployment),
  as ``broker="own"``;
- from each provincial broker of its provinces, whose bridge carries the two counts to
  the centre as ``kienco/brokers/<province>/publish/messages/dropped`` and
  ``.../store/messages/count`` (firmware-configs/mosquitto/provincial-hp.conf), as
  ``broker="<province>"``. A bridge that is cut carries nothing; once back, it carries the
  current counts (they are retained on the provincial broker).

It keeps them as Prometheus gauges (``kienco_broker_dropped_messages``,
``kienco_broker_stored_messages``: gauges, as a broker that restarts counts from 0) and
logs an error when a broker's drops grow: at once for the first, then at most once a
minute per broker with what was dropped meanwhile. Labels come only from the collector's
own provinces (or, with none configured, from topics whose level is a slug, as the wire's
province ids are, at most :data:`MAX_BROKERS` of them): a message cannot make up a
label. Each provincial bridge's state comes too (``kienco/brokers/<p>/bridge``: "1", or "0"
the bridge's will at the centre): ``bridges``, for the ``BridgeDown`` alert. The drop
counts last read are kept in ``saved`` (``data_dir/broker_counts.json``):
a collector started again counts, at its first look, only what a broker dropped while it
was away — not, once more, everything since the broker started (a broker whose count went
down restarted meanwhile: all of its count is new). ``observe`` is called from paho's
thread only; what other threads read —
``runs`` (each broker's run of drops, for the ``BrokerDroppedReports`` alert) and
``unwatched_since`` — is replaced whole, never changed in place.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from prometheus_client import CollectorRegistry, Gauge

from collector.system_alerts import DROPS_QUIET_S, BridgeState, DropRun
from contract.wire import SLUG_PATTERN, utc_now
from plumbing.atomic_file import replace_file

__all__ = ["OWN", "ROUTES", "BrokerWatch", "watch_filters"]

log = logging.getLogger(__name__)

OWN = "own"  # the label of the collector's own broker
_OWN_PREFIX = "$SYS/broker/"
_BRIDGED_PREFIX = "kienco/brokers/"
_COUNTS = {"publish/messages/dropped": "dropped", "store/messages/count": "stored"}
# A provincial bridge's state at the centre, "1" or "0", retained (provincial-hp.conf's
# notification_topic; "0" is the bridge's will there).
_BRIDGE = "bridge"
# Distinct provincial brokers watched when the collector has no provinces of its own.
MAX_BROKERS = 64
REPEAT_EVERY_S = 60.0
# The own broker's counts not heard this long after subscribing: something is off. Six
# times the shipped sys_interval (10 s).
QUIET_AFTER_S = 60.0
# The wire's ids (provinces are slugs), matched whole: "$" would let "hp\n" through.
_province_code = re.compile(SLUG_PATTERN.removeprefix("^").removesuffix("$")).fullmatch


# Every message under these goes to BrokerWatch.observe, never to the reports' path: one
# left from an older subscription of the session (other provinces) is ignored there, not
# dead-lettered as a report with a wrong topic.
ROUTES = ("$SYS/#", _BRIDGED_PREFIX + "#")


def watch_filters(provinces: Sequence[str] | None) -> list[str]:
    """What to subscribe to (QoS 0): the own broker's two counts, and the provinces'."""
    own = [_OWN_PREFIX + count for count in _COUNTS]
    bridged = [*_COUNTS, _BRIDGE]
    if provinces is None:
        return own + [_BRIDGED_PREFIX + "+/" + topic for topic in bridged]
    return own + [_BRIDGED_PREFIX + f"{p}/{topic}" for p in provinces for topic in bridged]


@dataclass
class _Drops:
    seen: int  # the broker's count when last read
    unsaid: int = 0  # dropped since the last line logged
    said_at: float = float("-inf")


class BrokerWatch:
    """The gauges, and the log lines about drops. ``observe`` takes each $SYS message."""

    def __init__(
        self,
        registry: CollectorRegistry,
        provinces: Sequence[str] | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        repeat_every_s: float = REPEAT_EVERY_S,
        saved: Path | None = None,
    ) -> None:
        self.provinces = frozenset(provinces) if provinces is not None else None
        self.clock = clock
        self.wall = wall
        self.repeat_every_s = repeat_every_s
        self.dropped = Gauge(
            "kienco_broker_dropped_messages",
            "Messages the broker dropped since it started (a client's queue was full: "
            "reports lost). broker: own, or the province of a bridged provincial broker",
            ["broker"],
            registry=registry,
        )
        self.stored = Gauge(
            "kienco_broker_stored_messages",
            "Messages the broker holds (queued for clients, retained). broker: own, or the "
            "province of a bridged provincial broker",
            ["broker"],
            registry=registry,
        )
        self.bridge_up = Gauge(
            "kienco_broker_bridge_up",
            "1 while a provincial broker's bridge to the centre is connected, 0 while it is "
            "down (its will at the centre). broker: the province",
            ["broker"],
            registry=registry,
        )
        # Each provincial bridge's state and since when this collector has seen it so.
        self.bridges: Mapping[str, BridgeState] = MappingProxyType({})
        self._drops: dict[str, _Drops] = {}
        self._saved_path = saved
        self._saved = _load_counts(saved) if saved is not None else {}
        self._save_failed = False
        # Each broker's latest run of drops (UTC), for the alert: replaced whole.
        self.runs: Mapping[str, DropRun] = MappingProxyType({})
        # When the own broker's counts were found missing (check_heard), until they come.
        self.unwatched_since: datetime | None = None
        self._brokers: set[str] = set()
        self._refused: set[str] = set()  # topics already warned about
        # Mosquitto 2.0 grants a subscription its ACL denies and then sends nothing:
        # silence is the only sign (check_heard).
        self._asked_at: float | None = None
        self._heard_own = False
        self._said_quiet = False

    def subscribed(self) -> None:
        """The subscription to the counts was sent (at each connection)."""
        if self._asked_at is None:
            self._asked_at = self.clock()

    def subscription_refused(
        self, filters: Sequence[str], refusals: str, retry_in_s: float
    ) -> None:
        """The SUBACK refused the counts' filters: unwatched from now, not after
        ``QUIET_AFTER_S`` of silence (the broker said so); said once until they come."""
        if self._heard_own or self._said_quiet:
            return
        self._said_quiet = True
        self.unwatched_since = self.wall()
        log.warning(
            "broker refused the subscription to its counts %s: %s; the brokers' dropped "
            "messages go unwatched (grant the collector's account read on them: "
            "firmware-configs/mosquitto/central-a.acl, or a dynamic-security role); "
            "asking again in %g s",
            " ".join(filters),
            refusals,
            retry_in_s,
        )

    def check_heard(self) -> None:
        """Say once if the own broker's counts never came (called every few seconds)."""
        asked = self._asked_at
        if self._heard_own or self._said_quiet or asked is None:
            return
        if self.clock() - asked >= QUIET_AFTER_S:
            self._said_quiet = True
            self.unwatched_since = self.wall()
            log.warning(
                "no count from the collector's broker %.0f s after subscribing to "
                "$SYS/broker/%s: a Mosquitto whose ACL does not let this account read it "
                "(it then says nothing: firmware-configs/mosquitto/kienco.acl, central-a.acl) "
                "or whose sys_interval is 0, or a broker that publishes no such count; the "
                "broker's dropped messages go unwatched",
                QUIET_AFTER_S,
                "publish/messages/dropped",
            )

    def observe(self, topic: str, payload: bytes) -> None:
        """One count from a broker; what is not one is logged once per topic, and dropped."""
        where = self._where(topic)
        if where is None:
            self._refuse(topic, "not a broker count this collector watches")
            return
        broker, count = where
        if broker == OWN:
            self._heard_own = True
            self.unwatched_since = None
        text = payload.decode("ascii", errors="replace").strip()
        if count == _BRIDGE:
            if text in ("0", "1"):
                self._bridge(broker, up=text == "1")
            else:
                self._refuse(topic, f"not a bridge state: {text[:40]!r}")
        elif not text.isdigit() or len(text) > 19:
            self._refuse(topic, f"not a count: {text[:40]!r}")
        elif count == "stored":
            self.stored.labels(broker).set(int(text))
        else:
            self.dropped.labels(broker).set(int(text))
            self._dropped(broker, int(text))

    def _where(self, topic: str) -> tuple[str, str] | None:
        if topic.startswith(_OWN_PREFIX):
            count = _COUNTS.get(topic[len(_OWN_PREFIX) :])
            return (OWN, count) if count else None
        if not topic.startswith(_BRIDGED_PREFIX):
            return None
        province, _, rest = topic[len(_BRIDGED_PREFIX) :].partition("/")
        count = _BRIDGE if rest == _BRIDGE else _COUNTS.get(rest)
        if count is None or len(province) > 64 or not _province_code(province):
            return None
        if self.provinces is not None:
            return (province, count) if province in self.provinces else None
        if province not in self._brokers:
            if len(self._brokers) >= MAX_BROKERS:
                return None
            self._brokers.add(province)
        return province, count

    def _dropped(self, broker: str, value: int) -> None:
        now = self.clock()
        drops = self._drops.get(broker)
        first = drops is None  # what it dropped before the collector looked
        if drops is None:
            drops = self._drops[broker] = _Drops(value)
            before = self._saved.get(broker)  # as an earlier run of the collector read it
            new = value - before if before is not None and value >= before else value
        elif value < drops.seen:  # restarted: counts from 0 again
            new = value
        else:
            new = value - drops.seen
        drops.seen = value
        drops.unsaid += new
        if new:
            self._run(broker, new, value, before_look=first)
        if self._saved.get(broker) != value:
            self._save(broker, value)
        if drops.unsaid and now - drops.said_at >= self.repeat_every_s:
            log.error(
                "the %s broker dropped %d message%s (%d since it started): a client's queue "
                "is full (max_queued_messages), and what it drops is lost for good; see "
                "docs/capacity.md, 'At the limit'",
                "collector's" if broker == OWN else f"{broker} provincial",
                drops.unsaid,
                "" if drops.unsaid == 1 else "s",
                value,
            )
            drops.unsaid, drops.said_at = 0, now

    def _bridge(self, broker: str, *, up: bool) -> None:
        """A provincial bridge's state as the centre holds it: kept, said when it moves."""
        self.bridge_up.labels(broker).set(1 if up else 0)
        was = self.bridges.get(broker)
        if was is not None and was.up == up:
            return
        self.bridges = MappingProxyType({**self.bridges, broker: BridgeState(up, self.wall())})
        if not up:
            log.warning(
                "the %s provincial broker's bridge to the centre is down (its backhaul cut, "
                "or the broker stopped): its reports wait in its queue, its sites fall silent",
                broker,
            )
        elif was is not None:
            log.info("the %s provincial broker's bridge to the centre is up again", broker)

    def _run(self, broker: str, new: int, total: int, *, before_look: bool) -> None:
        """``new`` drops just seen: they extend the broker's run, or begin one."""
        at = self.wall()
        run = self.runs.get(broker)
        if run is None or at - run.last_at >= timedelta(seconds=DROPS_QUIET_S):
            run = DropRun(at, at, new, total, before_look=before_look)
        else:
            run = DropRun(run.first_at, at, run.dropped + new, total, run.before_look)
        self.runs = MappingProxyType({**self.runs, broker: run})

    def _save(self, broker: str, value: int) -> None:
        """Keep the count read (it changes only when the broker drops, or restarts)."""
        self._saved[broker] = value
        if self._saved_path is None:
            return
        try:
            replace_file(self._saved_path, json.dumps(self._saved).encode(), mode=0o644)
        except OSError as exc:
            if not self._save_failed:  # said once: the counts stay in memory
                self._save_failed = True
                log.warning(
                    "cannot keep the brokers' drop counts in %s (%s): a restarted collector "
                    "will take every drop since a broker started as new",
                    self._saved_path,
                    exc,
                )
        else:
            self._save_failed = False

    def _refuse(self, topic: str, why: str) -> None:
        if topic in self._refused or len(self._refused) >= MAX_BROKERS * 4:
            return
        self._refused.add(topic)
        log.warning("ignored a broker count on %r: %s", topic[:200], why)


def _load_counts(path: Path) -> dict[str, int]:
    """The counts an earlier run kept; a file missing or not ours is an empty start."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # json: too deeply nested
        log.warning("ignored %s (%s): drops are counted from the brokers' start", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("ignored %s: not an object of counts", path)
        return {}
    return {
        broker: count
        for broker, count in data.items()
        if (broker == OWN or _province_code(broker)) and type(count) is int and 0 <= count < 2**63
    }
