"""A broker silent for a while, as during the save of a large store: which clients stay?

Mosquitto answers no client while it writes its store (docs/topology.md, "A broker busy
with its store"): a queue of a million reports is ~4.5 s of silence at each autosave. This
runs the shipped ``kienco.conf`` broker (anonymous, on loopback) and a paho
client at ``--keepalive`` that publishes at QoS 1 every second, then stops the broker with
SIGSTOP for each ``--stall`` in turn (the same silence as a save: the kernel still
accepts, the broker reads nothing) and continues it, each stall on a fresh broker. For
each it prints whether the client was disconnected, when and why (paho's reason), and
whether it came back.

    .venv/bin/python benchmarks/broker_stall.py --keepalive 10 --stall 8 13 17
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _common import print_summary
from paho.mqtt.enums import CallbackAPIVersion

from kienco.local_services import Mosquitto


def one_stall(workdir: Path, keepalive_s: int, stall_s: float) -> str:
    """What a client at ``keepalive_s`` saw of ``stall_s`` of broker silence."""
    broker = Mosquitto(workdir)
    broker.start()
    assert broker.process is not None
    said: list[str] = []
    began = time.monotonic()

    def at() -> str:
        return f"{time.monotonic() - began:.1f} s"

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stall-agent")

    def on_disconnect(*args: Any) -> None:
        said.append(f"disconnected at {at()} ({args[3]})")

    def on_connect(*_: Any) -> None:
        said.append(f"connected at {at()}")

    client.on_disconnect = on_disconnect
    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=keepalive_s)
        client.loop_start()
        for _ in range(3):
            client.publish("kienco/v1/hp/stall/report", b"{}", qos=1)
            time.sleep(1)
        stopped = at()
        os.kill(broker.process.pid, signal.SIGSTOP)
        time.sleep(stall_s)
        os.kill(broker.process.pid, signal.SIGCONT)
        said.append(f"silent from {stopped} to {at()}")
        for _ in range(3):
            client.publish("kienco/v1/hp/stall/report", b"{}", qos=1)
            time.sleep(1)
    finally:
        client.on_disconnect = None  # our own disconnect is not the broker's doing
        client.disconnect()
        client.loop_stop()
        broker.stop()
    return "; ".join(said)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keepalive", type=int, default=10, help="the client's keepalive (s)")
    parser.add_argument("--stall", type=float, nargs="+", default=[8.0, 13.0, 17.0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kienco-bench-stall-") as tmp:
        for index, stall in enumerate(args.stall):
            seen = one_stall(Path(tmp) / str(index), args.keepalive, stall)
            rows.append((f"keepalive {args.keepalive} s, silent {stall:g} s", seen))
    print_summary(
        "A broker silent for a while (SIGSTOP, as during a save)", rows, as_json=args.json
    )


if __name__ == "__main__":
    main()
