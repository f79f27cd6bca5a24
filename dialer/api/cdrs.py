"""CDR search, detail and export: the calls as each role may see them.

Who sees what (the requirements' least privilege):

- an agent reads only its own calls (asking for another agent's, or for a
  call that is not its own, is a 403 that says so), numbers masked;
- QA reads every call, numbers masked;
- supervisors and admins read every call with full numbers, and only they
  export. Every export is written to the audit log, and so is every refused
  attempt, so the log answers "who tried to take the customer list?".

Search and count are one query each over the ``cdrs`` table (newest first,
``limit``/``offset`` paging); the export streams ``CdrStore.search`` through
``cdr.export`` into a spooled file first, so the audit entry carries the row
count and a client that goes away mid-download never holds a database
cursor open.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, BinaryIO, Final, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.engine import RowMapping
from starlette.background import BackgroundTask

from cdr.audit import AuditAction
from cdr.export import export_csv, export_jsonl
from cdr.qa import ItemScore
from cdr.record import CallRecord, Outcome
from cdr.store import QueryError
from cdr.tables import CdrRow, CdrStatus
from dialer.api.auth import Role, User, current_user
from dialer.api.context import ApiContext, context
from dialer.api.dispositions import floor_labels
from dialer.api.errors import ApiError, error_responses
from dialer.api.masking import number_for, sees_full_numbers
from dialer.api.messages import register, text
from dialer.api.scope import require_in_team, team_agents

__all__ = [
    "Cdr",
    "CdrDetail",
    "CdrFilters",
    "CdrPage",
    "Day",
    "ExportFormat",
    "QaScoreItem",
    "QaScoreView",
    "router",
]

register(
    {
        "cdr.own_calls_only": {
            "en": "Agents may only read their own calls.",
            "zh-CN": "坐席只能查看自己的通话记录。",
        },
        "cdr.no_agent": {
            "en": "Your user is not linked to an agent, so it has no calls of its own.",
            "zh-CN": "您的账号未绑定坐席，没有属于自己的通话记录。",
        },
        "cdr.not_found": {"en": "There is no call {call_id}.", "zh-CN": "没有通话 {call_id}。"},
        "cdr.export_forbidden": {
            "en": "Only supervisors and admins may export calls; you are signed in as {role}.",
            "zh-CN": "只有班长和管理员可以导出通话记录；您的角色是{role}。",
        },
        "cdr.bad_range": {
            "en": "The date range is empty: date_from must not be after date_to.",
            "zh-CN": "日期范围为空：开始日期不能晚于结束日期。",
        },
        "cdr.bad_talk_range": {
            "en": "min_talk_s must not be greater than max_talk_s.",
            "zh-CN": "最短通话时长不能大于最长通话时长。",
        },
    }
)

router = APIRouter(prefix="/api/v1", tags=["cdrs"])

CDRS: Final[Table] = CdrRow.__table__  # type: ignore[assignment]  # a declarative Table
MAX_LIMIT: Final = 500
MAX_OFFSET: Final = 10_000_000
MAX_TALK_S: Final = 10**9  # far beyond any call; keeps milliseconds inside 64 bits
_ALL_TIME: Final = (0, 2**62)
_SPOOL_BYTES: Final = 1024 * 1024
_READ_CHUNK: Final = 64 * 1024
_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
FIRST_DAY: Final = date(1970, 1, 2)
LAST_DAY: Final = date(2199, 12, 31)


def _sane_day(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be a day from {FIRST_DAY} to {LAST_DAY}")
    return day


Day = Annotated[date, AfterValidator(_sane_day)]
"""A calendar day the floor can have worked: dates far outside are refused, not overflowed."""


class Cdr(BaseModel):
    call_id: str
    campaign: str | None
    lead_id: str | None
    agent: str | None
    mode: str | None
    number: str = Field(description="masked for agents and QA: 138****5678")
    outcome: Outcome
    created_at_ms: int
    answered_at_ms: int | None
    ended_at_ms: int | None
    talk_ms: int
    effective: bool
    disposition: str | None
    disposition_label: str | None = Field(description="the result in the reader's language")
    disposition_note: str
    hangup_by: str | None
    has_recording: bool
    recording_duration_ms: int | None
    qa_score: float | None


class CdrPage(BaseModel):
    total: int
    items: list[Cdr]


class QaScoreItem(BaseModel):
    key: str
    points: float
    max_points: float
    weight: float
    fatal: bool

    @classmethod
    def all_of(cls, items: Iterable[ItemScore]) -> list[QaScoreItem]:
        return [
            cls(
                key=item.key,
                points=item.points,
                max_points=item.max_points,
                weight=item.weight,
                fatal=item.fatal,
            )
            for item in items
        ]


class QaScoreView(BaseModel):
    scorecard: str = Field(description="name@version")
    score: float
    failed: bool
    reviewer: str
    at_ms: int
    items: list[QaScoreItem]
    comment: str


class CdrDetail(Cdr):
    qa_scores: list[QaScoreView]


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


_MEDIA_TYPES: Final = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSONL: "application/x-ndjson",
}


class CdrFilters:
    """The search filters of the query string, checked and turned into table conditions."""

    def __init__(
        self,
        *,
        agent: Annotated[str | None, Query(pattern=_ID)] = None,
        campaign: Annotated[str | None, Query(pattern=_ID)] = None,
        outcome: Outcome | None = None,
        effective: bool | None = None,
        date_from: Annotated[Day | None, Query(description="local day, inclusive")] = None,
        date_to: Annotated[Day | None, Query(description="local day, inclusive")] = None,
        min_talk_s: Annotated[int | None, Query(ge=0, le=MAX_TALK_S)] = None,
        max_talk_s: Annotated[int | None, Query(ge=0, le=MAX_TALK_S)] = None,
    ) -> None:
        self.agent = agent
        self.campaign = campaign
        self.outcome = outcome
        self.effective = effective
        self.date_from = date_from
        self.date_to = date_to
        self.min_talk_s = min_talk_s
        self.max_talk_s = max_talk_s
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ApiError(422, "invalid_request", "cdr.bad_range")
        if min_talk_s is not None and max_talk_s is not None and min_talk_s > max_talk_s:
            raise ApiError(422, "invalid_request", "cdr.bad_talk_range")

    def bounds_ms(self, timezone: str) -> tuple[int, int]:
        """[start, end) in UTC milliseconds of the local days asked for."""
        tz = ZoneInfo(timezone)
        start, end = _ALL_TIME
        if self.date_from is not None:
            start = max(start, _day_start_ms(self.date_from, tz))
        if self.date_to is not None:
            end = _day_start_ms(self.date_to + timedelta(days=1), tz)
        return start, max(end, start + 1)

    def conditions(self, timezone: str) -> list[ColumnElement[bool]]:
        start, end = self.bounds_ms(timezone)
        found = [
            CDRS.c.status == CdrStatus.CLOSED.value,
            CDRS.c.created_at_ms >= start,
            CDRS.c.created_at_ms < end,
        ]
        if self.agent is not None:
            found.append(CDRS.c.agent == self.agent)
        if self.campaign is not None:
            found.append(CDRS.c.campaign == self.campaign)
        if self.outcome is not None:
            found.append(CDRS.c.outcome == self.outcome.value)
        if self.effective is not None:
            found.append(CDRS.c.effective == self.effective)
        if self.min_talk_s is not None:
            found.append(CDRS.c.talk_ms >= self.min_talk_s * 1000)
        if self.max_talk_s is not None:
            found.append(CDRS.c.talk_ms <= self.max_talk_s * 1000)
        return found

    def describe(self) -> str:
        given = {
            "agent": self.agent,
            "campaign": self.campaign,
            "outcome": self.outcome,
            "effective": self.effective,
            "date_from": self.date_from,
            "date_to": self.date_to,
            "min_talk_s": self.min_talk_s,
            "max_talk_s": self.max_talk_s,
        }
        return " ".join(f"{k}={v}" for k, v in given.items() if v is not None) or "all calls"


def _day_start_ms(day: date, tz: ZoneInfo) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return max(0, int(local.timestamp() * 1000))


def own_agent(user: User) -> str:
    """The agent id an agent user reads as; 403 if the user has none."""
    if user.agent_id is None:
        raise ApiError(403, "forbidden", "cdr.no_agent")
    return user.agent_id


def scope_agent(user: User, asked: str | None) -> str | None:
    """The agent filter a user's search runs with: agents only ever their own."""
    if user.role is not Role.AGENT:
        return asked
    mine = own_agent(user)
    if asked is not None and asked != mine:
        raise ApiError(403, "forbidden", "cdr.own_calls_only")
    return mine


def cdr_view(row: RowMapping, role: Role, results: Mapping[str, str]) -> Cdr:
    """The row as ``role`` may read it; ``results`` labels the call's disposition."""
    disposition = row["disposition"]
    return Cdr(
        call_id=row["call_id"],
        campaign=row["campaign"],
        lead_id=row["lead_id"],
        agent=row["agent"],
        mode=row["mode"],
        number=number_for(row["number"], role),
        outcome=Outcome(row["outcome"]),
        created_at_ms=row["created_at_ms"],
        answered_at_ms=row["answered_at_ms"],
        ended_at_ms=row["ended_at_ms"],
        talk_ms=row["talk_ms"],
        effective=row["effective"],
        disposition=disposition,
        # A code no longer configured still names the result: by its code.
        disposition_label=None if disposition is None else results.get(disposition, disposition),
        disposition_note=row["disposition_note"],
        hangup_by=row["hangup_by"],
        has_recording=row["recording_path"] is not None,
        recording_duration_ms=row["recording_duration_ms"],
        qa_score=row["qa_score"],
    )


async def cdr_row(ctx: ApiContext, call_id: str) -> RowMapping | None:
    async with ctx.floor.database.sessionmaker() as session:
        found: RowMapping | None = (
            (await session.execute(select(CDRS).where(CDRS.c.call_id == call_id)))
            .mappings()
            .one_or_none()
        )
    return found


async def readable_row(ctx: ApiContext, user: User, call_id: str) -> RowMapping:
    """The call's row if ``user`` may read it: 404 unknown, 403 another agent's call."""
    mine = own_agent(user) if user.role is Role.AGENT else None
    row = await cdr_row(ctx, call_id)
    if row is None:
        raise ApiError(404, "not_found", "cdr.not_found", call_id=call_id)
    if mine is not None and row["agent"] != mine:
        raise ApiError(403, "forbidden", "cdr.own_calls_only")
    require_in_team(ctx, user, row["agent"])
    return row


Ctx = Annotated[ApiContext, Depends(context)]
CurrentUser = Annotated[User, Depends(current_user)]
Filters = Annotated[CdrFilters, Depends()]


@router.get("/cdrs", response_model=CdrPage, responses=error_responses(401, 403, 422))
async def search_cdrs(
    ctx: Ctx,
    user: CurrentUser,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CdrPage:
    """Calls matching every filter given, newest first."""
    filters.agent = scope_agent(user, filters.agent)
    conditions = filters.conditions(ctx.floor.config.service.timezone)
    team = team_agents(ctx, user)
    if team is not None:
        if filters.agent is not None:
            require_in_team(ctx, user, filters.agent)
        conditions.append(CDRS.c.agent.in_(sorted(team)))
    page = (
        select(CDRS)
        .where(*conditions)
        .order_by(CDRS.c.created_at_ms.desc(), CDRS.c.call_id.desc())
        .limit(limit)
        .offset(offset)
    )
    results = floor_labels(ctx.floor.config, user.locale)
    async with ctx.floor.database.sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(CDRS).where(*conditions))
        rows = (await session.execute(page)).mappings().all()
    return CdrPage(total=int(total or 0), items=[cdr_view(row, user.role, results) for row in rows])


class _Spool:
    """The export's bytes on their way out: in memory up to a megabyte, then on disk."""

    def __init__(self) -> None:
        spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self.file = cast(BinaryIO, spooled)  # closed by the response's background task

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(_READ_CHUNK):
            yield chunk

    def close(self) -> None:
        self.file.close()


async def _records(
    ctx: ApiContext, filters: CdrFilters, team: frozenset[str] | None = None
) -> AsyncIterator[CallRecord]:
    start, end = filters.bounds_ms(ctx.floor.config.service.timezone)
    found = ctx.cdrs.search(
        start,
        end,
        agent=filters.agent,
        campaign=filters.campaign,
        outcome=filters.outcome,
        effective=filters.effective,
        min_talk_ms=None if filters.min_talk_s is None else filters.min_talk_s * 1000,
    )
    top = None if filters.max_talk_s is None else filters.max_talk_s * 1000
    try:
        async for record in found:
            if team is not None and record.agent not in team:
                continue  # a team lead's export holds the team's calls only
            if top is None or record.talk_ms <= top:
                yield record
    except QueryError:
        # An agent no CDR names: there is nothing of theirs to export.
        return


_EXPORT_CONTENT: Final[dict[str, Any]] = {
    "text/csv": {"schema": {"type": "string"}},
    "application/x-ndjson": {"schema": {"type": "string"}},
}


async def _may_export(ctx: Ctx, user: CurrentUser, request: Request) -> User:
    """The role check, made before the filters are read: a refused export is in the audit
    log even when its filters are also wrong (those would be a 422 first)."""
    if user.role not in {Role.SUPERVISOR, Role.ADMIN}:
        asked = request.url.query or "no filters"
        await ctx.audit.write(
            user.username,
            AuditAction.EXPORT,
            None,
            f"refused: role {user.role} may not export ({asked})",
            False,
            ctx.now_ms(),
        )
        role = text(f"role.{user.role.value}", user.locale)
        raise ApiError(403, "forbidden", "cdr.export_forbidden", role=role)
    return user


Exporter = Annotated[User, Depends(_may_export)]


@router.get(
    "/cdrs/export",
    response_class=StreamingResponse,
    responses={200: {"content": _EXPORT_CONTENT}, **error_responses(401, 403, 422)},
)
async def export_cdrs(
    ctx: Ctx,
    user: Exporter,
    filters: Filters,
    format: ExportFormat = ExportFormat.CSV,
) -> StreamingResponse:
    """Every call matching the filters as CSV (Excel-ready) or JSON lines; audited."""
    team = team_agents(ctx, user)
    if team is not None and filters.agent is not None and filters.agent not in team:
        await ctx.audit.write(
            user.username,
            AuditAction.EXPORT,
            None,
            f"refused: agent {filters.agent} is not in team {user.team}",
            False,
            ctx.now_ms(),
        )
        require_in_team(ctx, user, filters.agent)
    spool = _Spool()
    try:
        write = export_csv if format is ExportFormat.CSV else export_jsonl
        rows = await write(
            _records(ctx, filters, team),
            spool.file,
            mask_numbers=not sees_full_numbers(user.role),
        )
        await ctx.audit.write(
            user.username,
            AuditAction.EXPORT,
            None,
            f"{format.value}: {rows} calls ({filters.describe()})",
            True,
            ctx.now_ms(),
        )
    except BaseException:
        spool.close()
        raise
    stamp = datetime.now(ZoneInfo(ctx.floor.config.service.timezone)).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        spool.chunks(),
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="cdrs-{stamp}.{format.value}"'},
        background=BackgroundTask(spool.close),
    )


@router.get("/cdrs/{call_id}", response_model=CdrDetail, responses=error_responses(401, 403, 404))
async def get_cdr(ctx: Ctx, user: CurrentUser, call_id: str) -> CdrDetail:
    """One call with every QA score it was given."""
    row = await readable_row(ctx, user, call_id)
    scores = await ctx.qa.scores_for(call_id)
    return CdrDetail(
        **cdr_view(row, user.role, floor_labels(ctx.floor.config, user.locale)).model_dump(),
        qa_scores=[
            QaScoreView(
                scorecard=f"{score.scorecard}@{score.scorecard_version}",
                score=score.total,
                failed=score.failed,
                reviewer=score.reviewer,
                at_ms=score.scored_at_ms,
                items=QaScoreItem.all_of(score.items),
                comment=score.comment,
            )
            for score in scores
        ],
    )
