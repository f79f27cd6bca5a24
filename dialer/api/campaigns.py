"""Campaigns and their lead lists, for supervisors and admins.

The campaigns are the configured ones and those defined at run time
(``POST /campaigns``: checked like a ``[[campaigns]]`` table of the config,
every problem listed, kept in the database and started at once on a node
that runs campaigns, as ``dialer serve`` does). A campaign is ``running``
when a campaign runner works it on this node, ``paused`` when a supervisor paused
its dialing there (calls in progress go on, no new ones are placed), and
``stopped`` when no runner works it on this node. Today's figures come from
the CDRs (the same rows the reports read), the leads' states from the lead
store.

A lead list is uploaded as a CSV/TSV file (Excel, WPS, a CRM export) and read
by ``dialer.leads.csv_import``, which never writes: it returns a report, row
by row. A file-level problem (encoding, header, size, broken quoting)
refuses the whole file with every problem named (422; over
``http.max_upload_bytes`` 413). Otherwise every valid row is inserted in one
transaction, and each rejected row is reported with its row number (the
line a spreadsheet shows) and every problem it has: a row is in or out
whole, never half. Numbers already in the campaign, twice in the file, or on
the do-not-call list are reported as duplicates and not inserted. New leads
reach the running campaign at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, func, select
from sqlalchemy.sql.functions import coalesce

from cdr.record import Outcome
from cdr.tables import CdrRow, CdrStatus
from dialer.api.auth import Role, User, require
from dialer.api.context import ApiContext, context
from dialer.api.errors import ApiError, error_responses
from dialer.api.messages import register
from dialer.api.scope import require_campaign, sees_campaign
from dialer.config import CampaignConfig, ConfigError
from dialer.dialing.runner import CampaignRunner
from dialer.leads.csv_import import ImportReport, RowError, import_leads
from dialer.store.leads import DuplicatePhoneError, LeadStore
from dialer.store.models import GLOBAL_SCOPE, DoNotCall, Lead, StoreError

__all__ = [
    "CampaignOut",
    "CampaignStats",
    "LeadUpload",
    "RowReport",
    "router",
    "row_reports",
    "upload_report",
]

register(
    {
        "campaign.unknown": {
            "en": "There is no campaign {campaign}.",
            "zh-CN": "没有外呼任务 {campaign}。",
        },
        "campaign.invalid": {
            "en": "The campaign was not created: {count} problem(s).",
            "zh-CN": "外呼任务未创建：共 {count} 处问题。",
        },
        "campaign.exists": {
            "en": "Campaign {campaign} already exists.",
            "zh-CN": "外呼任务 {campaign} 已存在。",
        },
        "campaign.not_run_here": {
            "en": "This node does not run campaigns, so none can be created on it.",
            "zh-CN": "本节点不运行外呼任务，无法在此创建。",
        },
        "campaign.not_running": {
            "en": "Campaign {campaign} is not running on this node: there is nothing to pause or "
            "resume.",
            "zh-CN": "外呼任务 {campaign} 未在本节点运行，无法暂停或恢复。",
        },
        "leads.too_large": {
            "en": "The file is too large: at most {limit} bytes may be uploaded.",
            "zh-CN": "文件过大：最多可上传 {limit} 字节。",
        },
        "leads.file_refused": {
            "en": "The lead file was refused, nothing was imported: {count} problem(s).",
            "zh-CN": "名单文件被拒绝，未导入任何数据：共 {count} 处问题。",
        },
        "leads.clash": {
            "en": "Another import added some of these numbers meanwhile; nothing was imported.",
            "zh-CN": "其他导入同时添加了其中的号码，本次未导入任何数据。",
        },
    }
)

router = APIRouter(prefix="/api/v1", tags=["campaigns"])
log = logging.getLogger(__name__)

_LEADS_LIMIT: Final = 100_000  # as many as a runner loads at start


class CampaignOut(BaseModel):
    id: str
    name: str
    mode: str
    state: Literal["running", "paused", "stopped"]
    agents: list[str]
    trunks: list[str]
    signed_in: int = Field(description="agents signed in to it on this node")


class CampaignIn(BaseModel):
    """A campaign's settings, as a ``[[campaigns]]`` table of the config has them."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    mode: Literal["manual", "preview", "progressive", "predictive"]
    name: str | None = Field(default=None, max_length=200)
    trunks: list[str] = Field(min_length=1, description="names of configured trunks")
    agents: list[str] = Field(min_length=1, description="ids of configured agents")
    caller_id: str | None = Field(default=None, max_length=32)
    timezone: str | None = Field(default=None, max_length=64, description="the leads' zone")
    windows: dict[str, list[str]] | None = Field(
        default=None, description='calling windows, e.g. {"mon-fri": ["09:00-12:00"]}'
    )
    max_attempts: int | None = None
    busy_retry_minutes: int | None = None
    no_answer_retry_minutes: int | None = None
    unavailable_retry_minutes: int | None = None
    ring_timeout_s: float | None = None
    record: bool | None = None
    record_early_media: bool | None = None
    effective_rule: str | None = Field(default=None, max_length=64)
    abandon_cap: float | None = None
    max_dial_level: float | None = None
    connect_within_s: float | None = None
    abandon_lockout_minutes: float | None = None
    screen_early_media: bool | None = None
    recording_retention_days: int | None = None


class CampaignStats(BaseModel):
    leads_by_state: dict[str, int]
    calls_today: int
    answered_today: int
    abandoned_today: int
    abandon_rate_today: float = Field(description="abandoned / answered, 0..1")
    abandon_cap: float


class RowReport(BaseModel):
    row: int = Field(description="line in the file; the header is row 1")
    problems: list[str]


class LeadUpload(BaseModel):
    total_rows: int
    accepted: int
    rejected: list[RowReport]
    duplicates: list[RowReport]
    do_not_call: list[RowReport]
    warnings: list[str]


def _problem(error: RowError) -> str:
    where = []
    if error.column is not None:
        where.append(f"column {error.column!r}")
    if error.value:
        where.append(f"value {error.value!r}")
    return f"{', '.join(where)}: {error.reason}" if where else error.reason


def row_reports(errors: Iterable[RowError]) -> list[RowReport]:
    """The problems grouped by row, rows in file order, problems as found."""
    by_row: dict[int, list[str]] = defaultdict(list)
    for error in errors:
        by_row[error.row].append(_problem(error))
    return [RowReport(row=row, problems=problems) for row, problems in sorted(by_row.items())]


def upload_report(report: ImportReport, accepted: int) -> LeadUpload:
    return LeadUpload(
        total_rows=report.total_rows,
        accepted=accepted,
        rejected=row_reports(report.errors),
        duplicates=row_reports(report.duplicates),
        do_not_call=row_reports(report.do_not_call),
        warnings=list(report.warnings),
    )


Ctx = Annotated[ApiContext, Depends(context)]
Manager = Annotated[User, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
ERRORS: Final = error_responses(401, 403, 404)


def _campaign(ctx: ApiContext, campaign_id: str) -> CampaignConfig:
    for found in ctx.floor.config.campaigns:
        if found.id == campaign_id:
            return found
    raise ApiError(404, "not_found", "campaign.unknown", campaign=campaign_id)


@router.get("/campaigns", response_model=list[CampaignOut], responses=ERRORS)
async def list_campaigns(ctx: Ctx, user: Manager) -> list[CampaignOut]:
    """The configured campaigns and whether this node works them (a lead: its team's)."""
    return [
        _out(ctx, campaign)
        for campaign in ctx.floor.config.campaigns
        if sees_campaign(ctx, user, campaign.agents)
    ]


def _out(ctx: ApiContext, campaign: CampaignConfig) -> CampaignOut:
    runner = _runner(ctx, campaign.id)
    state: Literal["running", "paused", "stopped"] = "stopped"
    if runner is not None:
        state = "paused" if runner.dialing_paused else "running"
    return CampaignOut(
        id=campaign.id,
        name=campaign.name or campaign.id,
        mode=campaign.mode,
        state=state,
        agents=list(campaign.agents),
        trunks=list(campaign.trunks),
        signed_in=len(runner.agents) if runner is not None else 0,
    )


def _runner(ctx: ApiContext, campaign_id: str) -> CampaignRunner | None:
    return next((r for r in ctx.floor.runners if r.campaign_id == campaign_id), None)


def _running(ctx: ApiContext, campaign_id: str) -> tuple[CampaignConfig, CampaignRunner]:
    campaign = _campaign(ctx, campaign_id)
    runner = _runner(ctx, campaign_id)
    if runner is None:
        raise ApiError(409, "not_running", "campaign.not_running", campaign=campaign_id)
    return campaign, runner


@router.post(
    "/campaigns",
    status_code=201,
    response_model=CampaignOut,
    responses=error_responses(401, 403, 409, 422),
)
async def create_campaign(ctx: Ctx, user: Manager, body: CampaignIn) -> CampaignOut:
    """Define a campaign and start it on this node; it is kept, and run again after a restart."""
    campaigns = ctx.floor.campaigns
    if campaigns is None:
        raise ApiError(409, "not_run_here", "campaign.not_run_here")
    require_campaign(ctx, user, body.id, body.agents, act=True)
    settings = body.model_dump(exclude_none=True)
    try:
        runner = await campaigns.define(settings, user.username)
    except ConfigError as exc:
        problems = list(exc.problems)
        if any(p.startswith("campaign.id: campaign ") and "exists" in p for p in problems):
            raise ApiError(409, "exists", "campaign.exists", problems, campaign=body.id) from None
        raise ApiError(
            422, "invalid_request", "campaign.invalid", problems, count=len(problems)
        ) from None
    except StoreError as exc:
        raise ApiError(409, "exists", "campaign.exists", [str(exc)], campaign=body.id) from None
    log.info("campaign %s created by %s", runner.campaign_id, user.username)
    return _out(ctx, _campaign(ctx, runner.campaign_id))


@router.post(
    "/campaigns/{campaign_id}/pause",
    response_model=CampaignOut,
    responses=error_responses(401, 403, 404, 409),
)
async def pause_campaign(ctx: Ctx, user: Manager, campaign_id: str) -> CampaignOut:
    """Hold the campaign's dialing on this node: no new calls; calls in progress go on."""
    campaign, runner = _running(ctx, campaign_id)
    require_campaign(ctx, user, campaign.id, campaign.agents, act=True)
    runner.pause_dialing()
    log.info("campaign %s paused by %s", campaign_id, user.username)
    return _out(ctx, campaign)


@router.post(
    "/campaigns/{campaign_id}/resume",
    response_model=CampaignOut,
    responses=error_responses(401, 403, 404, 409),
)
async def resume_campaign(ctx: Ctx, user: Manager, campaign_id: str) -> CampaignOut:
    """Dial again after a pause."""
    campaign, runner = _running(ctx, campaign_id)
    require_campaign(ctx, user, campaign.id, campaign.agents, act=True)
    runner.resume_dialing()
    log.info("campaign %s resumed by %s", campaign_id, user.username)
    return _out(ctx, campaign)


def today_bounds_ms(ctx: ApiContext) -> tuple[int, int]:
    """Today in the floor's zone, as [start, end) UTC milliseconds."""
    tz = ZoneInfo(ctx.floor.config.service.timezone)
    today = datetime.fromtimestamp(ctx.now_ms() / 1000, tz).date()
    start = datetime(today.year, today.month, today.day, tzinfo=tz)
    return int(start.timestamp() * 1000), int(start.timestamp() * 1000) + 86_400_000


async def calls_today(ctx: ApiContext, campaign_id: str | None) -> dict[str, tuple[int, int, int]]:
    """(calls, answered, abandoned) today per campaign (all campaigns when None)."""
    start, end = today_bounds_ms(ctx)
    answered = func.sum(func.cast(CdrRow.outcome == Outcome.ANSWERED.value, Integer))
    abandoned = func.sum(func.cast(CdrRow.abandoned, Integer))
    statement = (
        select(CdrRow.campaign, func.count(), coalesce(answered, 0), coalesce(abandoned, 0))
        .where(
            CdrRow.status == CdrStatus.CLOSED.value,
            CdrRow.created_at_ms >= start,
            CdrRow.created_at_ms < end,
            CdrRow.campaign.is_not(None),
        )
        .group_by(CdrRow.campaign)
    )
    if campaign_id is not None:
        statement = statement.where(CdrRow.campaign == campaign_id)
    async with ctx.floor.database.sessionmaker() as session:
        rows = (await session.execute(statement)).all()
    return {str(row[0]): (int(row[1]), int(row[2]), int(row[3])) for row in rows}


def abandon_rate(answered: int, abandoned: int) -> float:
    return abandoned / answered if answered else 0.0


@router.get("/campaigns/{campaign_id}/stats", response_model=CampaignStats, responses=ERRORS)
async def campaign_stats(ctx: Ctx, user: Manager, campaign_id: str) -> CampaignStats:
    """Leads by state and today's calls, answers and abandoned calls against the cap."""
    campaign = _campaign(ctx, campaign_id)
    require_campaign(ctx, user, campaign.id, campaign.agents, act=False)
    leads = await LeadStore(ctx.floor.database).counts(campaign.id)
    calls, answered, abandoned = (await calls_today(ctx, campaign.id)).get(campaign.id, (0, 0, 0))
    return CampaignStats(
        leads_by_state=leads,
        calls_today=calls,
        answered_today=answered,
        abandoned_today=abandoned,
        abandon_rate_today=abandon_rate(answered, abandoned),
        abandon_cap=campaign.abandon_cap,
    )


async def _known_numbers(
    ctx: ApiContext, campaign_id: str
) -> tuple[frozenset[str], frozenset[str]]:
    """(numbers already in the campaign, numbers on its do-not-call lists)."""
    async with ctx.floor.database.sessionmaker() as session:
        existing = await session.scalars(select(Lead.phone).where(Lead.campaign_id == campaign_id))
        barred = await session.scalars(
            select(DoNotCall.phone).where(DoNotCall.scope.in_([GLOBAL_SCOPE, campaign_id]))
        )
        return frozenset(existing), frozenset(barred)


async def _feed_runners(
    ctx: ApiContext, store: LeadStore, campaign_id: str, phones: frozenset[str]
) -> None:
    """Hand the leads just imported (by their numbers) to the runners working the campaign."""
    runners = [runner for runner in ctx.floor.runners if runner.campaign_id == campaign_id]
    if not runners or not phones:
        return
    found = await store.candidates(campaign_id, datetime.now(UTC), _LEADS_LIMIT)
    new = [lead for lead in found if lead.phone in phones]
    for runner in runners:
        runner.add_leads([lead for lead in new if lead.lead_id not in runner.leads])


@router.post(
    "/campaigns/{campaign_id}/leads",
    response_model=LeadUpload,
    responses=error_responses(401, 403, 404, 409, 413, 422),
)
async def upload_leads(
    ctx: Ctx,
    user: Manager,
    campaign_id: str,
    request: Request,
    file: Annotated[UploadFile, File(description="CSV or TSV, UTF-8/GB18030/UTF-16")],
) -> LeadUpload:
    """Import a lead list: valid rows in one transaction, the others reported by row."""
    campaign = _campaign(ctx, campaign_id)
    require_campaign(ctx, user, campaign.id, campaign.agents, act=True)
    limit = ctx.floor.config.http.max_upload_bytes
    if file.size is not None and file.size > limit:
        raise ApiError(413, "too_large", "leads.too_large", limit=limit)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", "leads.too_large", limit=limit)
    existing, barred = await _known_numbers(ctx, campaign.id)
    # Parsing 100,000 rows takes a while: off the loop that carries the calls.
    report = await asyncio.to_thread(
        import_leads, data, existing=existing, dnc=barred, max_bytes=limit
    )
    if not report.importable:
        problems = [str(error) for error in report.file_errors]
        raise ApiError(422, "invalid_file", "leads.file_refused", problems, count=len(problems))
    store = LeadStore(ctx.floor.database)
    now = datetime.now(UTC)
    with contextlib.suppress(StoreError):  # it exists from an earlier import
        await store.create_campaign(
            campaign.id, campaign.name or campaign.id, campaign.mode, campaign.timezone, now=now
        )
    try:
        accepted = await store.import_report(campaign.id, report, now=now)
    except DuplicatePhoneError as exc:
        raise ApiError(409, "conflict", "leads.clash", [str(exc)]) from None
    await _feed_runners(ctx, store, campaign.id, frozenset(lead.phone for lead in report.leads))
    return upload_report(report, accepted)
