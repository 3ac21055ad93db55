"""Commands from the collector on the site's ``command`` topic (today: rehearse for a meeting).

The agent subscribes with its persistent session, so a command sent while the
link was down arrives when it returns. A command that is not valid, or names
another site, is logged and dropped: the broker ACL already keeps other sites'
commands away, this is the second lock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiomqtt
from pydantic import ValidationError

from contract.topics import topic
from contract.wire import Command

log = logging.getLogger("kienco.agent")

Handler = Callable[[Command], Awaitable[None]]


async def serve(client: aiomqtt.Client, province: str, site: str, handle: Handler) -> None:
    """Subscribe to this site's commands and hand each valid one to ``handle``, in order."""
    await client.subscribe(topic(province, site, "command"), qos=1)
    async for message in client.messages:
        payload = message.payload
        raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
        try:
            command = Command.model_validate_json(raw)
        except ValidationError as exc:
            log.warning("ignored a command on %s: %s", message.topic, exc.errors()[0]["msg"])
            continue
        if command.site != site or command.province != province:
            log.warning("ignored a command for %s/%s", command.province, command.site)
            continue
        log.info("command %s (meeting %s)", command.command, command.meeting)
        await handle(command)
