"""A broker address as configs give it (agent and collector alike), with its TLS files."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plumbing.config_errors import check_url
from plumbing.tls import client_context


class MqttEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """A broker address: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS)."""

    url: str = Field(description="mqtt://host:1883 or mqtts://host:8883")
    ca_file: Path | None = Field(
        default=None,
        description="the CA that signed the broker's certificate (TLS on); default: the "
        "system's CAs",
    )
    cert_file: Path | None = Field(
        default=None, description="this client's certificate, for a broker that requires one"
    )
    key_file: Path | None = Field(
        default=None, description="its private key (default: in cert_file)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, "mqtt", "mqtts")

    @model_validator(mode="after")
    def _tls_files(self) -> MqttEndpoint:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file without cert_file: give the certificate it belongs to")
        if self.cert_file is not None and not self.uses_tls:
            raise ValueError(
                f"cert_file ({self.cert_file}) needs TLS: use an mqtts:// url or give ca_file"
            )
        return self

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

    @property
    def uses_tls(self) -> bool:
        """TLS with ``mqtts://``, and with a CA file given (the CA says the broker speaks it)."""
        return self.tls or self.ca_file is not None

    def ssl_context(self, key: str = "broker") -> ssl.SSLContext | None:
        """The TLS context for this broker (None without TLS): its CA, and this client's
        certificate when given. The broker's name is checked against its certificate.

        A file that cannot be read or used raises ConfigError naming ``key``'s field.
        """
        if not self.uses_tls:
            return None
        return client_context(
            self.ca_file, self.cert_file, self.key_file, key=key, source="broker TLS"
        )
