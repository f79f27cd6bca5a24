"""The CDR journal on a real file, replayed into real SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdr.journal import (
    CdrJournal,
    JournalError,
    ReplayReport,
    record_from_json,
    record_to_json,
)
from cdr.record import AnsweredBy, CallRecord, Outcome, RecordingRef
from cdr.store import CdrStore

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., CallRecord]
NOW = 1_717_383_700_000

texts = st.text(max_size=20)
maybe_text = st.none() | texts
ints = st.integers(min_value=-(2**70), max_value=2**70)
maybe_int = st.none() | ints
recordings = st.builds(
    RecordingRef,
    path=texts,
    sha256=texts,
    duration_ms=ints,
    size_bytes=ints,
    agent_speech_ms=ints,
    customer_speech_ms=ints,
    repaired=st.booleans(),
)
call_records = st.builds(
    CallRecord,
    call_id=texts,
    campaign=maybe_text,
    lead_id=maybe_text,
    agent=maybe_text,
    direction=texts,
    mode=maybe_text,
    number=texts,
    trunk=maybe_text,
    caller_id=maybe_text,
    attempt_of=maybe_text,
    created_at_ms=ints,
    ringing_at_ms=maybe_int,
    answered_at_ms=maybe_int,
    bridged_at_ms=maybe_int,
    ended_at_ms=maybe_int,
    ring_ms=ints,
    talk_ms=ints,
    billable_ms=ints,
    held_ms=ints,
    outcome=st.sampled_from(Outcome),
    sip_status=maybe_int,
    q850_cause=maybe_int,
    hangup_by=maybe_text,
    end_reason=texts,
    answered_by=st.sampled_from(AnsweredBy),
    abandoned=st.booleans(),
    media_timeout_leg=maybe_text,
    wrap_up_ms=maybe_int,
    disposition=maybe_text,
    callback_at_ms=maybe_int,
    effective=st.booleans(),
    effective_rule=texts,
    recording=st.none() | recordings,
    recording_error=maybe_text,
)


@settings(max_examples=200, deadline=None)
@given(record=call_records)
def test_a_record_survives_json_exactly(record: CallRecord) -> None:
    line = record_to_json(record)
    assert "\n" not in line
    line.encode("ascii")  # whatever the text, the line is plain ASCII
    back = record_from_json(line)
    assert back == record
    assert type(back.outcome) is Outcome and type(back.answered_by) is AnsweredBy


def test_a_bad_line_names_every_problem(make_record: Make) -> None:
    body = json.loads(record_to_json(make_record("c1", recording=None)))
    del body["call_id"]
    body["talk_ms"] = True
    body["outcome"] = "lost"
    body["colour"] = "red"
    body["recording"] = {"path": 3}
    with pytest.raises(JournalError) as caught:
        record_from_json(json.dumps(body))
    message = str(caught.value)
    for expected in (
        "missing field call_id",
        "talk_ms must be int, got bool True",
        "outcome must be one of answered, busy",
        "unknown field(s) colour",
        "recording.path must be str, got int 3",
        "missing field recording.sha256",
    ):
        assert expected in message
    with pytest.raises(JournalError, match="unsupported record schema version 2"):
        record_from_json(json.dumps({**body, "v": 2}))
    with pytest.raises(JournalError, match="not JSON"):
        record_from_json("{")
    with pytest.raises(JournalError, match="must be a JSON object, got list"):
        record_from_json("[]")


async def test_appends_are_lines_read_back_in_order(tmp_path: Path, make_record: Make) -> None:
    journal = CdrJournal(tmp_path / "cdr.jsonl")
    assert journal.records().records == ()
    records = [make_record(f"c{i:02d}", talk_ms=i) for i in range(20)]
    for record in records[:5]:
        await journal.append(record)
    await asyncio.gather(*(journal.append(record) for record in records[5:]))
    data = (tmp_path / "cdr.jsonl").read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 20
    read = journal.records()
    assert read.torn == 0
    assert read.records[:5] == tuple(records[:5])
    assert sorted(read.records, key=lambda r: r.call_id) == records


async def test_a_torn_last_line_is_skipped_counted_and_cut_before_the_next_append(
    tmp_path: Path, make_record: Make
) -> None:
    path = tmp_path / "cdr.jsonl"
    first = CdrJournal(path)
    for i in range(3):
        await first.append(make_record(f"c{i}"))
    # The process died halfway through writing the fourth line.
    whole = record_to_json(make_record("c3")).encode()
    with path.open("ab") as file:
        file.write(whole[: len(whole) // 2])
    after_crash = CdrJournal(path)
    read = after_crash.records()
    assert [r.call_id for r in read.records] == ["c0", "c1", "c2"]
    assert read.torn == 1

    await after_crash.append(make_record("c4"))  # must not glue onto the torn half
    read = after_crash.records()
    assert [r.call_id for r in read.records] == ["c0", "c1", "c2", "c4"]
    assert read.torn == 0
    assert path.read_bytes().count(b"\n") == 4


async def test_a_whole_line_missing_only_its_newline_is_kept(
    tmp_path: Path, make_record: Make
) -> None:
    path = tmp_path / "cdr.jsonl"
    path.write_text(record_to_json(make_record("c0")) + "\n" + record_to_json(make_record("c1")))
    journal = CdrJournal(path)
    assert [r.call_id for r in journal.records().records] == ["c0", "c1"]
    await journal.append(make_record("c2"))
    assert [r.call_id for r in journal.records().records] == ["c0", "c1", "c2"]


def test_damage_inside_the_file_is_an_error_naming_the_lines(
    tmp_path: Path, make_record: Make
) -> None:
    path = tmp_path / "cdr.jsonl"
    good = record_to_json(make_record("c0"))
    path.write_text(f'{good}\nnot json\n{good}\n{{"v": 1}}\n{good}\n')
    with pytest.raises(JournalError) as caught:
        CdrJournal(path).records()
    message = str(caught.value)
    assert "line 2: not JSON" in message
    assert "line 4: bad record: missing field call_id" in message
    assert "line 1:" not in message and "line 3:" not in message


async def test_replay_closes_everything_then_empties_the_file_by_rename(
    tmp_path: Path, cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    path = tmp_path / "cdr.jsonl"
    journal = CdrJournal(path)
    assert await journal.replay(store, now_ms=NOW) == ReplayReport(0, 0, 0)
    assert not path.exists()  # nothing to replay: no file is made

    records = [make_record(f"c{i}") for i in range(4)]
    await store.close(records[0], NOW)  # closed before the outage was noticed
    for record in records:
        await journal.append(record)
    with path.open("ab") as file:
        file.write(b'{"v":1,"call_')  # and a torn tail
    inode = path.stat().st_ino

    report = await CdrJournal(path).replay(store, now_ms=NOW + 1)
    assert report == ReplayReport(replayed=3, already_closed=1, torn=1)
    assert path.read_bytes() == b""
    assert path.stat().st_ino != inode  # replaced, not truncated in place
    assert not (tmp_path / "cdr.jsonl.empty").exists()  # no spare file left behind
    for record in records:
        assert await store.get(record.call_id) == record
    assert await store.count(records[0].created_at_ms, records[0].created_at_ms + 1) == 4


class ProcessKilledError(Exception):
    """Stands for the process dying: nothing after it runs."""


class CrashingStore:
    """The real store, but the process 'dies' after ``survive`` closes."""

    def __init__(self, store: CdrStore, survive: int) -> None:
        self.store = store
        self.left = survive

    async def close(self, record: CallRecord, now_ms: int) -> bool:
        if self.left == 0:
            raise ProcessKilledError("killed mid-replay")
        self.left -= 1
        return await self.store.close(record, now_ms)


async def test_a_crash_in_the_middle_of_a_replay_is_safe_to_replay_again(
    tmp_path: Path, cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    path = tmp_path / "cdr.jsonl"
    records = [make_record(f"c{i}", talk_ms=1000 * i) for i in range(6)]
    journal = CdrJournal(path)
    for record in records:
        await journal.append(record)
    before = path.read_bytes()

    with pytest.raises(ProcessKilledError):
        await journal.replay(CrashingStore(store, survive=2), now_ms=NOW)
    assert path.read_bytes() == before  # the journal still holds everything
    assert [await store.get(r.call_id) for r in records[:2]] == records[:2]
    assert await store.get(records[2].call_id) is None

    report = await CdrJournal(path).replay(store, now_ms=NOW + 1)
    assert report == ReplayReport(replayed=4, already_closed=2, torn=0)
    assert path.read_bytes() == b""
    start = records[0].created_at_ms
    assert await store.count(start, start + 1) == len(records)
    assert [await store.get(r.call_id) for r in records] == records
