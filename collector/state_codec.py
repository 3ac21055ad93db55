"""A site's state and its held verdict as JSON, and back: what survives a collector restart.

Pure conversions between the collector's in-memory values (``rules.SiteSnapshot``,
``rules.hysteresis.Held``) and their saved form. The saved form is a model of its
own, not the dataclasses dumped as they are: the rules may reshape their
dataclasses, the file must stay readable, and a version number says which form a
row has. Readings stay the wire models they arrived as (re-validated on load, so a
row the current contract refuses is not restored).
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic_core import to_json

from contract.wire import (
    HostReading,
    LinkReading,
    Meta,
    PowerReading,
    RoomReading,
    Severity,
    SiteKind,
    StationState,
    Verdict,
)
from rules import SiteSnapshot
from rules.engine import Evaluation
from rules.findings import Finding, Impact, RuleName
from rules.hysteresis import Held
from rules.snapshot import Sample

FORMAT = 1  # bump when the saved form changes; rows of another format are not restored


class _Saved(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SavedSite(_Saved):
    site: str
    province: str
    site_kind: SiteKind | None = None
    online: bool | None = None
    state_at: datetime | None = None
    last_report_at: datetime | None = None
    last_seen_at: datetime | None = None
    interval_s: float | None = None
    power: dict[str, tuple[PowerReading, datetime]] = {}
    links: dict[str, tuple[LinkReading, datetime]] = {}
    host: tuple[HostReading, datetime] | None = None
    room: tuple[RoomReading, datetime] | None = None
    # rules/snapshot.py: a clock behind; saved before vouching without the third
    arrivals: list[tuple[datetime, datetime, bool] | tuple[datetime, datetime]] = []
    last_seq: int | None = None  # rules/snapshot.py: a clock stepped back
    outboxes: list[int] | None = None  # rules/snapshot.py: a box replaced (None: none said)
    refused_ahead: tuple[datetime, float, float] | None = None  # rules/snapshot.py: clock ahead
    power_history: dict[str, list[Sample]] = {}  # then meta: SiteEncoder writes these two
    meta: Meta | None = None  # last: the saver appends it as kept (any order reads back)


class SavedFinding(_Saved):
    rule: RuleName
    site: str
    severity: Severity
    code: str
    numbers: dict[str, float | None] = {}
    labels: dict[str, str] = {}
    impact: Impact | None = None


class SavedEvaluation(_Saved):
    site: str
    site_kind: SiteKind | None
    verdict: Verdict
    station_state: StationState
    findings: list[SavedFinding]
    evaluated_at: datetime
    risk_level: int = 0
    backup_hours: float | None = None
    dark_in_s: float | None = None
    independent_paths_up: int | None = None


class SavedHeld(_Saved):
    shown: SavedEvaluation
    pending: SavedEvaluation | None = None
    pending_since: datetime | None = None


# --- to JSON. Measured: the snapshot encodes fastest as its model (built unvalidated:
# the values are ours), the held verdict as plain dicts (no model per finding).


def _saved_site(
    snapshot: SiteSnapshot, power_history: dict[str, list[Sample]], meta: Meta | None
) -> SavedSite:
    return SavedSite.model_construct(
        site=snapshot.site,
        province=snapshot.province,
        site_kind=snapshot.site_kind,
        online=snapshot.online,
        state_at=snapshot.state_at,
        last_report_at=snapshot.last_report_at,
        last_seen_at=snapshot.last_seen_at,
        interval_s=snapshot.interval_s,
        power=dict(snapshot.power),
        links=dict(snapshot.links),
        host=snapshot.host,
        room=snapshot.room,
        arrivals=list(snapshot.arrivals),
        last_seq=snapshot.last_seq,
        outboxes=list(snapshot.outboxes) or None,
        refused_ahead=snapshot.refused_ahead,
        power_history=power_history,
        meta=meta,
    )


def site_json(snapshot: SiteSnapshot) -> bytes:
    """The snapshot's saved form, encoded whole (see :class:`SiteEncoder` for the saver's)."""
    history = {d: list(h) for d, h in snapshot.power_history.items()}
    saved = _saved_site(snapshot, history, snapshot.meta)
    return SavedSite.__pydantic_serializer__.to_json(saved, exclude_none=True)


_SAMPLES = TypeAdapter(list[Sample])
_HISTORY = TypeAdapter(dict[str, list[Sample]])
_NO_HISTORY = b'"power_history":{}}'  # how the saved form ends without a battery history
_BETWEEN = b"],["  # between two encoded samples: never inside one (numbers, a time, a bool)


class SiteEncoder:
    """:func:`site_json`, byte for byte, for a saver that encodes the same sites again and
    again: each device's battery history and the site's meta are kept encoded from the
    last call (``history``, ``meta``: each can be turned off, to measure it alone).

    A report adds one sample to a device's history and drops the oldest; encoding the
    whole history again (60 samples a site, half of ``site_json``'s time, measured in
    benchmarks/state_save.py) is then mostly wasted, and the meta (an eighth of it)
    changes only when the agent announces a new one. What is kept is the snapshot's own
    object: a sample or meta that is the same object as a kept one is the same value
    (both immutable), so its encoding is reused; anything else (a replay merged in the
    middle of a history, a restored site, a new meta) is encoded whole. Costs the
    encoded history and meta in memory (~1.5 kB a device, ~0.7 kB a meta). Not
    thread-safe: one saver uses it, under its lock.
    """

    def __init__(self, *, history: bool = True, meta: bool = True) -> None:
        self.keep_history = history
        self.keep_meta = meta
        self._kept: dict[str, dict[str, tuple[tuple[Sample, ...], bytes]]] = {}
        self._meta: dict[str, tuple[Meta, bytes]] = {}

    def site_json(self, snapshot: SiteSnapshot) -> bytes:
        body = SavedSite.__pydantic_serializer__.to_json(
            _saved_site(snapshot, {}, None), exclude_none=True
        )
        return b"".join(
            (
                body[: -len(_NO_HISTORY)],
                b'"power_history":',
                self._history_json(snapshot),
                self._meta_json(snapshot),
                b"}",
            )
        )

    def _history_json(self, snapshot: SiteSnapshot) -> bytes:
        history = snapshot.power_history
        if not self.keep_history or not history:
            self._kept.pop(snapshot.site, None)
            return _HISTORY.dump_json({d: list(h) for d, h in history.items()})
        before = self._kept.get(snapshot.site, {})
        kept: dict[str, tuple[tuple[Sample, ...], bytes]] = {}
        parts = []
        for device, samples in history.items():
            encoded = _samples_json(samples, before.get(device))
            kept[device] = (samples, encoded)
            parts.append(to_json(device) + b":" + encoded)
        self._kept[snapshot.site] = kept
        return b"{" + b",".join(parts) + b"}"

    def _meta_json(self, snapshot: SiteSnapshot) -> bytes:
        meta = snapshot.meta
        if meta is None:
            self._meta.pop(snapshot.site, None)
            return b""
        kept = self._meta.get(snapshot.site) if self.keep_meta else None
        if kept is not None and kept[0] is meta:
            encoded = kept[1]
        else:
            encoded = Meta.__pydantic_serializer__.to_json(meta, exclude_none=True)
            if self.keep_meta:
                self._meta[snapshot.site] = (meta, encoded)
        return b',"meta":' + encoded

    def forget(self, site: str) -> None:
        self._kept.pop(site, None)
        self._meta.pop(site, None)

    def __len__(self) -> int:
        return len(self._kept.keys() | self._meta.keys())


def _samples_json(
    samples: tuple[Sample, ...], before: tuple[tuple[Sample, ...], bytes] | None
) -> bytes:
    """``samples`` encoded, reusing ``before`` (the samples last encoded and their JSON)
    when ``samples`` is its tail followed by new samples."""
    if before is None or not samples:
        return _SAMPLES.dump_json(list(samples))
    old, encoded = before
    if samples is old:
        return encoded
    first = samples[0]
    dropped = next((i for i, s in enumerate(old) if s is first), -1)
    overlap = len(old) - dropped
    if dropped < 0 or overlap > len(samples):
        return _SAMPLES.dump_json(list(samples))
    if not all(a is b for a, b in zip(old[dropped:], samples, strict=False)):
        return _SAMPLES.dump_json(list(samples))
    start = 1  # after the list's "["
    for _ in range(dropped):
        start = encoded.index(_BETWEEN, start) + 2  # at the next sample's "["
    kept = encoded[start:-1]
    new = samples[overlap:]
    if not new:
        return b"[" + kept + b"]"
    return b"[" + kept + b"," + _SAMPLES.dump_json(list(new))[1:]


def _evaluation_dict(evaluation: Evaluation) -> dict[str, object]:
    return {
        "site": evaluation.site,
        "site_kind": evaluation.site_kind,
        "verdict": evaluation.verdict,
        "station_state": evaluation.station_state,
        "findings": [
            {
                "rule": f.rule,
                "site": f.site,
                "severity": f.severity,
                "code": f.code,
                "numbers": dict(f.numbers),
                "labels": dict(f.labels),
                "impact": f.impact,
            }
            for f in evaluation.findings
        ],
        "evaluated_at": evaluation.evaluated_at,
        "risk_level": evaluation.risk_level,
        "backup_hours": evaluation.backup_hours,
        "dark_in_s": evaluation.dark_in_s,
        "independent_paths_up": evaluation.independent_paths_up,
    }


def held_json(held: Held) -> bytes:
    return to_json(
        {
            "shown": _evaluation_dict(held.shown),
            "pending": None if held.pending is None else _evaluation_dict(held.pending),
            "pending_since": held.pending_since,
        }
    )


# --- from JSON (validated: a row is data from disk, and the contract may have moved on)


def site_from_json(raw: bytes) -> SiteSnapshot:
    saved = SavedSite.model_validate_json(raw)
    return SiteSnapshot(
        site=saved.site,
        province=saved.province,
        site_kind=saved.site_kind,
        meta=saved.meta,
        online=saved.online,
        state_at=saved.state_at,
        last_report_at=saved.last_report_at,
        last_seen_at=saved.last_seen_at,
        interval_s=saved.interval_s,
        power=MappingProxyType(dict(saved.power)),
        links=MappingProxyType(dict(saved.links)),
        host=saved.host,
        room=saved.room,
        power_history=MappingProxyType({d: tuple(h) for d, h in saved.power_history.items()}),
        arrivals=tuple((a[0], a[1], len(a) == 3 and a[2]) for a in saved.arrivals),
        last_seq=saved.last_seq,
        outboxes=tuple(saved.outboxes or ()),
        refused_ahead=saved.refused_ahead,
    )


def _evaluation(saved: SavedEvaluation) -> Evaluation:
    return Evaluation(
        site=saved.site,
        site_kind=saved.site_kind,
        verdict=saved.verdict,
        station_state=saved.station_state,
        # Finding checks its code still has texts: a finding the rules no longer know fails.
        findings=tuple(Finding(**f.model_dump()) for f in saved.findings),
        evaluated_at=saved.evaluated_at,
        risk_level=saved.risk_level,
        backup_hours=saved.backup_hours,
        dark_in_s=saved.dark_in_s,
        independent_paths_up=saved.independent_paths_up,
    )


def held_from_json(raw: bytes) -> Held:
    saved = SavedHeld.model_validate_json(raw)
    return Held(
        shown=_evaluation(saved.shown),
        pending=None if saved.pending is None else _evaluation(saved.pending),
        pending_since=saved.pending_since,
    )
