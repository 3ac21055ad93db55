"""Which MQTT client can hold 10 000 connections in one process: aiomqtt or the simulator's
light client (kienco/fleet/mqtt_lite.py)?

Each kind runs in a process of its own against one Mosquitto (the shipped config): it
opens ``--connections`` connections, then publishes QoS 1 reports round-robin over them at
``--rate`` messages/s for ``--seconds``, each publish waiting for its PUBACK as the agent's
outbox does. Printed per kind: RSS per connection (after connecting, over the process's
RSS before), CPU per message (µs, user + system, while publishing), messages acked/s.

    .venv/bin/python benchmarks/mqtt_clients.py --connections 2000 --rate 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from _common import PYTHON, log, print_summary

from kienco.local_services import Mosquitto

PAYLOAD = b"x" * 1100  # a report's size


def _cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def _lite(port: int, connections: int, rate: float, seconds: float) -> dict[str, float]:
    from kienco.fleet.mqtt_lite import Connection, Login, Message, Stats

    stats = Stats()
    rss0 = psutil.Process().memory_info().rss
    conns = []
    for number in range(connections):
        conn = Connection("127.0.0.1", port, Login(client_id=f"lite-{number}"), stats)
        conns.append(conn)
        await conn.open()
        if number % 200 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*(c.first_connected for c in conns))
    rss1 = psutil.Process().memory_info().rss
    cpu0, start = _cpu(), time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            conns[sent % connections].send(Message(f"bench/{sent % connections}", PAYLOAD))
            sent += 1
        await asyncio.sleep(0.01)
    while stats.acked < sent and time.monotonic() - start < seconds + 30:
        await asyncio.sleep(0.01)
    elapsed, cpu = time.monotonic() - start, _cpu() - cpu0
    for conn in conns:
        conn.close()
    return {
        "rss_per_conn_kb": (rss1 - rss0) / connections / 1024,
        "cpu_us_per_msg": cpu / sent * 1e6,
        "acked_per_s": stats.acked / elapsed,
        "acked": stats.acked,
        "sent": sent,
    }


async def _aiomqtt(port: int, connections: int, rate: float, seconds: float) -> dict[str, float]:
    import aiomqtt

    rss0 = psutil.Process().memory_info().rss
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for number in range(connections):
            client = aiomqtt.Client("127.0.0.1", port, identifier=f"aio-{number}")
            clients.append(await stack.enter_async_context(client))
        rss1 = psutil.Process().memory_info().rss
        cpu0, start = _cpu(), time.monotonic()
        acked = 0
        sent = 0
        pending: set[asyncio.Task[None]] = set()

        async def one(client: Any, topic: str) -> None:
            nonlocal acked
            await client.publish(topic, PAYLOAD, qos=1)  # returns on the PUBACK
            acked += 1

        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                task = asyncio.create_task(one(clients[sent % connections], f"bench/{sent}"))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(0.01)
        if pending:
            await asyncio.wait(pending, timeout=30)
        elapsed, cpu = time.monotonic() - start, _cpu() - cpu0
    return {
        "rss_per_conn_kb": (rss1 - rss0) / connections / 1024,
        "cpu_us_per_msg": cpu / sent * 1e6,
        "acked_per_s": acked / elapsed,
        "acked": acked,
        "sent": sent,
    }


def _child(kind: str, port: int, connections: int, rate: float, seconds: float) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runner = _lite if kind == "lite" else _aiomqtt
    print(json.dumps(asyncio.run(runner(port, connections, rate, seconds))))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), args.connections, args.rate, args.seconds)
        return 0
    import tempfile

    rows: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kienco-clients-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            for kind in ("lite", "aiomqtt"):
                log(
                    f"{kind}: {args.connections} connections, {args.rate:g} msg/s, "
                    f"{args.seconds:g} s"
                )
                done = subprocess.run(
                    [
                        PYTHON,
                        __file__,
                        "--child",
                        kind,
                        str(broker.port),
                        "--connections",
                        str(args.connections),
                        "--rate",
                        str(args.rate),
                        "--seconds",
                        str(args.seconds),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=args.seconds + 600,
                )
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rows += [(f"{kind}: {key}", value) for key, value in result.items()]
        finally:
            broker.stop()
    print_summary(
        f"MQTT clients: {args.connections} connections, {args.rate:g} msg/s",
        rows,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
