"""CdrSink against real databases, including a PostgreSQL that is stopped and restarted."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from peers.postgres import PostgresServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdr.journal import CdrJournal, ReplayReport
from cdr.record import CallRecord, Outcome
from cdr.sink import CdrSink, SinkState
from cdr.store import CdrStore
from cdr.tables import CdrStatus
from dialer.store.database import Database

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., CallRecord]
NOW = 1_717_383_700_000


def fast_sink(store: CdrStore, journal: CdrJournal, **options: Any) -> CdrSink:
    """A sink that retries every few tens of milliseconds, as a test can afford to wait."""
    return CdrSink(store, journal, retry_s=0.05, max_retry_s=0.4, timeout_s=5.0, **options)


def ticking_clock() -> Callable[[], int]:
    ticks = itertools.count(NOW, 1_000)
    return lambda: next(ticks)


async def test_updates_and_the_finished_record_reach_the_store_in_order(
    tmp_path: Path, cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    journal = CdrJournal(tmp_path / "cdr.jsonl")
    ringing = make_record("c1", outcome=Outcome.NO_ANSWER, ended_at_ms=None, talk_ms=0)
    talking = replace(ringing, outcome=Outcome.ANSWERED, talk_ms=1_000)
    finished = make_record("c1", talk_ms=61_000)
    async with fast_sink(store, journal, clock=ticking_clock()) as sink:
        sink.opened(ringing)
        sink.progressed(talking)
        await sink.drain()
        assert await store.status("c1") is CdrStatus.OPEN
        assert await store.get("c1") == talking
        sink.finished(finished)
        sink.progressed(talking)  # late: a closed row is never touched again
        await sink.drain()
        assert (sink.state, sink.backlog, sink.dropped) == (SinkState.CONNECTED, 0, 0)
    assert await store.get("c1") == finished
    assert journal.records().records == ()


async def test_a_record_the_store_can_never_take_is_kept_aside_not_lost(
    tmp_path: Path, cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    journal = CdrJournal(tmp_path / "cdr.jsonl")
    too_long = make_record("x" * 100)
    async with fast_sink(store, journal) as sink:
        sink.finished(too_long)  # never raises
        sink.finished(make_record("fine"))
        await sink.drain()
        assert (sink.rejected, sink.state, sink.backlog) == (1, SinkState.CONNECTED, 0)
    assert await store.get("fine") == make_record("fine")
    assert CdrJournal(tmp_path / "cdr.jsonl.rejected").records().records == (too_long,)
    assert journal.records().records == ()


async def test_a_journal_left_by_an_earlier_run_is_replayed_first(
    tmp_path: Path, cdr_sessions: Sessions, make_record: Make
) -> None:
    store = CdrStore(cdr_sessions)
    path = tmp_path / "cdr.jsonl"
    earlier = CdrJournal(path)
    left = [make_record(f"old{i}") for i in range(3)]
    for record in left:
        await earlier.append(record)
    journal = CdrJournal(path)
    async with fast_sink(store, journal) as sink:
        assert (sink.state, sink.backlog) == (SinkState.JOURNALLING, 3)
        sink.finished(make_record("new"))
        await asyncio.wait_for(sink.wait_flushed(), 30)
        assert sink.last_replay == ReplayReport(replayed=3, already_closed=0, torn=0)
    for record in [*left, make_record("new")]:
        assert await store.get(record.call_id) == record
    assert path.read_bytes() == b""


async def test_a_record_finished_after_close_goes_to_the_journal(
    tmp_path: Path, cdr_sessions: Sessions, make_record: Make
) -> None:
    journal = CdrJournal(tmp_path / "cdr.jsonl")
    sink = fast_sink(CdrStore(cdr_sessions), journal)
    await sink.start()
    await sink.close()
    sink.finished(make_record("late"))
    assert sink.backlog == 1
    assert journal.records().records == (make_record("late"),)


async def _closed_rows(database: Database) -> dict[str, tuple[str, int | None]]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(text("SELECT call_id, status, closed_at_ms FROM cdrs"))
        return {call_id: (status, closed_at) for call_id, status, closed_at in rows}


async def test_postgresql_stopped_and_restarted_every_record_lands_exactly_once(
    tmp_path: Path, postgres: PostgresServer, make_record: Make
) -> None:
    url = await postgres.create_database(f"cdr_{uuid.uuid4().hex}")
    path = tmp_path / "cdr.jsonl"
    journal = CdrJournal(path)
    before = [make_record(f"up{i}") for i in range(5)]
    in_flight = make_record("in-flight", ended_at_ms=None)  # opened up, finished down
    during = [make_record(f"down{i}") for i in range(10)]
    async with Database(url) as database:
        await database.upgrade()
        store = CdrStore(async_sessionmaker(database.engine, expire_on_commit=False))
        async with fast_sink(store, journal, clock=ticking_clock()) as sink:
            for record in before:
                sink.finished(record)
            sink.opened(in_flight)
            await sink.drain()
            first_close = await _closed_rows(database)
            assert (sink.state, sink.backlog) == (SinkState.CONNECTED, 0)

            await postgres.stop(mode="fast")
            try:
                sink.progressed(replace(in_flight, talk_ms=5))
                for record in during:
                    sink.opened(replace(record, ended_at_ms=None))
                    sink.finished(record)
                sink.finished(replace(in_flight, ended_at_ms=in_flight.created_at_ms + 9))
                sink.finished(before[0])  # a duplicate: already in the table
                await sink.drain()
                assert (sink.state, sink.backlog) == (SinkState.JOURNALLING, len(during) + 2)
                journalled = journal.records().records
                assert [r.call_id for r in journalled] == [
                    *(r.call_id for r in during),
                    "in-flight",
                    before[0].call_id,
                ]
                # Updates for calls whose end is journalled are dropped, none stored.
                assert sink.dropped == len(during) + 1
                # The outage lasts: the sink keeps trying, backing off, losing nothing.
                await asyncio.sleep(1.0)
                assert sink.failed_replays >= 3
                assert (sink.state, sink.backlog) == (SinkState.JOURNALLING, len(during) + 2)
            finally:
                await postgres.start()
            await asyncio.wait_for(sink.wait_flushed(), 60)
            assert sink.last_replay == ReplayReport(
                replayed=len(during) + 1, already_closed=1, torn=0
            )

        rows = await _closed_rows(database)
        expected = [*before, *during, replace(in_flight, ended_at_ms=in_flight.created_at_ms + 9)]
        assert sorted(rows) == sorted(r.call_id for r in expected)  # one row per call
        assert {status for status, _ in rows.values()} == {CdrStatus.CLOSED.value}
        for record in expected:
            assert await store.get(record.call_id) == record
        # The duplicate did not rewrite the row closed before the outage.
        assert rows[before[0].call_id] == first_close[before[0].call_id]
    assert journal.records().records == ()
    assert path.read_bytes() == b""
