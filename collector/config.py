"""The collector's config (YAML), validated at start like the agent's."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.health_points import LATE_AFTER_S, LOST_AFTER_S, MEASUREMENT
from collector.influx import InfluxV1Client
from collector.line_protocol import LineProtocolError, series
from collector.web.roles import Role, parse_role
from collector.web.tokens import MIN_TOKEN_CHARS, KeptToken, TokenBook, parse_pbkdf2, sha256_digest
from contract.wire import Slug
from plumbing.config_errors import ConfigError, check_url, load_yaml_model
from plumbing.mqtt_endpoint import MqttEndpoint
from plumbing.secrets import SecretRef
from plumbing.tls import client_context

ADMIN_TOKEN_NAME = "admin"  # the name http.admin_token's token goes by


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollectorBroker(MqttEndpoint):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = "collector"
    password: SecretRef | None = None
    client_id: str = Field(
        default="kienco-collector", description="stable: the broker keeps its session by this id"
    )
    topic_filter: str = Field(
        default="kienco/v1/+/+/#",
        description="one MQTT filter; a shard of a national fleet gives `provinces:` instead",
    )
    protocol: Literal[5, 4] = Field(
        default=4,
        description="4: MQTT 3.1.1 (the session lasts the broker's persistent_client_expiration, "
        "14d in the shipped configs; in flight: its max_inflight_messages, 10 000); 5: MQTT 5 "
        "(session_expiry_s, receive maximum 65 535), which costs paho ~14 µs more per message "
        "(docs/throughput.md) for nothing the collector uses",
    )
    session_expiry_s: Annotated[int, Field(ge=0)] = Field(
        default=14 * 86_400, description="MQTT 5 only: how long the broker keeps the session"
    )
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    read_window_ms: Annotated[float, Field(ge=0, le=200)] = Field(
        default=50,
        description="a light stream of messages gathers this long before it is read, in one "
        "pass: a thread woken for every message pays for a cold core each time (at 50 ms: "
        "~20 % less CPU with 8 000 sites at ~800 reports/s, not resolved at 51 700 sites; "
        "docs/throughput.md, woken for every message); a message and its verdict wait at "
        "most this long more; a backlog is read at once; 0 reads each message as it comes",
    )

    @field_validator("topic_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        if not value.startswith("kienco/v1/"):
            raise ValueError("the filter must start with kienco/v1/ (e.g. kienco/v1/hp/#)")
        return value


class InfluxConfig(_Strict):
    url: str = Field(
        default="http://127.0.0.1:8086",
        description="http://host:8086, or https://host:8086 when InfluxDB serves HTTPS "
        "(another machine's InfluxDB: always https)",
    )
    ca_file: Path | None = Field(
        default=None,
        description="https only: the CA that signed InfluxDB's certificate (that CA alone is "
        "trusted); default: the system's CAs. The certificate must name the url's host",
    )
    database: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "kienco"
    username: str | None = None
    password: SecretRef | None = None
    # Short: the writer spools rather than hold the MQTT pipe behind a hung InfluxDB.
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 3.0
    retry_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    spool_max_bytes: Annotated[int, Field(ge=1_000_000)] = 1024**3
    health_every_s: Annotated[float, Field(ge=1, le=20)] = Field(
        default=10.0,
        description="the collector writes its own health (measurement kienco_collector: "
        "reports/s, lag, backlog, rejections, broker drops, bridges, loops, GC) this often, "
        "for the system dashboard's shard panels (collector/health_points.py); a shard whose "
        f"health is {LATE_AFTER_S:g} s old shows late there, {LOST_AFTER_S:g} s lost",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, "http", "https", port="8086")

    @field_validator("ca_file")
    @classmethod
    def _ca_needs_https(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        url = info.data.get("url")  # absent when the url itself was refused
        if value is not None and url is not None and urlsplit(url).scheme != "https":
            # No silent fallback: a CA beside a plain url says the operator meant TLS.
            raise ValueError(
                f"a CA file beside the plain http url {url}: it would never be used and the "
                "fleet's history would cross the network in clear. Fix: use an https:// url "
                "(InfluxDB's [http] https-enabled = true), or remove influx.ca_file"
            )
        return value

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context for an https url (None for http); a CA file that cannot
        be used raises ConfigError naming influx.ca_file."""
        if not self.tls:
            return None
        return client_context(self.ca_file, key="influx", source="InfluxDB TLS")

    def client(self, *, timeout_s: float | None = None) -> InfluxV1Client:
        """A client for this InfluxDB (``timeout_s``: default this config's)."""
        return InfluxV1Client(
            self.url,
            self.database,
            username=self.username,
            password=self.password.reveal() if self.password else None,
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
            verify=self.ssl_context(),
        )


class Limits(_Strict):
    max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    future_tolerance_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    # Memory is per site (~20 KB with its history and verdict): invented site ids must not
    # grow the collector without bound. The busiest province has a few thousand stations.
    max_sites_per_province: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=20_000,
        description="a new site beyond it is rejected (site_limit) and dead-lettered; "
        "sites the inventory lists always count and are always carried",
    )
    # Provinces are slugs too: without a total, invented provinces would dodge the cap above.
    max_sites: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=150_000,
        description="all provinces together (a national fleet is ~103 000 sites); a new "
        "site beyond it is rejected (site_limit)",
    )
    unlisted_site_expiry_s: Annotated[float, Field(ge=60, le=365 * 86_400)] = Field(
        default=7 * 86_400,
        description="a site the inventory does not list, silent this long, is forgotten "
        "(its retained status cleared); it comes back as new if it reports again",
    )


class BatchConfig(_Strict):
    max_messages: Annotated[int, Field(ge=1, le=60_000)] = 2000
    max_delay_s: Annotated[float, Field(gt=0, le=60)] = 0.25


class TokenEntry(_Strict):
    """One role token, kept hashed (``kienco token new`` prints such an entry)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")] = Field(
        description="who holds it: shown as who set a risk level or planned a meeting"
    )
    role: str = Field(description="noc, ministry, admin or province:<code> (e.g. province:hp)")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="hex SHA-256 of a random token (kienco token new)"
    )
    pbkdf2: str | None = Field(
        default=None, description="pbkdf2_sha256$… of a chosen token (kienco token hash)"
    )

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        return str(parse_role(value))

    @model_validator(mode="after")
    def _one_hash(self) -> TokenEntry:
        if (self.sha256 is None) == (self.pbkdf2 is None):
            raise ValueError(
                f"token {self.name!r}: give exactly one of sha256 or pbkdf2 "
                "(`kienco token new --name N --role R` prints a whole entry)"
            )
        if self.pbkdf2 is not None:
            parse_pbkdf2(self.pbkdf2)
        return self

    def kept(self) -> KeptToken:
        return KeptToken(
            self.name,
            parse_role(self.role),
            sha256=bytes.fromhex(self.sha256) if self.sha256 else None,
            pbkdf2=parse_pbkdf2(self.pbkdf2) if self.pbkdf2 else None,
        )


class HttpListen(_Strict):
    """The API, the board, /metrics and /healthz (collector/web/)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9108
    tokens: tuple[TokenEntry, ...] = Field(
        default=(),
        description="who may read and change what: [{name, role, sha256 | pbkdf2}]; "
        "no loopback bypass, no token no change",
    )
    admin_token: SecretRef | None = Field(
        default=None,
        description="an older form, still read: a token of role admin named 'admin', kept "
        "as given (prefer a hashed entry in tokens); sent as 'Authorization: Bearer …'",
    )
    anonymous_read: bool = Field(
        default=False,
        description="true: anyone who reaches the port reads every province (as before "
        "roles). false: reads need a token too, so a province's data stays its own. "
        "The agents' throughput test, /healthz and /metrics never need one",
    )
    session_hours: Annotated[float, Field(gt=0, le=24 * 90)] = Field(
        default=12.0, description="a board login lasts this long unused (each use renews it)"
    )
    max_connections: Annotated[int, Field(ge=4, le=100_000)] = Field(
        default=500, description="open connections; beyond it a request is answered 503"
    )
    handler_threads: Annotated[int, Field(ge=1, le=256)] = Field(
        default=8, description="requests worked on at once (the rest wait their turn)"
    )
    board_poll_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=30.0,
        description="an open board page fetches its live part at least this often (besides "
        "each change its stream tells): the longest a lost collector goes unnoticed on it",
    )
    request_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0,
        description="a request (headers, body, answer) must be done within it, or it is "
        "cut (the throughput test has its own caps)",
    )

    @field_validator("tokens")
    @classmethod
    def _unique(cls, value: tuple[TokenEntry, ...]) -> tuple[TokenEntry, ...]:
        names = [t.name for t in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"token names given twice: {twice}; fix: one entry per name")
        return value

    def revealed_token(self) -> str | None:
        """The admin token, checked; ConfigError naming the key, what is wrong and the fix."""
        if self.admin_token is None:
            return None
        try:
            token = self.admin_token.reveal().strip()
        except ValueError as exc:
            problem = f"http.admin_token: {exc}. Fix: set it, or remove the key (read-only API)"
            raise ConfigError("collector config", [problem]) from None
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                "collector config",
                [
                    f"http.admin_token: {len(token)} characters ({self.admin_token!r}), too "
                    f"easy to guess. Fix: use at least {MIN_TOKEN_CHARS} random characters, "
                    "e.g. from `kienco token new` or `openssl rand -hex 16`"
                ],
            )
        return token

    def token_book(self) -> TokenBook:
        """Every token the collector takes: ``tokens``, and ``admin_token`` as 'admin'."""
        kept = [entry.kept() for entry in self.tokens]
        admin = self.revealed_token()
        if admin is not None:
            if any(entry.name == ADMIN_TOKEN_NAME for entry in self.tokens):
                raise ConfigError(
                    "collector config",
                    [
                        f"http.admin_token and a token named {ADMIN_TOKEN_NAME!r} in "
                        "http.tokens: the old key is that token. Fix: keep one of them"
                    ],
                )
            kept.append(KeptToken(ADMIN_TOKEN_NAME, Role("admin"), sha256=sha256_digest(admin)))
        return TokenBook(kept)


class StatusConfig(_Strict):
    publish: Literal["on_change", "always"] = Field(
        default="on_change",
        description="publish a site's retained status when its verdict changes, or at every "
        "evaluation",
    )
    sweep_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    late_after_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=120.0,
        description="a province's reports are late (a backlog worked off: /healthz "
        "reports_late, ReportsLate) while the freshest of them read in the last minute is "
        "older than this (collector/backlog.py)",
    )


class StateConfig(_Strict):
    """The collector's state on disk (data_dir/state.sqlite), restored at start
    (collector/state_store.py): a restart changes no verdict."""

    persist: bool = Field(
        default=True,
        description="false: start empty every time (every site unknown until it reports)",
    )
    save_every_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=1.0,
        description="changed sites are saved this often, and all of them at a clean stop; "
        "a crash loses at most this much state (the messages themselves are in InfluxDB)",
    )
    snapshot_every_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=300.0,
        description="a changed site's whole snapshot (~5 kB) is written at most this often; "
        "between two, the messages folded into it are logged as they came and folded again "
        "at a restart (a crash still loses at most save_every_s). Longer: less saving work "
        "per report, more messages to fold again after a crash, a larger state file",
    )
    restore_grace_s: Annotated[float, Field(ge=0, le=600)] = Field(
        default=30.0,
        description="after a restart, silence is judged no sooner than this: the broker "
        "first delivers what the sites sent while the collector was down",
    )

    @model_validator(mode="after")
    def _tiers(self) -> StateConfig:
        if self.snapshot_every_s < self.save_every_s:
            raise ValueError(
                f"state.snapshot_every_s ({self.snapshot_every_s:g}) is shorter than "
                f"state.save_every_s ({self.save_every_s:g}): snapshots are written by the "
                "saver's passes. Fix: set snapshot_every_s to save_every_s or more"
            )
        return self


def _http_url(value: str, example: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError(f"not an http(s) URL with a host; fix: write it like {example}")
    return value.rstrip("/")


AlertmanagerUrl = Annotated[
    str, AfterValidator(lambda value: _http_url(value, "http://127.0.0.1:9093"))
]


class SystemAlertsConfig(_Strict):
    """The collector's alerts about itself (collector/system_alerts.py)."""

    enabled: bool = Field(
        default=True,
        description="alert when the collector cannot be trusted: disconnected from its broker, "
        "a broker dropping reports, InfluxDB not taking writes, a loop dead or stuck",
    )
    heartbeat: bool = Field(
        default=True,
        description="KiencoHeartbeat fires while the collector runs; its resolved notification "
        "says it stopped (firmware-configs/alertmanager/alertmanager.yml routes it)",
    )
    collector: str | None = Field(
        default=None,
        max_length=200,
        description="the collector label of these alerts; null: broker.client_id",
    )
    broker_down_after_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60.0, description="CollectorDisconnected fires after this long unsubscribed"
    )
    influx_down_after_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=300.0,
        description="InfluxNotWriting fires after InfluxDB has taken no write this long",
    )
    bridge_down_after_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60.0,
        description="BridgeDown fires after a provincial bridge has been down this long (a "
        "broker restarting says 0 for a moment)",
    )


class AlertsConfig(_Strict):
    """Alerts to Prometheus Alertmanager (collector/alert_sender.py)."""

    alertmanagers: tuple[AlertmanagerUrl, ...] = Field(
        min_length=1,
        description="every Alertmanager of the cluster (each is sent every alert, as "
        "Prometheus does)",
    )
    external_url: str = Field(
        description="where people reach this collector (or its board); alert links are this "
        "+ site_path"
    )
    site_path: str = Field(
        default="/sites/{site}",
        description="the site's page under external_url: the board's (collector/board/); "
        "/api/v1/sites/{site} for its JSON",
    )
    resend_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0,
        description="firing alerts are re-sent this often; each says it ends 4 resends later, "
        "so a collector gone silent lets them expire",
    )
    batch_delay_s: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.2, description="changes are gathered this long into one POST"
    )
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    max_alerts_per_post: Annotated[int, Field(ge=1, le=100_000)] = 1000
    system: SystemAlertsConfig = SystemAlertsConfig()

    @field_validator("alertmanagers")
    @classmethod
    def _alertmanagers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an Alertmanager is listed twice; fix: list each once")
        return value

    @field_validator("external_url")
    @classmethod
    def _external(cls, value: str) -> str:
        return _http_url(value, "https://noc.example.vn/kienco")

    @field_validator("site_path")
    @classmethod
    def _site_path(cls, value: str) -> str:
        if not value.startswith("/") or value.count("{site}") != 1:
            raise ValueError("must start with / and hold {site} once; fix: e.g. /sites/{site}")
        try:
            value.format(site="x")
        except (IndexError, KeyError, ValueError):
            raise ValueError(
                "holds braces other than {site}; fix: e.g. /api/v1/sites/{site}"
            ) from None
        return value


class CollectorConfig(_Strict):
    broker: CollectorBroker = CollectorBroker()
    influx: InfluxConfig | None = Field(
        default=InfluxConfig(), description="null: no history (verdicts only), as in the demo"
    )
    data_dir: Path = Path("/var/lib/kienco-collector")
    policy: Path | None = Field(default=None, description="null: the shipped default policy")
    inventory: Path | None = Field(
        default=None, description="the expected fleet (CSV or YAML); sites never heard are unknown"
    )
    limits: Limits = Limits()
    batch: BatchConfig = BatchConfig()
    status: StatusConfig = StatusConfig()
    state: StateConfig = StateConfig()
    http: HttpListen = Field(
        default=HttpListen(), description="the API, the board, /metrics and /healthz"
    )
    alerts: AlertsConfig | None = Field(
        default=None, description="null: no alerts; else where Alertmanager is, and links"
    )
    provinces: Annotated[tuple[Slug, ...], Field(min_length=1)] | None = Field(
        default=None,
        description="the provinces this collector shard carries: it subscribes to "
        "kienco/v1/{p}/# for each (so a site's messages always reach this shard) and "
        "judges only these provinces' inventory sites; null: broker.topic_filter",
    )

    @model_validator(mode="after")
    def _shard(self) -> CollectorConfig:
        if self.provinces is None:
            return self
        twice = sorted({p for p in self.provinces if self.provinces.count(p) > 1})
        if twice:
            raise ValueError(
                f"provinces: {', '.join(twice)} listed twice (got {list(self.provinces)}). "
                "Fix: list each province once"
            )
        if "topic_filter" in self.broker.model_fields_set:
            raise ValueError(
                f"provinces ({list(self.provinces)}) and broker.topic_filter "
                f"({self.broker.topic_filter!r}) both say what to subscribe to. Fix: keep "
                "provinces and remove broker.topic_filter"
            )
        return self

    @model_validator(mode="after")
    def _health_points(self) -> CollectorConfig:
        """The collector's own health (collector/health_points.py) must be writable and
        come often enough for the system dashboard never to show a healthy shard late."""
        if self.influx is None:
            return self
        key = self.collector_key
        try:
            series(MEASUREMENT, (("collector", self.collector_name),))
        except LineProtocolError as exc:
            raise ValueError(
                f"{key} ({self.collector_name!r}) names this collector in InfluxDB (its "
                f"health, tag collector) and cannot be written there: {exc.reason}. Fix: "
                "give a name without line breaks that does not end in a backslash, e.g. "
                "kienco-collector-a1"
            ) from None
        # The longest a healthy shard's newest health waits: a period, the sweeper's
        # tick that writes it, the writer's batch delay.
        slowest = self.influx.health_every_s + self.status.sweep_s + self.batch.max_delay_s
        if slowest >= LATE_AFTER_S:
            room = LATE_AFTER_S - self.status.sweep_s - self.batch.max_delay_s
            fix = (
                f"set influx.health_every_s below {room:g}"
                if room >= 1
                else "shorten status.sweep_s or batch.max_delay_s"
            )
            raise ValueError(
                f"influx.health_every_s ({self.influx.health_every_s:g}) + status.sweep_s "
                f"({self.status.sweep_s:g}) + batch.max_delay_s ({self.batch.max_delay_s:g}) "
                f"= {slowest:g} s: a healthy collector's health could be that old when read, "
                f"and the system dashboard shows a shard whose health is {LATE_AFTER_S:g} s "
                f"old as late ({LOST_AFTER_S:g} s: lost). Fix: {fix}"
            )
        return self

    @property
    def collector_name(self) -> str:
        """This collector's name in its own alerts and its health points."""
        own = self.alerts.system.collector if self.alerts is not None else None
        return own or self.broker.client_id

    @property
    def collector_key(self) -> str:
        """The config key :attr:`collector_name` comes from."""
        named = self.alerts is not None and self.alerts.system.collector
        return "alerts.system.collector" if named else "broker.client_id"

    @property
    def topic_filters(self) -> tuple[str, ...]:
        """What the collector subscribes to: one filter per province of its shard."""
        if self.provinces is None:
            return (self.broker.topic_filter,)
        return tuple(f"kienco/v1/{province}/#" for province in self.provinces)


def load_collector_config(path: Path) -> CollectorConfig:
    return load_yaml_model(path, CollectorConfig)
