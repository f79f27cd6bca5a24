"""``dialer quota reconcile``: the counters the service wrote, against the CDRs it stored."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from cdr.record import CallRecord, Outcome
from cdr.store import CdrStore
from dialer.cli import main
from dialer.config import DEFAULT_QUOTA_POLICY, AgentConfig
from dialer.store.database import Database
from quota.counters import QuotaCounters
from quota.policy import load_policy

NOW_MS = time.time_ns() // 1_000_000


def call(n: int, agent: str = "a1") -> CallRecord:
    start = NOW_MS - 3_600_000 + n * 60_000
    return CallRecord(
        call_id=f"call-{n}",
        campaign="c1",
        lead_id=f"L{n}",
        agent=agent,
        number=f"+86138000000{n:02d}",
        created_at_ms=start,
        answered_at_ms=start + 5_000,
        bridged_at_ms=start + 5_000,
        ended_at_ms=start + 50_000,
        talk_ms=45_000,
        billable_ms=45_000,
        outcome=Outcome.ANSWERED,
        hangup_by="customer",
        effective=True,
        effective_rule="default@1",
    )


def store_cdrs(data: Path, records: list[CallRecord]) -> None:
    async def fill() -> None:
        async with Database(f"sqlite+aiosqlite:///{data / 'dialer.db'}") as database:
            await database.upgrade()
            store = CdrStore(database.sessionmaker)
            for record in records:
                await store.close(record, NOW_MS)

    asyncio.run(fill())


def write_state(data: Path, counted: list[CallRecord]) -> None:
    counters = QuotaCounters(load_policy(DEFAULT_QUOTA_POLICY), [AgentConfig("a1", "1001")])
    for record in counted:
        counters.apply(record)
    (data / "quota-state.json").write_text(json.dumps(counters.state()), encoding="utf-8")


def test_counters_that_saw_every_cdr_reconcile_with_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [call(n) for n in range(5)]
    store_cdrs(tmp_path, records)
    write_state(tmp_path, records)
    assert main(["quota", "reconcile", "--data-dir", str(tmp_path)]) == 0
    assert "5 CDRs, 0 differences" in capsys.readouterr().out


def test_a_cdr_the_counters_missed_is_a_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [call(n) for n in range(5)]
    store_cdrs(tmp_path, records)
    write_state(tmp_path, records[:4])
    assert main(["quota", "reconcile", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "5 CDRs, " in out and "0 differences" not in out
    assert "effective_calls" in out


def test_no_state_yet_is_said_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_cdrs(tmp_path, [call(1)])
    assert main(["quota", "reconcile", "--data-dir", str(tmp_path)]) == 2
    assert "has not counted anything" in capsys.readouterr().err
