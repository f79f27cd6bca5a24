"""The service's quotas: live counters fed by finished CDRs, kept across restarts.

Every finished CDR goes to ``QuotaCounters.apply`` (idempotent by call id);
each agent-day it changed is published (metrics, MQTT) at once. The counters'
state is written to ``quota-state.json`` in the data directory shortly after
each change, so ``dialer quota reconcile`` can compare what the service
counted with a recomputation from the CDRs. At start the state is read back
and the CDRs of the last weeks are applied again: a call counted before the
restart is a replay and changes nothing, a call finished while the state was
not yet written is counted now. The end-of-day report is written at the
policy's report time (the seeds: ten minutes before the day ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cdr.record import CallRecord
from cdr.store import CdrStore
from dialer.config import Config, quota_policy_path
from quota.counters import QuotaCounters
from quota.policy import load_policy
from quota.progress import QuotaProgress
from quota.report import day_report, report_time, write_report

log = logging.getLogger(__name__)

STATE_FILE = "quota-state.json"
REPLAY_DAYS = 40  # this month and the week around its start, at least
PERSIST_DELAY_S = 1.0


def state_path(config: Config) -> Path:
    return config.service.data_dir / STATE_FILE


def reports_dir(config: Config) -> Path:
    given = config.quota.reports_dir
    return Path(given) if given else config.service.data_dir / "reports"


def load_state(config: Config) -> QuotaCounters | None:
    """The counters the service last wrote, or None if it never did (blocking)."""
    policy = load_policy(quota_policy_path(config))
    path = state_path(config)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return QuotaCounters.from_state(policy, state, config.agents)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    partial.replace(path)


@dataclass
class FloorQuotas:
    counters: QuotaCounters
    state_file: Path
    reports: Path
    publishers: list[Callable[[QuotaProgress], None]] = field(default_factory=list)
    published: int = 0
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)

    def on_record(self, record: CallRecord) -> None:
        for progress in self.counters.apply(record):
            self.published += 1
            for publish in self.publishers:
                try:
                    publish(progress)
                except Exception:
                    log.exception("quota publisher failed for %s", progress.agent)
        self._dirty.set()

    async def persist(self) -> None:
        text = json.dumps(self.counters.state(), ensure_ascii=False, separators=(",", ":"))
        await asyncio.to_thread(_write_atomically, self.state_file, text)

    async def keep_state(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(PERSIST_DELAY_S)  # one write for a burst of calls
            self._dirty.clear()
            try:
                await self.persist()
            except OSError:
                log.exception("quota state could not be written to %s", self.state_file)
                self._dirty.set()

    async def write_day_report(self, now: datetime) -> tuple[Path, Path]:
        day = self.counters.policy.periods.day_of(int(now.timestamp() * 1000))
        report = day_report(self.counters, day, now)
        return await asyncio.to_thread(write_report, report, self.reports)

    async def report_daily(self) -> None:
        policy = self.counters.policy
        while True:
            now = datetime.now(policy.periods.tz)
            day = policy.periods.day_of(int(now.timestamp() * 1000))
            due = report_time(policy, day)
            if due <= now:
                due = report_time(policy, day + timedelta(days=1))
            await asyncio.sleep((due - now).total_seconds())
            try:
                paths = await self.write_day_report(datetime.now(policy.periods.tz))
                log.info("end-of-day quota report: %s", ", ".join(map(str, paths)))
            except OSError:
                log.exception("the end-of-day quota report could not be written")


@contextlib.asynccontextmanager
async def floor_quotas(config: Config, store: CdrStore) -> AsyncIterator[FloorQuotas]:
    counters = await asyncio.to_thread(load_state, config)
    if counters is None:
        counters = QuotaCounters(await asyncio.to_thread(load_policy, quota_policy_path(config)))
    for agent in config.agents:
        counters.set_agent(agent)
    quotas = FloorQuotas(counters, state_path(config), reports_dir(config))
    since = time.time_ns() // 1_000_000 - REPLAY_DAYS * 86_400_000
    async for record in store.search(since, time.time_ns() // 1_000_000 + 1):
        quotas.on_record(record)  # a replay of what the state already counted changes nothing
    tasks = [
        asyncio.create_task(quotas.keep_state(), name="quota-state"),
        asyncio.create_task(quotas.report_daily(), name="quota-report"),
    ]
    try:
        yield quotas
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(OSError):
            await quotas.persist()
