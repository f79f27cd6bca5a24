"""CDRs in the database: open while the call runs, closed exactly once, searched in time order.

The one rule everything here serves: **no CDR is ever written twice, and a
finished record is never refused for want of an open row.** ``close`` is one
statement, an upsert that only touches a row still open::

    INSERT INTO cdrs (...) VALUES (... 'closed' ...)
    ON CONFLICT (call_id) DO UPDATE SET ... WHERE cdrs.status = 'open'
    RETURNING call_id

It closed the row now exactly when it returns a row. The database serialises
writers to one key (PostgreSQL makes the second of two concurrent upserts
wait for the first and then re-checks the WHERE against the committed row;
SQLite has one writer at a time), so of two closers exactly one wins, and a
journal replay of a record whose open was never written simply inserts it.

``search`` streams closed rows by keyset pagination on (created_at_ms,
call_id): each batch is one short query, no transaction or cursor stays open
while the caller works, and a month of rows never sits in memory.

Every instant is an argument (``now_ms``, UTC milliseconds). Records are
checked against the table's columns before any write, and every problem is
named, so the database never refuses an accepted record for its shape.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import fields
from enum import Enum, StrEnum
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import Insert

from .record import AnsweredBy, CallRecord, Outcome, RecordingRef
from .tables import ID_LENGTH, CdrRow, CdrStatus

CDRS: Final[Table] = CdrRow.__table__  # type: ignore[assignment]  # a declarative Table
DEFAULT_BATCH = 1000
INTERRUPTED_REASON = "interrupted: the node stopped before the call ended"

_INT32 = 2**31
_INT64 = 2**63
_RECORD_FIELDS = tuple(spec.name for spec in fields(CallRecord) if spec.name != "recording")
_RECORDING_COLUMNS = {
    "path": "recording_path",
    "sha256": "recording_sha256",
    "duration_ms": "recording_duration_ms",
    "size_bytes": "recording_size_bytes",
    "agent_speech_ms": "agent_speech_ms",
    "customer_speech_ms": "customer_speech_ms",
    "repaired": "recording_repaired",
}
_UPSERT_KEEPS = ("call_id", "opened_at_ms", "qa_score")  # a close never rewrites these


class CdrStoreError(Exception):
    """Base error of the CDR store."""


class RecordError(CdrStoreError, ValueError):
    """A record that does not fit the table; nothing was written."""


class QueryError(CdrStoreError, ValueError):
    """A search or count that cannot be answered as asked."""


class UnknownCdrError(CdrStoreError, LookupError):
    pass


class _Node(Enum):
    THIS = "this node"


THIS_NODE: Final = _Node.THIS


def record_problems(record: CallRecord) -> list[str]:
    """Everything that keeps ``record`` out of the table (empty: it fits)."""
    if not isinstance(record, CallRecord):
        return [f"a CallRecord is needed, got {type(record).__name__}"]
    problems: list[str] = []
    if not isinstance(record.recording, RecordingRef | None):
        problems.append(
            f"recording must be a RecordingRef or None, got {type(record.recording).__name__}"
        )
        return problems
    values = _columns(record)
    if values["call_id"] == "":
        problems.append("call_id must not be empty")
    for name, value in values.items():
        problems.extend(_column_problems(name, value))
    for name, enum in (("outcome", Outcome), ("answered_by", AnsweredBy)):
        if isinstance(values[name], str) and values[name] not in {m.value for m in enum}:
            allowed = ", ".join(member.value for member in enum)
            problems.append(f"{name} must be one of {allowed}, got {values[name]!r}")
    return problems


def _column_problems(name: str, value: Any) -> list[str]:
    column = CDRS.c[name]
    if value is None:
        return [] if column.nullable else [f"{name} must not be None"]
    kind = column.type
    if isinstance(kind, Boolean):
        if type(value) is not bool:
            return [f"{name} must be a bool, got {type(value).__name__} {value!r}"]
    elif isinstance(kind, Integer):  # BigInteger included
        if type(value) is not int:
            return [f"{name} must be an int, got {type(value).__name__} {value!r}"]
        if isinstance(kind, BigInteger):
            # Instants, durations and sizes: never negative.
            if not 0 <= value < _INT64:
                return [f"{name} must be between 0 and 2**63-1, got {value}"]
        elif not -_INT32 <= value < _INT32:
            return [f"{name} must fit in 32 bits, got {value}"]
    elif isinstance(kind, String):  # Text included
        if not isinstance(value, str):
            return [f"{name} must be a str, got {type(value).__name__} {value!r}"]
        if kind.length is not None and len(value) > kind.length:
            return [f"{name} is {len(value)} characters long, at most {kind.length} fit"]
        if "\x00" in value:
            return [f"{name} contains a NUL character, which PostgreSQL text cannot hold"]
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return [f"{name} is not valid Unicode text ({exc.reason} at {exc.start})"]
    return []


def _columns(record: CallRecord) -> dict[str, Any]:
    """The record as the row's record columns (everything but status and bookkeeping)."""
    values: dict[str, Any] = {}
    for name in _RECORD_FIELDS:
        value = getattr(record, name)
        values[name] = value.value if isinstance(value, StrEnum) else value
    recording = record.recording
    for part, column in _RECORDING_COLUMNS.items():
        values[column] = None if recording is None else getattr(recording, part)
    return values


def _record(row: RowMapping) -> CallRecord:
    values = {name: row[name] for name in _RECORD_FIELDS}
    values["outcome"] = Outcome(values["outcome"])
    values["answered_by"] = AnsweredBy(values["answered_by"])
    recording = None
    if row["recording_path"] is not None:  # CHECK ck_cdrs_recording: all or none
        recording = RecordingRef(
            **{part: row[column] for part, column in _RECORDING_COLUMNS.items()}
        )
    return CallRecord(**values, recording=recording)


def _require_now(now_ms: int) -> int:
    if type(now_ms) is not int or not 0 <= now_ms < _INT64:
        raise RecordError(f"now_ms must be an int of UTC milliseconds >= 0, got {now_ms!r}")
    return now_ms


def _upsert(dialect: str, row: Mapping[str, Any], update_columns: Sequence[str]) -> Insert:
    """INSERT ``row``; on a call id clash update ``update_columns`` of a still-open row."""
    still_open = CDRS.c.status == CdrStatus.OPEN.value
    if dialect == "postgresql":
        pg = postgresql.insert(CDRS).values(row)
        return pg.on_conflict_do_update(
            index_elements=[CDRS.c.call_id],
            set_={name: pg.excluded[name] for name in update_columns},
            where=still_open,
        )
    if dialect == "sqlite":
        lite = sqlite.insert(CDRS).values(row)
        return lite.on_conflict_do_update(
            index_elements=[CDRS.c.call_id],
            set_={name: lite.excluded[name] for name in update_columns},
            where=still_open,
        )
    raise CdrStoreError(f"the CDR store supports PostgreSQL and SQLite, not {dialect!r}")


def _insert_if_new(dialect: str, row: Mapping[str, Any]) -> Insert:
    if dialect == "postgresql":
        return (
            postgresql.insert(CDRS)
            .values(row)
            .on_conflict_do_nothing(index_elements=[CDRS.c.call_id])
        )
    if dialect == "sqlite":
        return (
            sqlite.insert(CDRS).values(row).on_conflict_do_nothing(index_elements=[CDRS.c.call_id])
        )
    raise CdrStoreError(f"the CDR store supports PostgreSQL and SQLite, not {dialect!r}")


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


class CdrStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        node: str = "node-1",
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        if not isinstance(node, str) or not 0 < len(node) <= ID_LENGTH:
            raise ValueError(f"node must be 1 to {ID_LENGTH} characters, got {node!r}")
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self._sessions = sessions
        self.node = node
        self.batch_size = batch_size

    # -- writing -----------------------------------------------------------------

    async def open(self, record: CallRecord, now_ms: int) -> bool:
        """Insert the open row of a starting call; False (nothing changed) if it exists."""
        row = {
            **self._checked(record),
            "status": CdrStatus.OPEN.value,
            "opened_at_ms": _require_now(now_ms),
            "updated_at_ms": now_ms,
            "closed_at_ms": None,
            "node": self.node,
        }
        async with self._sessions() as session, session.begin():
            statement = _insert_if_new(_dialect(session), row).returning(CDRS.c.call_id)
            return (await session.execute(statement)).scalar_one_or_none() is not None

    async def update_open(self, record: CallRecord, now_ms: int) -> bool:
        """Refresh an open row with what is known now; False if no open row (closed ones stay)."""
        values = self._checked(record)
        call_id = values.pop("call_id")
        statement = (
            update(CDRS)
            .where(CDRS.c.call_id == call_id, CDRS.c.status == CdrStatus.OPEN.value)
            .values(**values, updated_at_ms=_require_now(now_ms))
            .returning(CDRS.c.call_id)
        )
        async with self._sessions() as session, session.begin():
            return (await session.execute(statement)).scalar_one_or_none() is not None

    async def close(self, record: CallRecord, now_ms: int) -> bool:
        """Write the finished record and close the row: True if this call closed it now.

        False if it was closed already; then nothing changed. No open row is
        needed (a replayed record whose open was lost is inserted closed).
        """
        values = self._checked(record)
        row = {
            **values,
            "status": CdrStatus.CLOSED.value,
            "opened_at_ms": _require_now(now_ms),
            "updated_at_ms": now_ms,
            "closed_at_ms": now_ms,
            "node": self.node,
        }
        changed = [name for name in row if name not in _UPSERT_KEEPS]
        async with self._sessions() as session, session.begin():
            statement = _upsert(_dialect(session), row, changed).returning(CDRS.c.call_id)
            return (await session.execute(statement)).scalar_one_or_none() is not None

    async def close_interrupted(
        self,
        now_ms: int,
        *,
        node: str | _Node | None = THIS_NODE,
        opened_before_ms: int | None = None,
    ) -> list[str]:
        """Close the open rows of ``node`` (default this store's; None: every node) as
        interrupted, with what is known: the end is the last update unless the
        snapshot knew it. ``opened_before_ms`` spares the calls of the run doing
        the recovery. The call ids, sorted."""
        at = _require_now(now_ms)
        conditions = [CDRS.c.status == CdrStatus.OPEN.value]
        if opened_before_ms is not None:
            conditions.append(CDRS.c.opened_at_ms < _require_now(opened_before_ms))
        if node is THIS_NODE:
            conditions.append(CDRS.c.node == self.node)
        elif node is not None:
            conditions.append(CDRS.c.node == node)
        statement = (
            update(CDRS)
            .where(*conditions)
            .values(
                # Right-hand sides see the row before the update (SQL standard).
                outcome=Outcome.INTERRUPTED.value,
                ended_at_ms=func.coalesce(CDRS.c.ended_at_ms, CDRS.c.updated_at_ms),
                end_reason=case(
                    (CDRS.c.end_reason == "", INTERRUPTED_REASON), else_=CDRS.c.end_reason
                ),
                hangup_by=func.coalesce(CDRS.c.hangup_by, "system"),
                status=CdrStatus.CLOSED.value,
                closed_at_ms=at,
                updated_at_ms=at,
            )
            .returning(CDRS.c.call_id)
        )
        async with self._sessions() as session, session.begin():
            closed = (await session.execute(statement)).scalars().all()
        return sorted(closed)

    async def attach_recording(
        self, call_id: str, recording: RecordingRef, now_ms: int, *, at_ms: int
    ) -> bool:
        """Link a recording repaired after a crash to its call's row, open or closed.

        If the crash came before the call's open row was written, the
        recording is the only witness: an interrupted row is made from it
        (created ``duration_ms`` before ``at_ms``, the instant the file was
        last written), so no recorded call is without a row. True if a row
        was made or changed.
        """
        at = _require_now(now_ms)
        probe = CallRecord(
            call_id=call_id,
            created_at_ms=max(0, at_ms - recording.duration_ms),
            ended_at_ms=at_ms,
            outcome=Outcome.INTERRUPTED,
            hangup_by="system",
            end_reason=INTERRUPTED_REASON,
            recording=recording,
        )
        values = self._checked(probe)
        linked = {column: values[column] for column in _RECORDING_COLUMNS.values()}
        async with self._sessions() as session, session.begin():
            changed = (
                await session.execute(
                    update(CDRS)
                    .where(CDRS.c.call_id == call_id)
                    .values(**linked, updated_at_ms=at)
                    .returning(CDRS.c.call_id)
                )
            ).scalar_one_or_none()
            if changed is not None:
                return True
            row = {
                **values,
                "status": CdrStatus.CLOSED.value,
                "opened_at_ms": at,
                "updated_at_ms": at,
                "closed_at_ms": at,
                "node": self.node,
            }
            statement = _insert_if_new(_dialect(session), row).returning(CDRS.c.call_id)
            return (await session.execute(statement)).scalar_one_or_none() is not None

    async def without_recording(self, call_ids: Sequence[str]) -> set[str]:
        """Which of ``call_ids`` have no row, or a row that links no recording."""
        linked: set[str] = set()
        async with self._sessions() as session:
            for start in range(0, len(call_ids), 500):
                chunk = list(call_ids[start : start + 500])
                statement = select(CDRS.c.call_id).where(
                    CDRS.c.call_id.in_(chunk), CDRS.c.recording_path.is_not(None)
                )
                linked.update((await session.execute(statement)).scalars())
        return set(call_ids) - linked

    async def set_qa_score(self, call_id: str, score: float) -> None:
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(f"a QA score must be a number, got {type(score).__name__}")
        if not math.isfinite(score):
            raise ValueError(f"a QA score must be finite, got {score!r}")
        statement = (
            update(CDRS)
            .where(CDRS.c.call_id == call_id)
            .values(qa_score=float(score))
            .returning(CDRS.c.call_id)
        )
        async with self._sessions() as session, session.begin():
            if (await session.execute(statement)).scalar_one_or_none() is None:
                raise UnknownCdrError(f"no CDR for call {call_id!r}")

    # -- reading -----------------------------------------------------------------

    async def get(self, call_id: str) -> CallRecord | None:
        """The record (an open row gives the latest snapshot), or None."""
        async with self._sessions() as session:
            row = (
                (await session.execute(select(CDRS).where(CDRS.c.call_id == call_id)))
                .mappings()
                .one_or_none()
            )
        return None if row is None else _record(row)

    async def status(self, call_id: str) -> CdrStatus | None:
        async with self._sessions() as session:
            found = await session.scalar(select(CDRS.c.status).where(CDRS.c.call_id == call_id))
        return None if found is None else CdrStatus(found)

    async def qa_score(self, call_id: str) -> float | None:
        async with self._sessions() as session:
            row = (
                await session.execute(select(CDRS.c.qa_score).where(CDRS.c.call_id == call_id))
            ).one_or_none()
        if row is None:
            raise UnknownCdrError(f"no CDR for call {call_id!r}")
        score: float | None = row[0]
        return score

    async def known_agents(self) -> set[str]:
        """Every agent named by some CDR, open or closed."""
        statement = select(CDRS.c.agent).where(CDRS.c.agent.is_not(None)).distinct()
        async with self._sessions() as session:
            return set((await session.scalars(statement)).all())

    def search(
        self,
        start_ms: int,
        end_ms: int,
        *,
        agent: str | None = None,
        campaign: str | None = None,
        outcome: Outcome | str | None = None,
        effective: bool | None = None,
        min_talk_ms: int | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CallRecord]:
        """Closed records created in [start_ms, end_ms), by created_at_ms then call_id.

        A bad range or filter raises QueryError here; an agent no CDR names
        raises it at the first iteration (that takes a query).
        """
        conditions = _conditions(
            start_ms,
            end_ms,
            agent=agent,
            campaign=campaign,
            outcome=outcome,
            effective=effective,
            min_talk_ms=min_talk_ms,
        )
        if limit is not None and (type(limit) is not int or limit < 0):
            raise QueryError(f"limit must be an integer >= 0 or None, got {limit!r}")
        return self._stream(conditions, agent, limit)

    async def count(
        self,
        start_ms: int,
        end_ms: int,
        *,
        agent: str | None = None,
        campaign: str | None = None,
        outcome: Outcome | str | None = None,
        effective: bool | None = None,
        min_talk_ms: int | None = None,
    ) -> int:
        """How many records ``search`` with the same filters would yield."""
        conditions = _conditions(
            start_ms,
            end_ms,
            agent=agent,
            campaign=campaign,
            outcome=outcome,
            effective=effective,
            min_talk_ms=min_talk_ms,
        )
        async with self._sessions() as session:
            await _require_known_agent(session, agent)
            counted = await session.scalar(
                select(func.count()).select_from(CDRS).where(*conditions)
            )
        return int(counted or 0)

    async def _stream(
        self, conditions: list[ColumnElement[bool]], agent: str | None, limit: int | None
    ) -> AsyncIterator[CallRecord]:
        async with self._sessions() as session:
            await _require_known_agent(session, agent)
        after: tuple[int, str] | None = None
        left = limit
        while left is None or left > 0:
            size = self.batch_size if left is None else min(self.batch_size, left)
            statement = select(CDRS).where(*conditions)
            if after is not None:
                at, call_id = after
                statement = statement.where(
                    or_(
                        CDRS.c.created_at_ms > at,
                        and_(CDRS.c.created_at_ms == at, CDRS.c.call_id > call_id),
                    )
                )
            statement = statement.order_by(CDRS.c.created_at_ms, CDRS.c.call_id).limit(size)
            async with self._sessions() as session:
                rows = (await session.execute(statement)).mappings().all()
            # Yield outside the session: no connection is held while the caller works.
            for row in rows:
                yield _record(row)
            if len(rows) < size:
                return
            after = (rows[-1]["created_at_ms"], rows[-1]["call_id"])
            if left is not None:
                left -= len(rows)

    def _checked(self, record: CallRecord) -> dict[str, Any]:
        problems = record_problems(record)
        if problems:
            call_id = getattr(record, "call_id", None)
            raise RecordError(f"CDR {call_id!r} refused, nothing written: " + "; ".join(problems))
        return _columns(record)


def _conditions(
    start_ms: int,
    end_ms: int,
    *,
    agent: str | None,
    campaign: str | None,
    outcome: Outcome | str | None,
    effective: bool | None,
    min_talk_ms: int | None,
) -> list[ColumnElement[bool]]:
    problems: list[str] = []
    for name, value in (("start_ms", start_ms), ("end_ms", end_ms)):
        if type(value) is not int:
            problems.append(f"{name} must be an int of UTC milliseconds, got {value!r}")
    if not problems and start_ms >= end_ms:
        problems.append(
            f"search range [{start_ms}, {end_ms}) is empty: start_ms must be before end_ms"
        )
    conditions = [
        CDRS.c.status == CdrStatus.CLOSED.value,
        CDRS.c.created_at_ms >= start_ms,
        CDRS.c.created_at_ms < end_ms,
    ]
    for name, text in (("agent", agent), ("campaign", campaign)):
        if text is not None and not isinstance(text, str):
            problems.append(f"{name} must be a str or None, got {type(text).__name__}")
    if agent is not None:
        conditions.append(CDRS.c.agent == agent)
    if campaign is not None:
        conditions.append(CDRS.c.campaign == campaign)
    if outcome is not None:
        if outcome in {member.value for member in Outcome}:
            conditions.append(CDRS.c.outcome == Outcome(outcome).value)
        else:
            allowed = ", ".join(member.value for member in Outcome)
            problems.append(f"outcome must be one of {allowed}, got {outcome!r}")
    if effective is not None:
        if type(effective) is bool:
            conditions.append(CDRS.c.effective == effective)
        else:
            problems.append(f"effective must be a bool or None, got {effective!r}")
    if min_talk_ms is not None:
        if type(min_talk_ms) is int and min_talk_ms >= 0:
            conditions.append(CDRS.c.talk_ms >= min_talk_ms)
        else:
            problems.append(f"min_talk_ms must be an integer >= 0 or None, got {min_talk_ms!r}")
    if problems:
        raise QueryError("; ".join(problems))
    return conditions


async def _require_known_agent(session: AsyncSession, agent: str | None) -> None:
    if agent is None:
        return
    if not await session.scalar(select(exists().where(CDRS.c.agent == agent))):
        raise QueryError(f"unknown agent {agent!r}: no CDR names this agent")
