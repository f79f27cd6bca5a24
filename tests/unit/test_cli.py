from __future__ import annotations

import contextlib
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.cli import main

EXAMPLE = Path(__file__).parents[2] / "deploy" / "dialer.example.toml"


@pytest.mark.parametrize(
    "argv", [["--help"], ["serve", "--help"], ["demo", "--help"], ["check-config", "--help"]]
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: dialer" in capsys.readouterr().out


def test_check_config_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    # The example names secrets in the environment and on disk that are not here.
    assert main(["check-config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "phones[0].password_env: environment variable PHONE_1001_PASSWORD is not set" in err
    assert "phones[1].password_file: cannot read" in err
    assert "trunks[0].password_env: environment variable TRUNK_PBX_PASSWORD is not set" in err


def test_check_config_defaults_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert "defaults: ok" in capsys.readouterr().out


def test_demo_registers_phones_and_bridges_and_records_calls_over_real_sip(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dialer.cli",
            "demo",
            "--http-port",
            "0",
            "--duration",
            "8",
            "--phones",
            "3",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # "  label<two or more spaces>value": labels have single spaces, values may have more.
    lines = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in done.stdout.splitlines()[1:]
        if line.strip()
    )
    assert lines["registered (phones)"] == "3"
    assert lines["registered (registrar)"] == "3"
    assert lines["digest challenges"] == "3"
    assert lines["result"] == "ok"
    placed, bridged = int(lines["calls placed"]), int(lines["calls bridged"])
    outcomes = dict(part.split("=") for part in lines["customer outcomes"].split(", "))
    assert placed >= 3
    assert sum(int(n) for n in outcomes.values()) == placed
    assert bridged >= 1
    # Every bridged call left exactly one checksum-verified recording on disk.
    assert lines["recordings"] == lines["recordings verified"] == str(bridged)
    assert len(list((tmp_path / "recordings").glob("*/*.wav"))) == bridged
    assert float(lines["recorded seconds"]) > 2.0 * bridged * 0.9
    # The summary's counts are the database's: read it back with nothing of ours.
    with contextlib.closing(sqlite3.connect(tmp_path / "dialer.db")) as db:
        attempts = dict(db.execute("SELECT outcome, count(*) FROM dial_attempts GROUP BY outcome"))
        states = dict(db.execute("SELECT state, count(*) FROM leads GROUP BY state"))
        bridged_rows = db.execute("SELECT count(*) FROM dial_attempts WHERE bridged").fetchone()[0]
    assert {k: str(v) for k, v in attempts.items()} == outcomes
    assert sum(attempts.values()) == placed
    assert bridged_rows == bridged
    assert ", ".join(f"{k}={v}" for k, v in sorted(states.items())) == lines["leads by state (db)"]
    assert sum(states.values()) == int(lines["leads imported"])
    # Run again on the same data: a new campaign beside the first, nothing lost.
    again = subprocess.run(
        [sys.executable, "-m", "dialer.cli", "demo", "--http-port", "0", "--duration", "3",
         "--phones", "1", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with contextlib.closing(sqlite3.connect(tmp_path / "dialer.db")) as db:
        campaigns = db.execute("SELECT count(*) FROM campaigns").fetchone()[0]
        kept = db.execute("SELECT count(*) FROM dial_attempts").fetchone()[0]
    assert campaigns == 2
    assert kept >= placed
    # One CDR per call of both runs, and the live quota counters agree with them.
    with contextlib.closing(sqlite3.connect(tmp_path / "dialer.db")) as db:
        cdrs = db.execute("SELECT count(*), count(DISTINCT call_id) FROM cdrs").fetchone()
    assert cdrs[0] == cdrs[1] == kept
    assert lines["CDRs (db)"] == str(placed)
    assert lines["quota report = CDRs"] == "yes"
    reconciled = subprocess.run(
        [sys.executable, "-m", "dialer.cli", "quota", "reconcile", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert f"{kept} CDRs, 0 differences" in reconciled.stdout
    assert list((tmp_path / "reports").glob("quota-*.csv"))


def test_demo_refuses_a_bad_customer_mix_naming_each_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["demo", "--mix", "answer=x,foo=1", "--talk", "5-2", "--data-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--mix: answer='x' is not a whole number" in err
    assert (
        "--mix: unknown behaviour 'foo' (known: answer, busy, invalid, unavailable, no_answer)"
        in err
    )
    assert "--talk: '5-2' must be positive, low before high" in err
    assert not (tmp_path / "dialer.db").exists()  # refused before anything started


def test_demo_preview_desk_mode_needs_desk_agents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "demo"
    assert main(["demo", "--desk-mode", "preview", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "--desk-mode preview needs --desk-agents" in err
    assert not data_dir.exists()  # refused before anything started


def test_demo_desk_mode_is_progressive_or_preview(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--desk-mode", "predictive", "--desk-agents", "agent-1001"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--desk-mode: invalid choice: 'predictive'" in err
    assert "progressive" in err and "preview" in err


def _import_config(tmp_path: Path) -> Path:
    config = tmp_path / "dialer.toml"
    config.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{tmp_path / "leads.db"}"

[[phones]]
extension = "1001"
password_env = "DEMO_PHONE_PW"

[[trunks]]
name = "pbx"
host = "127.0.0.1"

[[agents]]
id = "a1"
extension = "1001"

[[campaigns]]
id = "spring"
mode = "progressive"
trunks = ["pbx"]
agents = ["a1"]
""",
        encoding="utf-8",
    )
    return config


def _leads_in(db: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.execute("SELECT phone, name FROM leads ORDER BY phone"))


def test_import_leads_is_all_or_nothing_with_a_row_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_PHONE_PW", "secret-1001")
    config = _import_config(tmp_path)
    good = tmp_path / "good.csv"
    good.write_bytes("电话,姓名\r\n138 0013 8000,张三\r\n13900139000,李四\r\n".encode("gb18030"))
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes("\ufeff电话,姓名\r\n13700137000,王五\r\n12345,坏号码\r\n".encode())
    base = ["import-leads", "--config", str(config), "--campaign", "spring"]
    # A row is invalid: nothing goes in unless the valid rest is accepted.
    assert main([*base, str(mixed)]) == 1
    err = capsys.readouterr().err
    assert "row 3, column '电话', value '12345'" in err
    assert "refused: fix the rows above" in err
    assert not (tmp_path / "leads.db").exists()
    assert main([*base, str(good)]) == 0
    assert "imported 2 leads into campaign 'spring'" in capsys.readouterr().out
    assert _leads_in(tmp_path / "leads.db") == [
        ("+8613800138000", "张三"),
        ("+8613900139000", "李四"),
    ]
    # The same file again: a duplicate in the database rolls the whole import back.
    assert main([*base, str(good)]) == 2
    assert "refused, nothing imported" in capsys.readouterr().err
    assert main([*base, "--accept-valid", str(mixed)]) == 0
    assert len(_leads_in(tmp_path / "leads.db")) == 3
    assert main([*base[:-1], "autumn", str(good)]) == 2
    assert "unknown campaign 'autumn' (known: spring)" in capsys.readouterr().err


def test_demo_says_which_http_port_is_taken_instead_of_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "dialer.cli", "demo", "--http-port", str(port),
             "--duration", "2", "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"http: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
