"""Admission: may this message's site speak for this province?

``decode`` checks a message against itself (its topic, its payload); this checks it
against what the collector already knows. A site belongs to one province: the one
the inventory lists it under, or else the one it first reported under. A message
that names the site under another province is refused as ``site_mismatch`` and
dead-lettered, so it never reaches the site's state or InfluxDB. The broker's ACL
(``firmware-configs/mosquitto/kienco.acl``) refuses such a publish in the first
place; this is the second lock, for a broker configured otherwise.
"""

from __future__ import annotations

from collector.decode import Decoded, Rejected
from collector.inventory import Inventory
from collector.state import SiteStates


class Admission:
    """Checks each decoded message before it is folded into the site state."""

    def __init__(self, states: SiteStates, inventory: Inventory) -> None:
        self.states = states
        self.inventory = inventory

    def check(self, decoded: Decoded) -> Rejected | None:
        """The reason to refuse ``decoded``, or None to accept it."""
        site, province = decoded.topic.site, decoded.topic.province
        listed = self.inventory.get(site)
        known: str | None
        if listed is not None:
            known, source = listed.province, "the inventory lists it there"
        else:
            known, source = self.states.province_of(site), "it first reported there"
        if known is not None and known != province:
            return Rejected(
                "site_mismatch",
                f"site {site} belongs to province {known} ({source}); this message says "
                f"{province}. If the site really moved, list it under {province} in the "
                "inventory",
            )
        return None
