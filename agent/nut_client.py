"""A small asyncio client for NUT's network protocol: read what ``upsd`` serves.

Network UPS Tools' ``upsd`` answers line-based commands on TCP 3493
(networkupstools.org, developer guide, "Network protocol information").
A poller needs only ``LIST VAR <ups>`` (``BEGIN LIST VAR`` … ``VAR <ups>
<name> "<value>"`` … ``END LIST VAR``), ``GET VAR``, ``LIST UPS`` and
``LOGOUT``. Multi-word elements are quoted; quotes and backslashes inside them
are escaped with a backslash. Nothing here authenticates: reading variables
needs no account.

Errors::

    NutError
    ├── NutConnectionError   cannot connect, or the connection dropped
    │   └── NutTimeout       no answer within timeout_s
    ├── NutProtocolError     an answer that is not NUT's protocol
    └── NutServerError       upsd answered ``ERR <code>`` (.code: UNKNOWN-UPS, DATA-STALE…)
"""

from __future__ import annotations

import asyncio
import re
from types import TracebackType

__all__ = [
    "DEFAULT_PORT",
    "NutClient",
    "NutConnectionError",
    "NutError",
    "NutProtocolError",
    "NutServerError",
    "NutTimeout",
    "read_vars",
    "split_words",
]

DEFAULT_PORT = 3493
_MAX_VARS = 10_000  # a real UPS has ~100; more means a broken or hostile server
_PLAIN = re.compile(r'[^\s"\\]+')


class NutError(Exception):
    """Reading from upsd failed; ``str()`` says where and why."""


class NutConnectionError(NutError):
    """No connection to upsd, or it dropped mid-answer."""


class NutTimeout(NutConnectionError):
    """upsd did not answer within the timeout."""


class NutProtocolError(NutError):
    """upsd's answer does not follow the protocol."""


class NutServerError(NutError):
    """upsd refused the command: ``ERR <code> [detail]``."""

    def __init__(self, code: str, detail: str = "", *, where: str = "upsd") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{where}: ERR {code}" + (f" {detail}" if detail else ""))


def split_words(line: str) -> list[str]:
    """Split one protocol line into words: quotes group, a backslash escapes one character."""
    words: list[str] = []
    word: list[str] = []
    started = quoted = escaped = False
    for char in line:
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            started = escaped = True
        elif char == '"':
            started, quoted = True, not quoted
        elif char in " \t" and not quoted:
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(char)
            started = True
    if quoted or escaped:
        raise NutProtocolError(f"unterminated quote or escape in {line!r}")
    if started:
        words.append("".join(word))
    return words


def _arg(word: str) -> str:
    if not word or any(c in word for c in "\r\n\0"):
        raise ValueError(f"{word!r} cannot be sent to upsd: empty or has a line break")
    if _PLAIN.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NutClient:
    """One connection to upsd; use ``async with await NutClient.connect(...)``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        where: str,
        timeout_s: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._where = where
        self.timeout_s = timeout_s

    @classmethod
    async def connect(
        cls, host: str, port: int = DEFAULT_PORT, *, timeout_s: float = 2.0
    ) -> NutClient:
        where = f"upsd {host}:{port}"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except TimeoutError:
            raise NutTimeout(f"{where}: no connection within {timeout_s:g} s") from None
        except OSError as exc:
            raise NutConnectionError(f"{where}: cannot connect: {exc.strerror or exc}") from None
        return cls(reader, writer, where=where, timeout_s=timeout_s)

    async def __aenter__(self) -> NutClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(logout=exc is None)

    async def close(self, *, logout: bool = True) -> None:
        """Say LOGOUT (when the connection is healthy) and close the socket."""
        try:
            if logout and not self._writer.is_closing():
                self._writer.write(b"LOGOUT\n")
                await asyncio.wait_for(self._writer.drain(), self.timeout_s)
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), self.timeout_s)
        except (OSError, TimeoutError):
            pass  # closing a dead connection: nothing left to tell anyone

    async def _send(self, *words: str) -> None:
        line = " ".join(_arg(w) for w in words) + "\n"
        try:
            self._writer.write(line.encode())
            await asyncio.wait_for(self._writer.drain(), self.timeout_s)
        except TimeoutError:
            raise NutTimeout(f"{self._where}: could not send within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise NutConnectionError(f"{self._where}: connection lost: {exc}") from None

    async def _words(self) -> list[str]:
        """The next answer line as words; ``ERR`` answers raise NutServerError."""
        try:
            raw = await asyncio.wait_for(self._reader.readline(), self.timeout_s)
        except TimeoutError:
            raise NutTimeout(f"{self._where}: no answer within {self.timeout_s:g} s") from None
        except ValueError:  # the StreamReader's line limit (64 KiB)
            raise NutProtocolError(f"{self._where}: answer line too long") from None
        except OSError as exc:
            raise NutConnectionError(f"{self._where}: connection lost: {exc}") from None
        if not raw.endswith(b"\n"):
            raise NutConnectionError(f"{self._where}: connection closed mid-answer")
        words = split_words(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if words[:1] == ["ERR"]:
            code = words[1] if len(words) > 1 else "UNKNOWN"
            raise NutServerError(code, " ".join(words[2:]), where=self._where)
        return words

    async def _list(self, kind: str, *args: str) -> list[list[str]]:
        """``LIST <kind> <args>``: the rows between BEGIN and END, each as words."""
        await self._send("LIST", kind, *args)
        head = ["LIST", kind, *args]
        if await self._words() != ["BEGIN", *head]:
            raise NutProtocolError(f"{self._where}: LIST {kind} did not begin as expected")
        rows: list[list[str]] = []
        while (words := await self._words()) != ["END", *head]:
            if len(rows) >= _MAX_VARS:
                raise NutProtocolError(f"{self._where}: more than {_MAX_VARS} rows")
            rows.append(words)
        return rows

    async def list_vars(self, ups: str) -> dict[str, str]:
        """Every variable of one UPS, name -> value (as text)."""
        values: dict[str, str] = {}
        for words in await self._list("VAR", ups):
            if len(words) != 4 or words[:2] != ["VAR", ups]:
                raise NutProtocolError(f"{self._where}: unexpected line in LIST VAR: {words}")
            values[words[2]] = words[3]
        return values

    async def get_var(self, ups: str, name: str) -> str:
        """One variable of one UPS."""
        await self._send("GET", "VAR", ups, name)
        words = await self._words()
        if len(words) != 4 or words[:3] != ["VAR", ups, name]:
            raise NutProtocolError(f"{self._where}: unexpected answer to GET VAR: {words}")
        return words[3]

    async def list_ups(self) -> dict[str, str]:
        """The UPSes this upsd serves, name -> description."""
        rows = await self._list("UPS")
        if any(len(w) != 3 or w[0] != "UPS" for w in rows):
            raise NutProtocolError(f"{self._where}: unexpected line in LIST UPS")
        return {w[1]: w[2] for w in rows}


async def read_vars(host: str, port: int, ups: str, *, timeout_s: float = 2.0) -> dict[str, str]:
    """Connect, ``LIST VAR <ups>``, log out: the whole exchange of one poll."""
    async with await NutClient.connect(host, port, timeout_s=timeout_s) as client:
        return await client.list_vars(ups)
