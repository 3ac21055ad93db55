"""Says in the agent's own log when the box's clock stops or starts keeping time.

The collector judges a site whose clock runs behind (rules/snapshot.py) and pages the NOC
(``SiteClockWrong``); the technician at the box reads ``journalctl -u kienco-agent``.
Said once per change, not at every report: a box back from a power cut with no NTP in
reach stays unsynchronised for hours.
"""

from __future__ import annotations

import logging

log = logging.getLogger("kienco.agent")


class ClockStateLog:
    """The box's clock state as the last report said it (``host.clock_synced``)."""

    def __init__(self) -> None:
        self._synced: bool | None = None

    def see(self, synced: bool | None) -> None:
        """One report's ``host.clock_synced``; None (not read) changes nothing."""
        if synced is None or synced == self._synced:
            return
        if not synced:
            log.warning(
                "this box's clock is not synchronised to a time source: its reports are "
                "stamped by it, and the collector may judge them old; give it one it can "
                "reach (chrony or systemd-timesyncd pointed at an NTP server on its network)"
            )
        elif self._synced is False:
            log.info("this box's clock is synchronised to a time source again")
        self._synced = synced
