"""A broker address as configs give it (agent and collector alike)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MqttEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """A broker address: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

    url: str = Field(description="mqtt://host:1883 or mqtts://host:8883")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("use mqtt://host:port or mqtts://host:port")
        return value

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None  # the validator checked it
        return host

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"
