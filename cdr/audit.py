"""The audit log: who played, exported, scored, held, released or purged what, and when.

Customer data is confidential and access to recordings is logged (the
requirements' "access to recordings is logged"). Every attempt is written,
refused ones too (``ok=False``), so the log answers "who tried to listen to
this call?" as well as "who did?". Rows are only ever added.

``write`` commits an entry on its own; ``add`` puts one in a session the
caller is already using, so the action and its entry commit (or roll back)
together.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .review_tables import WHO_LENGTH, AuditAction, AuditRow

__all__ = ["AuditAction", "AuditEntry", "AuditError", "AuditLog"]


class AuditError(ValueError):
    """An audit entry or query that cannot be made (our own misuse)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at_ms: int
    who: str
    action: AuditAction
    call_id: str | None
    detail: str
    ok: bool


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at_ms=row.at_ms,
        who=row.who,
        action=AuditAction(row.action),
        call_id=row.call_id,
        detail=row.detail,
        ok=row.ok,
    )


def _row(
    *, who: str, action: AuditAction | str, call_id: str | None, detail: str, ok: bool, now_ms: int
) -> AuditRow:
    problems = []
    if not who:
        problems.append("who is empty: an audit entry must name who acted")
    elif len(who) > WHO_LENGTH:
        problems.append(f"who {who[:40]!r}... is longer than {WHO_LENGTH} characters")
    known = {a.value for a in AuditAction}
    if action not in known:
        problems.append(f"action {action!r} is not one of {', '.join(sorted(known))}")
    if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0:
        problems.append(f"now_ms {now_ms!r} is not UTC milliseconds since the epoch")
    if problems:
        raise AuditError("; ".join(problems))
    return AuditRow(
        at_ms=now_ms,
        who=who,
        action=AuditAction(action).value,
        call_id=call_id,
        detail=detail,
        ok=ok,
    )


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def add(
        self,
        session: AsyncSession,
        *,
        who: str,
        action: AuditAction | str,
        call_id: str | None,
        detail: str,
        ok: bool,
        now_ms: int,
    ) -> None:
        """Add an entry to the caller's session: it commits with the caller's work."""
        session.add(
            _row(who=who, action=action, call_id=call_id, detail=detail, ok=ok, now_ms=now_ms)
        )

    async def write(  # noqa: PLR0917 - the signature the callers were promised
        self,
        who: str,
        action: AuditAction | str,
        call_id: str | None,
        detail: str,
        ok: bool,
        now_ms: int,
    ) -> AuditEntry:
        """Write and commit one entry on its own."""
        row = _row(who=who, action=action, call_id=call_id, detail=detail, ok=ok, now_ms=now_ms)
        async with self._sessions() as session, session.begin():
            session.add(row)
            await session.flush()
            return _entry(row)

    async def entries(
        self,
        *,
        call_id: str | None = None,
        who: str | None = None,
        action: AuditAction | str | None = None,
        ok: bool | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, oldest first; ``until_ms`` is exclusive."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise AuditError(f"limit {limit!r} is not a whole number ≥ 1")
        query = select(AuditRow)
        if call_id is not None:
            query = query.where(AuditRow.call_id == call_id)
        if who is not None:
            query = query.where(AuditRow.who == who)
        if action is not None:
            try:
                query = query.where(AuditRow.action == AuditAction(action).value)
            except ValueError:
                raise AuditError(f"action {action!r} is not an audit action") from None
        if ok is not None:
            query = query.where(AuditRow.ok == ok)
        if since_ms is not None:
            query = query.where(AuditRow.at_ms >= since_ms)
        if until_ms is not None:
            query = query.where(AuditRow.at_ms < until_ms)
        query = query.order_by(AuditRow.at_ms, AuditRow.id).limit(limit)
        async with self._sessions() as session:
            return [_entry(row) for row in await session.scalars(query)]
