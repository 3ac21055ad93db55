"""``kienco credentials``: one account per inventory site (<province>/<site>) in Mosquitto's
password file and one secrets file per site; a real Mosquitto with the shipped ACL lets
each site in with its own secret only; runs again change nothing; secrets never print."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.inventory import load_inventory
from kienco.cli import main as kienco_main
from kienco.local_services import find_binary
from kienco.mosquitto_passwd import hash_password, read_password_file, verify
from tests.support.mosquitto import Broker

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "firmware-configs" / "inventory" / "example.csv"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = kienco_main(["credentials", *args, "--lang", "en"])
    said = capsys.readouterr()
    return code, said.out + said.err


def _create(capsys: pytest.CaptureFixture[str], passwd: Path, secrets: Path, *extra: str) -> str:
    code, said = _run(
        capsys,
        "create",
        "--inventory",
        str(INVENTORY),
        "--password-file",
        str(passwd),
        "--secrets-dir",
        str(secrets),
        *extra,
    )
    assert code == 0, said
    return said


def _connects(port: int, user: str, password: str) -> bool:
    """Does the broker accept this login? (CONNACK success within 5 s.)"""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    result: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(not reason.is_failure)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not result and time.monotonic() < deadline:
        time.sleep(0.02)
    client.disconnect()
    client.loop_stop()
    return bool(result and result[0])


def _secrets_of(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder))[: -len(".password")]: p.read_text().strip()
        for p in folder.rglob("*.password")
    }


def test_create_then_each_site_logs_in_with_its_own_secret_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = Broker(tmp_path / "mosquitto", users={})  # the shipped config and ACL
    passwd = broker.workdir / "passwd"  # the broker's password_file
    secrets = tmp_path / "credentials"
    said = _create(capsys, passwd, secrets, "--user", "collector")
    sites = [f"{s.province}/{s.site}" for s in load_inventory(INVENTORY)]
    assert said.startswith(f"{len(sites) + 1} created, 0 rotated")
    assert set(read_password_file(passwd)) == {*sites, "collector"}
    kept = _secrets_of(secrets)
    assert set(kept) == {*sites, "collector"}
    assert len(set(kept.values())) == len(kept), "every account has its own password"
    for secret in kept.values():
        assert len(secret) >= 32 and secret not in said
    site_file = secrets / "hp" / "hp-bts-001.password"
    assert stat.S_IMODE(site_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(site_file.parent.stat().st_mode) == 0o700
    broker.start()
    try:
        port = broker.port
        assert _connects(port, "hp/hp-bts-001", kept["hp/hp-bts-001"])
        assert _connects(port, "collector", kept["collector"])
        assert not _connects(port, "hp/hp-bts-001", kept["hp/hp-bts-002"])  # another site's
        assert not _connects(port, "hp/hp-bts-001", "guess")
    finally:
        broker.stop()
    code, said = _run(
        capsys, "check", "--inventory", str(INVENTORY), "--user", "collector",
        "--password-file", str(passwd), "--secrets-dir", str(secrets),
    )  # fmt: skip
    assert code == 0 and f"{len(sites) + 1} accounts all good" in said


def test_runs_again_change_only_what_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwd, secrets = tmp_path / "kienco.passwd", tmp_path / "credentials"
    _create(capsys, passwd, secrets)
    before, hashes = _secrets_of(secrets), passwd.read_bytes()
    said = _create(capsys, passwd, secrets)
    assert said.startswith("0 created, 0 rotated, 0 re-hashed, 12 unchanged")
    assert passwd.read_bytes() == hashes and _secrets_of(secrets) == before
    # A new password for one site: only that one changes, and its old one no longer works.
    said = _create(capsys, passwd, secrets, "--rotate", "hp/hp-bts-001")
    assert said.startswith("0 created, 1 rotated")
    after = _secrets_of(secrets)
    assert after["hp/hp-bts-001"] != before["hp/hp-bts-001"]
    assert {k: v for k, v in after.items() if k != "hp/hp-bts-001"} == {
        k: v for k, v in before.items() if k != "hp/hp-bts-001"
    }
    entries = read_password_file(passwd)
    assert verify(after["hp/hp-bts-001"], entries["hp/hp-bts-001"])
    assert not verify(before["hp/hp-bts-001"], entries["hp/hp-bts-001"])


def test_a_lost_secret_is_said_never_silently_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwd, secrets = tmp_path / "kienco.passwd", tmp_path / "credentials"
    _create(capsys, passwd, secrets)
    hashes = passwd.read_bytes()
    (secrets / "qn" / "qn-bts-001.password").unlink()
    args = ["--inventory", str(INVENTORY), "--password-file", str(passwd)]
    code, said = _run(capsys, "create", *args, "--secrets-dir", str(secrets))
    assert code == 3 and "qn/qn-bts-001: in the password file but no secrets file" in said
    assert "--rotate qn/qn-bts-001" in said and passwd.read_bytes() == hashes
    code, said = _run(capsys, "check", *args, "--secrets-dir", str(secrets))
    assert code == 3 and "qn/qn-bts-001: no secrets file" in said


def test_sites_that_left_the_inventory_are_pruned_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passwd, secrets = tmp_path / "kienco.passwd", tmp_path / "credentials"
    _create(capsys, passwd, secrets, "--user", "bridge-hp")
    fewer = tmp_path / "fewer.csv"
    lines = INVENTORY.read_text(encoding="utf-8").splitlines()
    fewer.write_text("\n".join(line for line in lines if "hp-bts-022" not in line) + "\n")
    args = ["--password-file", str(passwd), "--secrets-dir", str(secrets)]
    code, said = _run(capsys, "create", "--inventory", str(fewer), *args)
    assert code == 0 and "1 site accounts no longer in the inventory" in said
    assert "hp/hp-bts-022" in read_password_file(passwd)
    code, said = _run(capsys, "create", "--inventory", str(fewer), "--prune", *args)
    assert code == 0 and "1 pruned" in said
    remaining = read_password_file(passwd)
    assert "hp/hp-bts-022" not in remaining and "bridge-hp" in remaining  # the centre's stays


def test_accounts_of_the_centre_alone_leave_the_sites_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding a bridge to a password file that also holds sites (a central instance with
    agents connecting directly) names no inventory: its sites have not left one. Before,
    every site was said gone "(remove with --prune)", and --prune removed them all."""
    passwd, secrets = tmp_path / "kienco-a.passwd", tmp_path / "credentials"
    _create(capsys, passwd, secrets)
    sites = set(read_password_file(passwd))
    args = ["--password-file", str(passwd), "--secrets-dir", str(secrets)]
    code, said = _run(capsys, "create", "--user", "bridge-hp", *args)
    assert code == 0 and "1 created" in said and "no longer in the inventory" not in said
    code, said = _run(capsys, "create", "--user", "bridge-qn", "--prune", *args)
    assert code == 2 and "--prune needs --inventory" in said
    assert set(read_password_file(passwd)) == sites | {"bridge-hp"}


def test_a_rotation_of_an_account_not_named_changes_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password believed changed (a stolen box) must be: a --rotate the run does not
    cover (a typo, the centre's account without --user) is refused, not passed over with
    "0 rotated" and exit 0."""
    passwd, secrets = tmp_path / "kienco.passwd", tmp_path / "credentials"
    _create(capsys, passwd, secrets, "--user", "bridge-hp")
    before = _secrets_of(secrets), read_password_file(passwd)
    args = ["--password-file", str(passwd), "--secrets-dir", str(secrets)]
    for asked in (["--rotate", "bridge-hp"], ["--rotate", "hp/hp-bts-01"]):
        code, said = _run(capsys, "create", "--inventory", str(INVENTORY), *asked, *args)
        assert code == 2 and f"--rotate {asked[1]}: not among the accounts named" in said
        assert (_secrets_of(secrets), read_password_file(passwd)) == before
    code, said = _run(capsys, "create", "--user", "bridge-hp", "--rotate", "bridge-hp", *args)
    assert code == 0 and "1 rotated" in said
    assert _secrets_of(secrets)["bridge-hp"] != before[0]["bridge-hp"]


def test_only_some_provinces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwd, secrets = tmp_path / "kienco.passwd", tmp_path / "credentials"
    _create(capsys, passwd, secrets, "--province", "qn")
    assert {user.split("/")[0] for user in read_password_file(passwd)} == {"qn"}


@pytest.mark.parametrize(
    "name", ["../../etc/x", "bridge-hp\n", "hp/hp-bts-001\n", "bridge hp", "hp/hp-bts-001:x"]
)
def test_account_names_cannot_be_paths_or_break_a_line(tmp_path: Path, name: str) -> None:
    with pytest.raises(SystemExit) as caught:
        kienco_main(
            ["credentials", "create", "--user", name, "--password-file",
             str(tmp_path / "p"), "--secrets-dir", str(tmp_path / "s")]
        )  # fmt: skip
    assert caught.value.code == 2 and not (tmp_path / "p").exists()
    assert not (tmp_path / "s").exists()


def test_the_hash_format_is_mosquitto_passwds(tmp_path: Path) -> None:
    """Both ways: mosquitto_passwd's line verifies here; ours logs in on a real broker
    (test_create_then_each_site_logs_in_with_its_own_secret_only)."""
    tool = find_binary("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd is not installed: apt-get install -y mosquitto")
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    subprocess.run([tool, "-b", str(passwd), "hp/hp-bts-001", "s3cret"], check=True)
    hashed = read_password_file(passwd)["hp/hp-bts-001"]
    assert hashed.startswith("$7$101$") and verify("s3cret", hashed)
    assert not verify("s3cre", hashed)
    ours = hash_password("s3cret")
    assert ours.startswith("$7$101$") and len(ours) == len(hashed) and verify("s3cret", ours)
