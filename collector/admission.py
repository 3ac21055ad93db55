"""Admission: which sites the collector carries, and for which province each may speak.

``decode`` checks a message against itself (its topic, its payload); this checks it
against what the collector already knows, before it is folded into the site state:

- **binding** — a site belongs to one province: the one the inventory lists it
  under, or else the one it first reported under. A message naming the site under
  another province is ``site_mismatch``. The broker's ACL
  (``firmware-configs/mosquitto/kienco.acl``) refuses such a publish in the first
  place; this is the second lock, for a broker configured otherwise.
- **cap** — a province carries at most ``limits.max_sites_per_province`` sites, the
  collector at most ``limits.max_sites`` (provinces are slugs too: invented ones must
  not dodge the first); a new site beyond either is ``site_limit``. Sites the
  inventory lists are always carried (they are loaded at start, and the caps must
  hold them all).
- **expiry** — a site the inventory does not list, silent for
  ``limits.unlisted_site_expiry_s``, is forgotten, so invented ids cannot pile up.

Refused messages are dead-lettered by the caller like any reject.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from collector.config import Limits
from collector.decode import Decoded, Rejected
from collector.inventory import Inventory
from collector.readiness import Verdicts
from collector.state import SiteStates
from plumbing.config_errors import ConfigError
from rules import SiteSnapshot

EXPIRY_CHECK_S = 60.0  # how often silent unlisted sites are looked for (a scan of the fleet)


class Admission:
    """Checks each decoded message before it is folded into the site state."""

    def __init__(
        self,
        states: SiteStates,
        verdicts: Verdicts,
        inventory: Inventory,
        limits: Limits,
        *,
        offline_after_s: float,
    ) -> None:
        _check_limits(limits, inventory, offline_after_s)
        self.states = states
        self.verdicts = verdicts
        self.inventory = inventory
        self.limits = limits
        self._next_expiry: datetime | None = None

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
        if known is not None:
            return None
        cap = self.limits.max_sites_per_province
        if self.states.count(province) >= cap:
            return _full(site, f"province {province} already has {cap} sites", "per_province")
        if len(self.states) >= self.limits.max_sites:
            return _full(site, f"the collector carries {self.limits.max_sites} sites", "")
        return None

    def expire_due(self, now: datetime) -> list[SiteSnapshot]:
        """Forget the silent unlisted sites (at most once a minute); return them."""
        if self._next_expiry is not None and now < self._next_expiry:
            return []
        self._next_expiry = now + timedelta(seconds=EXPIRY_CHECK_S)
        gone = self.states.expire(
            now,
            silent_for_s=self.limits.unlisted_site_expiry_s,
            keep=self.inventory.__contains__,
        )
        for snapshot in gone:
            self.verdicts.forget(snapshot.site)
        return gone


def _full(site: str, what: str, key_suffix: str) -> Rejected:
    key = f"limits.max_sites_{key_suffix}" if key_suffix else "limits.max_sites"
    return Rejected(
        "site_limit",
        f"{what} ({key}); new site {site} is not carried. Fix: list it in the inventory, "
        "or raise the limit",
    )


def _check_limits(limits: Limits, inventory: Inventory, offline_after_s: float) -> None:
    """Limits that contradict the inventory or the policy: ConfigError with key, value, fix."""
    problems = []
    cap = limits.max_sites_per_province
    listed = Counter(site.province for site in inventory)
    for province, count in sorted(listed.items()):
        if count > cap:
            problems.append(
                f"limits.max_sites_per_province: {cap} is below the {count} sites "
                f"{inventory.source} lists for province {province}. Fix: raise it to at "
                f"least {count}, with room for sites not listed"
            )
    if len(inventory) > limits.max_sites:
        problems.append(
            f"limits.max_sites: {limits.max_sites} is below the {len(inventory)} sites "
            f"{inventory.source} lists. Fix: raise it to at least {len(inventory)}, with "
            "room for sites not listed"
        )
    expiry = limits.unlisted_site_expiry_s
    if expiry < offline_after_s:
        problems.append(
            f"limits.unlisted_site_expiry_s: {expiry:g} is shorter than the policy's "
            f"freshness.offline_after_s ({offline_after_s:g}): a silent site would vanish "
            f"before it is even offline. Fix: use at least {offline_after_s:g}"
        )
    if problems:
        raise ConfigError("collector config", problems)
