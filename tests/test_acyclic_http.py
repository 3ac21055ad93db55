"""collector/acyclic_http.py: the collector's calls out (InfluxDB, Alertmanager) leave no
reference cycle behind, on the real servers; httpx's own client does (the reason it exists)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from collector.acyclic_http import AcyclicClient
from collector.alert_sender import _Target
from collector.influx import InfluxV1Client
from tests.support.alertmanager import AlertmanagerServer
from tests.support.garbage import cyclic_garbage
from tests.support.influx import InfluxServer


def _calls(client: httpx.Client, url: str) -> Callable[[], None]:
    def call() -> None:
        for _ in range(5):
            client.get(url).raise_for_status()

    return call


def test_httpx_alone_leaves_a_cycle_a_call(influxdb: InfluxServer) -> None:
    """The reason for the subclass: if this fails, httpx no longer needs it."""
    with httpx.Client() as plain:
        plain.get(f"{influxdb.url}/ping")  # the connection made
        with cyclic_garbage("httpx", "httpcore") as found:
            _calls(plain, f"{influxdb.url}/ping")()
    assert "httpx.Response" in found
    assert found.count("httpx._client.BoundSyncStream") == 5


def test_influxdb_writes_and_queries_leave_no_cycle(influxdb: InfluxServer) -> None:
    db = influxdb.fresh_database("acyclic")
    with InfluxV1Client(influxdb.url, db) as client:
        client.write("m,site=s v=1 1")  # the database and the connection made
        with cyclic_garbage("httpx", "httpcore") as found:
            for i in range(5):
                assert client.write(f"m,site=s v={i} {i + 2}").ok
            assert client.query("SELECT count(v) FROM m")[0]["count"] == 6
            assert client.ping()
    assert found == []


def test_alertmanager_calls_leave_no_cycle(alertmanager: AlertmanagerServer) -> None:
    target = _Target(alertmanager.url, timeout_s=5)
    try:
        call = _calls(target.client, "/api/v2/status")
        call()
        with cyclic_garbage("httpx", "httpcore") as found:
            call()
            target.client.post("/api/v2/alerts", json=[]).raise_for_status()
    finally:
        target.client.close()
    assert found == []


def test_a_streamed_answer_is_left_whole(influxdb: InfluxServer) -> None:
    """Only answers httpx has read and closed lose their (spent) stream."""
    query = {"q": "SHOW DATABASES"}
    with AcyclicClient(base_url=influxdb.url) as client:
        whole = httpx.get(f"{influxdb.url}/query", params=query).content
        with client.stream("GET", "/query", params=query) as streamed:
            assert b"".join(streamed.iter_bytes()) == whole
        read = client.get("/query", params=query)
        assert read.content == whole
        assert read.json()["results"]
