"""The Alembic history against the CDR table model, on real SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from cdr.models import CdrBase
from cdr.tables import CdrRow
from dialer.store.database import Database

pytestmark = pytest.mark.integration

# The tables revision 0002 creates and cdr.tables describes.
CDR_TABLES = {CdrRow.__tablename__}
DIALER_TABLES = {"campaigns", "leads", "dial_attempts", "do_not_call"}


# Other cdr modules put their tables on CdrBase too: they are not this revision's.
def _only_cdr_tables(name: str | None, type_: str, parents: Any) -> bool:
    return type_ != "table" or name in CDR_TABLES


def _only_cdr_objects(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    return type_ != "table" or name in CDR_TABLES


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": _only_cdr_tables,
            "include_object": _only_cdr_objects,
        },
    )
    return list(compare_metadata(context, CdrBase.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _checks(connection: Connection) -> dict[str, str]:
    return {
        str(check["name"]): check["sqltext"]
        for check in inspect(connection).get_check_constraints("cdrs")
    }


def _head(database: Database) -> str:
    head = ScriptDirectory.from_config(database.alembic_config()).get_current_head()
    assert head is not None
    return head


async def _version(database: Database) -> str:
    async with database.engine.connect() as connection:
        return str(await connection.scalar(text("SELECT version_num FROM alembic_version")))


async def test_head_matches_the_cdr_model(cdr_database: Database) -> None:
    async with cdr_database.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
        checks = await connection.run_sync(_checks)
        tables = await connection.run_sync(_tables)
    assert tables >= CDR_TABLES | DIALER_TABLES
    # compare_metadata does not look at CHECK constraints: compare them here.
    expected = {
        str(constraint.name): str(constraint.sqltext)
        for constraint in CdrBase.metadata.tables["cdrs"].constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert set(checks) == set(expected)
    if cdr_database.is_sqlite:  # SQLite keeps the text as written; PostgreSQL rewrites it
        assert checks == expected
    assert await _version(cdr_database) == _head(cdr_database)


async def test_the_checks_are_enforced(cdr_database: Database) -> None:
    columns = (
        "call_id, direction, number, created_at_ms, ring_ms, talk_ms, billable_ms, held_ms,"
        " outcome, end_reason, answered_by, abandoned, effective, effective_rule,"
        " status, opened_at_ms, updated_at_ms, closed_at_ms, node, recording_path"
    )
    insert = text(
        f"INSERT INTO cdrs ({columns}) VALUES (:id, 'outbound', '+1', 0, 0, :talk, 0, 0,"
        " :outcome, '', 'unknown', false, false, '', :status, 0, 0, :closed_at, 'n', :path)"
    )
    good: dict[str, object] = {
        "id": "ok",
        "talk": 0,
        "outcome": "busy",
        "status": "closed",
        "closed_at": 5,
        "path": None,
    }
    bad: list[dict[str, object]] = [
        {"status": "lost"},
        {"status": "open"},  # open with closed_at_ms set
        {"closed_at": None},  # closed without closed_at_ms
        {"outcome": "vanished"},
        {"talk": -1},
        {"path": "half.wav"},  # a recording path without the rest of the recording
    ]
    async with cdr_database.engine.connect() as connection:
        await connection.execute(insert, good)
        await connection.commit()
        for i, change in enumerate(bad):
            with pytest.raises(IntegrityError):
                await connection.execute(insert, {**good, "id": f"bad{i}", **change})
            await connection.rollback()


async def test_downgrade_to_0001_and_upgrade_again(cdr_database: Database) -> None:
    await cdr_database.downgrade("0001")
    async with cdr_database.engine.connect() as connection:
        assert await connection.run_sync(_tables) == DIALER_TABLES | {"alembic_version"}
        # The comparison is live: without the table it sees it missing.
        missing = await connection.run_sync(_differences)
    assert {diff[1].name for diff in missing if diff[0] == "add_table"} == CDR_TABLES
    assert await _version(cdr_database) == "0001"

    await cdr_database.upgrade()
    async with cdr_database.engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    assert await _version(cdr_database) == _head(cdr_database)
