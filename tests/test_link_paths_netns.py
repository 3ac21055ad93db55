"""Link quality on real paths the test breaks: two veth paths between two namespaces.

Needs root, iproute2 (ip, tc) and nftables (CI runs as root); without them the tests
fail with the install command, never skip. See tests/support/netns.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from agent.config import PathConfig, TcpTarget, ThroughputConfig
from agent.probes import links, throughput
from collector.throughput import ThroughputServer
from contract.wire import LinkReading
from tests.support.netns import COLLECTOR, TwoPaths, two_paths

pytestmark = pytest.mark.timeout(60)

SLACK_S = 0.5


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[TwoPaths, ThroughputServer]]:
    with two_paths() as paths:
        # Bound to every address of the far end: the paths' probe target and the collector.
        server = paths.far.call(lambda: ThroughputServer("0.0.0.0", 0).start())
        try:
            yield paths, server
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def _mended(site: tuple[TwoPaths, ThroughputServer]) -> Iterator[None]:
    yield
    site[0].mend()


def _path(paths: TwoPaths, path: str, port: int) -> PathConfig:
    return PathConfig(
        path=f"fibre-{path}",
        media="fibre",
        target=TcpTarget(host=paths.address(path), port=port),
        probes=3,
        spacing_s=0.05,
        timeout_s=0.3,
    )


def _probe_both(site: tuple[TwoPaths, ThroughputServer]) -> dict[str, LinkReading]:
    paths, server = site

    async def both() -> list[LinkReading]:
        return list(
            await asyncio.gather(*(links.collect(_path(paths, p, server.port)) for p in "ab"))
        )

    a, b = paths.agent.call(lambda: asyncio.run(both()))
    return {"a": a, "b": b}


def _assert_healthy(reading: LinkReading) -> None:
    assert reading.up is True, reading
    assert reading.loss_pct == 0.0
    assert reading.rtt_ms is not None and 0 < reading.rtt_ms < 50  # a veth: well under 100 ms
    assert reading.jitter_ms is not None and reading.jitter_ms < 30


def test_cut_path_reads_down_while_the_other_holds_and_comes_back(
    site: tuple[TwoPaths, ThroughputServer],
) -> None:
    paths = site[0]
    before = _probe_both(site)
    _assert_healthy(before["a"])
    _assert_healthy(before["b"])

    paths.cut("a")
    cut = _probe_both(site)
    assert cut["a"].up is False
    assert cut["a"].loss_pct == 100.0
    assert cut["a"].rtt_ms is None and cut["a"].probes_sent == 3
    assert cut["a"].error and "Timeout" in cut["a"].error  # dropped, not refused
    _assert_healthy(cut["b"])

    paths.mend()
    after = _probe_both(site)
    _assert_healthy(after["a"])
    _assert_healthy(after["b"])


def _measure(
    paths: TwoPaths, config: ThroughputConfig, source: str
) -> tuple[float | None, float | None, str | None]:
    return paths.agent.call(lambda: asyncio.run(throughput.measure(config, local_address=source)))


def _transfers(
    paths: TwoPaths, url: str, source: str, max_bytes: int, max_s: float
) -> list[tuple[throughput.Transfer, float]]:
    """Download then upload from ``source``: each transfer with its wall-clock time."""

    async def both() -> list[tuple[throughput.Transfer, float]]:
        target = url + throughput.PATH
        async with throughput.make_client(source, max_s) as client:
            started = time.perf_counter()
            down = await throughput.download(client, target, max_bytes=max_bytes, max_s=max_s)
            down_s, started = time.perf_counter() - started, time.perf_counter()
            up = await throughput.upload(
                client, target, max_bytes=max_bytes, max_s=max_s, after=down
            )
            return [(down, down_s), (up, time.perf_counter() - started)]

    return paths.agent.call(lambda: asyncio.run(both()))


def test_throughput_goes_by_the_bound_path_within_its_caps(
    site: tuple[TwoPaths, ThroughputServer],
) -> None:
    paths, server = site
    url = f"http://{COLLECTOR}:{server.port}"
    paths.cut("a")  # the collector's default route is path a: only a bound test gets through

    for transfer, took in _transfers(paths, url, paths.source("b"), 3_000_000, max_s=2.0):
        assert transfer.n_bytes == 3_000_000 and not transfer.timed_out  # the byte cap, on a veth
        assert transfer.mbps is not None and transfer.mbps > 1.0
        assert took <= 2.0 + SLACK_S

    config = ThroughputConfig(url=url, max_bytes=1_000_000, max_s=1.0)
    up_mbps, down_mbps, error = _measure(paths, config, paths.source("b"))
    assert error is None
    assert up_mbps is not None and up_mbps > 1.0
    assert down_mbps is not None and down_mbps > 1.0

    started = time.perf_counter()
    up_mbps, down_mbps, error = _measure(paths, config, paths.source("a"))
    assert (up_mbps, down_mbps) == (None, None)
    assert error and "download:" in error and "upload:" in error
    assert time.perf_counter() - started <= 2 * 1.0 + SLACK_S


def test_thin_path_stops_at_the_time_cap_and_reads_below_hd(
    site: tuple[TwoPaths, ThroughputServer],
) -> None:
    paths, server = site
    url = f"http://{COLLECTOR}:{server.port}"
    paths.throttle("b", kbit_per_s=1000)  # 1 Mbps each way: too thin for 1080p

    for transfer, took in _transfers(paths, url, paths.source("b"), 20_000_000, max_s=2.0):
        assert took <= 2.0 + SLACK_S
        assert transfer.timed_out, transfer
        assert 0 < transfer.n_bytes < 20_000_000
        # 1 Mbps, well below the HD floor (2.5 down, 3.0 up); the shaper's burst lifts it a bit.
        assert transfer.mbps is not None and 0.5 < transfer.mbps < 1.6, transfer


def test_a_path_whose_source_has_no_policy_routing_is_not_probed_down_the_other_path(
    site: tuple[TwoPaths, ThroughputServer],
) -> None:
    """Probed from its address without a source rule, path b's probes to the collector
    left by path a's route: with b cut, b read up, on a's round trip."""
    paths, server = site
    b = PathConfig(
        path="lte-b",
        media="cellular",
        target=TcpTarget(host=COLLECTOR, port=server.port),
        source=paths.source("b"),
        probes=3,
        spacing_s=0.05,
        timeout_s=0.3,
    )

    def probe() -> LinkReading:
        return paths.agent.call(lambda: asyncio.run(links.collect(b)))

    paths.cut("b")
    assert probe().up is False  # with its rule: down its own path, and cut
    table = str(100 + ord("b"))
    paths.agent.ip("rule", "del", "from", paths.source("b"), "lookup", table, "priority", table)
    try:
        unrouted = probe()
    finally:
        paths.agent.ip("rule", "add", "from", paths.source("b"), "lookup", table, "priority", table)
    assert (unrouted.up, unrouted.rtt_ms, unrouted.probes_sent) == (None, None, 0)
    assert unrouted.error is not None and "would leave by pa via 10.123.1.2" in unrouted.error
    paths.mend()
    _assert_healthy(probe())
