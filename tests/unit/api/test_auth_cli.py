"""``dialer user add`` and ``dialer user token``: API users for a real deployment."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

import pytest

from dialer.api.users import check_password, token_hash
from dialer.cli import main


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "dialer.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "dialer.db"}"\n\n'
        '[[phones]]\nextension = "1001"\npassword_env = "DESK_1001"\n\n'
        '[[agents]]\nid = "a1"\nextension = "1001"\nteam = "t1"\n',
        encoding="utf-8",
    )
    return path


def test_user_add_reads_the_password_from_stdin_and_stores_only_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DESK_1001", "desk-secret")
    config = config_file(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    argv = ["user", "add", "--config", str(config), "--username", "li", "--role", "agent"]
    assert main([*argv, "--agent", "a1"]) == 0
    assert capsys.readouterr().out == "user li (agent) added, id 1\n"
    with contextlib.closing(sqlite3.connect(tmp_path / "dialer.db")) as db:
        row = db.execute("SELECT role, agent_id, team, locale, password_hash FROM users").fetchone()
    assert row[:4] == ("agent", "a1", "t1", "zh-CN")
    assert check_password("long enough password", row[4])
    assert not check_password("long enough password\n", row[4])

    assert main(["user", "token", "--config", str(config), "--username", "li"]) == 0
    token = capsys.readouterr().out.strip()
    with contextlib.closing(sqlite3.connect(tmp_path / "dialer.db")) as db:
        stored = db.execute("SELECT token_hash, kind FROM user_tokens").fetchall()
    assert stored == [(token_hash(token), "api")]


def test_user_add_lists_every_problem_and_adds_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DESK_1001", "desk-secret")
    monkeypatch.setenv("NEW_PASSWORD", "pw")
    config = config_file(tmp_path)
    argv = ["user", "add", "--config", str(config), "--username", "ops", "--role", "qa"]
    assert main([*argv, "--agent", "a9", "--password-env", "NEW_PASSWORD"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "ops: password must be 4 to 1024 characters",
        "ops: only agent users have an agent_id, not role 'qa'",
        "ops: agent_id 'a9' is not a configured agent",
    ]
    with contextlib.closing(sqlite3.connect(tmp_path / "dialer.db")) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
    assert main([*argv, "--password-env", "UNSET_VARIABLE"]) == 2
    assert capsys.readouterr().err == "--password-env: UNSET_VARIABLE is not set\n"
