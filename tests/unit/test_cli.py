from __future__ import annotations

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


def test_demo_registers_every_phone_over_real_sip(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dialer.cli",
            "demo",
            "--duration",
            "1.5",
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
    lines = dict(
        line.strip().rsplit(None, 1) for line in done.stdout.splitlines()[1:] if line.strip()
    )
    assert lines["registered (phones)"] == "3"
    assert lines["registered (registrar)"] == "3"
    assert lines["digest challenges"] == "3"
    assert lines["result"] == "ok"
