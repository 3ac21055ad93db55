"""The collector's two text codecs, timed alone: line protocol out, wire JSON in.

What it measures (timeit in this process, best of --repeat; no services needed):

1. Line protocol (collector/line_protocol.py), lines/s:
   - ``power`` points with 4 tags and 12 fields, caches warm, and every cache cold;
   - a realistic report mix (``report_points`` of benchmarks/_common.make_report:
     report, 2 power, 3 link, host);
   - ``finding`` points as the verdicts write them: two free-text string fields
     (Vietnamese and English reason texts), clean, and with a line break and an
     escape character in them (the path that folds untrusted text).
2. Decode (collector/decode.py), µs per message, on realistic reports: the whole
   ``decode()`` and, apart, pydantic's ``model_validate_json`` alone and the
   duplicate-key check alone (its cheap count, and its exact parse, taken when a
   text holds ``\":``), so its cost is seen against the validation.

On a shared machine the figures move with the others' load: compare runs made
one right after the other.

Run:

    /work/main/.venv/bin/python benchmarks/codec.py
    /work/main/.venv/bin/python benchmarks/codec.py --repeat 20 --json
"""

from __future__ import annotations

import argparse
import random
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from _common import make_report, make_sites, print_summary, wire

from collector import line_protocol
from collector.decode import decode
from collector.line_protocol import Point, encode_many
from collector.points import report_points
from contract.wire import Report

T0 = datetime(2026, 9, 7, 3, 0, tzinfo=UTC)


def _best_rate(run: Callable[[], object], items: int, *, repeat: int, number: int) -> float:
    """Items per second of the fastest of ``repeat`` runs of ``number`` calls."""
    best = min(timeit.repeat(run, repeat=repeat, number=number))
    return items * number / best


def _power_points(n: int) -> list[Point]:
    return [
        Point.make(
            "power",
            {
                "site": f"hp-bts-{i % 500:05d}",
                "province": "hp",
                "kind": "station",
                "device": "ups1",
            },
            {
                "battery_charge_pct": 97.5 + i % 3,
                "battery_runtime_s": 14_400.0,
                "battery_voltage_v": 54.1,
                "battery_temperature_c": 27.3,
                "input_v": 229.8,
                "output_v": 230.1,
                "load_pct": 31.4,
                "mains_present": True,
                "on_battery": False,
                "battery_status": "normal",
                "alarms_count": 0,
                "input_line_bads_count": 2,
            },
            1_790_000_000_000_000_000 + i,
        )
        for i in range(n)
    ]


def _finding_points(n: int, *, dirty: bool) -> list[Point]:
    error = "Modbus timeout\nretry 1/3 \x1b[2J" if dirty else "Modbus timeout, retry 1/3"
    return [
        Point.make(
            "finding",
            {
                "site": f"hp-bts-{i % 500:05d}",
                "province": "hp",
                "kind": "station",
                "rule": "backup_power",
                "code": "power_probe_error",
                "severity": "warning",
            },
            {
                "text_vi": f"không đọc được thiết bị điện gen1: {error}",
                "text_en": f"cannot read power device gen1: {error}",
                "verdict": "degraded",
            },
            1_790_000_000_000_000_000 + i,
        )
        for i in range(n)
    ]


def _clear_caches() -> None:
    for cache in (
        line_protocol._measurements,
        line_protocol._field_keys,
        line_protocol._tag_sets,
        line_protocol._tag_pairs,
    ):
        cache.clear()


def line_protocol_rates(repeat: int) -> list[tuple[str, object]]:
    power = _power_points(1_000)
    rng = random.Random(7)
    sites = make_sites(200)
    reports = [
        make_report(site, seq, T0 + timedelta(seconds=seq), interval_s=10, rng=rng)
        for seq, site in enumerate(sites)
    ]
    mix = [p for report in reports for p in report_points(report, site_kind="station")]
    clean, dirty = _finding_points(1_000, dirty=False), _finding_points(1_000, dirty=True)

    def cold() -> None:
        _clear_caches()
        encode_many(power)

    encode_many(power)  # warm the caches once
    rows: list[tuple[str, object]] = [
        ("power points, caches warm (lines/s)", _best_rate(lambda: encode_many(power), 1_000,
                                                           repeat=repeat, number=5)),
        ("power points, caches cold (lines/s)", _best_rate(cold, 1_000, repeat=repeat, number=5)),
        ("report mix (lines/s)", _best_rate(lambda: encode_many(mix), len(mix),
                                            repeat=repeat, number=5)),
        ("finding points, clean text (lines/s)", _best_rate(lambda: encode_many(clean), 1_000,
                                                            repeat=repeat, number=5)),
    ]  # fmt: skip
    try:
        rows.append(
            (
                "finding points, line break + ESC (lines/s)",
                _best_rate(lambda: encode_many(dirty), 1_000, repeat=repeat, number=5),
            )
        )
    except line_protocol.LineProtocolError as refused:  # the encoder before it folded text
        rows.append(("finding points, line break + ESC (lines/s)", f"refused: {refused}"))
    return rows  # fmt: skip


def decode_costs(repeat: int) -> list[tuple[str, object]]:
    rng = random.Random(11)
    sites = make_sites(200)
    now = T0 + timedelta(hours=1)
    payloads = [
        (f"{site.base_topic}/report", wire(make_report(site, seq, T0, interval_s=10, rng=rng)))
        for seq, site in enumerate(sites)
    ]
    n = len(payloads)

    def whole() -> None:
        for topic, payload in payloads:
            decode(topic, payload, now=now, max_bytes=65_536, future_tolerance_s=300)

    def validate_only() -> None:
        for _, payload in payloads:
            Report.model_validate_json(payload)

    rows: list[tuple[str, object]] = [
        ("decode(), µs/report", 1e6 / _best_rate(whole, n, repeat=repeat, number=10)),
        ("model_validate_json alone, µs/report",
         1e6 / _best_rate(validate_only, n, repeat=repeat, number=10)),
    ]  # fmt: skip
    check = _duplicate_key_check()
    if check is not None:
        validated = [(p, Report.model_validate_json(p)) for _, p in payloads]

        def check_only() -> None:
            for payload, message in validated:
                check(payload, message)

        rows.append(
            (
                "duplicate-key check alone, µs/report",
                1e6 / _best_rate(check_only, n, repeat=repeat, number=10),
            )
        )
        # A '":' inside a text makes the cheap count differ: the exact parse decides.
        quoting = [p.replace(b'"profile":', b'"error":"said \\"no\\": 1","profile":', 1)
                   for p, _ in validated]  # fmt: skip
        quoted = [(p, Report.model_validate_json(p)) for p in quoting]

        def check_quoted() -> None:
            for payload, message in quoted:
                check(payload, message)

        rows.append(
            (
                "duplicate-key check, a '\":' in a text (exact parse), µs/report",
                1e6 / _best_rate(check_quoted, n, repeat=repeat, number=10),
            )
        )
    rows.append(("report size (bytes, mean)", sum(len(p) for _, p in payloads) / n))
    return rows


def _duplicate_key_check() -> Callable[[bytes, Report], object] | None:
    """collector.decode.duplicate_key, when the code measured has it."""
    from collector import decode as decode_module

    found: Callable[[bytes, Report], object] | None = getattr(decode_module, "duplicate_key", None)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=12, help="timeit repeats (best is kept)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    rows = line_protocol_rates(args.repeat) + decode_costs(args.repeat)
    print_summary("line protocol and decode speed", rows, as_json=args.json)


if __name__ == "__main__":
    main()
