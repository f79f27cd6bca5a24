"""The agent desk over HTTP: sign in, ready or pause, the current call, its result.

Each route acts on the ``CampaignRunner`` the agent works in (the floor's
``runners``), through its public methods, as ``dialer.agent_commands`` does
over MQTT; the steps they share (which campaign, how to ring the desk phone)
are in ``dialer.agent_desk``. What the runner
refuses (``ValueError``, ``AgentError``) becomes a 409 (not now: no call to
hang up, not signed in) or a 422 (never: an unknown pause reason, a bad
number) with a message in the agent's language and the runner's own words
in ``details``.

``DeskTracker`` follows the floor's event stream to know each agent's
current call (the call id, number and lead of the latest call bound to the
agent since it was last reserved) and when its state last changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from dialer.agent_desk import DeskRefusedError, campaign_for, desk_phone, sign_out, signed_in
from dialer.agents.state import AgentError, AgentState
from dialer.api.auth import require
from dialer.api.context import ApiContext, context
from dialer.api.dispositions import label as result_label
from dialer.api.errors import ApiError, error_responses
from dialer.api.messages import register, text, text_or
from dialer.api.users import Role, User
from dialer.config import DispositionConfig, dispositions_of
from dialer.dialing.runner import CampaignRunner, FloorAgent
from dialer.events import (
    DISPOSITION_NOTE_MAX,
    AgentStateChanged,
    CallAssigned,
    CallBridged,
    CallEnded,
    DispositionSet,
    Event,
)
from dialer.leads.phone import InvalidNumber
from dialer.store.leads import LeadStore, UnknownLeadError
from quota.progress import COUNTS, QuotaProgress

# What an agent may set after a call (callback and dnc change the lead; see RetryRules).
# The states a desk shows; CONNECTING is the desk phone being called at sign-in.
DeskState = Literal["signed_out", "connecting", "ready", "reserved", "talking", "wrap_up", "paused"]
_WITH_CALL = frozenset({AgentState.RESERVED, AgentState.TALKING, AgentState.WRAP_UP})

register(
    {
        "desk.not_agent": {
            "en": "Your user is not linked to an agent; ask an admin to set agent_id.",
            "zh-CN": "您的账号未关联坐席，请联系管理员设置坐席编号。",
        },
        "desk.no_campaign": {
            "en": "You work in no running campaign.",
            "zh-CN": "您没有正在运行的外呼任务。",
        },
        "desk.not_signed_in": {
            "en": "Sign in to a campaign first.",
            "zh-CN": "请先签入外呼任务。",
        },
        "desk.no_phone": {
            "en": "Your desk phone {extension} is not registered; check that it is on.",
            "zh-CN": "您的话机 {extension} 未注册，请检查话机是否开机。",
        },
        "desk.in_call": {
            "en": "End or release the current call first.",
            "zh-CN": "请先结束或释放当前通话。",
        },
        "desk.refused": {
            "en": "The dialer cannot do this now.",
            "zh-CN": "系统当前无法执行该操作。",
        },
        "desk.invalid": {
            "en": "The dialer cannot accept this.",
            "zh-CN": "系统无法接受该请求。",
        },
        "desk.bad_number": {
            "en": "This is not a number that can be dialed.",
            "zh-CN": "该号码无法拨打。",
        },
        "desk.pause_reason": {
            "en": "Choose a pause reason: {known}.",
            "zh-CN": "请选择暂停原因：{known}。",
        },
        "desk.disposition": {
            "en": "Choose a call result: {known}.",
            "zh-CN": "请选择通话结果：{known}。",
        },
        "desk.skip_reason": {
            "en": "Say why you skip this customer.",
            "zh-CN": "请填写跳过该客户的原因。",
        },
        "desk.callback_time": {
            "en": "A callback needs a date and time with its zone (ISO 8601).",
            "zh-CN": "预约回拨需要带时区的日期时间（ISO 8601）。",
        },
        "pause.break": {"en": "Break", "zh-CN": "休息"},
        "pause.toilet": {"en": "Toilet", "zh-CN": "洗手间"},
        "pause.training": {"en": "Training", "zh-CN": "培训"},
        "pause.meeting": {"en": "Meeting", "zh-CN": "会议"},
        "quota.dials": {"en": "Dials", "zh-CN": "拨打次数"},
        "quota.connects": {"en": "Connected calls", "zh-CN": "接通次数"},
        "quota.effective_calls": {"en": "Effective calls", "zh-CN": "有效通话"},
        "quota.talk_ms": {"en": "Talk time (ms)", "zh-CN": "通话时长（毫秒）"},
        "quota.talk_minutes": {"en": "Talk minutes", "zh-CN": "通话分钟"},
        "quota.follow_up_customers": {"en": "Follow-up customers", "zh-CN": "跟进客户"},
        "quota.customer_records": {"en": "Customer records", "zh-CN": "客户记录"},
        "quota.new_customer_calls": {"en": "New-customer calls", "zh-CN": "新客户通话"},
        "quota.follow_up_calls": {"en": "Follow-up calls", "zh-CN": "跟进通话"},
    }
)


# -- the shared steps ------------------------------------------------------------------


# -- following the calls ---------------------------------------------------------------


@dataclass
class Assignment:
    call_id: str
    campaign: str | None
    lead_id: str | None
    number: str
    bound_ms: int  # when the call became this agent's (assigned, or bridged if predictive)
    agent: str | None
    dispositioned: bool = False


class DeskTracker:
    """Each agent's latest call and last state change, from the floor's event stream."""

    def __init__(self, runners: Sequence[CampaignRunner]) -> None:
        self._runners = runners
        self._calls: dict[str, Assignment] = {}  # calls in flight
        self.latest: dict[str, Assignment] = {}
        self.since_ms: dict[str, int] = {}
        self._reserved_ms: dict[str, int] = {}

    def on_event(self, event: Event) -> set[str]:
        """Take one event; the agents whose desk it changed."""
        if isinstance(event, AgentStateChanged):
            self.since_ms[event.agent] = event.at_ms
            if event.state == AgentState.RESERVED:
                self._reserved_ms[event.agent] = event.at_ms
            return {event.agent}
        if isinstance(event, CallAssigned):
            found = Assignment(
                event.call_id, event.campaign, event.lead_id, event.number, event.at_ms, event.agent
            )
            self._calls[event.call_id] = found
            if event.agent is not None:
                self.latest[event.agent] = found
                return {event.agent}
            return set()
        if isinstance(event, CallBridged):
            bridged = self._calls.get(event.call_id)
            if bridged is None:
                return set()
            if bridged.agent is None:  # predictive: the agent is known once it is bridged
                bridged.agent = self._agent_on_leg(event.agent_leg)
                bridged.bound_ms = event.at_ms
                if bridged.agent is not None:
                    self.latest[bridged.agent] = bridged
            return {bridged.agent} if bridged.agent is not None else set()
        if isinstance(event, CallEnded):
            ended = self._calls.pop(event.call_id, None)
            return {ended.agent} if ended is not None and ended.agent is not None else set()
        if isinstance(event, DispositionSet):
            latest = self.latest.get(event.agent)
            if latest is not None and latest.call_id == event.call_id:
                latest.dispositioned = True
            return {event.agent}
        return set()

    def agent_of(self, call_id: str) -> str | None:
        found = self._calls.get(call_id)
        return found.agent if found is not None else None

    def current(self, agent: str, state: AgentState) -> Assignment | None:
        """The agent's call now: bound since its last reservation, while it has a call."""
        latest = self.latest.get(agent)
        if latest is None or state not in _WITH_CALL:
            return None
        if latest.bound_ms < self._reserved_ms.get(agent, 0):
            return None  # an earlier call's; the new one is not assigned yet
        return latest

    def _agent_on_leg(self, leg: str) -> str | None:
        for runner in self._runners:
            for agent, desk in runner.agents.items():
                if desk.leg == leg:
                    return agent
        return None


# -- bodies ------------------------------------------------------------------------------


class PauseReasonOut(BaseModel):
    code: str
    label: str


class DispositionOut(BaseModel):
    code: str
    label: str  # in the reader's language when the catalogue has the code, else as configured
    callback: bool = Field(description="needs callback_at: the time agreed with the customer")


class LeadCard(BaseModel):
    id: str
    name: str | None
    phone: str  # unmasked: it is the agent's own current call
    fields: dict[str, str]


class CurrentCall(BaseModel):
    call_id: str
    number: str
    started_ms: int
    lead: LeadCard | None


class DeskOut(BaseModel):
    agent_id: str
    campaign: str | None
    state: DeskState
    reason: str | None
    since_ms: int
    pause_reasons: list[PauseReasonOut]
    dispositions: list[DispositionOut]  # the results this campaign's agents may set
    current_call: CurrentCall | None
    awaiting_disposition: bool
    preview: LeadCard | None


class QuotaItem(BaseModel):
    metric: str
    label: str
    target: float
    done: float
    shortfall: float
    percent: float


class QuotaOut(BaseModel):
    agent_id: str
    day: str
    items: list[QuotaItem]


class SignInBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str | None = Field(default=None, min_length=1, max_length=64)


class StateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["ready", "paused"]
    reason: str | None = Field(default=None, min_length=1, max_length=64)


class DispositionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    callback_at: datetime | None = None
    callback_anyone: bool = False
    note: str = Field(default="", max_length=DISPOSITION_NOTE_MAX, description="goes to the CDR")


class DialBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=32)


class SkipBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=200, description="required: why (kept)")


async def lead_card(ctx: ApiContext, lead_id: str | None) -> LeadCard | None:
    if lead_id is None:
        return None
    try:
        lead = await LeadStore(ctx.floor.database).lead(lead_id)
    except UnknownLeadError:
        return None  # a manual dial's stand-in lead, or a lead of another node's store
    return LeadCard(id=lead.id, name=lead.name, phone=lead.phone, fields=dict(lead.extra))


def _pause_reasons(
    ctx: ApiContext, runner: CampaignRunner | None, locale: str
) -> list[PauseReasonOut]:
    if runner is not None:
        reasons = [(r.code, r.label) for r in runner.policy.pause_reasons]
    else:
        reasons = [(r.code, r.label) for r in ctx.floor.config.agent_policy.pause_reasons]
    return [
        PauseReasonOut(code=code, label=text_or(f"pause.{code}", label, locale))
        for code, label in reasons
    ]


def _offered(ctx: ApiContext, runner: CampaignRunner | None) -> tuple[DispositionConfig, ...]:
    config = ctx.floor.config
    for campaign in config.campaigns:
        if runner is not None and campaign.id == runner.campaign_id:
            return dispositions_of(config, campaign)
    return config.agent_policy.dispositions


def _dispositions(
    ctx: ApiContext, runner: CampaignRunner | None, locale: str
) -> list[DispositionOut]:
    return [
        DispositionOut(code=d.code, label=result_label(d, locale), callback=d.effect == "callback")
        for d in _offered(ctx, runner)
    ]


async def desk_body(ctx: ApiContext, agent: str, locale: str) -> DeskOut:
    """The agent's desk as the page shows it."""
    desk: FloorAgent | None = None
    runner: CampaignRunner | None = None
    with contextlib.suppress(DeskRefusedError):
        runner, desk = signed_in(ctx.floor.runners, agent)
    since = ctx.desks.since_ms.get(agent, ctx.now_ms())
    if runner is None or desk is None:
        return DeskOut(
            agent_id=agent,
            campaign=None,
            state="signed_out",
            reason=None,
            since_ms=since,
            pause_reasons=_pause_reasons(ctx, None, locale),
            dispositions=_dispositions(ctx, None, locale),
            current_call=None,
            awaiting_disposition=False,
            preview=None,
        )
    state = desk.agent.state
    reason = desk.agent.pause_reason
    current = ctx.desks.current(agent, state) if desk.preview is None else None
    call = None
    if current is not None:
        call = CurrentCall(
            call_id=current.call_id,
            number=current.number,
            started_ms=current.bound_ms,
            lead=await lead_card(ctx, current.lead_id),
        )
    preview = None
    if desk.preview is not None:
        preview = await lead_card(ctx, desk.preview.lead_id) or LeadCard(
            id=desk.preview.lead_id, name=None, phone=desk.preview.phone, fields={}
        )
    return DeskOut(
        agent_id=agent,
        campaign=runner.campaign_id,
        state=state.value,
        reason=reason.code if reason is not None and state is AgentState.PAUSED else None,
        since_ms=since,
        pause_reasons=_pause_reasons(ctx, runner, locale),
        dispositions=_dispositions(ctx, runner, locale),
        current_call=call,
        # An answered call, a lead's or a manual dial's, waits for its result in wrap-up.
        awaiting_disposition=(
            state is AgentState.WRAP_UP and current is not None and not current.dispositioned
        ),
        preview=preview,
    )


def quota_body(progress: QuotaProgress, locale: str) -> QuotaOut:
    items = []
    for metric in COUNTS:
        if metric not in progress.targets:
            continue
        items.append(
            QuotaItem(
                metric=metric,
                label=text(f"quota.{metric}", locale),
                target=progress.targets[metric],
                done=progress.counts.get(metric, 0.0),
                shortfall=progress.shortfall[metric],
                percent=round(100 * progress.attainment[metric], 1),
            )
        )
    return QuotaOut(agent_id=progress.agent, day=progress.day.isoformat(), items=items)


def today_progress(ctx: ApiContext, agent: str) -> QuotaProgress:
    counters = ctx.floor.quotas.counters
    return counters.progress(agent, counters.policy.periods.day_of(ctx.now_ms()))


# -- routes ------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/desk", tags=["desk"])
Context = Annotated[ApiContext, Depends(context)]
Agent = Annotated[User, Depends(require(Role.AGENT))]
ERRORS = error_responses(401, 403, 409, 422)


def _agent_id(user: User) -> str:
    if user.agent_id is None:
        raise ApiError(409, "not_an_agent", "desk.not_agent")
    return user.agent_id


async def _act(ctx: ApiContext, user: User, action: Callable[[str], object]) -> DeskOut:
    """Run a desk action and answer with the desk; the floor's refusals as 409/422."""
    agent = _agent_id(user)
    try:
        done = action(agent)
        if asyncio.iscoroutine(done):
            await done
    except DeskRefusedError as exc:
        raise ApiError(409, "refused", exc.key, [str(exc)], **exc.params) from None
    except InvalidNumber as exc:
        raise ApiError(422, "invalid_number", "desk.bad_number", [str(exc)]) from None
    except (ValueError, AgentError) as exc:
        raise ApiError(409, "refused", "desk.refused", [str(exc)]) from None
    return await desk_body(ctx, agent, user.locale)


@router.get("", responses=ERRORS)
async def get_desk(user: Agent, ctx: Context) -> DeskOut:
    return await desk_body(ctx, _agent_id(user), user.locale)


@router.post("/sign-in", responses=ERRORS)
async def post_sign_in(user: Agent, ctx: Context, body: SignInBody | None = None) -> DeskOut:
    floor = ctx.floor

    async def sign_in(agent: str) -> None:
        try:
            signed_in(floor.runners, agent)
            return  # already signed in: the desk as it is
        except DeskRefusedError:
            pass
        runner = campaign_for(floor.config, floor.runners, agent, body.campaign if body else None)
        registrar = floor.service.endpoint.registrar
        phone = desk_phone(floor.config, registrar, agent, asyncio.get_running_loop().time())
        extension = {a.id: a.extension for a in floor.config.agents}.get(agent)
        await runner.sign_in(agent, phone, extension=extension)

    return await _act(ctx, user, sign_in)


@router.post("/sign-out", responses=ERRORS)
async def post_sign_out(user: Agent, ctx: Context) -> DeskOut:
    def out(agent: str) -> None:
        runner, desk = signed_in(ctx.floor.runners, agent)
        sign_out(runner, desk)

    return await _act(ctx, user, out)


@router.post("/state", responses=ERRORS)
async def post_state(body: StateBody, user: Agent, ctx: Context) -> DeskOut:
    def change(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        if body.state == "ready":
            runner.ready(agent)
            return
        known = [r.code for r in runner.policy.pause_reasons]
        if body.reason not in known:
            raise ApiError(
                422,
                "invalid_request",
                "desk.pause_reason",
                [f"reason: {body.reason!r} is not one of {', '.join(known)}"],
                known=", ".join(known),
            )
        runner.pause(agent, body.reason)

    return await _act(ctx, user, change)


@router.post("/disposition", responses=ERRORS)
async def post_disposition(body: DispositionBody, user: Agent, ctx: Context) -> DeskOut:
    runner: CampaignRunner | None = None
    with contextlib.suppress(DeskRefusedError):
        runner, _ = signed_in(ctx.floor.runners, _agent_id(user))
    offered = {d.code: d for d in _offered(ctx, runner)}
    chosen = offered.get(body.code)
    if chosen is None:
        labels = [result_label(d, user.locale) for d in offered.values()]
        raise ApiError(
            422,
            "invalid_request",
            "desk.disposition",
            [f"code: {body.code!r} is not one of {', '.join(offered)}"],
            known="、".join(labels) if user.locale == "zh-CN" else ", ".join(labels),
        )
    at = body.callback_at
    asks_time = chosen.effect == "callback"
    if asks_time != (at is not None) or (at is not None and at.tzinfo is None):
        raise ApiError(
            422,
            "invalid_request",
            "desk.callback_time",
            ["callback_at: needed (with its zone) for a callback, and only for one"],
        )

    async def dispose(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        await runner.disposition(
            agent,
            body.code,
            callback_at=at,
            callback_anyone=body.callback_anyone,
            note=body.note,
        )

    return await _act(ctx, user, dispose)


@router.post("/hangup", responses=ERRORS)
async def post_hangup(user: Agent, ctx: Context) -> DeskOut:
    def hang_up(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        runner.hang_up(agent)

    return await _act(ctx, user, hang_up)


@router.post("/dial", responses=ERRORS)
async def post_dial(body: DialBody, user: Agent, ctx: Context) -> DeskOut:
    async def dial(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        await runner.manual_dial(agent, body.number)

    return await _act(ctx, user, dial)


@router.post("/preview/next", responses=ERRORS)
async def post_preview_next(user: Agent, ctx: Context) -> DeskOut:
    async def next_lead(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        await runner.preview_next(agent)  # None: nothing to preview; the desk shows no lead

    return await _act(ctx, user, next_lead)


@router.post("/preview/accept", responses=ERRORS)
async def post_preview_accept(user: Agent, ctx: Context) -> DeskOut:
    async def accept(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        await runner.accept_preview(agent)

    return await _act(ctx, user, accept)


@router.post("/preview/skip", responses=ERRORS)
async def post_preview_skip(body: SkipBody, user: Agent, ctx: Context) -> DeskOut:
    def skip(agent: str) -> None:
        runner, _ = signed_in(ctx.floor.runners, agent)
        if not body.reason.strip():
            raise ApiError(422, "invalid_request", "desk.skip_reason", ["reason: empty"])
        runner.skip_preview(agent, body.reason.strip())

    return await _act(ctx, user, skip)


@router.get("/quota", responses=ERRORS)
async def get_quota(user: Agent, ctx: Context) -> QuotaOut:
    return quota_body(today_progress(ctx, _agent_id(user)), user.locale)
