"""The agent's two loops: poll the site into the outbox, and drain the outbox to the broker.

They share nothing but the outbox, so a broker that is down for a day never
stops the polling, and a slow device never stops the draining.

With ``traps.enabled`` a third part listens for SNMP traps: each known trap becomes
an event, stored in the outbox like everything else, then published at once when
connected (beside any backlog batch in flight), and an on-battery / on-mains trap
starts a poll cycle at once so the next report confirms it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import commands
from agent.bandwidth import Bandwidth
from agent.clock_log import ClockStateLog
from agent.config import SiteConfig
from agent.cycle import Probes, poll_once
from agent.meta import meta_message
from agent.mqtt_client import AckingClient, PublishRefused
from agent.outbox import Outbox
from contract.topics import topic
from contract.wire import Command, Event, Meta, Report, State, utc_now
from plumbing.backoff import Backoff

if TYPE_CHECKING:  # pysnmp's receiver costs memory: loaded only when traps are enabled
    from agent.traps import Trap, TrapReceiver

Measure = Callable[[int, datetime], Awaitable[Report]]
"""Produces the report for (seq, taken_at): the probes by default, a simulated site in the demo."""

log = logging.getLogger("kienco.agent")

# Traps that change the power source: the agent polls at once so a report confirms them.
_POLL_AFTER = frozenset({"on_battery", "on_mains", "battery_low"})


def encode(message: Meta | State | object) -> bytes:
    assert hasattr(message, "model_dump_json")
    return message.model_dump_json(exclude_none=True).encode()  # type: ignore[no-any-return]


class Agent:
    """One site's agent. ``run()`` until ``stop`` is set."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        probes: Probes | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        measure: Measure | None = None,
        meta: Callable[[datetime], Meta] | None = None,
        traps: TrapReceiver | None = None,
    ) -> None:
        self.config = config
        self._measure = measure or self._probe
        self._meta = meta or (
            lambda now: meta_message(config, interval_s=config.interval_s, now=now)
        )
        self.probes = probes or Probes()
        self.outbox = outbox or Outbox(
            config.outbox.path,
            max_age_s=config.outbox.max_age_h * 3600,
            max_bytes=config.outbox.max_bytes,
        )
        self._clock = clock
        self._sleep = sleep
        self._new_data = asyncio.Event()
        self._poll_now = asyncio.Event()
        self.traps = traps
        self._client_now: AckingClient | None = None
        # Outbox ids being published right now (by the drain or at once), and events not
        # yet acknowledged: they go first after a reconnect, before any backlog.
        self._inflight: set[int] = set()
        self._events_waiting: dict[int, tuple[str, bytes]] = {}
        self._at_once: set[asyncio.Task[None]] = set()
        self._aliases: dict[str, str] = {}
        self._unknown_traps: set[str] = set()
        self.bandwidth = (
            Bandwidth(config.throughput, config.paths, config.site) if config.throughput else None
        )
        self._last_report: Report | None = None
        self._clock_state = ClockStateLog()  # said in the log once per change
        self.connected = False
        self.published_total = 0
        self.refused_total = 0
        self.events_total = 0

    async def run(self, stop: asyncio.Event, *, poll: bool = True) -> None:
        """Poll and publish until ``stop``; ``poll=False`` only publishes what others store."""
        log.info(
            "agent %s/%s: every %.0f s to %s; outbox %s holds %d",
            self.config.province,
            self.config.site,
            self.config.interval_s,
            self.config.broker.url,
            self.config.outbox.path,
            self.outbox.depth(),
        )
        receiver = await self._start_traps()
        tasks = [asyncio.create_task(self._send_loop(stop), name="send")]
        if poll:
            tasks.append(asyncio.create_task(self._poll_loop(stop), name="poll"))
        if poll and self.bandwidth is not None:
            tasks.append(asyncio.create_task(self._bandwidth_loop(stop), name="bandwidth"))
        try:
            await stop.wait()
        finally:
            if receiver is not None:
                receiver.close()
            for task in [*tasks, *self._at_once]:
                task.cancel()
            await asyncio.gather(*tasks, *self._at_once, return_exceptions=True)

    async def _start_traps(self) -> TrapReceiver | None:
        """Start the trap receiver if configured; a port that cannot be bound only logs."""
        if self.traps is None and not self.config.traps.enabled:
            return None
        # Without traps, polling still sees an outage one interval later: run on, say it loudly.
        try:
            from agent.traps import TrapReceiver

            receiver = self.traps or TrapReceiver.from_config(self.config)
        except ValueError as exc:  # a v3 user key that is not a v3 credential, a bad secret
            log.error("SNMP traps NOT received: %s", exc)
            return None
        await self._resolve_device_hosts()
        try:
            await receiver.start(self.handle_trap)
        except OSError as exc:
            log.error(
                "SNMP traps NOT received: cannot listen on %s:%d: %s (port 162 needs root or "
                "CAP_NET_BIND_SERVICE; or use a port above 1023 and forward 162 to it)",
                receiver.host,
                receiver.port,
                exc,
            )
            return None
        self.traps = receiver
        return receiver

    async def _resolve_device_hosts(self) -> None:
        """Addresses of devices configured by host name, so their traps are recognised."""
        loop = asyncio.get_running_loop()
        for device in self.config.devices:
            try:
                ipaddress.ip_address(device.host)
                continue  # an address already: matched as is
            except ValueError:
                pass
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(device.host, None, type=socket.SOCK_DGRAM), 5.0
                )
            except (OSError, TimeoutError) as exc:
                log.warning("device %s: cannot resolve %s (%s)", device.device, device.host, exc)
                continue
            for info in infos:
                self._aliases.setdefault(str(info[4][0]), device.device)

    def handle_trap(self, trap: Trap) -> Event | None:
        """Turn one received trap into a stored event (None if kienco does not know it)."""
        from agent.traps import trap_oid, trap_to_event

        event = trap_to_event(
            trap.source,
            trap.varbinds,
            devices=self.config.devices,
            site=self.config.site,
            province=self.config.province,
            seq=0,  # the real one is reserved below, so unknown traps leave no gaps
            now=self._clock(),
            aliases=self._aliases,
            via=trap.via,
        )
        if event is None:
            oid = trap_oid(trap.varbinds) or "(no snmpTrapOID)"
            if oid not in self._unknown_traps and len(self._unknown_traps) < 1000:
                self._unknown_traps.add(oid)
                log.debug("ignoring trap %s from %s (not one kienco maps)", oid, trap.source)
            return None
        event = event.model_copy(update={"seq": self.outbox.reserve_seq()})
        self.store_event(event)
        if event.event in _POLL_AFTER:
            self._poll_now.set()
        return event

    def store_event(self, event: Event) -> None:
        """Store an event durably, then publish it at once if connected."""
        event_topic = topic(self.config.province, self.config.site, "event")
        payload = event.model_dump_json(exclude_none=True).encode()
        entry_id = self.outbox.add(event_topic, payload)
        self.events_total += 1
        self._events_waiting[entry_id] = (event_topic, payload)
        log.info("event %s from %s: %s", event.event, event.device, event.detail)
        self._new_data.set()
        if self._client_now is not None:
            self._publish_at_once(self._client_now, entry_id, event_topic, payload)

    def _publish_at_once(
        self, client: AckingClient, entry_id: int, message_topic: str, payload: bytes
    ) -> None:
        # Not through the drain: it may be waiting on a batch of 200 backlog reports.
        self._inflight.add(entry_id)
        task = asyncio.create_task(self._publish_one(client, entry_id, message_topic, payload))
        self._at_once.add(task)
        task.add_done_callback(self._at_once.discard)

    async def _publish_one(
        self, client: AckingClient, entry_id: int, message_topic: str, payload: bytes
    ) -> None:
        try:
            await client.publish_acked(message_topic, payload)
        except PublishRefused as exc:
            self.refused_total += 1
            log.error("BROKER REFUSED an event (%s); it stays in the outbox", exc)
        except (aiomqtt.MqttError, OSError) as exc:
            log.warning("event not published yet (%s); the outbox keeps it", exc)
        else:
            self.outbox.ack([entry_id])
            self._events_waiting.pop(entry_id, None)
            self.published_total += 1
        finally:
            self._inflight.discard(entry_id)
            self._new_data.set()  # if it failed, the drain takes it again

    async def on_command(self, command: Command) -> None:
        """Rehearse: measure the site now (a full poll), then say the check ran."""
        if command.command == "rehearse":
            await self.test_bandwidth()
            await self.poll_and_store()
            now = self._clock()
            event = Event(
                site=self.config.site,
                province=self.config.province,
                seq=self.outbox.reserve_seq(),
                at=now,
                event="rehearsal",
                detail=command.meeting,
            )
            self.store_event(event)

    async def poll_and_store(self) -> None:
        """One poll cycle into the outbox (stored before any publish is tried)."""
        seq = self.outbox.reserve_seq()
        report = await self._measure(seq, self._clock())
        self.outbox.add(
            topic(self.config.province, self.config.site, "report"),
            report.model_dump_json(exclude_none=True).encode(),
        )
        self._new_data.set()

    async def _probe(self, seq: int, now: datetime) -> Report:
        report = await self._poll(seq, now)
        if self.bandwidth is not None:
            report = report.model_copy(update={"links": self.bandwidth.stamp(report.links)})
        self._last_report = report
        self._clock_state.see(report.host.clock_synced if report.host is not None else None)
        return report

    async def test_bandwidth(self) -> None:
        """Throughput on every path that is up, unless the room is (or may be) in a call."""
        if self.bandwidth is None:
            return
        last = self._last_report
        links = {link.path: link for link in last.links} if last else {}
        in_call = last.room.in_call if last and last.room else None
        if self.config.room is not None and in_call is None:
            in_call = True  # a meeting room that cannot tell: never risk disturbing a call
        await self.bandwidth.test_paths(links, in_call)

    async def _bandwidth_loop(self, stop: asyncio.Event) -> None:
        assert self.bandwidth is not None
        delay = self.bandwidth.first_delay_s()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            try:
                await self.test_bandwidth()
            except Exception:  # a test bug must not end the agent
                log.exception("throughput test failed")
            delay = self.bandwidth.config.every_s

    async def _poll(self, seq: int, now: datetime) -> Report:
        return await poll_once(
            self.config,
            self.probes,
            seq=seq,
            now=now,
            outbox=self.outbox.outbox_id(),
            outbox_depth=self.outbox.depth(),
            outbox_dropped_total=self.outbox.dropped_total(),
            outbox_resets_total=self.outbox.resets_total(),
        )

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.interval_s
        next_at = time.monotonic()
        while not stop.is_set():
            # Traps during this cycle are not confirmed by it (it may have read the
            # device before): they ask for the next one, which then comes at once.
            self._poll_now.clear()
            try:
                await self.poll_and_store()
            except Exception:  # a probe bug must not end the agent; the next cycle retries
                log.exception("poll cycle failed")
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # a cycle overran: skip the missed slots instead of bursting
                next_at = now + interval - (now - next_at) % interval
            if await self._sleep_or_trap(next_at - now):
                next_at = time.monotonic()  # the regular rhythm restarts from this poll

    async def _sleep_or_trap(self, delay: float) -> bool:
        """Sleep ``delay``; return True early when a trap asks for a poll now."""
        if self._poll_now.is_set():
            return True
        sleeper = asyncio.ensure_future(self._sleep(delay))
        woken = asyncio.ensure_future(self._poll_now.wait())
        try:
            done, _ = await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()
        return woken in done

    def _client(self) -> AckingClient:
        broker = self.config.broker
        state_topic = topic(self.config.province, self.config.site, "state")
        will_payload = encode(
            State(
                site=self.config.site,
                province=self.config.province,
                state="offline",
                at=self._clock(),
            )
        )
        tls_context = broker.ssl_context()
        properties = None
        protocol = (
            aiomqtt.ProtocolVersion.V5 if broker.protocol == 5 else aiomqtt.ProtocolVersion.V311
        )
        if broker.protocol == 5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = broker.session_expiry_s
        return AckingClient(
            broker.host,
            broker.port,
            username=self.config.mqtt_username,
            password=broker.password.reveal() if broker.password else None,
            identifier=f"kienco-agent-{self.config.site}",
            protocol=protocol,
            will=aiomqtt.Will(state_topic, will_payload, qos=1, retain=True),
            # 3.1.1 keeps the session with clean_session=False; MQTT 5 with clean_start=False
            # plus a session expiry (set in the CONNECT properties above).
            clean_session=False if broker.protocol == 4 else None,
            clean_start=False if broker.protocol == 5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=broker.keepalive_s,
            properties=properties,
            tls_context=tls_context,
            max_inflight_messages=1000,
            timeout=30,
        )

    async def _send_loop(self, stop: asyncio.Event) -> None:
        broker = self.config.broker
        backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s)
        while not stop.is_set():
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff.reset()
                    log.info("connected to %s", broker.url)
                    await self._announce(client)
                    self._client_now = client
                    listener = asyncio.create_task(
                        commands.serve(
                            client, self.config.province, self.config.site, self.on_command
                        ),
                        name="commands",
                    )
                    # Events stored while the link was down go before the backlog.
                    for entry_id, (event_topic, payload) in list(self._events_waiting.items()):
                        if entry_id not in self._inflight:
                            self._publish_at_once(client, entry_id, event_topic, payload)
                    try:
                        await self._drain(client, stop)
                    finally:
                        listener.cancel()
                        await asyncio.gather(listener, return_exceptions=True)
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning("broker %s: %s", broker.url, exc)
            except Exception:  # a bug must not silently end publishing: say it, retry
                log.exception("unexpected error talking to %s", broker.url)
            finally:
                self.connected = False
                self._client_now = None
            delay = backoff.next()
            log.info("reconnecting in %.1f s; %d messages waiting", delay, self.outbox.depth())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _announce(self, client: AckingClient) -> None:
        now = self._clock()
        province, site = self.config.province, self.config.site
        online = State(site=site, province=province, state="online", at=now)
        meta = self._meta(now)
        try:
            await client.publish_acked(topic(province, site, "state"), encode(online), retain=True)
            await client.publish_acked(topic(province, site, "meta"), encode(meta), retain=True)
        except PublishRefused as exc:
            # Reports will be refused too; the drain keeps them and says so at each retry.
            self.refused_total += 1
            log.error(
                "BROKER REFUSED the birth/meta message (%s): this agent logs in as %r; the "
                "shipped broker ACL lets user <province>/<site> write only "
                "kienco/v1/<province>/<site>/...",
                exc,
                self.config.mqtt_username,
            )

    async def _drain(self, client: AckingClient, stop: asyncio.Event) -> None:
        """Publish the outbox until stopped; raise on a lost connection (the caller reconnects)."""
        # The newest message goes first too: it is the site's present (made while the link
        # was down, just before this connection), and the backlog behind it may take
        # minutes on a thin link (20 000 reports after 72 h). The rest drains oldest first.
        backlog_end = max(0, self.outbox.last_id() - 1)
        refused_backoff = Backoff(self.config.broker.reconnect_min_s, 300.0)
        while not stop.is_set():
            limit = self.config.outbox.drain_batch
            taken = self.outbox.take(limit + len(self._inflight), fresh_after=backlog_end)
            # Skip what is being published at once (events): never twice in flight.
            batch = [e for e in taken if e.id not in self._inflight][:limit]
            if not batch:
                self._new_data.clear()
                await client.wait_or_disconnect(self._new_data, 30.0)
                continue
            ids = [e.id for e in batch]
            self._inflight.update(ids)
            try:
                results = await asyncio.gather(
                    *(client.publish_acked(e.topic, e.payload, retain=e.retain) for e in batch),
                    return_exceptions=True,
                )
            finally:
                self._inflight.difference_update(ids)
            accepted = [
                entry.id for entry, result in zip(batch, results, strict=True) if result is None
            ]
            self.outbox.ack(accepted)
            for entry_id in accepted:
                self._events_waiting.pop(entry_id, None)
            self.published_total += len(accepted)
            refused = [r for r in results if isinstance(r, PublishRefused)]
            failed = [r for r in results if isinstance(r, BaseException) and r not in refused]
            if failed:
                raise failed[0]
            if refused:
                self.refused_total += len(refused)
                delay = refused_backoff.next()
                log.error(
                    "BROKER REFUSED %d report(s): %s. They stay in the outbox (%d waiting); "
                    "check this agent's username and the broker ACL. Retrying in %.0f s.",
                    len(refused),
                    refused[0],
                    self.outbox.depth(),
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                refused_backoff.reset()
