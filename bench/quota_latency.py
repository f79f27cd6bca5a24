"""Latency from a CallRecord arriving to its QuotaProgress being produced.

Run: uv run python bench/quota_latency.py [--records 20000] [--runs 3]

Each run feeds a fresh ``QuotaCounters`` (the shipped default policy with
every non-conflicting scheme active, so all targets are computed) a day-long
floor's CDRs: 100 agents in six teams, leads called several times (so new
and follow-up contacts and their reclassification happen), a predictive
floor's share of unanswered dials without an agent, dispositions, and 2 %
of the records replayed. For every record the time of ``apply`` — counting
plus building every QuotaProgress it returns — is measured with
``perf_counter_ns``. Each run reports the median and the 99th percentile;
the table shows the medians of the runs. Results go to
bench/quota_results.md. This is the in-process part; the lead adds the
latency through MQTT end to end.
"""

from __future__ import annotations

import argparse
import copy
import platform
import random
import statistics
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cdr.record import AnsweredBy, CallRecord, Outcome
from quota.counters import AgentProfile, QuotaCounters
from quota.periods import to_ms
from quota.policy import Policy, parse_policy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "quota_results.md"
POLICY_FILE = ROOT / "deploy" / "quota" / "default-policy.toml"
DAY = datetime(2024, 3, 4, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LEVELS = ("junior", "middle", "senior")
DISPOSITIONS = ("sale", "not_interested", "callback", "interested", "dnc", None)


def bench_policy() -> Policy:
    raw: dict[str, Any] = copy.deepcopy(tomllib.loads(POLICY_FILE.read_text(encoding="utf-8")))
    raw["active"] = ["effective_calls", "talk_time", "customer_records"]
    return parse_policy(raw)


def agents(rng: random.Random) -> list[AgentProfile]:
    return [
        AgentProfile(
            f"agent-{i:03d}",
            team=f"team-{i % 6}",
            level=LEVELS[i % 3],
            start_date=DAY.date() - timedelta(days=rng.randrange(200)) if i % 10 == 0 else None,
        )
        for i in range(100)
    ]


def floor_cdrs(count: int, rng: random.Random) -> list[CallRecord]:
    """A day of CDRs in end order; about a third reach an agent."""
    start = to_ms(DAY)
    records: list[CallRecord] = []
    leads = max(1, count // 4)
    for i in range(count):
        created = start + i * (9 * 3600 * 1000 // count)
        answered = rng.random() < 0.35
        talk_ms = rng.randrange(5_000, 400_000) if answered else 0
        records.append(
            CallRecord(
                call_id=f"call-{i:06d}",
                campaign=f"campaign-{i % 3}",
                lead_id=f"lead-{rng.randrange(leads):06d}",
                agent=f"agent-{rng.randrange(100):03d}" if answered else None,
                number=f"+86138{rng.randrange(10**8):08d}",
                created_at_ms=created,
                answered_at_ms=created + 8_000 if answered else None,
                bridged_at_ms=created + 8_020 if answered else None,
                ended_at_ms=created + 8_020 + talk_ms,
                talk_ms=talk_ms,
                outcome=Outcome.ANSWERED if answered else Outcome.NO_ANSWER,
                answered_by=AnsweredBy.HUMAN if answered else AnsweredBy.UNKNOWN,
                disposition=rng.choice(DISPOSITIONS) if answered else None,
                effective=answered and talk_ms >= 30_000,
                effective_rule="default@1",
            )
        )
    # Replays (a journal replayed after a restart) arrive among the others.
    for _ in range(count // 50):
        position = rng.randrange(len(records))
        records.insert(position, records[rng.randrange(position + 1)])
    return records


@dataclass(frozen=True, slots=True)
class Run:
    """Latencies in microseconds: CDRs that produced progress, and every CDR."""

    progress_median: float
    progress_p99: float
    all_median: float
    all_p99: float
    produced: int


def _median_p99(latencies_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(latencies_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) / 1000, p99 / 1000


def run_once(policy: Policy, count: int, seed: int) -> Run:
    rng = random.Random(seed)
    counters = QuotaCounters(policy, agents(rng))
    records = floor_cdrs(count, rng)
    every: list[int] = []
    with_progress: list[int] = []
    produced = 0
    clock = time.perf_counter_ns
    for record in records:
        began = clock()
        progress = counters.apply(record)
        elapsed = clock() - began
        every.append(elapsed)
        if progress:
            with_progress.append(elapsed)
            produced += len(progress)
    return Run(*_median_p99(with_progress), *_median_p99(every), produced)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    policy = bench_policy()
    runs = [run_once(policy, args.records, seed) for seed in range(args.runs)]
    for i, run in enumerate(runs, 1):
        print(
            f"run {i}: CDRs with progress median {run.progress_median:.1f} µs, "
            f"p99 {run.progress_p99:.1f} µs; every CDR median {run.all_median:.1f} µs, "
            f"p99 {run.all_p99:.1f} µs; {run.produced} progress values"
        )
    med = {
        name: statistics.median(getattr(r, name) for r in runs)
        for name in ("progress_median", "progress_p99", "all_median", "all_p99")
    }
    print(
        f"medians of {args.runs} runs: with progress {med['progress_median']:.1f} / "
        f"{med['progress_p99']:.1f} µs (median / p99), every CDR {med['all_median']:.1f} / "
        f"{med['all_p99']:.1f} µs"
    )
    lines = [
        "# Quota latency",
        "",
        "`uv run python bench/quota_latency.py` — a CallRecord arriving to its QuotaProgress",
        f"produced, in process; {args.records} CDRs of a 100-agent day (2 % replayed), "
        f"{args.runs} runs, medians of the runs (Python {platform.python_version()};",
        "the machine is shared, read the order of magnitude).",
        "",
        "| what | median | p99 | unit |",
        "|---|---:|---:|---|",
        "| CDR with an agent → its QuotaProgress values | "
        f"{med['progress_median']:.1f} | {med['progress_p99']:.1f} | µs |",
        "| every CDR (also unanswered dials without an agent, replays) | "
        f"{med['all_median']:.1f} | {med['all_p99']:.1f} | µs |",
        "",
        "Target: well under a second from a call ending to its progress being published;",
        "the MQTT leg is measured separately (end to end).",
    ]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
