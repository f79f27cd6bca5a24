"""The end-of-day quota report: per agent, per team and for the floor, as CSV and JSON.

Built from the counters (never from a hand-filled sheet) at the configured
time: the seeds report ten minutes before the end of the day
(``report_time``). An agent the counters know appears even without a single
call, so a day with no work shows its full shortfall. A team's row sums its
agents' counts and targets; the floor's row sums every agent.

The CSV is UTF-8 with a byte-order mark, so spreadsheet programs that assume
a local code page still read team names in Chinese correctly. ``write_report``
keeps both files under one directory, replacing a day's files atomically
(blocking I/O: call it off the event loop).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .counters import QuotaCounters
from .policy import TARGETS, Policy
from .progress import COUNTS, PROGRESS_SCHEMA, QuotaProgress, attainment_of

BOM = "\ufeff"
_MS_PER_MINUTE = 60_000


def report_time(policy: Policy, day: date) -> datetime:
    """When ``day``'s report is due: the configured minutes before the quota day ends."""
    minutes = policy.calendar.report_minutes_before_end
    return policy.periods.day_end(day) - timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class ReportRow:
    scope: str  # "agent", "team" or "floor"
    agent: str | None
    team: str | None
    counts: Mapping[str, float]
    targets: Mapping[str, float]
    rules: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    exempt: bool = False
    available_fraction: float = 1.0

    @property
    def shortfall(self) -> Mapping[str, float]:
        return MappingProxyType({k: max(0.0, t - self.counts[k]) for k, t in self.targets.items()})

    @property
    def attainment(self) -> Mapping[str, float]:
        return MappingProxyType(
            {k: attainment_of(self.counts[k], t) for k, t in self.targets.items()}
        )

    @property
    def overall(self) -> float:
        return min(self.attainment.values(), default=1.0)

    @classmethod
    def of_agent(cls, progress: QuotaProgress) -> ReportRow:
        return cls(
            scope="agent",
            agent=progress.agent,
            team=progress.team,
            counts=progress.counts,
            targets=progress.targets,
            rules=progress.rules,
            tiers=progress.tiers,
            exempt=progress.exempt,
            available_fraction=progress.available_fraction,
        )

    @classmethod
    def summing(cls, scope: str, team: str | None, rows: Iterable[ReportRow]) -> ReportRow:
        counts = dict.fromkeys(COUNTS, 0.0)
        targets: dict[str, float] = {}
        talk_ms = 0
        for row in rows:
            for name in COUNTS:
                counts[name] += row.counts[name]
            talk_ms += int(row.counts["talk_ms"])
            for name, value in row.targets.items():
                targets[name] = targets.get(name, 0.0) + value
        counts["talk_ms"] = talk_ms
        counts["talk_minutes"] = talk_ms / _MS_PER_MINUTE  # not a sum of rounded minutes
        return cls(scope, None, team, MappingProxyType(counts), MappingProxyType(targets))

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "agent": self.agent,
            "team": self.team,
            "rules": list(self.rules),
            "tiers": list(self.tiers),
            "exempt": self.exempt,
            "available_fraction": self.available_fraction,
            "counts": dict(self.counts),
            "targets": dict(self.targets),
            "shortfall": dict(self.shortfall),
            "attainment": dict(self.attainment),
            "overall": self.overall,
        }


@dataclass(frozen=True, slots=True)
class DayReport:
    day: date
    generated_at: datetime
    timezone: str
    rows: tuple[ReportRow, ...]  # agents (by team, then id), then teams, then the floor

    def of(self, scope: str) -> tuple[ReportRow, ...]:
        return tuple(r for r in self.rows if r.scope == scope)

    def to_json(self) -> str:
        body = {
            "schema": PROGRESS_SCHEMA,
            "kind": "quota_day_report",
            "day": self.day.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "timezone": self.timezone,
            "rows": [row.to_dict() for row in self.rows],
        }
        return json.dumps(body, ensure_ascii=False, indent=1)

    def to_csv(self) -> bytes:
        targets = [t for t in TARGETS if any(t in row.targets for row in self.rows)]
        header = [
            "day",
            "scope",
            "team",
            "agent",
            "rules",
            "tiers",
            "exempt",
            "available_fraction",
            *COUNTS,
            *(f"{kind}_{t}" for t in targets for kind in ("target", "shortfall", "attainment")),
            "overall",
        ]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        for row in self.rows:
            cells: list[str] = [
                self.day.isoformat(),
                row.scope,
                row.team or "",
                row.agent or "",
                " ".join(row.rules),
                " ".join(row.tiers),
                "yes" if row.exempt else "",
                _number(row.available_fraction),
                *(_number(row.counts[name]) for name in COUNTS),
            ]
            for name in targets:
                if name in row.targets:
                    cells += [
                        _number(row.targets[name]),
                        _number(row.shortfall[name]),
                        _number(row.attainment[name]),
                    ]
                else:
                    cells += ["", "", ""]
            cells.append(_number(row.overall))
            writer.writerow(cells)
        return (BOM + out.getvalue()).encode("utf-8")


def _number(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def day_report(counters: QuotaCounters, day: date, generated_at: datetime) -> DayReport:
    """The report for ``day`` from the counters as they stand at ``generated_at``."""
    progress = [counters.progress(agent, day) for agent in counters.agents_on(day)]
    agents = sorted(
        (ReportRow.of_agent(p) for p in progress), key=lambda r: (r.team or "", r.agent)
    )
    by_team: dict[str | None, list[ReportRow]] = {}
    for row in agents:
        by_team.setdefault(row.team, []).append(row)
    teams = [
        ReportRow.summing("team", team, rows)
        for team, rows in sorted(by_team.items(), key=lambda kv: kv[0] or "")
        if team is not None
    ]
    floor = ReportRow.summing("floor", None, agents)
    return DayReport(
        day=day,
        generated_at=generated_at,
        timezone=counters.policy.periods.timezone,
        rows=(*agents, *teams, floor),
    )


def write_report(report: DayReport, directory: Path) -> tuple[Path, Path]:
    """Keep the day's CSV and JSON under ``directory``; a rerun replaces them atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"quota-{report.day.isoformat()}"
    csv_path = _replace(directory / f"{stem}.csv", report.to_csv())
    json_path = _replace(directory / f"{stem}.json", report.to_json().encode("utf-8"))
    return csv_path, json_path


def _replace(path: Path, data: bytes) -> Path:
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return path
