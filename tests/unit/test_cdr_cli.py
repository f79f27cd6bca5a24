"""``dialer cdr|recordings|qa``: run through ``dialer.cli.main`` on a real SQLite file.

Every test writes a small TOML config, migrates a database file in tmp_path,
closes CDRs into it with ``CdrStore.close`` (with real two-channel WAV
recordings where a call was recorded) and reads what the commands print and
write. Expected values are worked out from the fixture's own records, in the
floor's zone, not copied from a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import math
import sqlite3
import time
import wave
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest

from cdr.audit import AuditAction, AuditEntry, AuditLog
from cdr.export import mask_number
from cdr.record import AnsweredBy, CallRecord, Outcome, RecordingRef
from cdr.recordings import DAY_MS, Recording, RecordingIndex
from cdr.store import CdrStore
from dialer.cdr_cli import ExportProgress
from dialer.cli import main
from dialer.store.database import Database

T = TypeVar("T")
ZONE = ZoneInfo("Asia/Shanghai")
CLOSED_AT = 1_717_600_000_000  # when the fixture's CDRs were closed (2024-06-05)


def at(day: date, hour: int, minute: int = 0) -> int:
    """UTC milliseconds of a local wall-clock time on the floor."""
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).timestamp() * 1000)


def local_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, ZONE).date()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


JUNE_2, JUNE_3, JUNE_4, JUNE_5, JUNE_6 = (date(2024, 6, d) for d in (2, 3, 4, 5, 6))


def write_wav(path: Path, frames: int = 800) -> RecordingRef:
    """A real two-channel 16-bit 8 kHz WAV (0.1 s of a steady tone level) and its reference."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes((1000).to_bytes(2, "little", signed=True) * 2 * frames)
    data = path.read_bytes()
    return RecordingRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_ms=frames * 1000 // 8000,
        size_bytes=len(data),
        agent_speech_ms=0,
        customer_speech_ms=0,
    )


def answered(
    call_id: str,
    agent: str | None,
    campaign: str,
    start_ms: int,
    talk_s: int,
    *,
    recording: RecordingRef | None = None,
    disposition: str | None = None,
) -> CallRecord:
    bridged = start_ms + 4_000
    return CallRecord(
        call_id=call_id,
        campaign=campaign,
        agent=agent,
        mode="progressive",
        number=f"+86138{int(hashlib.sha256(call_id.encode()).hexdigest(), 16) % 10**8:08d}",
        created_at_ms=start_ms,
        answered_at_ms=start_ms + 3_980,
        bridged_at_ms=bridged if agent is not None else None,
        ended_at_ms=bridged + talk_s * 1000,
        ring_ms=3_980,
        talk_ms=talk_s * 1000 if agent is not None else 0,
        billable_ms=talk_s * 1000 + 20,
        outcome=Outcome.ANSWERED,
        sip_status=200,
        hangup_by="customer",
        answered_by=AnsweredBy.HUMAN,
        abandoned=agent is None,
        disposition=disposition,
        effective=agent is not None and talk_s >= 30,
        effective_rule="default@1",
        recording=recording,
    )


def busy(call_id: str, agent: str, campaign: str, start_ms: int) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        campaign=campaign,
        agent=agent,
        number="+8613900000002",
        created_at_ms=start_ms,
        ended_at_ms=start_ms + 2_000,
        outcome=Outcome.BUSY,
        sip_status=486,
    )


@dataclass(frozen=True, slots=True)
class Floor:
    """A config file, its database and recordings directory, and the CDRs put in it."""

    config: Path
    url: str
    db_file: Path
    recordings: Path
    records: tuple[CallRecord, ...]

    def cli(self, *argv: str) -> int:
        group, action, *rest = argv
        return main([group, action, "--config", str(self.config), *rest])

    def on(self, day: date) -> list[CallRecord]:
        return [r for r in self.records if local_day(r.created_at_ms) == day]

    def recorded(self) -> list[CallRecord]:
        return [r for r in self.records if r.recording is not None]

    def db(self, work: Callable[[Database], Awaitable[T]]) -> T:
        async def go() -> T:
            async with Database(self.url) as database:
                return await work(database)

        return asyncio.run(go())

    def audit(self, action: AuditAction) -> list[AuditEntry]:
        return self.db(lambda d: AuditLog(d.sessionmaker).entries(action=action))

    def recording(self, call_id: str) -> Recording:
        return self.db(lambda d: RecordingIndex(d.sessionmaker).get(call_id))

    def index_at(self, records: Sequence[CallRecord], when_ms: int) -> None:
        """Index recordings as a node did back then (their retention runs from ``when_ms``)."""

        async def work(database: Database) -> None:
            index = RecordingIndex(database.sessionmaker)
            for record in records:
                await index.index(record, 30, when_ms)

        self.db(work)


def make_floor(tmp_path: Path, records: Callable[[Path], list[CallRecord]]) -> Floor:
    db_file = tmp_path / "dialer.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    secret = tmp_path / "phone-secret"
    secret.write_text("s3cret\n", encoding="utf-8")
    config = tmp_path / "dialer.toml"
    config.write_text(
        f"""
[service]
timezone = "Asia/Shanghai"

[database]
url = "{url}"

[media]
recordings_dir = "{recordings}"

[cdr]
retention_days = 30
qa_sample_rate = 0.5
qa_sample_minimum = 1

[[phones]]
extension = "1001"
password_file = "{secret}"

[[phones]]
extension = "1002"
password_file = "{secret}"

[[phones]]
extension = "1003"
password_file = "{secret}"

[[trunks]]
name = "pbx"
host = "127.0.0.1"

[[agents]]
id = "a1"
extension = "1001"
team = "north"

[[agents]]
id = "a2"
extension = "1002"
team = "south"

[[agents]]
id = "a3"
extension = "1003"

[[campaigns]]
id = "spring"
mode = "progressive"
trunks = ["pbx"]
agents = ["a1", "a2", "a3"]
recording_retention_days = 90

[[campaigns]]
id = "summer"
mode = "progressive"
trunks = ["pbx"]
agents = ["a1", "a2"]
""",
        encoding="utf-8",
    )
    made = records(recordings)

    async def fill() -> None:
        async with Database(url) as database:
            await database.upgrade()
            store = CdrStore(database.sessionmaker)
            for record in made:
                assert await store.close(record, CLOSED_AT)

    asyncio.run(fill())
    return Floor(config, url, db_file, recordings, tuple(made))


def june_calls(recordings: Path) -> list[CallRecord]:
    """Three local days of a small floor, plus calls just outside them.

    c-early is on June 3 locally but June 2 in UTC; c-late is on June 6 locally
    but June 5 in UTC: exports and reports must go by the floor's days.
    """

    def wav(call_id: str) -> RecordingRef:
        return write_wav(recordings / "2024-06" / f"{call_id}.wav")

    return [
        answered("c-before", "a1", "spring", at(JUNE_2, 23, 30), 40),
        answered("c-early", "a1", "spring", at(JUNE_3, 7), 45, recording=wav("c-early")),
        answered(
            "c-1", "a1", "spring", at(JUNE_3, 10), 60, recording=wav("c-1"), disposition="sale"
        ),
        answered("c-2", "a1", "summer", at(JUNE_3, 10, 5), 20, disposition="callback"),
        busy("c-3", "a1", "spring", at(JUNE_3, 10, 10)),
        answered(
            "c-4", "a2", "spring", at(JUNE_3, 11), 90, recording=wav("c-4"), disposition="sale"
        ),
        answered("c-5", "a2", "summer", at(JUNE_3, 11, 30), 35, recording=wav("c-5")),
        answered("c-6", "a3", "spring", at(JUNE_3, 15), 50),
        answered("c-7", None, "spring", at(JUNE_3, 15, 30), 0),  # abandoned: no agent
        answered("c-8", "a1", "summer", at(JUNE_4, 10), 31),
        busy("c-9", "a2", "spring", at(JUNE_4, 11)),
        answered("c-10", "a2", "spring", at(JUNE_5, 23, 59), 33),
        answered("c-late", "a1", "spring", at(JUNE_6, 2), 70),
    ]


@pytest.fixture
def floor(tmp_path: Path) -> Floor:
    return make_floor(tmp_path, june_calls)


# -- cdr export ---------------------------------------------------------------------


def test_export_csv_holds_exactly_the_local_days_and_is_audited(
    floor: Floor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "june.csv"
    code = floor.cli(
        "cdr", "export", "--from", "2024-06-03", "--to", "2024-06-05",
        "--out", str(out), "--user", "li.na",
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with the BOM
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    expected = [r for r in floor.records if JUNE_3 <= local_day(r.created_at_ms) <= JUNE_5]
    assert [row["call_id"] for row in rows] == [r.call_id for r in expected]
    assert {"c-early", "c-10"} <= {row["call_id"] for row in rows}
    assert not {"c-before", "c-late"} & {row["call_id"] for row in rows}
    assert [row["number"] for row in rows] == [r.number for r in expected]
    assert f"exported {len(expected)} CDRs" in captured.out
    assert str(out) in captured.out
    assert captured.err == ""  # fewer than 1000 rows: no progress
    assert not list(tmp_path.glob(".*.part"))
    [entry] = floor.audit(AuditAction.EXPORT)
    assert entry.ok and entry.who == "li.na"
    assert "2024-06-03..2024-06-05" in entry.detail
    assert f"{len(expected)} rows" in entry.detail


def test_export_jsonl_to_stdout_filters_by_agent_and_masks_numbers(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    code = floor.cli(
        "cdr", "export", "--from", "2024-06-03", "--to", "2024-06-04",
        "--agent", "a2", "--format", "jsonl", "--mask-numbers",
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    documents = [json.loads(line) for line in captured.out.splitlines()]
    expected = [r for r in floor.on(JUNE_3) + floor.on(JUNE_4) if r.agent == "a2"]
    assert [d["call_id"] for d in documents] == [r.call_id for r in expected]
    assert [d["number"] for d in documents] == [mask_number(r.number) for r in expected]
    assert all("****" in d["number"] for d in documents)
    assert not any(r.number in captured.out for r in expected)
    assert f"exported {len(expected)} CDRs" in captured.err  # stdout is the data
    [entry] = floor.audit(AuditAction.EXPORT)
    assert "agent=a2" in entry.detail and "masked" in entry.detail


def test_export_filters_by_campaign(floor: Floor, capsys: pytest.CaptureFixture[str]) -> None:
    code = floor.cli(
        "cdr", "export", "--from", "2024-06-01", "--to", "2024-06-30",
        "--campaign", "summer", "--format", "jsonl",
    )  # fmt: skip
    assert code == 0
    ids = [json.loads(line)["call_id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == [r.call_id for r in floor.records if r.campaign == "summer"]


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (
            "2024-06-05",
            "2024-06-03",
            "the range 2024-06-05..2024-06-03 is empty: --to is before --from",
        ),
        ("2024-13-01", "2024-06-03", "--from 2024-13-01: not a valid date"),
        ("2024-06-03", "June 5", "--to 'June 5': not a date, expected YYYY-MM-DD"),
        ("20240603", "2024-06-05", "--from '20240603': not a date, expected YYYY-MM-DD"),
    ],
)
def test_export_refuses_a_bad_range(
    floor: Floor, capsys: pytest.CaptureFixture[str], first: str, last: str, message: str
) -> None:
    assert floor.cli("cdr", "export", "--from", first, "--to", last) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_export_refuses_an_unknown_agent_and_audits_the_attempt(
    floor: Floor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.csv"
    code = floor.cli(
        "cdr", "export", "--from", "2024-06-03", "--to", "2024-06-05",
        "--agent", "nobody", "--out", str(out), "--user", "li.na",
    )  # fmt: skip
    assert code == 2
    assert "unknown agent 'nobody'" in capsys.readouterr().err
    assert not out.exists()
    [entry] = floor.audit(AuditAction.EXPORT)
    assert not entry.ok and entry.who == "li.na"
    assert "unknown agent 'nobody'" in entry.detail


@pytest.mark.parametrize(
    ("where", "message"),
    [("missing/dir/x.csv", "cannot write: No such file or directory"), (".", "is a directory")],
)
def test_export_refuses_an_unwritable_out(
    floor: Floor, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, message: str
) -> None:
    out = tmp_path / where
    code = floor.cli(
        "cdr", "export", "--from", "2024-06-03", "--to", "2024-06-05", "--out", str(out)
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"--out {out}" in err and message in err
    assert not (tmp_path / "missing").exists()


def clone(db_file: Path, call_id: str, copies: int) -> None:
    """``copies`` more closed rows like ``call_id``'s, a second apart (one SQL statement)."""
    # sqlite3's own context manager commits but does not close; closing() does.
    with contextlib.closing(sqlite3.connect(db_file)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(cdrs)")]
        copied = [
            "printf('bulk-%05d', n.i)"
            if c == "call_id"
            else "created_at_ms + n.i * 1000"
            if c == "created_at_ms"
            else c
            for c in columns
        ]
        db.execute(
            f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO cdrs ({", ".join(columns)})
            SELECT {", ".join(copied)} FROM cdrs, n WHERE call_id = ?""",
            (copies, call_id),
        )
        db.commit()


def test_export_of_a_large_range_reports_progress_every_tenth(
    floor: Floor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clone(floor.db_file, "c-8", 1_499)  # June 4, a second apart: still June 4
    total = len(floor.on(JUNE_3)) + len(floor.on(JUNE_4)) + 1_499
    out = tmp_path / "big.jsonl"
    code = floor.cli(
        "cdr", "export", "--from", "2024-06-03", "--to", "2024-06-04",
        "--format", "jsonl", "--out", str(out),
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(out.read_bytes().splitlines()) == total
    # Not a terminal: a line each time another tenth is done. The export reports
    # every 1000 rows and at the end, so here at 1000 rows and at the last one.
    shown = f"{total:,}".replace(",", " ")
    tenths = 1000 * 10 // total
    assert captured.err.splitlines() == [
        f"[{'#' * tenths}{'.' * (10 - tenths)}] 1 000/{shown} CDRs",
        f"[##########] {shown}/{shown} CDRs",
    ]
    assert "\r" not in captured.err


def test_progress_redraws_one_line_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = ExportProgress(50_000, stream, tty=True)
    for rows in (1_000, 12_345, 50_000):
        progress(rows)
    progress.done()
    assert stream.getvalue() == (
        "\r[..........] 1 000/50 000 CDRs"
        "\r[##........] 12 345/50 000 CDRs"
        "\r[##########] 50 000/50 000 CDRs\n"
    )


def test_progress_off_a_terminal_writes_ten_lines_whatever_the_rate() -> None:
    stream = io.StringIO()
    progress = ExportProgress(20_000, stream, tty=False)
    for rows in range(1_000, 20_001, 1_000):
        progress(rows)
    progress.done()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "[#.........] 2 000/20 000 CDRs"
    assert lines[-1] == "[##########] 20 000/20 000 CDRs"


# -- cdr report ---------------------------------------------------------------------


def report_json(
    floor: Floor, *argv: str, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, object]]:
    assert floor.cli("cdr", "report", *argv, "--format", "json") == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_report_by_agent_counts_the_local_day(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report_json(floor, "--day", "2024-06-03", capsys=capsys)
    day = floor.on(JUNE_3)
    assert [row["group"] for row in rows] == ["a1", "a2", "a3", None]
    a1 = [r for r in day if r.agent == "a1"]
    assert rows[0]["dials"] == len(a1) == 4  # c-early counts: June 3 locally
    assert rows[0]["connects"] == sum(r.answered_at_ms is not None for r in a1)
    assert rows[0]["talk_ms_total"] == sum(r.talk_ms for r in a1)
    assert rows[0]["dispositions"] == {"callback": 1, "sale": 1}
    assert rows[3]["abandoned"] == 1  # c-7 reached no agent


def test_report_by_team_uses_the_configured_teams(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report_json(floor, "--day", "2024-06-03", "--by", "team", capsys=capsys)
    teams = {"a1": "north", "a2": "south"}
    day = floor.on(JUNE_3)
    expected: dict[str | None, int] = {
        team: sum(1 for r in day if teams.get(r.agent or "") == team) for team in ("north", "south")
    }
    expected[None] = len(day) - sum(expected.values())  # a3 has no team, c-7 no agent
    assert expected[None] == 2
    assert {row["group"]: row["dials"] for row in rows} == expected


def test_report_by_campaign_over_a_week_and_a_month(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    week = report_json(
        floor, "--day", "2024-06-05", "--period", "week", "--by", "campaign", capsys=capsys
    )
    # The week of Wednesday June 5 runs Monday June 3 to Sunday June 9: c-before is out.
    in_week = [r for r in floor.records if JUNE_3 <= local_day(r.created_at_ms) <= JUNE_6]
    assert {row["group"]: row["dials"] for row in week} == {
        c: sum(r.campaign == c for r in in_week) for c in ("spring", "summer")
    }
    month = report_json(floor, "--day", "2024-06-20", "--period", "month", capsys=capsys)
    assert sum(int(str(row["dials"])) for row in month) == len(floor.records)


def test_report_table_is_aligned_with_a_total(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.cli("cdr", "report", "--day", "2024-06-03") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "CDRs by agent, day 2024-06-03 (Asia/Shanghai)"
    header, _rule, *body = lines[1:]
    assert header.split()[:3] == ["agent", "dials", "connects"]
    groups = [line.split()[0] for line in body if not line.startswith("-")]
    assert groups == ["a1", "a2", "a3", "(no", "total"]
    total = next(line for line in body if line.startswith("total"))
    assert total.split()[1] == str(len(floor.on(JUNE_3)))
    # Numbers are right-aligned: each row's dials column ends where the header's does.
    end = header.index("dials") + len("dials")
    assert all(line[end - 1].isdigit() and line[end] == " " for line in body if line[0] != "-")


def test_report_csv_is_excel_ready(floor: Floor, capsys: pytest.CaptureFixture[str]) -> None:
    assert floor.cli("cdr", "report", "--day", "2024-06-04", "--format", "csv") == 0
    out = capsys.readouterr().out
    assert out.startswith("\ufeffgroup,dials")
    rows = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))
    assert {row["group"]: int(row["dials"]) for row in rows} == {"a1": 1, "a2": 1}


def test_report_refuses_a_bad_day(floor: Floor, capsys: pytest.CaptureFixture[str]) -> None:
    assert floor.cli("cdr", "report", "--day", "2024-02-30") == 2
    assert "--day 2024-02-30: not a valid date" in capsys.readouterr().err


# -- recordings ---------------------------------------------------------------------


def test_index_indexes_each_recording_once_with_its_campaigns_retention(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    before = now_ms()
    assert floor.cli("recordings", "index") == 0
    after = now_ms()
    recorded = floor.recorded()
    assert capsys.readouterr().out.strip() == f"indexed {len(recorded)} recordings"
    for record in recorded:
        found = floor.recording(record.call_id)
        assert record.recording is not None
        assert found.sha256 == record.recording.sha256
        days = 90 if record.campaign == "spring" else 30  # summer: cdr.retention_days
        assert before <= found.purge_after_ms - days * DAY_MS <= after
    assert floor.cli("recordings", "index") == 0
    assert capsys.readouterr().out.strip() == "indexed 0 recordings"


def test_verify_prints_the_path_and_catches_a_changed_file(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.cli("recordings", "index") == 0
    [c1] = [r for r in floor.records if r.call_id == "c-1"]
    assert c1.recording is not None
    capsys.readouterr()
    assert floor.cli("recordings", "verify", "c-1", "--user", "qa.wang") == 0
    assert capsys.readouterr().out.strip() == f"{c1.recording.path}: ok"

    path = Path(c1.recording.path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert floor.cli("recordings", "verify", "c-1", "--user", "qa.wang") == 1
    err = capsys.readouterr().err
    assert (
        f"recording of call c-1 changed on disk: expected {c1.recording.sha256}, "
        f"found {hashlib.sha256(data).hexdigest()}"
    ) in err
    plays = floor.audit(AuditAction.PLAY)
    assert [(e.who, e.call_id, e.ok) for e in plays] == [
        ("qa.wang", "c-1", True),
        ("qa.wang", "c-1", False),
    ]


def test_verify_of_a_call_without_a_recording_is_bad_input(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.cli("recordings", "verify", "c-2") == 2
    assert "no recording is indexed for call 'c-2'" in capsys.readouterr().err


def test_verify_of_a_deleted_file_fails(floor: Floor, capsys: pytest.CaptureFixture[str]) -> None:
    assert floor.cli("recordings", "index") == 0
    [c4] = [r for r in floor.records if r.call_id == "c-4"]
    assert c4.recording is not None
    Path(c4.recording.path).unlink()
    assert floor.cli("recordings", "verify", "c-4") == 1
    assert "the file is gone" in capsys.readouterr().err


def test_check_reports_stray_files_and_lost_files(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.cli("recordings", "index") == 0
    assert floor.cli("recordings", "check") == 0
    assert "every file is indexed" in capsys.readouterr().out
    stray = floor.recordings / "2024-06" / "stray.wav"
    write_wav(stray)
    [c5] = [r for r in floor.records if r.call_id == "c-5"]
    assert c5.recording is not None
    Path(c5.recording.path).unlink()
    assert floor.cli("recordings", "check") == 1
    assert capsys.readouterr().out.splitlines() == [
        "files without rows (1):",
        f"  {stray}",
        "rows without files (1):",
        "  c-5",
    ]


def test_hold_and_release_are_audited_and_refused_when_they_make_no_sense(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    assert floor.cli("recordings", "index") == 0
    capsys.readouterr()
    code = floor.cli("recordings", "hold", "c-1", "--reason", "complaint #42", "--user", "legal")
    assert code == 0
    assert capsys.readouterr().out.strip() == "call c-1: on legal hold by legal: complaint #42"
    assert floor.recording("c-1").legal_hold
    assert floor.cli("recordings", "release", "c-1", "--user", "legal") == 0
    assert "c-1: legal hold released by legal" in capsys.readouterr().out
    assert not floor.recording("c-1").legal_hold

    assert floor.cli("recordings", "release", "c-1", "--user", "legal") == 2
    assert "the recording is not on hold" in capsys.readouterr().err
    assert floor.cli("recordings", "hold", "c-2", "--reason", "x") == 2
    assert "no recording is indexed for this call" in capsys.readouterr().err
    assert floor.cli("recordings", "hold", "c-1", "--reason", "  ") == 2
    assert "needs who places it and a reason" in capsys.readouterr().err
    assert floor.cli("recordings", "hold", "c-1", "--reason", "x", "--user", "") == 2
    assert "--user must name who acts" in capsys.readouterr().err
    assert [(e.action, e.ok) for e in floor.audit(AuditAction.HOLD)] == [
        (AuditAction.HOLD, True),
        (AuditAction.HOLD, False),
    ]
    assert [e.ok for e in floor.audit(AuditAction.RELEASE)] == [True, False]


def test_purge_dry_run_changes_nothing_and_purge_follows_it(
    floor: Floor, capsys: pytest.CaptureFixture[str]
) -> None:
    by_id = {r.call_id: r for r in floor.recorded()}
    # Indexed in June 2024 with 30 days: long past their date now.
    floor.index_at([by_id["c-early"], by_id["c-1"], by_id["c-4"]], CLOSED_AT)
    assert floor.cli("recordings", "index") == 0  # c-5, from now on: not due
    assert floor.cli("recordings", "hold", "c-4", "--reason", "dispute") == 0
    gone = by_id["c-early"].recording
    assert gone is not None
    Path(gone.path).unlink()
    c1 = by_id["c-1"].recording
    assert c1 is not None
    capsys.readouterr()

    assert floor.cli("recordings", "purge", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines() == [
        "dry run: nothing deleted",
        "would delete (1):",
        f"  c-1  {c1.path}",
        "kept by a legal hold (1):",
        "  c-4",
        "already gone (1):",
        "  c-early",
    ]
    assert Path(c1.path).exists()
    assert floor.audit(AuditAction.PURGE) == []

    assert floor.cli("recordings", "purge") == 0
    assert capsys.readouterr().out.splitlines() == [
        "deleted (1):",
        "  c-1",
        "kept by a legal hold (1):",
        "  c-4",
        "already gone (1):",
        "  c-early",
        "failed, left for the next purge (0):",
    ]
    assert not Path(c1.path).exists()
    assert all(
        Path(str(r.recording.path)).exists() for r in (by_id["c-4"], by_id["c-5"]) if r.recording
    )
    assert {e.call_id for e in floor.audit(AuditAction.PURGE)} == {"c-1", "c-early"}


# -- qa sample ----------------------------------------------------------------------


def qa_calls(recordings: Path) -> list[CallRecord]:
    """A busy day for a1 (7 answered calls) and a2 (2), one no-agent call, one busy."""
    day = [answered(f"q1-{i}", "a1", "spring", at(JUNE_3, 9, i), 30 + i) for i in range(7)]
    day += [answered(f"q2-{i}", "a2", "spring", at(JUNE_3, 14, i), 40 + i) for i in range(2)]
    day += [answered("q-abandoned", None, "spring", at(JUNE_3, 16), 0)]
    day += [busy("q-busy", "a1", "spring", at(JUNE_3, 17))]
    day += [answered("q-next-day", "a1", "spring", at(JUNE_4, 9), 50)]
    return day


def test_qa_sample_picks_per_agent_reproducibly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    floor = make_floor(tmp_path, qa_calls)
    assert floor.cli("qa", "sample", "--day", "2024-06-03", "--seed", "7") == 0
    out = capsys.readouterr().out
    title, header, _rule, *rows = out.splitlines()
    assert "seed 7" in title and "Asia/Shanghai" in title
    assert header.split() == ["call", "id", "agent", "talk", "s"]
    picked = [row.split() for row in rows]
    by_id = {r.call_id: r for r in floor.records}
    for call_id, agent, talk in picked:
        assert by_id[call_id].agent == agent
        assert float(talk) == by_id[call_id].talk_ms / 1000
        assert local_day(by_id[call_id].created_at_ms) == JUNE_3
    # rate 0.5, minimum 1: ceil(0.5 * 7) = 4 of a1's, ceil(0.5 * 2) = 1 of a2's.
    counts = {agent: sum(row[1] == agent for row in picked) for agent in ("a1", "a2")}
    assert counts == {"a1": math.ceil(0.5 * 7), "a2": math.ceil(0.5 * 2)}
    assert f"{len(picked)} of 9 answered calls" in title

    assert floor.cli("qa", "sample", "--day", "2024-06-03", "--seed", "7") == 0
    assert capsys.readouterr().out == out
    assert floor.cli("qa", "sample", "--day", "2024-06-03") == 0
    default = capsys.readouterr().out
    assert "seed 20240603" in default
    assert floor.cli("qa", "sample", "--day", "2024-06-03") == 0
    assert capsys.readouterr().out == default


def test_qa_sample_of_a_quiet_day(floor: Floor, capsys: pytest.CaptureFixture[str]) -> None:
    assert floor.cli("qa", "sample", "--day", "2024-07-01") == 0
    assert "0 of 0 answered calls" in capsys.readouterr().out


# -- the console ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["cdr", "--help"],
        ["cdr", "export", "--help"],
        ["cdr", "report", "--help"],
        ["recordings", "--help"],
        ["recordings", "purge", "--help"],
        ["qa", "sample", "--help"],
    ],
)
def test_every_new_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: dialer" in capsys.readouterr().out


def test_a_bad_config_is_reported_before_any_database_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[database]\nurl = "mysql://x"\n[cdr]\nretention_days = 7\n')
    assert main(["recordings", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "database.url" in err and "cdr.retention_days" in err


def test_the_edge_calls_are_on_the_other_side_of_a_utc_day() -> None:
    # Guards the fixture: otherwise the local-day tests would pass on UTC days too.
    assert datetime.fromtimestamp(at(JUNE_3, 7) / 1000, ZoneInfo("UTC")).date() == JUNE_2
    assert datetime.fromtimestamp(at(JUNE_6, 2) / 1000, ZoneInfo("UTC")).date() == JUNE_5
