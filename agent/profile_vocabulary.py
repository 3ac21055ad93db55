"""The vocabulary every device profile is written in, and the checks that it fits the wire.

A profile — SNMP (:mod:`agent.profiles`, with its ``traps:`` section,
:mod:`agent.trap_profile`), NUT (:mod:`agent.nut_profile`) or Modbus
(:mod:`agent.modbus_profile`) — is ``readings`` (wire fields), ``sources`` (values the
derivations need) and ``derive`` (wire fields computed from those), built of:

- ``ValueRule``: how one raw value becomes a value: text, ``enum``, ``invalid`` raw
  values, ``raw * scale + offset``. Each protocol subclasses it with where the raw value
  is: ``ValueSpec`` an OID (here: polled and trap profiles share it), ``NutValue`` a
  variable, ``Register`` holding registers.
- ``Condition``: ``{value: NAME, OP: OPERAND}``; ``Group``: ``{any: [...]}`` or
  ``{all: [...]}`` of conditions (or groups), one item of an ``any`` or ``all``.
- ``Derivation``: a wire field from conditions (``any``, ``all``, ``first``, ``count``)
  or from cases (``when``).

``check_readings`` is the one load-time check that a profile's names and values fit
the wire; :mod:`agent.profile_decode` is the one decoding.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Protocol

from pydantic import Discriminator, Field, StringConstraints, Tag
from pydantic import field_validator as _field_validator
from pydantic import model_validator as _model_validator

from agent.profile_files import Invalid, Name, Strict, check_enum

__all__ = [
    "ORDERING",
    "Case",
    "Condition",
    "Derivation",
    "Group",
    "ProfileTest",
    "RawValue",
    "Value",
    "ValueRef",
    "ValueRule",
    "ValueSpec",
    "check_conditions",
    "check_constant",
    "check_readings",
]

RawValue = int | float | str | bytes | None
"""A value as the transport hands it over; None is missing/noSuchObject/noSuchInstance."""
Value = int | float | str | bool

ORDERING = ("gt", "ge", "lt", "le")  # comparisons that need a number
OPERATORS = {op: getattr(operator, op) for op in ("eq", "ne", *ORDERING)}
_ALL_OPERATORS = (*OPERATORS, "in", "match", "has")

Oid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)+$")]


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ValueRule(Strict):
    """How one raw value becomes one value: ``raw * scale + offset``, ``enum[raw]``, or text.

    On a text value ``enum`` renames the words it lists (an OID into its MIB name) and
    leaves the others as they are; ``invalid.equals`` lists words that mean unknown.
    """

    scale: float = 1.0
    offset: float = 0.0
    enum: dict[int | str, str | bool] | None = None
    invalid: Invalid = Invalid()
    text: bool = False

    @_model_validator(mode="after")
    def _text_is_plain(self) -> ValueRule:
        if self.text and (self.scale != 1 or self.offset != 0 or self.invalid.bounds):
            raise ValueError(
                "a text value takes no scale, offset or invalid below/above (words that mean"
                " unknown go under invalid.equals); remove them"
            )
        return self

    def check_fits(self, where: str, kind: Any) -> None:
        """Raise ValueError unless this value can fill a wire field of ``kind``."""
        if kind is str:
            if self.scale != 1 or self.offset != 0 or self.enum is not None:
                raise ValueError(
                    f"{where}: a text field takes no scale, offset or enum; remove them"
                )
            return
        if self.text:
            raise ValueError(f"{where}: not a text field; remove text: true")
        check_enum(where, kind, self.enum)


def instance_index(index: Any) -> Any:
    """An SNMP instance index as text (``0``, ``1``, ``1.2``), or ValueError saying what to give."""
    index = str(index) if is_number(index) else index
    if isinstance(index, str) and not re.fullmatch(r"[0-9]+(\.[0-9]+)*", index):
        raise ValueError(f"index {index!r}: use 0 for a scalar, the row (1, 1.2) for a table")
    return index


class ValueSpec(ValueRule):
    """One SNMP object instance: ``oid`` (the object) and ``index`` (its instance)."""

    oid: Oid
    index: str = "0"
    object: str | None = None

    @_field_validator("oid")
    @classmethod
    def _object_not_instance(cls, oid: str) -> str:
        # "…2.4.0" would be asked for as "…2.4.0.0" and silently answer noSuchInstance.
        if oid.endswith(".0"):
            raise ValueError(f"{oid} ends in .0: give the object in oid, its instance in index")
        return oid

    @_field_validator("index", mode="before")
    @classmethod
    def _index_text(cls, index: Any) -> Any:
        return instance_index(index)

    @property
    def instance_oid(self) -> str:
        return f"{self.oid}.{self.index}"


class Condition(Strict):
    """``{value: NAME, OP: OPERAND}``: eq, ne, gt, ge, lt, le, in (a list), match (a regular
    expression) or has (one of the space-separated words of a text value, as NUT's flags)."""

    value: Name
    eq: int | float | bool | str | None = None
    ne: int | float | bool | str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    in_: tuple[int | float | str, ...] | None = Field(default=None, alias="in", min_length=1)
    match: str | None = None
    has: Annotated[str, StringConstraints(pattern=r"^\S+$")] | None = None

    @_model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in _ALL_OPERATORS if self._operand(op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_ALL_OPERATORS)} (got {given})")
        try:
            re.compile(self.match or "")
        except re.error as exc:
            raise ValueError(f"match: {self.match!r} is not a regular expression: {exc}") from None
        return self

    def _operand(self, op: str) -> Any:
        return self.in_ if op == "in" else getattr(self, op)

    @property
    def operator(self) -> str:
        return next(op for op in _ALL_OPERATORS if self._operand(op) is not None)

    def holds(self, value: Value | None) -> bool | None:
        """True/False, or None when the value is unknown (or of a kind the operator cannot use)."""
        op = self.operator
        if value is None or (op in ORDERING and not is_number(value)):
            return None
        if op in ("match", "has"):
            if not isinstance(value, str):
                return None
            if op == "has":
                return self.has in value.split()
            return re.search(self.match or "", value) is not None
        if op == "in":
            return value in (self.in_ or ())
        return bool(OPERATORS[op](value, self._operand(op)))


def _item_kind(item: Any) -> str:
    """A group is a mapping of any or all with no value; everything else is a condition
    (so a malformed condition is reported as one, not as a failed group too)."""
    if isinstance(item, Mapping) and "value" not in item and ("any" in item or "all" in item):
        return "group"
    if isinstance(item, Group):
        return "group"
    return "condition"


class Group(Strict):
    """``{any: [...]}`` (or) or ``{all: [...]}`` (and): conditions (or groups) taken
    together as one item of an ``any`` or ``all`` (Kleene logic, as there): "seconds on
    battery above 0 *and* not (normal output with mains present)"."""

    any_: tuple[Item, ...] | None = Field(default=None, alias="any", min_length=1)
    all_: tuple[Item, ...] | None = Field(default=None, alias="all", min_length=1)

    @_model_validator(mode="after")
    def _one_combinator(self) -> Group:
        if (self.any_ is None) == (self.all_ is None):
            raise ValueError("a group is {any: [...]} or {all: [...]}, one of the two")
        return self

    @property
    def items(self) -> tuple[Condition | Group, ...]:
        return self.any_ or self.all_ or ()

    def truth(self, values: Mapping[str, Value | None]) -> bool | None:
        return kleene(self.any_ is not None, [truth(item, values) for item in self.items])


# One item of an ``any`` or ``all``; a validation error names it ``condition`` or ``group``.
Item = Annotated[
    Annotated[Condition, Tag("condition")] | Annotated[Group, Tag("group")],
    Discriminator(_item_kind),
]
Group.model_rebuild()


def truth(item: Condition | Group, values: Mapping[str, Value | None]) -> bool | None:
    """Whether a condition or a group holds over ``values``; None when not known."""
    if isinstance(item, Group):
        return item.truth(values)
    return item.holds(values.get(item.value))


def kleene(decisive: bool, results: Sequence[bool | None]) -> bool | None:
    """``any`` (decisive True) or ``all`` (decisive False) in Kleene logic: one known
    decisive result decides; otherwise an unknown leaves the answer unknown."""
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def leaves(items: Sequence[Condition | Group]) -> tuple[Condition, ...]:
    """Every condition, groups opened: what the load-time checks read."""
    found: list[Condition] = []
    for item in items:
        found += leaves(item.items) if isinstance(item, Group) else [item]
    return tuple(found)


class ValueRef(Strict):
    """``{value: NAME}``: a case's result is that value itself."""

    value: Name


class Case(Condition):
    """One case of ``when``: a condition and what the field is when it holds."""

    # Required: `then: null` (unknown) is a decision, a missing `then` a mistake.
    then: int | float | bool | str | ValueRef | None


class Derivation(Strict):
    """A wire field computed from conditions.

    ``any`` (or) / ``all`` (and) give yes/no, unknown unless decided (Kleene logic);
    ``first`` gives yes/no from the first condition whose value is known; ``count``
    counts the conditions that hold (a lower bound; unknown only when all are);
    ``when`` is cases: the first that holds gives its ``then``, none: unknown.
    """

    any_: tuple[Item, ...] | None = Field(default=None, alias="any", min_length=1)
    all_: tuple[Item, ...] | None = Field(default=None, alias="all", min_length=1)
    first: tuple[Condition, ...] | None = Field(default=None, min_length=1)
    count_: tuple[Condition, ...] | None = Field(default=None, alias="count", min_length=1)
    when: tuple[Case, ...] | None = Field(default=None, min_length=1)

    @_model_validator(mode="after")
    def _one_combinator(self) -> Derivation:
        given = (self.any_, self.all_, self.first, self.count_, self.when)
        if sum(x is not None for x in given) != 1:
            raise ValueError(
                "give exactly one of any (or), all (and), first (the first known decides),"
                " count (how many hold), when (cases): a list of conditions"
            )
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every condition, those in groups too."""
        return leaves(self.any_ or self.all_ or self.first or self.count_ or self.when or ())

    def evaluate(self, values: Mapping[str, Value | None]) -> Value | None:
        if self.when is not None:
            for case in self.when:
                if case.holds(values.get(case.value)) is True:
                    then = case.then
                    return values.get(then.value) if isinstance(then, ValueRef) else then
            return None
        items = self.any_ or self.all_ or self.first or self.count_ or ()
        results = [truth(item, values) for item in items]
        if self.count_ is not None:
            # A lower bound when some inputs are unknown: a known alarm is never hidden.
            known = [r for r in results if r is not None]
            return sum(known) if known else None
        if self.first is not None:
            return next((r for r in results if r is not None), None)
        # Kleene logic: one known True decides `any`, one known False decides `all`;
        # otherwise an unknown input leaves the answer unknown.
        return kleene(self.any_ is not None, results)


class ProfileTest(Strict):
    """What tests/test_profile_catalogue.py expects when it reads the profile's recording."""

    absent: tuple[str, ...] = ()  # readings the recorded model does not serve (null)
    rows: Annotated[int, Field(ge=0)] | None = None  # interfaces the filters keep


# --- the checks ------------------------------------------------------------------------


class _Readings(Protocol):
    """What check_readings needs of a profile document."""

    @property
    def sources(self) -> Mapping[str, ValueRule]: ...
    @property
    def derive(self) -> Mapping[str, Derivation]: ...
    @property
    def test(self) -> ProfileTest: ...


def check_constant(where: str, kind: Any, value: object) -> None:
    """A constant (a case's ``then``, a trap's ``sets``) must fit the wire field's kind."""
    if value is None:
        return
    if isinstance(kind, frozenset):
        fits = value in kind
    elif kind is bool:
        fits = isinstance(value, bool)
    elif kind is str:
        fits = isinstance(value, str)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        fits = kind is float or float(value).is_integer()
    else:
        fits = False
    if not fits:
        wanted = sorted(kind) if isinstance(kind, frozenset) else getattr(kind, "__name__", kind)
        raise ValueError(f"{where}: {value!r} does not fit this field (want {wanted})")


def check_conditions(
    where: str, conditions: Sequence[Condition], known: Mapping[str, ValueRule]
) -> None:
    """Every condition names a known value and uses an operator that value allows."""
    for cond in conditions:
        target = known.get(cond.value)
        if target is None:
            raise ValueError(
                f"{where}: {cond.value!r} is neither a reading nor a source; use one of "
                + ", ".join(known)
            )
        if target.enum is not None and not target.text and cond.operator in ORDERING:
            raise ValueError(f"{where}: {cond.value} has an enum; use eq, ne or in")
        if cond.operator in ("match", "has") and not target.text:
            raise ValueError(
                f"{where}: {cond.operator} needs a text value; add text: true to {cond.value}"
            )


def _check_derivation(
    where: str, kind: Any, derivation: Derivation, known: Mapping[str, ValueRule]
) -> None:
    check_conditions(where, derivation.conditions, known)
    if derivation.when is not None:
        for case in derivation.when:
            then = case.then
            if isinstance(then, ValueRef):
                if then.value not in known:
                    raise ValueError(
                        f"{where}: then {then.value!r} is neither a reading nor a source"
                    )
            else:
                check_constant(f"{where}: then", kind, then)
        return
    wanted = int if derivation.count_ is not None else bool
    if kind is not wanted:
        what = "count fields (alarms_count…)" if wanted is int else "yes/no fields (on_battery…)"
        raise ValueError(f"{where}: this combinator gives {what} only")


def check_readings(
    profile: _Readings,
    section: str,
    fields: Mapping[str, ValueRule],
    kinds: Mapping[str, Any],
    model: str,
) -> dict[str, ValueRule]:
    """Names fit the wire, values fit their fields, derivations and conditions resolve.

    Returns every value a condition may name (sources and ``section``), by name.
    """
    for name, spec in fields.items():
        if name not in kinds:
            raise ValueError(f"{section}.{name}: not {model} field; use one of {', '.join(kinds)}")
        spec.check_fits(f"{section}.{name}", kinds[name])
    for name in profile.sources.keys() & fields.keys():
        raise ValueError(f"sources.{name}: also under {section}; rename the source")
    # A wire text field (the interface name) is text even without `text: true`.
    known = {
        **profile.sources,
        **{n: s.model_copy(update={"text": kinds[n] is str}) for n, s in fields.items()},
    }
    for name, derivation in profile.derive.items():
        if name in fields:
            raise ValueError(f"derive.{name}: also under {section}; keep one of the two")
        if name not in kinds:
            raise ValueError(f"derive.{name}: not {model} field; use one of {', '.join(kinds)}")
        _check_derivation(f"derive.{name}", kinds[name], derivation, known)
    for name in profile.test.absent:
        if name not in fields and name not in profile.derive:
            raise ValueError(f"test.absent: {name!r} is not a reading of this profile; remove it")
    return known
