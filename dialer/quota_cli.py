"""``dialer quota reconcile|report``: the service's live quota counters against the CDRs.

``reconcile`` reads the counters the service last wrote (``quota-state.json``
in its data directory) and recomputes every counter of the period from the
CDRs in the database; any difference is printed (expected: none) and makes
the exit code 1. ``report`` writes the end-of-day report of a day from the
same counters, as the service does at the policy's report time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from cdr.record import CallRecord
from cdr.reports import Period, period_bounds
from cdr.store import CdrStore
from dialer.cdr_cli import UsageError, parse_day
from dialer.config import Config, DatabaseConfig
from dialer.quotas import REPLAY_DAYS, load_state, reports_dir
from dialer.store.database import Database
from quota.counters import QuotaCounters, reconcile
from quota.report import day_report, write_report


def for_data_dir(config: Config, data_dir: Path) -> Config:
    """The demo floor's layout: its SQLite database and state in ``data_dir``."""
    return dataclasses.replace(
        config,
        service=dataclasses.replace(config.service, data_dir=data_dir),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{data_dir / 'dialer.db'}"),
    )


async def _records(config: Config, start_ms: int, end_ms: int) -> list[CallRecord]:
    async with Database(config.database.url) as database:
        await database.upgrade()
        store = CdrStore(database.sessionmaker)
        return [record async for record in store.search(start_ms, end_ms)]


async def _live(config: Config) -> QuotaCounters:
    live = await asyncio.to_thread(load_state, config)
    if live is None:
        raise UsageError(
            f"no quota state in {config.service.data_dir}: the service has not counted anything"
        )
    return live


def _today(live: QuotaCounters) -> date:
    return live.policy.periods.day_of(time.time_ns() // 1_000_000)


async def reconcile_period(config: Config, day: date | None, period: Period, out: TextIO) -> int:
    live = await _live(config)
    periods = live.policy.periods
    day = day or _today(live)
    start, end = period_bounds(day, period, periods.timezone, periods.day_starts)
    # The new/follow-up split needs each customer's earlier calls: read history too.
    records = await _records(config, start - REPLAY_DAYS * 86_400_000, end)
    first, last = periods.day_of(start), periods.day_of(end - 1)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    differences = reconcile(live, records, days=days)
    counted = sum(1 for r in records if start <= r.created_at_ms < end)
    print(
        f"quota reconcile {period} of {day}: {counted} CDRs, {len(differences)} differences",
        file=out,
    )
    for difference in differences:
        print(f"  {difference}", file=out)
    return 1 if differences else 0


async def write_day(config: Config, day: date | None, out: TextIO) -> int:
    live = await _live(config)
    report = day_report(live, day or _today(live), datetime.now(live.policy.periods.tz))
    paths = await asyncio.to_thread(write_report, report, reports_dir(config))
    print("\n".join(str(path) for path in paths), file=out)
    return 0


async def run_quota(
    config: Config, action: str, day_text: str | None, period: Period, out: TextIO
) -> int:
    day = parse_day(day_text, "--day") if day_text else None
    if action == "reconcile":
        return await reconcile_period(config, day, period, out)
    return await write_day(config, day, out)
