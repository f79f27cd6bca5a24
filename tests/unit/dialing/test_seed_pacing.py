"""A predictive runner starts from its campaign's CDRs, so a restart forgets no abandon."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cdr.record import CallRecord, Outcome
from cdr.store import CdrStore
from dialer.app import running_service
from dialer.config import AgentConfig, CampaignConfig, Config, PhoneConfig, SipConfig, TrunkConfig
from dialer.dialing.pacing import ROLLING_DAYS
from dialer.dialing.setup import campaign_runner, seed_pacing
from dialer.store.database import Database

ZONE = ZoneInfo("Asia/Shanghai")
TODAY = date(2025, 3, 3)
NOW_MS = int(datetime(2025, 3, 3, 15, 0, tzinfo=ZONE).timestamp() * 1000)
DAY_MS = 86_400_000


def config() -> Config:
    return Config(
        sip=SipConfig(bind_host="127.0.0.1", udp_port=0, tcp_port=0),
        phones=(PhoneConfig("1001", "pw-1001"),),
        trunks=(TrunkConfig("pbx", "127.0.0.1", 5080),),
        agents=(AgentConfig("a1", "1001"),),
        campaigns=(
            CampaignConfig("c1", "predictive", trunks=("pbx",), agents=("a1",),
                           timezone="Asia/Shanghai"),
            CampaignConfig("c2", "progressive", trunks=("pbx",), agents=("a1",)),
        ),
    )  # fmt: skip


def call(
    n: int, campaign: str, at_ms: int, *, answered: bool, abandoned: bool = False
) -> CallRecord:
    return CallRecord(
        call_id=f"{campaign}-{n}",
        campaign=campaign,
        created_at_ms=at_ms,
        answered_at_ms=at_ms + 5000 if answered else None,
        bridged_at_ms=at_ms + 5010 if answered and not abandoned else None,
        ended_at_ms=at_ms + 60_000,
        ring_ms=5000 if answered else 30_000,
        talk_ms=54_990 if answered and not abandoned else 0,
        outcome=Outcome.ANSWERED if answered else Outcome.NO_ANSWER,
        abandoned=abandoned,
    )


async def test_the_rolling_window_of_the_campaigns_own_cdrs_seeds_the_tallies(
    tmp_path: Path,
) -> None:
    morning = NOW_MS - 6 * 3600 * 1000  # 09:00 local today
    records = [
        *(call(n, "c1", morning + n, answered=True) for n in range(40)),
        call(40, "c1", morning + 40, answered=True, abandoned=True),
        *(call(n, "c1", morning + n, answered=False) for n in range(41, 81)),
        # Ten days ago: in the rolling window, not today.
        call(81, "c1", NOW_MS - 10 * DAY_MS, answered=True, abandoned=True),
        # Past the window: forgotten.
        call(82, "c1", NOW_MS - (ROLLING_DAYS + 5) * DAY_MS, answered=True, abandoned=True),
        # Another campaign's abandons are not this one's.
        *(call(n, "c2", morning + n, answered=True, abandoned=True) for n in range(83, 90)),
    ]
    url = f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}"
    async with Database(url) as database:
        await database.upgrade()
        store = CdrStore(database.sessionmaker)
        for record in records:
            assert await store.close(record, record.ended_at_ms or 0)
        cfg = config()
        async with running_service(cfg) as service:
            predictive = campaign_runner(service.calls, cfg, cfg.campaigns[0])
            progressive = campaign_runner(service.calls, cfg, cfg.campaigns[1])
            read = await seed_pacing(predictive, store, NOW_MS)
            assert await seed_pacing(progressive, store, NOW_MS) == 0  # no controller to seed
    assert read == 82  # c1's 81 today and the one ten days ago
    pacing = predictive.pacing
    assert pacing is not None
    today = pacing.tally.today(TODAY)
    assert (today.live_answers, today.abandoned) == (41, 1)
    rolling = pacing.tally.rolling(TODAY)
    assert (rolling.live_answers, rolling.abandoned) == (42, 2)
    assert pacing.tally.today(TODAY - timedelta(days=10)).abandoned == 1
    assert abs(pacing.answer_rate - 42 / 82) < 0.05
