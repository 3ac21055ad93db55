"""Does a provincial broker whose TLS bridge the centre keeps closing still serve its own
agents once it is idle? A probe of the Mosquitto on this machine, not of kienco's code.

The national topology (docs/topology.md) bridges each provincial Mosquitto to the centre
over TLS. When the centre closes the connection during the TLS handshake (what a
centre restarting, refusing the bridge's client certificate, or a middlebox dropping it
would do: not tried here), the bridge fails and tries again every ``restart_timeout``.
Mosquitto 2.0.11 (Debian 12's) was seen to stop there: an idle provincial broker makes
no further attempt, spins a core, and no longer completes a connection from its own
clients, until it is killed.

Each run, on loopback: a "centre" that accepts TCP and closes after the TLS ClientHello;
a provincial broker (a plain listener, anonymous, the bridge as the shipped
provincial-hp.conf has it but for its CA and ``restart_timeout 1 2``); no client for
``--idle`` seconds; then

- the bridge's attempts so far, and whether a new local client gets an answer in 5 s
  (``kienco broker probe``'s knock: an MQTT CONNECT, kienco/broker_probe.py);
- whether the bridge attempts again in the next 5 s;
- the broker's CPU from the client's try to then (% of a core, from /proc);
- whether SIGTERM stops it within 5 s (else it is killed).

    .venv/bin/python benchmarks/bridge_refused_idle.py --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import print_summary

from kienco.broker_probe import Listener, knock
from kienco.local_services import free_port

_TICKS = os.sysconf("SC_CLK_TCK")


def _closing_centre(port: int, stop: threading.Event) -> threading.Thread:
    """Accept, read the TLS ClientHello, close: a centre that ends every handshake."""
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(0.2)

    def serve() -> None:
        with server:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(2)
                    with contextlib.suppress(OSError):
                        conn.recv(4096)

    thread = threading.Thread(target=serve, name="closing-centre", daemon=True)
    thread.start()
    return thread


def _ca(folder: Path) -> Path:
    """A CA for the bridge to trust (the handshake never gets far enough to use it)."""
    key, crt = folder / "ca.key", folder / "ca.crt"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=probe CA"),
        ],
        check=True,
        capture_output=True,
    )
    return crt


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def one_run(folder: Path, idle_s: float) -> dict[str, Any]:
    folder.mkdir(parents=True, mode=0o755)
    local, remote = free_port(), free_port()
    conf = folder / "provincial.conf"
    conf.write_text(
        f"listener {local} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n"
        f"connection kienco-hp\naddress localhost:{remote}\nbridge_protocol_version mqttv311\n"
        f"cleansession false\nbridge_cafile {_ca(folder)}\nbridge_insecure false\n"
        "keepalive_interval 30\nrestart_timeout 1 2\n"
        "topic kienco/v1/hp/+/report out 1\ntopic kienco/v1/hp/+/status in 1\n"
    )
    stop = threading.Event()
    centre = _closing_centre(remote, stop)
    log = folder / "mosquitto.log"
    with log.open("wb") as out:
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=out, stderr=out)
    try:
        time.sleep(idle_s)
        attempts = log.read_text(errors="replace").count("Connecting bridge (step 1)")
        ticks, since = _cpu_ticks(broker.pid), time.monotonic()
        served = knock(Listener(local, "127.0.0.1", tls=False), timeout_s=5.0) is None
        time.sleep(5.0)
        cpu = (_cpu_ticks(broker.pid) - ticks) / _TICKS / (time.monotonic() - since) * 100
        later = log.read_text(errors="replace").count("Connecting bridge (step 1)")
        broker.terminate()
        try:
            broker.wait(5)
            stopped = True
        except subprocess.TimeoutExpired:
            stopped = False
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait()
        stop.set()
        centre.join(2)
    return {
        "attempts while idle": attempts,
        "a new local client served": served,
        "attempts in the 5 s after": later - attempts,
        "CPU % of a core": round(cpu),
        "stopped by SIGTERM": stopped,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=15.0, help="seconds with no client")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    rows: list[tuple[str, Any]] = [("mosquitto", version.splitlines()[0] if version else "?")]
    wedged = 0
    with tempfile.TemporaryDirectory(prefix="kienco-bridge-idle-") as tmp:
        os.chmod(tmp, 0o755)  # mosquitto, started as root, reads the CA as its own user
        for n in range(args.runs):
            result = one_run(Path(tmp) / f"run{n}", args.idle)
            stuck = not result["a new local client served"]
            wedged += stuck
            rows.append((f"run {n + 1}", result))
    rows.append(("runs where the idle broker served no new client", f"{wedged} of {args.runs}"))
    title = "an idle provincial broker, its TLS bridge closed by the centre"
    print_summary(title, rows, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
