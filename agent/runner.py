"""The agent's two loops: poll the site into the outbox, and drain the outbox to the broker.

They share nothing but the outbox, so a broker that is down for a day never
stops the polling, and a slow device never stops the draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.backoff import Backoff
from agent.config import SiteConfig
from agent.cycle import Probes, poll_once
from agent.meta import meta_message
from agent.mqtt_client import AckingClient, PublishRefused
from agent.outbox import Outbox
from agent.topics import topic
from agent.wire import Meta, Report, State, utc_now

Measure = Callable[[int, datetime], Awaitable[Report]]
"""Produces the report for (seq, taken_at): the probes by default, a simulated site in the demo."""

log = logging.getLogger("kienco.agent")


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
        self.connected = False
        self.published_total = 0
        self.refused_total = 0

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
        tasks = [asyncio.create_task(self._send_loop(stop), name="send")]
        if poll:
            tasks.append(asyncio.create_task(self._poll_loop(stop), name="poll"))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

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
        return await poll_once(
            self.config,
            self.probes,
            seq=seq,
            now=now,
            outbox_depth=self.outbox.depth(),
            outbox_dropped_total=self.outbox.dropped_total(),
        )

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.interval_s
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                await self.poll_and_store()
            except Exception:  # a probe bug must not end the agent; the next cycle retries
                log.exception("poll cycle failed")
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # a cycle overran: skip the missed slots instead of bursting
                next_at = now + interval - (now - next_at) % interval
            await self._sleep(next_at - now)

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
        tls_context: ssl.SSLContext | None = None
        if broker.tls or broker.ca_file is not None:
            tls_context = ssl.create_default_context(
                cafile=str(broker.ca_file) if broker.ca_file else None
            )
            if broker.cert_file:
                tls_context.load_cert_chain(
                    str(broker.cert_file), str(broker.key_file) if broker.key_file else None
                )
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
                    await self._drain(client, stop)
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning("broker %s: %s", broker.url, exc)
            except Exception:  # a bug must not silently end publishing: say it, retry
                log.exception("unexpected error talking to %s", broker.url)
            finally:
                self.connected = False
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
                "broker ACL lets a user write only kienco/v1/+/<username>/... topics",
                exc,
                self.config.mqtt_username,
            )

    async def _drain(self, client: AckingClient, stop: asyncio.Event) -> None:
        """Publish the outbox until stopped; raise on a lost connection (the caller reconnects)."""
        backlog_end = self.outbox.last_id()
        refused_backoff = Backoff(self.config.broker.reconnect_min_s, 300.0)
        while not stop.is_set():
            batch = self.outbox.take(self.config.outbox.drain_batch, fresh_after=backlog_end)
            if not batch:
                self._new_data.clear()
                await client.wait_or_disconnect(self._new_data, 30.0)
                continue
            results = await asyncio.gather(
                *(client.publish_acked(e.topic, e.payload, retain=e.retain) for e in batch),
                return_exceptions=True,
            )
            accepted = [
                entry.id for entry, result in zip(batch, results, strict=True) if result is None
            ]
            self.outbox.ack(accepted)
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
