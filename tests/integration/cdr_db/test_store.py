"""CdrStore on real SQLite and PostgreSQL databases, migrated by the Alembic history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from peers.postgres import PostgresServer
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from cdr.record import AnsweredBy, CallRecord, Outcome, RecordingRef
from cdr.store import INTERRUPTED_REASON, CdrStore, QueryError, RecordError, UnknownCdrError
from cdr.tables import CdrStatus
from dialer.store.database import Database

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., CallRecord]
T0 = 1_717_383_600_000
NOW = T0 + 100_000

RECORDING = RecordingRef(
    path="2024/06/03/c1.wav",
    sha256="ab" * 32,
    duration_ms=60_000,
    size_bytes=1_920_044,
    agent_speech_ms=21_000,
    customer_speech_ms=30_500,
    repaired=True,
)


async def collect(store: CdrStore, start: int, end: int, **filters: Any) -> list[CallRecord]:
    return [record async for record in store.search(start, end, **filters)]


async def test_open_update_close_and_a_second_close_changes_nothing(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions, node="node-a")
    ringing = make_record(
        "c1", outcome=Outcome.NO_ANSWER, answered_at_ms=None, bridged_at_ms=None, ended_at_ms=None
    )
    assert await store.status("c1") is None
    assert await store.open(ringing, T0) is True
    assert await store.status("c1") is CdrStatus.OPEN
    assert await store.get("c1") == ringing

    talking = replace(ringing, outcome=Outcome.ANSWERED, answered_at_ms=T0 + 4_000)
    assert await store.update_open(talking, T0 + 5_000) is True
    assert await store.get("c1") == talking

    finished = make_record("c1", recording=RECORDING, disposition="sale", wrap_up_ms=9_000)
    assert await store.close(finished, NOW) is True
    assert await store.status("c1") is CdrStatus.CLOSED
    assert await store.get("c1") == finished

    # Nothing touches a closed row again: not a second close, an update or an open.
    assert await store.close(replace(finished, talk_ms=1, end_reason="again"), NOW + 1) is False
    assert await store.update_open(talking, NOW + 2) is False
    assert await store.open(ringing, NOW + 3) is False
    assert await store.get("c1") == finished


async def test_open_is_idempotent_and_keeps_the_first_snapshot(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    first = make_record("c1", ended_at_ms=None)
    assert await store.open(first, T0) is True
    assert await store.open(replace(first, agent="a2"), T0 + 1) is False
    assert await store.get("c1") == first
    assert await store.update_open(make_record("nobody"), T0) is False
    assert await store.get("nobody") is None


async def test_a_close_needs_no_open_row(cdr_sessions: Sessions, make_record: Make) -> None:
    store = CdrStore(cdr_sessions)
    record = make_record("replayed", answered_by=AnsweredBy.HUMAN)
    assert await store.close(record, NOW) is True
    assert await store.get("replayed") == record
    assert await store.close(record, NOW + 1) is False


async def test_a_record_that_does_not_fit_is_refused_naming_every_problem(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    bad = make_record("x" * 65, talk_ms=-1, end_reason="bye\x00", sip_status=2**40)
    with pytest.raises(RecordError) as caught:
        await store.close(bad, NOW)
    message = str(caught.value)
    assert "call_id is 65 characters long, at most 64 fit" in message
    assert "talk_ms must be between 0 and 2**63-1, got -1" in message
    assert "end_reason contains a NUL character" in message
    assert "sip_status must fit in 32 bits" in message
    with pytest.raises(RecordError, match="now_ms must be an int"):
        await store.open(make_record("ok"), -5)
    assert await store.known_agents() == set()


async def test_two_closers_of_each_call_exactly_one_wins(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    ids = [f"c{i:02d}" for i in range(20)]
    for call_id in ids[::2]:  # half of them have an open row, half are replays
        await store.open(make_record(call_id, ended_at_ms=None), T0)
    first = {call_id: make_record(call_id, end_reason="first") for call_id in ids}
    second = {call_id: make_record(call_id, end_reason="second") for call_id in ids}
    results = await asyncio.gather(
        *(store.close(records[call_id], NOW) for call_id in ids for records in (first, second))
    )
    by_call = {call_id: results[2 * i : 2 * i + 2] for i, call_id in enumerate(ids)}
    for call_id, (won_first, won_second) in by_call.items():
        assert [won_first, won_second].count(True) == 1, call_id
        winner = first if won_first else second
        assert await store.get(call_id) == winner[call_id]


async def _waiting_on_locks(watcher: Database, database: str) -> int:
    async with watcher.engine.connect() as connection:
        found = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = :name AND wait_event_type = 'Lock'"
            ),
            {"name": database},
        )
    return int(found or 0)


async def test_concurrent_closers_on_postgresql_wait_and_the_second_sees_closed(
    postgres: PostgresServer, make_record: Make
) -> None:
    name = f"cdr_{uuid.uuid4().hex}"
    url = await postgres.create_database(name)
    async with Database(url) as database, Database(postgres.url()) as watcher:
        await database.upgrade()
        store = CdrStore(async_sessionmaker(database.engine, expire_on_commit=False))
        await store.open(make_record("c1", ended_at_ms=None), T0)
        a, b = make_record("c1", end_reason="a"), make_record("c1", end_reason="b")
        # A third connection holds the row, so both closers are in the database,
        # blocked on the same row, before either can decide.
        async with database.engine.connect() as holder:
            await holder.execute(text("SELECT 1 FROM cdrs WHERE call_id = 'c1' FOR UPDATE"))
            closers = [asyncio.create_task(store.close(r, NOW)) for r in (a, b)]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while await _waiting_on_locks(watcher, name) < 2:
                assert loop.time() < deadline, "the closers never blocked on the row"
                assert not any(task.done() for task in closers)
                await asyncio.sleep(0.02)
            await holder.commit()
        results = await asyncio.gather(*closers)
        assert sorted(results) == [False, True]
        assert await store.get("c1") == (a if results[0] else b)


async def test_close_interrupted_closes_this_nodes_open_rows_with_what_is_known(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    here, there = CdrStore(cdr_sessions, node="node-1"), CdrStore(cdr_sessions, node="node-2")
    ringing = make_record("ringing", ended_at_ms=None, end_reason="", hangup_by=None)
    await here.open(ringing, T0)
    await here.update_open(replace(ringing, ringing_at_ms=T0 + 700), T0 + 2_000)
    wrapping = make_record("wrapping", ended_at_ms=T0 + 50_000)  # ended, wrap-up not done
    await here.open(wrapping, T0 + 60_000)
    await there.open(make_record("elsewhere", ended_at_ms=None), T0)
    await here.close(make_record("done"), T0 + 70_000)

    assert await here.close_interrupted(NOW) == ["ringing", "wrapping"]

    ringing_now = await here.get("ringing")
    assert ringing_now == replace(
        ringing,
        ringing_at_ms=T0 + 700,
        outcome=Outcome.INTERRUPTED,
        ended_at_ms=T0 + 2_000,  # the last sign of life
        end_reason=INTERRUPTED_REASON,
        hangup_by="system",
    )
    wrapping_now = await here.get("wrapping")
    assert wrapping_now is not None
    assert (wrapping_now.outcome, wrapping_now.ended_at_ms) == (Outcome.INTERRUPTED, T0 + 50_000)
    assert wrapping_now.end_reason == "bye"  # what the snapshot knew stays
    assert await here.get("done") == make_record("done")
    assert await there.status("elsewhere") is CdrStatus.OPEN
    # Interrupted rows are closed: a late record for them changes nothing.
    assert await here.close(make_record("ringing"), NOW + 1) is False

    assert await here.close_interrupted(NOW + 2, node=None) == ["elsewhere"]
    assert await here.close_interrupted(NOW + 3, node=None) == []


def _sample(make_record: Make) -> list[CallRecord]:
    agents = ["a1", "a2", "a3"]
    campaigns = ["spring", "autumn"]
    outcomes = [Outcome.ANSWERED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.ANSWERED]
    records = []
    for i in range(24):
        outcome = outcomes[i % len(outcomes)]
        records.append(
            make_record(
                f"s{i:02d}",
                agent=agents[i % 3],
                campaign=campaigns[i % 2],
                outcome=outcome,
                # Pairs share an instant: call_id breaks the tie.
                created_at_ms=T0 + (i // 2) * 60_000,
                talk_ms=(i * 7_000) if outcome is Outcome.ANSWERED else 0,
                effective=outcome is Outcome.ANSWERED and i * 7_000 >= 30_000,
            )
        )
    return records


async def test_search_filters_and_orders_like_the_records_say(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions, batch_size=5)
    records = _sample(make_record)
    for record in reversed(records):  # insertion order must not matter
        assert await store.close(record, NOW)
    await store.open(make_record("still-open", agent="a9", created_at_ms=T0 + 1), NOW)
    start, end = T0 + 60_000, T0 + 10 * 60_000

    cases: list[tuple[dict[str, Any], Callable[[CallRecord], bool]]] = [
        ({}, lambda r: True),
        ({"agent": "a2"}, lambda r: r.agent == "a2"),
        ({"campaign": "autumn"}, lambda r: r.campaign == "autumn"),
        ({"outcome": Outcome.BUSY}, lambda r: r.outcome is Outcome.BUSY),
        ({"outcome": "answered"}, lambda r: r.outcome is Outcome.ANSWERED),
        ({"effective": True}, lambda r: r.effective),
        ({"effective": False}, lambda r: not r.effective),
        ({"min_talk_ms": 60_000}, lambda r: r.talk_ms >= 60_000),
        (
            {"agent": "a1", "campaign": "spring", "effective": True},
            lambda r: (r.agent, r.campaign, r.effective) == ("a1", "spring", True),
        ),
    ]
    for filters, keep in cases:
        expected = sorted(
            (r for r in records if start <= r.created_at_ms < end and keep(r)),
            key=lambda r: (r.created_at_ms, r.call_id),
        )
        assert expected, filters  # every case selects something
        assert await collect(store, start, end, **filters) == expected, filters
        assert await store.count(start, end, **filters) == len(expected), filters
        assert await collect(store, start, end, limit=3, **filters) == expected[:3], filters

    # The open row is not a CDR yet, though its agent is known.
    assert await store.count(T0, T0 + 10**9, agent="a9") == 0
    assert await store.known_agents() == {"a1", "a2", "a3", "a9"}


async def test_search_streams_in_batches_without_holding_a_connection(
    cdr_database: Database, cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions, batch_size=3)
    records = [make_record(f"b{i:02d}", created_at_ms=T0 + i) for i in range(10)]
    for record in records:
        await store.close(record, NOW)
    batches: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "ORDER BY" in statement:
            batches.append(statement)

    event.listen(cdr_database.engine.sync_engine, "before_cursor_execute", seen)
    pool = cdr_database.engine.pool
    assert isinstance(pool, QueuePool)
    got: list[CallRecord] = []
    checked_out: list[int] = []
    async for record in store.search(T0, T0 + 100):
        got.append(record)
        checked_out.append(pool.checkedout())
    assert got == records
    assert len(batches) == 4  # 3 + 3 + 3 + 1
    assert set(checked_out) == {0}  # between batches, no connection is held

    batches.clear()
    assert await collect(store, T0, T0 + 100, limit=6) == records[:6]
    assert len(batches) == 2


async def test_bad_ranges_filters_and_unknown_agents_are_named(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    await store.close(make_record("c1", agent="alice"), NOW)
    with pytest.raises(QueryError, match=r"search range \[500, 500\) is empty"):
        store.search(500, 500)
    with pytest.raises(QueryError, match=r"search range \[900, 100\) is empty"):
        await store.count(900, 100)
    with pytest.raises(QueryError) as caught:
        store.search(0, 10, outcome="lost", min_talk_ms=-1, effective=1)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "outcome must be one of answered, busy" in message
    assert "min_talk_ms must be an integer >= 0" in message
    assert "effective must be a bool" in message
    with pytest.raises(QueryError, match="unknown agent 'bob'"):
        await collect(store, T0, NOW, agent="bob")
    with pytest.raises(QueryError, match="unknown agent 'bob'"):
        await store.count(T0, NOW, agent="bob")
    # A known agent with nothing in the range is simply an empty answer.
    assert await collect(store, NOW, NOW + 1, agent="alice") == []


async def test_qa_score_is_set_later_and_survives_the_close(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    await store.open(make_record("c1", ended_at_ms=None), T0)
    await store.set_qa_score("c1", 87.5)
    assert await store.close(make_record("c1"), NOW)
    assert await store.qa_score("c1") == 87.5
    await store.set_qa_score("c1", 90)
    assert await store.qa_score("c1") == 90.0
    with pytest.raises(UnknownCdrError, match="no CDR for call 'nope'"):
        await store.set_qa_score("nope", 1.0)
    with pytest.raises(ValueError, match="finite"):
        await store.set_qa_score("c1", float("nan"))
    assert await store.qa_score("c1") == 90.0


async def test_recovery_spares_the_calls_of_the_run_doing_it(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    await store.open(make_record("before-crash", ended_at_ms=None), T0)
    await store.open(make_record("this-run", ended_at_ms=None), T0 + 10_000)
    assert await store.close_interrupted(NOW, opened_before_ms=T0 + 10_000) == ["before-crash"]
    assert await store.status("this-run") is CdrStatus.OPEN


async def test_a_repaired_recording_links_to_its_row_or_makes_one(
    cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    await store.open(make_record("known", ended_at_ms=None, recording=None), T0)
    await store.close_interrupted(NOW)
    ref = RecordingRef(
        path="/r/known.wav",
        sha256="ab" * 32,
        duration_ms=42_000,
        size_bytes=672_044,
        agent_speech_ms=10_000,
        customer_speech_ms=12_000,
        repaired=True,
    )
    assert await store.attach_recording("known", ref, NOW + 1, at_ms=T0 + 50_000)
    known = await store.get("known")
    assert known is not None
    assert (known.outcome, known.recording) == (Outcome.INTERRUPTED, ref)
    # No open row ever reached the database: the recording is the only witness.
    orphan = replace(ref, path="/r/orphan.wav")
    assert await store.attach_recording("orphan", orphan, NOW + 2, at_ms=T0 + 50_000)
    made = await store.get("orphan")
    assert made is not None
    assert (made.outcome, made.recording, made.created_at_ms) == (
        Outcome.INTERRUPTED,
        orphan,
        T0 + 8_000,
    )
    assert await store.status("orphan") is CdrStatus.CLOSED
