"""A national deployment's shards, checked together (collector/shard_plan.py): every
inventory province carried by exactly one shard, each shard named once; and a shard's own
province that no inventory site has, said when it starts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from collector.config import CollectorConfig
from collector.inventory import Inventory, load_inventory
from collector.service import Collector
from collector.shard_plan import Shard, check
from kienco.cli import main as kienco_main

INVENTORY = """\
site,kind,name,province,area,hardened
hp-bts-1,station,Trạm A,hp,a1,false
hp-bts-2,station,Trạm B,hp,a1,false
qn-bts-1,station,Trạm C,qn,b1,false
hn-bts-1,station,Trạm D,hn,c1,false
"""


def shard(name: str, provinces: list[str] | None) -> Shard:
    given: dict[str, object] = {"broker": {"client_id": name}}
    if provinces is not None:
        given["provinces"] = provinces
    return Shard(f"{name}.yaml", CollectorConfig.model_validate(given))


def shard_of_filter(name: str, topic_filter: str) -> Shard:
    broker = {"client_id": name, "topic_filter": topic_filter}
    return Shard(f"{name}.yaml", CollectorConfig.model_validate({"broker": broker}))


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "fleet.csv").write_text(INVENTORY)
    return load_inventory(tmp_path / "fleet.csv")


@dataclass(frozen=True)
class Case:
    shards: tuple[Shard, ...]
    said: tuple[tuple[str, str], ...]  # (level, words its English text holds), in order


CASES = [
    pytest.param(Case((shard("a1", ["hp", "qn"]), shard("b1", ["hn"])), ()), id="each-once"),
    pytest.param(
        Case(
            (shard("a1", ["hp", "qn"]), shard("b1", ["hn", "qn"])),
            (("error", "province qn is carried by 2 shards (a1.yaml, b1.yaml)"),),
        ),
        id="a-province-in-two-shards",
    ),
    pytest.param(
        Case(
            (shard("a1", ["hp"]), shard("b1", ["hn"])),
            (("error", "1 inventory province(s) carried by no shard: qn (1) — 1 site(s)"),),
        ),
        id="a-province-in-none",
    ),
    pytest.param(
        Case(
            (shard("a1", ["hp", "qn"]), shard("b1", ["hm"])),
            (
                ("error", "carried by no shard: hn (1)"),
                ("warning", "b1.yaml: province hm has no site in the inventory (did you mean hn?)"),
            ),
        ),
        id="a-typo",
    ),
    pytest.param(
        Case(
            (shard("a1", ["hp", "qn"]), shard("a1", ["hn"])),
            (("error", "2 shards are named a1 (a1.yaml, a1.yaml, key broker.client_id)"),),
        ),
        id="one-name-twice",
    ),
    pytest.param(
        Case(
            (shard("a1", ["hp", "qn", "hn"]), shard("all", None)),
            (
                ("error", "province hn is carried by 2 shards (a1.yaml, all.yaml)"),
                ("error", "province hp is carried by 2 shards (a1.yaml, all.yaml)"),
                ("error", "province qn is carried by 2 shards (a1.yaml, all.yaml)"),
            ),
        ),
        id="a-collector-of-every-province-beside-shards",
    ),
    pytest.param(Case((shard("all", None),), ()), id="one-collector-of-everything"),
    pytest.param(
        Case(
            (shard("a1", ["hp", "qn"]), shard_of_filter("b1", "kienco/v1/hn/#")),
            (),
        ),
        id="a-collector-of-one-filter-counts-as-its-province",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_the_shards_together(case: Case, inventory: Inventory) -> None:
    problems = check(case.shards, inventory)
    assert len(problems) == len(case.said), [p.en for p in problems]
    for problem, (level, words) in zip(problems, case.said, strict=True):
        assert problem.level == level and words in problem.en, problem.en
        assert problem.vi and problem.vi != problem.en


def test_without_an_inventory_only_the_shards_are_compared() -> None:
    problems = check((shard("a1", ["hp"]), shard("b1", ["hp"])), None)
    assert [p.level for p in problems] == ["error"]
    assert "province hp is carried by 2 shards" in problems[0].en


def _write_shard(path: Path, name: str, provinces: list[str]) -> Path:
    path.write_text(yaml.safe_dump({"provinces": provinces, "broker": {"client_id": name}}))
    return path


def test_the_command_says_each_problem_and_fails_on_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fleet.csv").write_text(INVENTORY)
    a1 = _write_shard(tmp_path / "a1.yaml", "a1", ["hp", "qn"])
    b1 = _write_shard(tmp_path / "b1.yaml", "b1", ["hn"])
    inv = ["--inventory", str(tmp_path / "fleet.csv")]
    assert kienco_main(["collector", "check-shards", *inv, "--lang", "en", str(a1), str(b1)]) == 0
    assert capsys.readouterr().out == "2 shard(s), 3 province(s); 0 error(s), 0 warning(s)\n"

    b1 = _write_shard(tmp_path / "b1.yaml", "b1", ["hm"])
    assert kienco_main(["collector", "check-shards", *inv, str(a1), str(b1)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lỗi: 1 tỉnh trong danh mục không shard nào nhận: hn (1)")
    assert out[1].startswith(f"lưu ý: {b1}: tỉnh hm không có điểm nào trong danh mục")
    assert out[2] == "2 shard, 3 tỉnh; 1 lỗi, 1 lưu ý"


def test_a_shard_config_that_cannot_load_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "a1.yaml"
    bad.write_text("provinces: [Hải Phòng]\n")
    assert kienco_main(["collector", "check-shards", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "provinces.0" in err


def test_a_shard_says_at_start_which_of_its_provinces_no_inventory_site_has(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "fleet.csv").write_text(INVENTORY)
    config = CollectorConfig.model_validate(
        {
            "provinces": ["hp", "hm"],
            "broker": {"client_id": "a1"},
            "influx": None,
            "inventory": str(tmp_path / "fleet.csv"),
            "data_dir": str(tmp_path / "data"),
        }
    )
    with caplog.at_level(logging.WARNING, logger="kienco.collector"):
        built = Collector(config)
    try:
        said = [r.getMessage() for r in caplog.records]
        assert said == [
            "collector: province hm has no site in the inventory (did you mean hn?): none of "
            "its sites is expected"
        ]
        assert [s.site for s in built.inventory] == ["hp-bts-1", "hp-bts-2"]
    finally:
        built.stop()
