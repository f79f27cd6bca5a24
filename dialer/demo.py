"""The demo floor: the service on embedded defaults plus simulated phones.

Everything goes over real SIP on loopback with the production code on both
sides: each simulated desk phone is its own SIP endpoint on its own UDP port
that registers with digest credentials to the service's registrar and
answers the persistent call the service makes at sign-in. A progressive
campaign then dials simulated customers (one more line, answering with a mix
of outcomes) for every ready agent; every answered call is bridged into the
agent's leg and recorded; CDRs, quotas and metrics follow from the calls.

With ``http_port`` the floor also serves the HTTP API (and the pages), and
demo users are seeded: ``admin``, ``supervisor``, ``qa`` and one agent user
per simulated agent (username = agent id), all with the one demo password.
Agents named in ``desk_agents`` are left to a person at the desk page: the
simulation neither signs them in nor sets their calls' results (their
simulated desk phones still register and auto-answer). With ``desk_mode``
"preview" those agents work a second campaign of their own, in preview mode
(the agent asks for the next lead, then accepts or skips it), over the same
simulated customers: a progressive campaign dials for a ready agent by
itself, so the desk's preview buttons could not be tried on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdr.effective import DEFAULT_RULE, EffectiveRule
from cdr.reports import period_bounds, report
from cdr.store import CdrStore
from dialer.agents.state import AgentPolicy, AgentState
from dialer.app import wall_clock
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import CampaignHours
from dialer.campaigns.recycling import RetryRules
from dialer.campaigns.windows import CallingWindows
from dialer.config import (
    AgentConfig,
    CampaignConfig,
    CdrConfig,
    Config,
    DatabaseConfig,
    HttpConfig,
    PhoneConfig,
    SipConfig,
)
from dialer.dialing.runner import CampaignRunner, DialMode
from dialer.events import (
    AgentStateChanged,
    CallBridged,
    CallEnded,
    Event,
    IncomingCall,
    RecordingClosed,
    RecordingFailed,
)
from dialer.floor import Floor, now_ms, running_floor
from dialer.leads.csv_import import import_leads
from dialer.sim.line import AnswerPlan, SimLine
from dialer.sip.autoanswer import auto_answer_headers
from dialer.sip.registration import RegistrationClient, RegistrationState, RegistrationTarget
from dialer.sip.uri import SipUri
from dialer.store.leads import LeadStore

LEADS_PER_PHONE = 40
# What a simulated customer's line does, by name: the SIP status it answers with.
# "no_answer" rings until the dialer gives up (never before 15 s).
BEHAVIOURS = {"answer": 200, "busy": 486, "invalid": 404, "unavailable": 480, "no_answer": 0}
DEFAULT_MIX = "answer=60,busy=20,invalid=10,unavailable=10"
DEFAULT_TALK = "2-6"  # a customer who answers talks for a uniform time in this range, seconds
# What the simulated agents set after a call, and how often.
DISPOSITIONS = (("sale", 30), ("not_interested", 50), ("callback", 15), ("dnc", 5))
WRAP_UP_S = (0.2, 0.8)  # how long a simulated agent takes to set the result

DESK_MODES = ("progressive", "preview")  # how the desk agents' campaign dials
# A person sets the result at the desk page: more time than the simulated agents need.
# The desk phone is rung with each call, as `dialer serve` does for preview campaigns.
PREVIEW_POLICY = AgentPolicy(wrap_up_limit_s=30.0, persistent_connection=False)

DEMO_RULE = EffectiveRule(name="demo", version=1, min_talk_s=3.0)
DEMO_PASSWORD = "demo"
# The demo's staff besides one user per agent: (username, role, locale).
DEMO_STAFF = (
    ("admin", "admin", "en"),
    ("supervisor", "supervisor", "zh-CN"),
    ("qa", "qa", "zh-CN"),
)


@dataclass(frozen=True, slots=True)
class CustomerMix:
    """The simulated customers' behaviour weights and talk time (uniform, seconds)."""

    weights: tuple[tuple[str, int], ...]
    talk_s: tuple[float, float]

    @classmethod
    def parse(cls, mix: str = DEFAULT_MIX, talk: str = DEFAULT_TALK) -> CustomerMix:
        problems: list[str] = []
        weights: list[tuple[str, int]] = []
        for part in mix.split(","):
            name, _, raw = part.strip().partition("=")
            if name not in BEHAVIOURS:
                known = ", ".join(BEHAVIOURS)
                problems.append(f"--mix: unknown behaviour {name!r} (known: {known})")
            elif not raw.isdigit():
                problems.append(f"--mix: {name}={raw!r} is not a whole number")
            else:
                weights.append((name, int(raw)))
        if not problems and sum(w for _, w in weights) == 0:
            problems.append("--mix: the weights add up to 0")
        low, _, high = talk.partition("-")
        try:
            talk_s = (float(low), float(high or low))
            if not 0 < talk_s[0] <= talk_s[1]:
                problems.append(f"--talk: {talk!r} must be positive, low before high")
        except ValueError:
            problems.append(f"--talk: {talk!r} is not SECONDS or LOW-HIGH")
            talk_s = (0.0, 0.0)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(tuple(weights), talk_s)


@dataclass
class DemoSummary:
    phones: int
    duration: float
    registered_at_service: int = 0
    phones_registered: int = 0
    register_requests: int = 0
    challenges: int = 0
    auth_failures: int = 0
    malformed: int = 0
    calls_placed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    calls_bridged: int = 0
    talk_seconds: float = 0.0
    recordings: int = 0
    recordings_verified: int = 0
    recorded_seconds: float = 0.0
    campaign: str = ""
    preview_campaign: str = ""  # the desk agents' own, with --desk-mode preview
    preview_skips: int = 0
    leads_imported: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    db_lead_states: dict[str, int] = field(default_factory=dict)
    db_attempts: dict[str, int] = field(default_factory=dict)
    cdr_rows: int = 0
    cdr_effective: int = 0
    cdr_talk_seconds: float = 0.0
    quota_matches_cdrs: bool = False
    metrics_port: int | None = None
    http_port: int | None = None
    users: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        registered = self.phones_registered == self.phones == self.registered_at_service
        recorded = self.recordings == self.recordings_verified == self.calls_bridged
        # The database tells the same story as the wire: every attempt, every outcome.
        stored = self.db_attempts == self.outcomes and (
            sum(self.db_lead_states.values()) == self.leads_imported
        )
        # One CDR per call placed, and the CDRs' talk time is the wire's (to the ms).
        records = self.cdr_rows == self.calls_placed and (
            abs(self.cdr_talk_seconds - self.talk_seconds) <= 0.001 * max(1, self.calls_bridged)
        )
        return (
            registered
            and self.quota_matches_cdrs
            and recorded
            and stored
            and records
            and sum(self.outcomes.values()) == self.calls_placed
        )

    def render(self) -> str:
        kinds: dict[str, int] = {}
        for event in self.events:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
        outcomes = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        rows = [
            ("duration", f"{self.duration:.1f} s"),
            ("simulated phones", self.phones),
            ("registered (phones)", self.phones_registered),
            ("registered (registrar)", self.registered_at_service),
            ("REGISTER requests", self.register_requests),
            ("digest challenges", self.challenges),
            ("auth failures", self.auth_failures),
            ("malformed messages", self.malformed),
            ("calls placed", self.calls_placed),
            ("customer outcomes", outcomes or "none"),
            ("campaign", self.campaign),
            ("agents' dispositions", _pairs(self.dispositions)),
            ("leads imported", self.leads_imported),
            ("leads by state (db)", _pairs(self.db_lead_states)),
            ("attempts (db)", _pairs(self.db_attempts)),
            ("CDRs (db)", self.cdr_rows),
            ("effective calls (CDRs)", self.cdr_effective),
            ("talk seconds (CDRs)", f"{self.cdr_talk_seconds:.1f}"),
            ("quota report = CDRs", "yes" if self.quota_matches_cdrs else "NO"),
            ("metrics", f"http://127.0.0.1:{self.metrics_port}/metrics"),
            ("api", f"http://127.0.0.1:{self.http_port}/api/docs" if self.http_port else "off"),
            ("demo users", ", ".join(self.users) or "none"),
            ("calls bridged", self.calls_bridged),
            ("talk seconds", f"{self.talk_seconds:.1f}"),
            ("recordings", self.recordings),
            ("recordings verified", self.recordings_verified),
            ("recorded seconds", f"{self.recorded_seconds:.1f}"),
            ("events", ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())) or "none"),
            ("result", "ok" if self.ok else "MISMATCH"),
        ]
        if self.preview_campaign:
            at = rows.index(("campaign", self.campaign)) + 1
            rows[at:at] = [
                ("preview campaign", self.preview_campaign),
                ("preview skips", self.preview_skips),
            ]
        # Two spaces at least between label and value: labels have single spaces.
        lines = ["demo floor summary"] + [f"  {label:<22}  {value}" for label, value in rows]
        return "\n".join(lines)


async def _disposition(campaign: CampaignRunner, agent: str, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(*WRAP_UP_S))
    codes = [code for code, _ in DISPOSITIONS]
    code = rng.choices(codes, [weight for _, weight in DISPOSITIONS])[0]
    callback_at = datetime.now(UTC) + timedelta(hours=2) if code == "callback" else None
    with contextlib.suppress(ValueError):  # the call may have been settled meanwhile
        await campaign.disposition(agent, code, callback_at=callback_at)


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def _customer_plan(mix: CustomerMix, rng: random.Random) -> Callable[[IncomingCall], AnswerPlan]:
    names = [name for name, _ in mix.weights]
    weights = [weight for _, weight in mix.weights]

    def plan(call: IncomingCall) -> AnswerPlan:
        status = BEHAVIOURS[rng.choices(names, weights)[0]]
        if status == 0:
            return AnswerPlan(200, ring_s=3600.0)  # rings until cancelled
        return AnswerPlan(status, ring_s=rng.uniform(0.3, 1.0), talk_s=rng.uniform(*mix.talk_s))

    return plan


def _demo_csv(count: int, rng: random.Random) -> bytes:
    """A lead list as a Chinese Excel export: UTF-8 with BOM, Chinese headers, mobiles."""
    rows = ["电话,姓名,优先级"]
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(f"1{rng.randrange(3, 10)}{rng.randrange(10**9):09d}")
    for n, number in enumerate(sorted(numbers)):
        rows.append(f"{number[:3]} {number[3:7]} {number[7:]},客户{n:04d},{rng.randrange(3)}")
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8")


def _verified(event: RecordingClosed) -> bool:
    path = Path(event.path)
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == event.sha256


async def seed_users(floor: Floor, password: str) -> list[str]:
    """The demo's users, created or given the demo password again (the data dir is kept)."""
    assert floor.api is not None
    users = floor.api.users
    wanted: list[tuple[str, str, str, str | None]] = [
        (name, role, locale, None) for name, role, locale in DEMO_STAFF
    ]
    wanted += [(agent.id, "agent", "zh-CN", agent.id) for agent in floor.config.agents]
    for username, role, locale, agent_id in wanted:
        found = await users.by_username(username)
        if found is None:
            await users.create_user(
                username=username, password=password, role=role, locale=locale, agent_id=agent_id
            )
        else:
            await users.set_password(found.id, password)
    return [username for username, _, _, _ in wanted]


def demo_agents(phones: int) -> list[str]:
    return [f"agent-{1001 + i}" for i in range(phones)]


async def run_demo(
    phones: int,
    duration: float,
    data_dir: Path,
    mix: CustomerMix | None = None,
    *,
    metrics_port: int = 0,
    http_port: int | None = None,
    password: str = DEMO_PASSWORD,
    desk_agents: Sequence[str] = (),
    desk_mode: str = "progressive",
    announce: Callable[[str], None] = lambda line: None,
) -> DemoSummary:
    """Run the demo floor; ``http_port`` None serves no API (0: any free port).

    ``desk_mode`` "preview" puts the ``desk_agents`` on a preview campaign of
    their own; the other agents stay on the progressive one."""
    if phones < 1:
        raise ValueError("--phones must be at least 1")
    unknown = sorted(set(desk_agents) - set(demo_agents(phones)))
    if unknown:
        known = ", ".join(demo_agents(phones))
        raise ValueError(f"--desk-agents: {', '.join(unknown)} not among the agents ({known})")
    if desk_mode not in DESK_MODES:
        raise ValueError(f"--desk-mode: {desk_mode!r} is not one of {', '.join(DESK_MODES)}")
    if desk_mode == "preview" and not desk_agents:
        raise ValueError(
            "--desk-mode preview needs --desk-agents: the agents who work the preview "
            "campaign at the desk page"
        )
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    extensions = [str(1001 + i) for i in range(phones)]
    rng = random.Random(secrets.randbits(64))
    # Each run is its own campaign, so the data directory keeps every earlier run.
    campaign_id = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}-{rng.randrange(1000):03d}"
    preview_agents = (
        tuple(a for a in demo_agents(phones) if a in desk_agents) if desk_mode == "preview" else ()
    )
    preview_id = f"{campaign_id}-preview" if preview_agents else ""
    # Configured, so the desk can sign its agents in to them: the desk signs an
    # agent in to the running campaign its configuration names, so each agent
    # is in one campaign only.
    campaigns = [
        CampaignConfig(
            id=campaign_id,
            mode="progressive",
            name="Demo floor",
            agents=tuple(a for a in demo_agents(phones) if a not in preview_agents),
            effective_rule=DEMO_RULE.name,
        )
    ]
    if preview_agents:
        campaigns.append(
            CampaignConfig(
                id=preview_id,
                mode="preview",
                name="Demo preview",
                agents=preview_agents,
                effective_rule=DEMO_RULE.name,
            )
        )
    passwords = {ext: secrets.token_urlsafe(12) for ext in extensions}
    tenure = datetime.now(UTC).date() - timedelta(days=90)  # standard agents, past the first month
    config = Config(
        sip=SipConfig(udp_port=0, tcp_port=0),
        phones=tuple(PhoneConfig(ext, pw, vendor="generic") for ext, pw in passwords.items()),
        agents=tuple(
            AgentConfig(f"agent-{ext}", ext, team="demo", start_date=tenure) for ext in extensions
        ),
        # The demo's calls last seconds, not minutes: judged by a rule of its own
        # (the shipped default asks for 30 s with a live person).
        effective_rules=(DEFAULT_RULE, DEMO_RULE),
        cdr=CdrConfig(default_effective_rule=DEMO_RULE.name),
        campaigns=tuple(campaigns),
        http=HttpConfig(enabled=http_port is not None, port=http_port or 0),
    )
    config = dataclasses.replace(
        config,
        service=dataclasses.replace(config.service, data_dir=data_dir),
        media=dataclasses.replace(config.media, recordings_dir=str(data_dir / "recordings")),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{data_dir / 'dialer.db'}"),
        metrics=dataclasses.replace(config.metrics, port=metrics_port),
    )
    summary = DemoSummary(phones=phones, duration=duration)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    async with running_floor(config) as floor:
        service = floor.service
        summary.metrics_port = floor.metrics_port
        if floor.http_port is not None:
            summary.http_port = floor.http_port
            summary.users = await seed_users(floor, password)
            announce(f"demo: API and pages on http://127.0.0.1:{floor.http_port}/ (/api/docs)")
            announce(
                f"demo: users {', '.join(summary.users)}, password {password!r}"
                + (f"; at the desk page: {', '.join(desk_agents)}" if desk_agents else "")
            )
        seen: list[Event] = []
        changed = asyncio.Event()

        def collect(event: Event) -> None:
            seen.append(event)
            changed.set()

        service.subscribe(collect)
        service_address = service.sip_address
        realm = config.sip.realm
        agents: dict[str, SimLine] = {}
        clients: list[tuple[RegistrationClient, SimLine]] = []
        for ext in extensions:
            line = SimLine(ext, lambda call: AnswerPlan(200, ring_s=0.1), tone_hz=440.0, rng=rng)
            await line.start(wall_clock())
            assert line.endpoint is not None and line.adapter is not None
            host, port = line.address
            target = RegistrationTarget(
                registrar_uri=f"sip:{realm}",
                aor=f"sip:{ext}@{realm}",
                contact=f"sip:{ext}@{host}:{port}",
                via_host=host,
                via_port=port,
                username=ext,
                password=passwords[ext],
                expires=300,
            )
            client = RegistrationClient(target, rng)
            line.endpoint.add_registration(client, service_address, loop.time())
            line.adapter.flush()
            agents[ext] = line
            clients.append((client, line))
        customers = SimLine(
            "customers", _customer_plan(mix or CustomerMix.parse(), rng), tone_hz=1000.0, rng=rng
        )
        await customers.start(wall_clock())
        registrar = service.endpoint.registrar
        assert registrar is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.1, min(5.0, duration / 2))):
                while len(registrar.registered_extensions(loop.time())) < phones:
                    changed.clear()
                    await changed.wait()
        summary.registered_at_service = len(registrar.registered_extensions(loop.time()))
        # The floor: a progressive campaign; its agents are on a persistent connection.
        # Its leads come from a CSV file as Chinese Excel writes it, through the database.
        store = LeadStore(floor.database)

        def route(number: str) -> Dial:
            return Dial(f"sip:{number.lstrip('+')}@{customers.address[0]}", customers.address)

        summary.campaign = campaign_id
        campaign, summary.leads_imported = await _demo_campaign(
            floor,
            store,
            campaign_id,
            "Demo floor",
            DialMode.PROGRESSIVE,
            leads=LEADS_PER_PHONE * phones,
            route=route,
            rng=rng,
            policy=AgentPolicy(wrap_up_limit_s=10.0),
        )
        runners = [campaign]
        preview: CampaignRunner | None = None
        if preview_agents:
            # The desk agents' own: leads of their own, the same customers.
            summary.preview_campaign = preview_id
            preview, imported = await _demo_campaign(
                floor,
                store,
                preview_id,
                "Demo preview",
                DialMode.PREVIEW,
                leads=LEADS_PER_PHONE * len(preview_agents),
                route=route,
                rng=rng,
                policy=PREVIEW_POLICY,
            )
            summary.leads_imported += imported
            runners.append(preview)
            announce(
                f"demo: preview campaign {preview_id} for {', '.join(preview_agents)}: "
                "next lead, then accept or skip, at the desk page"
            )
        # The simulated agents set a result in wrap-up, as an agent would on the desk page.
        dispositions: set[asyncio.Task[None]] = set()

        def wrap_up(event: Event) -> None:
            if (
                isinstance(event, AgentStateChanged)
                and event.state == AgentState.WRAP_UP
                and event.agent not in desk_agents  # a person sets those results
            ):
                task = loop.create_task(_disposition(campaign, event.agent, rng))
                dispositions.add(task)
                task.add_done_callback(dispositions.discard)

        service.subscribe(wrap_up)
        stop = asyncio.Event()
        running = [
            asyncio.create_task(runner.run(stop), name=f"demo-campaign-{runner.campaign_id}")
            for runner in runners
        ]
        for ext in extensions:
            bindings = registrar.lookup(ext, loop.time())
            if not bindings or f"agent-{ext}" in desk_agents:
                continue
            contact = SipUri.parse(bindings[0].contact)
            phone = Dial(
                bindings[0].contact,
                (contact.host, contact.port or 5060),
                extra_headers=auto_answer_headers("generic"),
            )
            await campaign.sign_in(f"agent-{ext}", phone, extension=ext)
        await asyncio.sleep(max(0.0, deadline - 1.0 - loop.time()))
        stop.set()
        await asyncio.gather(*running)
        placed = {d.call_id for runner in runners for d in runner.dialed}
        summary.calls_placed = len(placed)
        for call_id in placed:
            service.calls.hangup(call_id)
        await _settle(seen, changed, placed)
        for runner in runners:
            for desk in runner.agents.values():
                if desk.leg is not None:
                    service.calls.disconnect_agent(desk.leg)
        if dispositions:
            await asyncio.wait(list(dispositions), timeout=5)  # results still being set
        summary.dispositions = dict(
            Counter(code for runner in runners for _, _, code in runner.dispositions)
        )
        summary.preview_skips = len(preview.skips) if preview is not None else 0
        for runner in runners:
            await runner.close()
        await _records_settled(floor)
        cdrs = CdrStore(floor.database.sessionmaker)
        lead_states: Counter[str] = Counter()
        attempts: Counter[str] = Counter()
        for runner in runners:
            async for record in cdrs.search(0, now_ms() + 1, campaign=runner.campaign_id):
                summary.cdr_rows += 1
                summary.cdr_effective += record.effective
                summary.cdr_talk_seconds += record.talk_ms / 1000
            lead_states.update(await store.counts(runner.campaign_id))
            attempts.update(await store.attempt_counts(runner.campaign_id))
        summary.quota_matches_cdrs = await _quota_matches_cdrs(floor, cdrs)
        await floor.quotas.persist()
        summary.db_lead_states = {k: v for k, v in lead_states.items() if v}
        summary.db_attempts = {k: v for k, v in attempts.items() if v}
        summary.phones_registered = sum(
            1 for c, _ in clients if c.state is RegistrationState.REGISTERED
        )
        summary.register_requests = service.endpoint.counters.requests_by_method.get("REGISTER", 0)
        summary.challenges = registrar.counters.challenged
        summary.auth_failures = registrar.counters.auth_failures
        summary.malformed = service.endpoint.counters.malformed
        for _, line in clients:
            assert line.endpoint is not None and line.adapter is not None
            line.endpoint.stop_registrations(loop.time())
            line.adapter.flush()
        await asyncio.sleep(0.2)  # let the un-REGISTERs reach the registrar
        for _, line in clients:
            await line.close()
        await customers.close()
    await _account(summary, seen, placed)
    return summary


async def _demo_campaign(
    floor: Floor,
    store: LeadStore,
    campaign_id: str,
    name: str,
    mode: DialMode,
    *,
    leads: int,
    route: Callable[[str], Dial],
    rng: random.Random,
    policy: AgentPolicy,
) -> tuple[CampaignRunner, int]:
    """A campaign with its imported leads, running on the floor; how many leads it took."""
    now = datetime.now(UTC)
    await store.create_campaign(campaign_id, name, mode.value, "Asia/Shanghai", now=now)
    imported = await store.import_report(campaign_id, import_leads(_demo_csv(leads, rng)), now=now)
    runner = CampaignRunner(
        floor.service.calls,
        campaign_id=campaign_id,
        hours=CampaignHours(CallingWindows.parse({"mon-sun": ["00:00-24:00"]}), "UTC"),
        rules=RetryRules(),
        route=route,
        ring_timeout_s=15.0,
        mode=mode,
        store=store,
        policy=policy,
    )
    await runner.load()
    floor.add_runner(runner)  # where the desk's sign-in finds it
    return runner, imported


async def _quota_matches_cdrs(floor: Floor, cdrs: CdrStore) -> bool:
    """Today's end-of-day quota report agrees, agent by agent, with the CDR report."""
    quotas = floor.quotas
    periods = quotas.counters.policy.periods
    day = periods.day_of(now_ms())
    await quotas.write_day_report(datetime.now(periods.tz))
    start, end = period_bounds(day, "day", periods.timezone, periods.day_starts)
    rows = await report(cdrs.search(start, end), by="agent")
    from_cdrs = {
        row.group: (row.dials, row.effective, row.talk_ms_total) for row in rows if row.group
    }
    from_quotas = {}
    for agent in quotas.counters.agents_on(day):
        counts = quotas.counters.counts(agent, day)
        if counts["dials"]:
            triple = (int(counts["dials"]), int(counts["effective_calls"]), int(counts["talk_ms"]))
            from_quotas[agent] = triple
    return from_cdrs == from_quotas


async def _records_settled(floor: Floor) -> None:
    """Wait (bounded) until every call's CDR is finished and in the database."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(15):
            await floor.records.wait_idle()
            await floor.records.sink.wait_flushed()


async def _settle(seen: list[Event], changed: asyncio.Event, placed: set[str]) -> None:
    """Wait (bounded) until every placed call has ended and its recording is closed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while True:
                customers_ended = {
                    e.call_id for e in seen if isinstance(e, CallEnded) and e.call_id in placed
                }
                bridged = {e.call_id for e in seen if isinstance(e, CallBridged)}
                recorded = {
                    e.call_id for e in seen if isinstance(e, RecordingClosed | RecordingFailed)
                }
                if customers_ended >= placed and bridged <= recorded:
                    return
                changed.clear()
                await changed.wait()


async def _account(summary: DemoSummary, seen: list[Event], placed: set[str]) -> None:
    bridged = {e.call_id: e.mono for e in seen if isinstance(e, CallBridged)}
    summary.calls_bridged = len(bridged)
    for event in seen:
        if isinstance(event, CallEnded) and event.call_id in placed:
            outcome = event.outcome.value
            summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + 1
            if event.call_id in bridged:
                summary.talk_seconds += event.mono - bridged[event.call_id]
        elif isinstance(event, RecordingClosed):
            summary.recordings += 1
            summary.recorded_seconds += event.duration_ms / 1000
            if await asyncio.to_thread(_verified, event):
                summary.recordings_verified += 1
    summary.events.extend(seen)
