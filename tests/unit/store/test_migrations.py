"""The Alembic history against the models, on a real SQLite file."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import CheckConstraint, Connection, delete, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

import cdr.review_tables
import cdr.tables
from cdr.models import CdrBase
from dialer.api.users import ApiBase
from dialer.campaigns.recycling import LeadState
from dialer.events import CallOutcome
from dialer.store.database import MIGRATIONS, Database
from dialer.store.models import Base, Campaign, NaiveDatetimeError, StoreError

ROOT = Path(__file__).resolve().parents[3]
# One history for every package's tables (DESIGN.md): the head matches them all.
METADATA = [Base.metadata, CdrBase.metadata, ApiBase.metadata]
TABLES = {name for metadata in METADATA for name in metadata.tables}
assert {"cdrs", "recordings"} <= TABLES, (cdr.tables, cdr.review_tables)


def _head() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head
NOW = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}") as database:
        await database.upgrade()
        yield database


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    # Alembic compares against a list of metadata, as env.py hands it one; the stub says one.
    return list(compare_metadata(context, METADATA))  # type: ignore[arg-type]


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _checks(connection: Connection) -> dict[tuple[str, str], str]:
    inspector = inspect(connection)
    return {
        (table, check["name"]): check["sqltext"]
        for table in inspector.get_table_names()
        for check in inspector.get_check_constraints(table)
        if check["name"] is not None
    }


async def test_head_matches_the_models(db: Database) -> None:
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
        tables = await connection.run_sync(_tables)
    assert {"campaigns", "leads", "dial_attempts", "do_not_call"} <= tables
    assert tables == TABLES | {"alembic_version"}


async def test_check_constraints_match_the_models(db: Database) -> None:
    # compare_metadata does not look at CHECK constraints: compare them here.
    expected = {
        (table.name, str(constraint.name)): str(constraint.sqltext)
        for metadata in METADATA
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_checks) == expected


async def test_check_lists_hold_every_enum_value(db: Database) -> None:
    async with db.engine.connect() as connection:
        checks = await connection.run_sync(_checks)
    quoted = re.compile(r"'([a-z_]+)'")
    assert set(quoted.findall(checks["leads", "ck_leads_state"])) == {s.value for s in LeadState}
    outcome = checks["dial_attempts", "ck_dial_attempts_outcome"]
    assert set(quoted.findall(outcome)) == {o.value for o in CallOutcome}


async def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    await db.downgrade("base")
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_tables) == {"alembic_version"}
        # The comparison is live: against an empty schema it sees every table.
        missing = await connection.run_sync(_differences)
    assert {diff[1].name for diff in missing if diff[0] == "add_table"} == TABLES
    await db.upgrade()
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert version == [(_head(),)]


async def test_upgrade_twice_is_a_no_op(db: Database) -> None:
    await db.upgrade()
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    async with Database(url, busy_timeout_ms=1234) as database, database.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 1234


async def test_the_parent_directory_of_the_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "deep" / "dialer.db"
    async with Database(f"sqlite+aiosqlite:///{path}") as database:
        await database.upgrade()
    assert path.is_file()


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(StoreError, match="needs a database file"):
        Database("sqlite+aiosqlite:///:memory:")


async def test_a_closed_database_says_so(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    with pytest.raises(StoreError, match="not open"):
        _ = database.engine
    with pytest.raises(StoreError, match="not open"):
        async with database.session():
            pass


async def test_alembic_ini_drives_the_same_history(tmp_path: Path) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    assert Path(str(config.get_main_option("script_location"))) == MIGRATIONS
    config.attributes["url"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    config.attributes["configure_logger"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    async with Database(config.attributes["url"]) as database, database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_a_naive_datetime_is_refused_by_the_column(db: Database) -> None:
    async with db.session() as session:
        session.add(Campaign(id="c", name="n", mode="preview", timezone="UTC", created_at=NOW))
        await session.commit()
        naive = Campaign(
            id="d", name="n", mode="preview", timezone="UTC", created_at=datetime(2024, 6, 3)
        )
        session.add(naive)
        with pytest.raises(StatementError) as caught:
            await session.commit()
    assert isinstance(caught.value.orig, NaiveDatetimeError)


async def test_check_constraints_are_enforced(db: Database) -> None:
    async with db.session() as session:
        session.add(Campaign(id="c", name="n", mode="preview", timezone="UTC", created_at=NOW))
        await session.commit()
    insert = text(
        "INSERT INTO leads"
        " (id, campaign_id, phone, priority, state, attempts, is_follow_up, extra, created_at)"
        " VALUES (:id, :campaign, '+8613800138000', 0, :state, 0, 0, '{}', '2024-06-03 03:00')"
    )
    async with db.engine.connect() as conn:
        await conn.execute(insert, {"id": "l1", "campaign": "c", "state": "new"})
        # unknown state; in progress without a claim; callback without a time
        for bad in ("bogus", "in_progress", "callback"):
            with pytest.raises(IntegrityError, match="CHECK constraint"):
                await conn.execute(insert, {"id": "l2", "campaign": "c", "state": bad})
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            await conn.execute(insert, {"id": "l3", "campaign": "nope", "state": "new"})
        with pytest.raises(IntegrityError, match="UNIQUE"):
            await conn.execute(insert, {"id": "l4", "campaign": "c", "state": "new"})


instants = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9, minutes=-30))]
    ),
)


@pytest.fixture(scope="module")
def round_trip_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('roundtrip') / 'r.db'}"

    async def migrate() -> None:
        async with Database(url) as database:
            await database.upgrade()

    asyncio.run(migrate())
    return url


@settings(max_examples=40, deadline=None)
@given(first=instants, second=instants)
def test_instants_round_trip_as_utc_and_sort_in_time_order(
    round_trip_url: str, first: datetime, second: datetime
) -> None:
    async def scenario() -> tuple[list[datetime], list[str]]:
        async with Database(round_trip_url) as database, database.session() as session:
            async with session.begin():
                await session.execute(delete(Campaign))
                for key, at in (("a", first), ("b", second)):
                    session.add(Campaign(id=key, name=key, mode="m", timezone="UTC", created_at=at))
            session.expunge_all()
            rows = (await session.scalars(select(Campaign).order_by(Campaign.id))).all()
            ordered = (
                await session.scalars(
                    select(Campaign.id).order_by(Campaign.created_at, Campaign.id)
                )
            ).all()
            return [row.created_at for row in rows], list(ordered)

    stored, ordered = asyncio.run(scenario())
    assert stored == [first, second]
    assert all(at.tzinfo is UTC for at in stored)
    assert ordered == sorted(["a", "b"], key=lambda key: ({"a": first, "b": second}[key], key))
