"""The expected fleet: CSV and YAML loading, strict errors that say row, column, value, fix."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from collector.inventory import (
    COLUMNS,
    Inventory,
    InventorySite,
    load_inventory,
    parse_csv,
    write_csv,
)
from plumbing.config_errors import ConfigError

EXAMPLES = Path(__file__).parent.parent / "firmware-configs" / "inventory"
HEADER = "site,kind,name,operator,province,area,area_name,hardened,latitude,longitude"
ROW = "hp-bts-001,station,Trạm BTS An Dương 1,vnpt,hp,an-duong,Huyện An Dương,true,20.87,106.6"


def _csv(tmp_path: Path, text: str, name: str = "fleet.csv", *, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_the_examples_load_and_agree() -> None:
    from_csv = load_inventory(EXAMPLES / "example.csv")
    from_yaml = load_inventory(EXAMPLES / "example.yaml")
    assert from_csv.sites == from_yaml.sites
    assert len(from_csv) == 12 and set(from_csv.by_province) == {"hp", "qn"}
    assert len(from_csv.by_province["hp"]) == 11
    site = from_csv.get("hp-bts-001")
    assert site is not None
    assert (site.name, site.area_name, site.hardened, site.site_class) == (
        "Trạm BTS An Dương 1",
        "Huyện An Dương",
        True,
        "hardened",
    )
    assert from_csv.get("nope") is None and "hp-bts-001" in from_csv


def test_csv_saved_by_excel(tmp_path: Path) -> None:
    """A BOM, ';' separators and decimal commas: what Excel writes in a Vietnamese locale."""
    text = "\ufeff" + HEADER.replace(",", ";") + "\n"
    text += (
        "hp-bts-001;station;Trạm BTS An Dương 1;vnpt;hp;an-duong;Huyện An Dương;có;20,87;106,6\n"
    )
    text += ";;;;;;;;;\n"  # a blank line Excel leaves at the end
    (site,) = load_inventory(_csv(tmp_path, text)).sites
    assert (site.site, site.hardened, site.latitude, site.longitude) == (
        "hp-bts-001",
        True,
        20.87,
        106.6,
    )
    assert site.site_class == "hardened"  # a hardened site with no class is held as hardened


def test_csv_round_trip() -> None:
    inventory = load_inventory(EXAMPLES / "example.csv")
    out = io.StringIO()
    write_csv(inventory, out)
    assert out.getvalue().splitlines()[0] == ",".join(COLUMNS)
    assert parse_csv(out.getvalue()) == list(inventory.sites)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"{HEADER}\n{ROW}\n{ROW.replace(',true,', ',maybe,')}\n",
            ["row 3, column hardened: 'maybe' is not true or false. Fix: write true or false"],
            id="bad-bool",
        ),
        pytest.param(
            f"{HEADER}\n{ROW.replace('an-duong', 'An Dương', 1)}\n",
            ["row 2, column area: String should match pattern", "(got 'An Dương')", "lowercase"],
            id="area-not-a-slug",
        ),
        pytest.param(
            f"{HEADER}\n{ROW.replace(',station,', ',tower,')}\n",
            ["row 2, column kind:", "(got 'tower')", "Fix: use one of the allowed values"],
            id="unknown-kind",
        ),
        pytest.param(
            f"{HEADER.replace('operator', 'operater')}\n{ROW}\n",
            ["row 1: unknown column 'operater'. Fix: did you mean 'operator'?"],
            id="misspelt-column",
        ),
        pytest.param(
            HEADER.replace(",hardened", "") + "\n",
            ["row 1: missing column(s) hardened. Fix: add them"],
            id="missing-column",
        ),
        pytest.param(
            f"{HEADER}\n{ROW}\n{ROW.replace('Trạm BTS An Dương 1', 'Trạm khác')}\n",
            ["row 3, column site: 'hp-bts-001' is already on row 2. Fix: give each site its own"],
            id="duplicate-site",
        ),
        pytest.param(
            f"{HEADER}\n{ROW.replace('20.87', '20°52′N')}\n",
            ["row 2, column latitude: '20°52′N' is not a number. Fix: write decimal degrees"],
            id="latitude-not-decimal",
        ),
        pytest.param(
            f"{HEADER}\n{ROW.replace(',106.6', ',')}\n",
            ["row 2: Value error, give both latitude and longitude, or neither"],
            id="half-a-position",
        ),
        pytest.param(
            f"{HEADER}\n{ROW.replace(',106.6', ',106.6,extra')}\n",
            ["row 2: 11 cells, the header has 10. Fix: quote cells containing ','"],
            id="stray-comma",
        ),
        pytest.param(
            f"{HEADER}\n{ROW.replace(',20.87', ',95')}\n",
            ["row 2, column latitude: Input should be less than or equal to 90 (got 95.0)"],
            id="latitude-out-of-range",
        ),
        pytest.param("", ["the file is empty"], id="empty"),
    ],
)
def test_csv_errors_name_row_column_value_and_fix(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_inventory(_csv(tmp_path, text))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "fleet.csv"))
    for part in expected:
        assert part in message, message


def test_every_bad_row_is_reported_at_once(tmp_path: Path) -> None:
    rows = [ROW.replace("hp-bts-001", f"hp-{i}").replace(",true,", ",?,") for i in range(60)]
    with pytest.raises(ConfigError) as caught:
        load_inventory(_csv(tmp_path, "\n".join([HEADER, *rows])))
    assert len(caught.value.problems) == 51 and caught.value.problems[-1] == "... and 10 more"
    assert caught.value.problems[0].startswith("row 2, column hardened")


def test_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not UTF-8.*CSV UTF-8"):
        load_inventory(_csv(tmp_path, f"{HEADER}\n{ROW}\n", encoding="utf-16"))


def test_file_type_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"use \.csv or \.yaml"):
        load_inventory(tmp_path / "fleet.xlsx")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_inventory(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sites:\n  - {site: a, kind: station, province: hp, area: x, hardened: maybe}\n",
            "sites.0.hardened: Input should be a valid boolean (got 'maybe'). "
            "Fix: use true or false",
            id="bad-bool",
        ),
        pytest.param(
            "sites:\n  - {site: a, kind: station, province: hp, area: x}\n",
            "sites.0.hardened: Field required. Fix: add this key",
            id="missing-key",
        ),
        pytest.param(
            "sites:\n"
            "  - {site: a, kind: station, province: hp, area: x, hardened: true}\n"
            "  - {site: a, kind: station, province: hp, area: y, hardened: false}\n",
            "sites[1], column site: 'a' is already on sites[0]",
            id="duplicate-site",
        ),
        pytest.param("stations: []\n", "stations: Extra inputs are not permitted", id="top-key"),
    ],
)
def test_yaml_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    assert expected in str(caught.value), str(caught.value)


def test_inventory_refuses_duplicates_when_built_in_code() -> None:
    site = InventorySite(site="a", kind="station", province="hp", area="x", hardened=False)
    with pytest.raises(ValueError, match="listed twice"):
        Inventory([site, site])
