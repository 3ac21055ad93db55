"""What a device model's SNMP traps mean: the ``traps:`` section of its profile, and its decoding.

A trap's varbinds are OID -> value like a GET answer, so they are decoded with the
profile's own readings and sources (the 65 535-minute cap, the charge range, the
enums are written once, in the profile) plus ``traps.values``, the varbinds only traps
carry. Each notification says the event it is, the wire fields it states (``sets``:
what the trap says about the device, overriding what its varbinds decode to), the
values whose words go into the event's detail, and cases (``when``) that change the
meaning by a varbind (UPS-MIB's alarm-entry traps name the alarm). Vocabulary at the
``traps:`` section of ``ups-mib.yaml``. Pure: no I/O, no clock; :mod:`agent.traps`
receives the traps and finds the notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, StringConstraints
from pydantic import field_validator as _field_validator

from agent.profile_decode import (
    answer_by_oid,
    decode_value,
    reading_fields,
    snmp_values,
    to_wire,
    validated,
)
from agent.profile_files import Name, Strict
from agent.profile_vocabulary import (
    Condition,
    RawValue,
    Value,
    ValueRule,
    ValueSpec,
    check_conditions,
    check_constant,
    instance_index,
    is_number,
)
from contract.wire import EventName, PowerReading

if TYPE_CHECKING:  # the SNMP profile holds its traps section
    from agent.profiles import Profile

__all__ = ["DecodedTrap", "Notification", "TrapSection", "check_traps", "decode_trap"]

Oid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)+$")]
MibName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")]
Sets = dict[str, int | float | bool | str]


class TrapValue(ValueSpec):
    """A varbind only traps carry; ``index: any`` takes the first varbind at or under
    ``oid``, for a table row the trap names (upsAlarmDescr.<upsAlarmId>) or an object
    some agents send without its instance."""

    @_field_validator("index", mode="before")
    @classmethod
    def _index_text(cls, index: Any) -> Any:
        return index if index == "any" else instance_index(index)

    def raw_from(self, answer: Mapping[str, RawValue]) -> RawValue:
        if self.index != "any":
            return answer.get(self.instance_oid)
        below = f"{self.oid}."
        return next((v for o, v in answer.items() if o == self.oid or o.startswith(below)), None)


class TrapCase(Condition):
    """When this holds, the trap is ``event`` and states ``sets`` instead of the notification's."""

    event: EventName
    sets: Sets = Field(default_factory=dict)


class Notification(Strict):
    """One trap: its snmpTrapOID, the event it is, and what it states about the device."""

    oid: Oid
    event: EventName
    sets: Sets = Field(default_factory=dict)  # none: the event carries no power reading
    detail: tuple[Name, ...] = ()  # values whose words follow the trap's name in the detail
    when: tuple[TrapCase, ...] = ()


class TrapSection(Strict):
    """A profile's traps: trap-only varbinds by name, and the notifications by MIB name."""

    values: dict[Name, TrapValue] = Field(default_factory=dict)
    notifications: dict[MibName, Notification] = Field(min_length=1)


def _check_sets(where: str, sets: Sets, kinds: Mapping[str, Any]) -> None:
    for field, value in sets.items():
        if field not in kinds:
            raise ValueError(
                f"{where}.sets.{field}: not a PowerReading field; use one of {', '.join(kinds)}"
            )
        check_constant(f"{where}.sets.{field}", kinds[field], value)


def check_traps(
    section: TrapSection, known: Mapping[str, ValueRule], kinds: Mapping[str, Any]
) -> None:
    """Names resolve against the profile's readings and sources; ``sets`` fit the wire."""
    for name in section.values.keys() & known.keys():
        raise ValueError(f"traps.values.{name}: also a reading or source; rename it")
    names = {**known, **section.values}
    seen: dict[str, str] = {}
    for name, notification in section.notifications.items():
        where = f"traps.notifications.{name}"
        if notification.oid in seen:
            raise ValueError(f"{where}.oid: {notification.oid} is also {seen[notification.oid]}")
        seen[notification.oid] = name
        for value in notification.detail:
            if value not in names:
                raise ValueError(
                    f"{where}.detail: {value!r} is neither a trap value nor a reading; use one"
                    f" of {', '.join(names)}"
                )
        _check_sets(where, notification.sets, kinds)
        check_conditions(f"{where}.when", notification.when, names)
        for index, case in enumerate(notification.when):
            _check_sets(f"{where}.when.{index}", case.sets, kinds)


@dataclass(frozen=True, slots=True)
class DecodedTrap:
    """What one trap means: the event, its name and words for the detail, the device's state."""

    event: EventName
    name: str
    words: str
    power: PowerReading | None
    case: int | None = None  # which of the notification's `when` cases decided, if one did


def _word(value: Value) -> str:
    return f"{value:g}" if is_number(value) else str(value)


def decode_trap(
    profile: Profile, name: str, varbinds: Mapping[str, RawValue], device: str | None
) -> DecodedTrap:
    """Notification ``name`` of ``profile``, as these varbinds say it; power only for a device.

    The power reading holds only what the trap says (``sets``) or carries (its varbinds,
    through the profile's readings and derivations): a field it says nothing of stays
    null, so the collector keeps the polled value.
    """
    assert profile.traps is not None, "a notification of a profile with traps"
    notification = profile.traps.notifications[name]
    answer = answer_by_oid(varbinds)
    values = snmp_values(profile, answer)
    for value_name, spec in profile.traps.values.items():
        values[value_name] = decode_value(spec, spec.raw_from(answer))
    event, sets, decided = notification.event, notification.sets, None
    for index, case in enumerate(notification.when):
        if case.holds(values.get(case.value)) is True:
            event, sets, decided = case.event, case.sets, index
            break
    words = " ".join(
        _word(v) for v in (values.get(n) for n in notification.detail) if v is not None
    )
    power = None
    if device is not None and sets:
        kinds = profile.wire_kinds
        fields = reading_fields(PowerReading, profile.derive, profile.readings, kinds, values)
        fields |= {field: to_wire(kinds[field], value) for field, value in sets.items()}
        stated = {field: value for field, value in fields.items() if value is not None}
        power = validated(PowerReading, {"device": device}, stated)
    return DecodedTrap(event=event, name=name, words=words, power=power, case=decided)
