"""The TLS context of every kienco client (to Mosquitto, to InfluxDB): one place makes it.

Verification is always on: the peer's certificate must chain to the CA file given (that CA
alone), or to the system's CAs without one, and must name the host connected to. There is
no switch to turn either off. TLS 1.2 at least.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from plumbing.config_errors import ConfigError

__all__ = ["client_context"]


def client_context(
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    key: str,
    source: str = "TLS",
) -> ssl.SSLContext:
    """A verifying client context: ``ca_file``'s CA (the system's without it), and this
    client's certificate (``key_file``: its key, default in ``cert_file``) when given.

    A file that cannot be read or used raises ConfigError naming ``key``'s field
    (``broker.ca_file``), the path and the fix; ``source`` heads the message.
    """
    # With a CA file, that CA alone: a certificate any public CA issued for the name is
    # not the centre's server.
    try:
        if ca_file is not None and ca_file.is_dir():  # OpenSSL's own message would be vague
            raise IsADirectoryError(21, "it is a directory, not a file")
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise _tls_error(source, f"{key}.ca_file", ca_file, exc) from None
    # create_default_context already verifies and checks the name; said here, not assumed.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as exc:
            field = "cert_file" if key_file is None else "cert_file/key_file"
            raise _tls_error(source, f"{key}.{field}", cert_file, exc) from None
    return context


def _tls_error(source: str, key: str, path: Path | None, exc: Exception) -> ConfigError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(
        source,
        [f"{key}: cannot use {path}: {reason}. Fix: point it at a PEM file this user can read"],
    )
