"""The expected fleet: every site the ministry's register says should exist.

Loaded from CSV (a header row, UTF-8 with or without BOM, ``,`` or ``;`` separated,
as Excel saves it) or YAML (a ``sites:`` list). Loading is strict: unknown columns,
bad values and duplicate site ids stop with a ``ConfigError`` whose lines name the
row (the header is row 1, as in a spreadsheet), the column, the value and the fix.

A site in the inventory that never reported counts as missing; a reporting site
absent from it is flagged (``rules.compliance``).
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from contract.wire import HumanName, Meta, SiteIdentity, Slug
from plumbing.config_errors import ConfigError, describe_validation_error, parse_yaml_model

MAX_PROBLEMS = 50  # past that, the file is wrong in one systematic way: say how many more
_TRUE = frozenset({"true", "yes", "y", "1", "x", "có", "co"})
_FALSE = frozenset({"false", "no", "n", "0", "không", "khong"})
_BOOL_FIX = "write true or false (also yes/no, 1/0, có/không)"


class InventorySite(SiteIdentity):
    """One expected site: its identity (contract.wire.SiteIdentity), where the register
    must say its area and whether it is hardened, and may leave out its name.
    ``site_class`` defaults to ``hardened`` for a hardened site.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: HumanName | None = None
    province_name: HumanName | None = None
    area: Slug
    hardened: bool

    @model_validator(mode="before")
    @classmethod
    def _class_of_hardened(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("hardened") is True and not data.get("site_class"):
            return {**data, "site_class": "hardened"}
        return data

    @model_validator(mode="after")
    def _both_coordinates(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


# A CSV's columns, in the order write_csv writes them (the examples' order).
COLUMNS: tuple[str, ...] = (
    "site",
    "kind",
    "name",
    "operator",
    "province",
    "province_name",
    "area",
    "area_name",
    "hardened",
    "site_class",
    "latitude",
    "longitude",
)
REQUIRED: frozenset[str] = frozenset(
    name for name, info in InventorySite.model_fields.items() if info.is_required()
)


class Inventory:
    """The expected sites, by id and by province. Duplicate ids are refused."""

    def __init__(self, sites: Iterable[InventorySite], *, source: str = "<inventory>") -> None:
        self.source = source
        by_id: dict[str, InventorySite] = {}
        for item in sites:
            if item.site in by_id:
                raise ValueError(f"{source}: site {item.site!r} is listed twice")
            by_id[item.site] = item
        self._by_id = by_id
        self.sites: tuple[InventorySite, ...] = tuple(by_id.values())
        provinces: dict[str, list[InventorySite]] = {}
        for item in self.sites:
            provinces.setdefault(item.province, []).append(item)
        self.by_province: Mapping[str, tuple[InventorySite, ...]] = MappingProxyType(
            {p: tuple(items) for p, items in provinces.items()}
        )

    def only(self, provinces: Iterable[str]) -> Inventory:
        """The sites of these provinces: what one collector shard carries."""
        wanted = frozenset(provinces)
        return Inventory((s for s in self.sites if s.province in wanted), source=self.source)

    def get(self, site: str) -> InventorySite | None:
        return self._by_id.get(site)

    def __contains__(self, site: object) -> bool:
        return site in self._by_id

    def __iter__(self) -> Iterator[InventorySite]:
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)


class _InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sites: tuple[InventorySite, ...]


def load_inventory(path: str | Path) -> Inventory:
    """Load an inventory file (``.csv``, ``.yaml`` or ``.yml``); ConfigError if unusable."""
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise ConfigError(source, [f"unknown file type {suffix!r}. Fix: use .csv or .yaml"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = (
            f"byte {exc.start} is not UTF-8. Fix: save as UTF-8 "
            "(Excel: 'CSV UTF-8 (Comma delimited)')"
        )
        raise ConfigError(source, [problem]) from None
    if suffix == ".csv":
        return Inventory(parse_csv(text, source=source), source=source)
    sites = parse_yaml_model(text, _InventoryFile, source=source).sites
    _refuse_duplicates([(f"sites[{i}]", s.site) for i, s in enumerate(sites)], source)
    return Inventory(sites, source=source)


def _refuse_duplicates(where_ids: Iterable[tuple[str, str]], source: str) -> None:
    first: dict[str, str] = {}
    problems: list[str] = []
    for where, site in where_ids:
        if site in first:
            problems.append(
                f"{where}, column site: {site!r} is already on {first[site]}. "
                "Fix: give each site its own id, or remove the duplicate"
            )
        else:
            first[site] = where
    if problems:
        raise ConfigError(source, _capped(problems))


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]


def _header(fields: list[str], source: str) -> list[str]:
    names = [f.strip().lower() for f in fields]
    problems = []
    for name in names:
        if name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
            problems.append(
                f"row 1: unknown column {name!r}. Fix: {hint} (columns: {', '.join(COLUMNS)})"
            )
    missing = sorted(REQUIRED - set(names))
    if missing:
        problems.append(f"row 1: missing column(s) {', '.join(missing)}. Fix: add them")
    if problems:
        raise ConfigError(source, problems)
    return names


def _cell(column: str, raw: str, decimal_comma: bool) -> tuple[object, str | None]:
    """A cell as the model's type, or the problem with it."""
    value = raw.strip()
    if column == "hardened":
        low = value.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE, None
        return None, f"{raw!r} is not true or false. Fix: {_BOOL_FIX}"
    if not value:
        return None, None
    if column in ("latitude", "longitude"):
        try:
            return float(value.replace(",", ".") if decimal_comma else value), None
        except ValueError:
            return None, f"{raw!r} is not a number. Fix: write decimal degrees, e.g. 20.86"
    return value, None


def parse_csv(text: str, *, source: str = "<csv>") -> list[InventorySite]:
    """The sites of an inventory CSV; ConfigError naming row, column, value and fix."""
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    fields = next(reader, None)
    if fields is None:
        raise ConfigError(source, ["the file is empty. Fix: start with a header row"])
    names = _header(fields, source)
    problems: list[str] = []
    rows: list[tuple[int, InventorySite]] = []
    for row_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            problems.append(
                f"row {row_no}: {len(cells)} cells, the header has {len(names)}. "
                f"Fix: quote cells containing {delimiter!r}, one cell per column"
            )
            continue
        data: dict[str, object] = {}
        bad = len(problems)
        for column, raw in zip(names, cells, strict=True):
            value, problem = _cell(column, raw, decimal_comma=delimiter == ";")
            if problem is not None:
                problems.append(f"row {row_no}, column {column}: {problem}")
            elif value is not None:
                data[column] = value
        if len(problems) > bad:
            continue  # the model would only repeat the cell's problem
        try:
            rows.append((row_no, InventorySite.model_validate(data)))
        except ValidationError as exc:
            for line in describe_validation_error(exc):
                if line.startswith("(top level)"):
                    problems.append(f"row {row_no}" + line.removeprefix("(top level)"))
                else:
                    problems.append(f"row {row_no}, column {line}")
    if problems:
        raise ConfigError(source, _capped(problems))
    _refuse_duplicates([(f"row {n}", s.site) for n, s in rows], source)
    return [site for _, site in rows]


def write_csv(sites: Iterable[InventorySite], out: IO[str]) -> None:
    """Write sites as an inventory CSV that ``parse_csv`` reads back unchanged."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for item in sites:
        values = item.model_dump()
        writer.writerow(
            [
                ("true" if values[c] else "false")
                if c == "hardened"
                else ("" if values[c] is None else values[c])
                for c in COLUMNS
            ]
        )


_NEVER = datetime(2000, 1, 1, tzinfo=UTC)
REGISTER = "inventory"
"""The ``agent_version`` of a meta the collector made from the inventory: no agent's word."""


def inventory_meta(site: InventorySite, interval_s: float) -> Meta:
    """What the inventory says of a site, as a meta its own agent's meta will replace."""
    return Meta(
        **site.meta_fields(),
        name=site.name or site.site,
        interval_s=interval_s,
        agent_version=REGISTER,
        at=_NEVER,  # older than any agent's own meta
    )


def from_register(meta: Meta | None) -> bool:
    """Whether this meta is the inventory's (:func:`inventory_meta`), not its agent's."""
    return meta is not None and meta.agent_version == REGISTER and meta.at <= _NEVER
