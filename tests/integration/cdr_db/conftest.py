"""Fixtures for the CDR store tier: a real PostgreSQL for the session and a fresh,
migrated database per test on SQLite and on PostgreSQL.

These tests need PostgreSQL only, not the SIP peers, so the tier's autouse
peer installation is replaced here by the PostgreSQL check. Missing server
binaries fail the run in CI (CI=true) and skip the PostgreSQL cases elsewhere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from peers.errors import PeerMissingError
from peers.postgres import PostgresServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import peer_missing

from cdr.record import CallRecord, Outcome
from dialer.store.database import Database

BACKENDS = ["sqlite", "postgresql"]
T0 = 1_717_383_600_000  # 2024-06-03 03:00 UTC, in ms


@pytest.fixture(scope="session", autouse=True)
def peers_installed() -> None:
    """Overrides the tier's SIP peer installation: this directory uses PostgreSQL only."""


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (databases are per test)."""
    try:
        server = PostgresServer()
    except PeerMissingError as exc:
        peer_missing(f"PostgreSQL is not installed: {exc}")
    # A sync fixture (no loop is running here), so the server outlives every
    # test's event loop; PostgresServer keeps no loop-bound state.
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.remove())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> PostgresServer | None:
    """The PostgreSQL server for the "postgresql" cases, None for SQLite."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server
    return None


async def fresh_url(backend: PostgresServer | None, tmp_path: Path) -> str:
    if backend is None:
        return f"sqlite+aiosqlite:///{tmp_path / f'cdr-{uuid.uuid4().hex[:8]}.db'}"
    if not backend.running:
        # A test that stopped the server failed before restarting it.
        await backend.start()
    return await backend.create_database(f"cdr_{uuid.uuid4().hex}")


@pytest.fixture
async def cdr_database(backend: PostgresServer | None, tmp_path: Path) -> AsyncIterator[Database]:
    """A new database migrated to head (Alembic, as the service does)."""
    async with Database(await fresh_url(backend, tmp_path)) as database:
        await database.upgrade()
        yield database


@pytest.fixture
def cdr_sessions(cdr_database: Database) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(cdr_database.engine, expire_on_commit=False)


RecordFactory = Callable[..., CallRecord]


def _make_record(call_id: str, **changes: Any) -> CallRecord:
    base = CallRecord(
        call_id=call_id,
        campaign="spring",
        lead_id="lead-1",
        agent="a1",
        mode="predictive",
        number="+8613800138000",
        trunk="gw1",
        caller_id="+8610100100",
        created_at_ms=T0,
        ringing_at_ms=T0 + 500,
        answered_at_ms=T0 + 4_000,
        bridged_at_ms=T0 + 4_100,
        ended_at_ms=T0 + 64_100,
        ring_ms=3_500,
        talk_ms=60_000,
        billable_ms=60_100,
        outcome=Outcome.ANSWERED,
        sip_status=200,
        hangup_by="customer",
        end_reason="bye",
        effective=True,
        effective_rule="default@1",
    )
    return replace(base, **changes)


@pytest.fixture
def make_record() -> RecordFactory:
    """``make_record(call_id, **changes)``: a plausible answered, effective call."""
    return _make_record
