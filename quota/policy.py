"""The quota policy (考核指标): versioned rule sets of tiers with daily targets.

A policy file is TOML. Each ``[[rule_sets]]`` entry is one *version* of a
named rule set and takes effect from its ``effective_from`` date: a change in
the middle of a month is a new version from that day, so the days before keep
the targets they were assessed against. Which rule sets are in force is the
policy's ``active`` list; several may be active at once as long as no two set
the same target.

A version's tiers say which targets apply to whom. A tier is chosen per agent
and per day from the agent's level and tenure on that day: tenure counts
*completed* days (or calendar months) since the start date, so
``tenure_before_days = 15`` is an agent's first 15 days (the start date is
day 1, the 16th day is the first one past it) and ``tenure_before_months = 6``
ends on the day six calendar months after the start date. For every level
exactly one tier of a version must match at every tenure: overlaps and gaps
are errors, so no agent is ever assessed twice or silently not at all.

Targets (all per day, numbers ≥ 0): ``effective_calls``, ``talk_minutes``,
``follow_up_customers`` (distinct customers given a follow-up-worthy
disposition), ``customer_records`` (distinct customers given any disposition,
or one of ``dispositions.customer_records`` when listed), and
``new_customer_calls`` / ``follow_up_calls`` (effective calls to a customer
reached for the first time / reached before; see ``quota.counters``).

``parse_policy`` reports every problem at once, each with its dotted key, in
the style of the service configuration.
"""

from __future__ import annotations

import math
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .periods import DEFAULT_TIMEZONE, Periods, zone

POLICY_SCHEMA = 1
TARGETS = (
    "effective_calls",
    "follow_up_customers",
    "talk_minutes",
    "new_customer_calls",
    "follow_up_calls",
    "customer_records",
)
DEFAULT_LEVELS = ("junior", "middle", "senior")  # the service configuration's agent levels
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNITS = ("days", "months")
_FOREVER = sys.maxsize  # tenure of an agent without a start date: past every tier bound
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class QuotaError(Exception):
    """Base of the quota package's errors."""


class PolicyError(QuotaError):
    """The policy is invalid; ``problems`` lists every wrong key."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        where = f" {source}" if source else ""
        super().__init__(f"invalid quota policy{where}:\n  " + "\n  ".join(problems))
        self.problems = problems


def completed_days(start: date, day: date) -> int:
    return (day - start).days


def add_months(start: date, months: int) -> date:
    """The same day of the month ``months`` later, clamped to the month's last day."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, min(start.day, (following - timedelta(days=1)).day))


def completed_months(start: date, day: date) -> int:
    """Whole calendar months from ``start`` to ``day`` (six months after 01-15 is 07-15)."""
    months = (day.year - start.year) * 12 + day.month - start.month
    return months - 1 if add_months(start, months) > day else months


@dataclass(frozen=True, slots=True)
class Tenure:
    """``[start, before)`` completed days or months; unit None: any tenure."""

    unit: str | None = None
    start: int = 0
    before: int | None = None

    def contains(self, days: int, months: int) -> bool:
        value = days if self.unit == "days" else months if self.unit == "months" else 0
        return self.start <= value and (self.before is None or value < self.before)

    def describe(self) -> str:
        if self.unit is None:
            return "any tenure"
        if self.before is None:
            return f"from {self.start} completed {self.unit} on"
        return f"from {self.start} to under {self.before} completed {self.unit}"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    levels: frozenset[str]
    tenure: Tenure
    targets: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class RuleSetVersion:
    name: str
    version: int
    effective_from: date
    tiers: tuple[Tier, ...]
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def tier_for(self, level: str, days: int, months: int) -> Tier | None:
        for tier in self.tiers:
            if level in tier.levels and tier.tenure.contains(days, months):
                return tier
        return None


@dataclass(frozen=True, slots=True)
class Calendar:
    timezone: str = DEFAULT_TIMEZONE
    day_starts: time = time(0, 0)
    work_days: frozenset[int] = frozenset(range(5))  # Monday = 0, as date.weekday()
    report_minutes_before_end: int = 10  # the seeds: reported ten minutes before the day ends


@dataclass(frozen=True, slots=True)
class Assessment:
    weekly_floor: float = 0.9  # the seeds: at least 90 % of the week's total
    exempt_days_per_month: int = 2
    exemption_deadline: time = time(9, 0)  # local time on the exempt day itself


@dataclass(frozen=True, slots=True)
class Dispositions:
    follow_up_worthy: frozenset[str] = frozenset({"follow_up", "callback", "interested", "sale"})
    customer_records: frozenset[str] = frozenset()  # empty: any disposition records a customer

    def is_follow_up_worthy(self, code: str | None) -> bool:
        return code is not None and normalise(code) in self.follow_up_worthy

    def is_customer_record(self, code: str | None) -> bool:
        if code is None or not code.strip():
            return False
        return not self.customer_records or normalise(code) in self.customer_records


def normalise(code: str) -> str:
    """Disposition codes compare case-insensitively, as the campaign's retry rules do."""
    return code.strip().lower()


@dataclass(frozen=True, slots=True)
class DayTargets:
    """What one agent is assessed against on one day, and under which rules."""

    targets: Mapping[str, float]
    rules: tuple[str, ...] = ()  # "name@version" of every rule set version in force
    tiers: tuple[str, ...] = ()  # the tier chosen in each of them


NO_TARGETS = DayTargets(targets=MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Policy:
    active: tuple[str, ...]
    rule_sets: Mapping[str, tuple[RuleSetVersion, ...]]  # each sorted by effective_from
    calendar: Calendar = field(default_factory=Calendar)
    assessment: Assessment = field(default_factory=Assessment)
    dispositions: Dispositions = field(default_factory=Dispositions)
    levels: tuple[str, ...] = DEFAULT_LEVELS
    periods: Periods = field(init=False, compare=False)

    def __post_init__(self) -> None:
        periods = Periods(self.calendar.timezone, self.calendar.day_starts)
        object.__setattr__(self, "periods", periods)

    def version_in_force(self, name: str, day: date) -> RuleSetVersion | None:
        chosen = None
        for version in self.rule_sets.get(name, ()):
            if version.effective_from <= day:
                chosen = version
        return chosen

    def targets_for(self, level: str, start_date: date | None, day: date) -> DayTargets:
        """The active rule sets' targets for an agent on ``day``, before any pro-rating.

        No start date: a long-standing agent (past every tenure bound). Before
        the start date the agent has no targets.
        """
        if start_date is None:
            days = months = _FOREVER
        elif day < start_date:
            return NO_TARGETS
        else:
            days, months = completed_days(start_date, day), completed_months(start_date, day)
        targets: dict[str, float] = {}
        rules: list[str] = []
        tiers: list[str] = []
        for name in self.active:
            version = self.version_in_force(name, day)
            tier = None if version is None else version.tier_for(level, days, months)
            if version is None or tier is None:
                continue
            rules.append(version.ref)
            tiers.append(tier.name)
            targets.update(tier.targets)
        return DayTargets(MappingProxyType(targets), tuple(rules), tuple(tiers))


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file, or raise PolicyError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([f"{path}: not UTF-8 text: {exc.reason}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{path}: not valid TOML: {exc}"]) from None
    return parse_policy(raw, source=str(path))


def parse_policy(raw: Mapping[str, Any], source: str = "") -> Policy:
    """Build a Policy from the file's tables, or raise PolicyError listing every problem."""
    problems: list[str] = []
    _unknown("", raw, ("schema", "active", "levels", *_SECTIONS, "rule_sets"), problems)
    schema = raw.get("schema", POLICY_SCHEMA)
    if schema != POLICY_SCHEMA or isinstance(schema, bool):
        problems.append(f"schema: {schema!r} is not a policy schema this service reads (1)")
    levels = _levels(raw.get("levels", list(DEFAULT_LEVELS)), problems)
    calendar = _calendar(_table(raw, "calendar", problems), problems)
    assessment = _assessment(_table(raw, "assessment", problems), problems)
    dispositions = _dispositions(_table(raw, "dispositions", problems), problems)
    versions = _rule_sets(raw.get("rule_sets", []), levels, problems)
    declared = _declared(raw.get("rule_sets"))
    active = _active(raw.get("active"), versions, declared, problems)
    if problems:
        raise PolicyError(problems, source)
    grouped: dict[str, list[RuleSetVersion]] = {}
    for _, version in versions:
        grouped.setdefault(version.name, []).append(version)
    rule_sets = {
        name: tuple(sorted(found, key=lambda v: v.effective_from))
        for name, found in grouped.items()
    }
    return Policy(
        active=active,
        rule_sets=MappingProxyType(rule_sets),
        calendar=calendar,
        assessment=assessment,
        dispositions=dispositions,
        levels=levels,
    )


_SECTIONS = ("calendar", "assessment", "dispositions")
_TENURE_KEYS = {
    "tenure_from_days": ("days", "start"),
    "tenure_before_days": ("days", "before"),
    "tenure_from_months": ("months", "start"),
    "tenure_before_months": ("months", "before"),
}


def _unknown(
    where: str, table: Mapping[str, Any], known: Sequence[str], problems: list[str]
) -> None:
    prefix = f"{where}." if where else ""
    for key in table:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key (expected one of {', '.join(known)})")


def _table(raw: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        problems.append(f"{name}: must be a table ([{name}])")
        return {}
    return value


def _int(key: str, value: Any, problems: list[str], minimum: int = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{key}: {value!r} is not a whole number ≥ {minimum}")
        return None
    return value


def _name(key: str, value: Any, problems: list[str]) -> str | None:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        problems.append(
            f"{key}: {value!r} is not a name (up to 64 letters, digits, '.', '_' or '-')"
        )
        return None
    return value


def _time(key: str, value: Any, problems: list[str]) -> time | None:
    if isinstance(value, time) and value.tzinfo is None:
        return value  # a TOML local time: day_starts = 05:00:00
    if isinstance(value, str):
        try:
            parsed = time.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed
    problems.append(f"{key}: expected a local time such as 05:00, got {value!r}")
    return None


def _date(key: str, value: Any, problems: list[str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # a TOML local date: effective_from = 2024-03-16
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(f"{key}: expected an ISO date such as 2024-03-16, got {value!r}")
    return None


def _codes(key: str, value: Any, problems: list[str]) -> frozenset[str] | None:
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        problems.append(f"{key}: expected a list of disposition codes, got {value!r}")
        return None
    return frozenset(normalise(c) for c in value)


def _levels(value: Any, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"levels: expected a non-empty list of level names, got {value!r}")
        return DEFAULT_LEVELS
    if len(set(value)) != len(value):
        problems.append(f"levels: {value!r} lists a level twice")
    return tuple(dict.fromkeys(value))


def _calendar(table: Mapping[str, Any], problems: list[str]) -> Calendar:
    defaults = Calendar()
    _unknown("calendar", table, tuple(Calendar.__dataclass_fields__), problems)
    timezone = table.get("timezone", defaults.timezone)
    if not isinstance(timezone, str):
        problems.append(f"calendar.timezone: expected a zone name, got {timezone!r}")
        timezone = defaults.timezone
    else:
        try:
            zone(timezone)
        except ValueError as exc:
            problems.append(f"calendar.timezone: {exc}")
            timezone = defaults.timezone
    day_starts = defaults.day_starts
    if "day_starts" in table:
        day_starts = _time("calendar.day_starts", table["day_starts"], problems) or day_starts
    work_days = defaults.work_days
    if "work_days" in table:
        names = table["work_days"]
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and n.lower() in WEEKDAYS for n in names)
        ):
            problems.append(
                f"calendar.work_days: expected a non-empty list of {', '.join(WEEKDAYS)}, "
                f"got {names!r}"
            )
        else:
            work_days = frozenset(WEEKDAYS.index(n.lower()) for n in names)
    before_end = defaults.report_minutes_before_end
    if "report_minutes_before_end" in table:
        value = _int(
            "calendar.report_minutes_before_end", table["report_minutes_before_end"], problems
        )
        if value is not None and value >= 24 * 60:
            problems.append(
                f"calendar.report_minutes_before_end: {value} is not within the day (< 1440)"
            )
        elif value is not None:
            before_end = value
    return Calendar(timezone, day_starts, work_days, before_end)


def _assessment(table: Mapping[str, Any], problems: list[str]) -> Assessment:
    defaults = Assessment()
    _unknown("assessment", table, tuple(Assessment.__dataclass_fields__), problems)
    floor = table.get("weekly_floor", defaults.weekly_floor)
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 < floor <= 1:
        problems.append(
            f"assessment.weekly_floor: {floor!r} is not a share above 0 and at most 1 (0.9 = 90 %)"
        )
        floor = defaults.weekly_floor
    limit = defaults.exempt_days_per_month
    if "exempt_days_per_month" in table:
        found = _int("assessment.exempt_days_per_month", table["exempt_days_per_month"], problems)
        limit = limit if found is None else found
    if limit > 31:
        problems.append(f"assessment.exempt_days_per_month: {limit} is more than a month has")
    deadline = defaults.exemption_deadline
    if "exemption_deadline" in table:
        found_time = _time("assessment.exemption_deadline", table["exemption_deadline"], problems)
        deadline = found_time or deadline
    return Assessment(float(floor), limit, deadline)


def _dispositions(table: Mapping[str, Any], problems: list[str]) -> Dispositions:
    defaults = Dispositions()
    _unknown("dispositions", table, tuple(Dispositions.__dataclass_fields__), problems)
    worthy = defaults.follow_up_worthy
    if "follow_up_worthy" in table:
        worthy = _codes("dispositions.follow_up_worthy", table["follow_up_worthy"], problems) or (
            worthy
        )
    records = defaults.customer_records
    if "customer_records" in table:
        found = _codes("dispositions.customer_records", table["customer_records"], problems)
        records = records if found is None else found
    return Dispositions(worthy, records)


def _rule_sets(
    value: Any, levels: tuple[str, ...], problems: list[str]
) -> list[tuple[int, RuleSetVersion]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        problems.append("rule_sets: must be an array of tables ([[rule_sets]])")
        return []
    if not value:
        problems.append("rule_sets: the policy has no rule set")
    versions: list[tuple[int, RuleSetVersion]] = []
    for i, item in enumerate(value):
        version = _rule_set(f"rule_sets[{i}]", item, levels, problems)
        if version is not None:
            versions.append((i, version))
    problems.extend(_version_problems(versions))
    return versions


def _rule_set(
    key: str, item: Mapping[str, Any], levels: tuple[str, ...], problems: list[str]
) -> RuleSetVersion | None:
    before = len(problems)
    _unknown(key, item, ("name", "version", "effective_from", "description", "tiers"), problems)
    for required in ("name", "version", "effective_from"):
        if required not in item:
            problems.append(f"{key}.{required}: required")
    name = _name(f"{key}.name", item["name"], problems) if "name" in item else None
    number = _int(f"{key}.version", item["version"], problems, 1) if "version" in item else None
    since = (
        _date(f"{key}.effective_from", item["effective_from"], problems)
        if "effective_from" in item
        else None
    )
    description = item.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{key}.description: expected text, got {description!r}")
    raw_tiers = item.get("tiers", [])
    tiers: list[Tier] = []
    if not isinstance(raw_tiers, list) or not all(isinstance(t, Mapping) for t in raw_tiers):
        problems.append(f"{key}.tiers: must be an array of tables ([[rule_sets.tiers]])")
    elif not raw_tiers:
        problems.append(f"{key}.tiers: a rule set needs at least one tier")
    else:
        for j, raw_tier in enumerate(raw_tiers):
            tier = _tier(f"{key}.tiers[{j}]", raw_tier, levels, problems)
            if tier is not None:
                tiers.append(tier)
    if len(problems) != before or name is None or number is None or since is None:
        return None
    version = RuleSetVersion(name, number, since, tuple(tiers), str(description))
    problems.extend(_tier_problems(f"{key} ({version.ref})", version, levels))
    return version


def _tier(
    key: str, item: Mapping[str, Any], levels: tuple[str, ...], problems: list[str]
) -> Tier | None:
    before = len(problems)
    known = ("name", "levels", "targets", *_TENURE_KEYS)
    _unknown(key, item, known, problems)
    name = _name(f"{key}.name", item["name"], problems) if "name" in item else None
    if "name" not in item:
        problems.append(f"{key}.name: required")
    chosen = levels
    if "levels" in item:
        raw_levels = item["levels"]
        if not isinstance(raw_levels, list) or not all(isinstance(v, str) for v in raw_levels):
            problems.append(f"{key}.levels: expected a list of levels, got {raw_levels!r}")
        else:
            for level in raw_levels:
                if level not in levels:
                    problems.append(
                        f"{key}.levels: unknown level {level!r} (known: {', '.join(levels)})"
                    )
            chosen = tuple(v for v in raw_levels if v in levels)
            if not raw_levels:
                problems.append(f"{key}.levels: an empty list matches no agent")
    tenure = _tenure(key, item, problems)
    targets: dict[str, float] = {}
    raw_targets = item.get("targets", {})
    if not isinstance(raw_targets, Mapping):
        problems.append(f"{key}.targets: must be a table such as {{ effective_calls = 120 }}")
    else:
        for rule, value in raw_targets.items():
            where = f"{key}.targets.{rule}"
            if rule not in TARGETS:
                problems.append(f"{where}: unknown rule (known: {', '.join(TARGETS)})")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{where}: expected a number, got {value!r}")
            elif not math.isfinite(value):
                problems.append(f"{where}: {value!r} is not a finite number")
            elif value < 0:
                problems.append(f"{where}: {value!r} is negative; a target is a number ≥ 0")
            else:
                targets[rule] = float(value)
    if len(problems) != before or name is None or tenure is None:
        return None
    return Tier(name, frozenset(chosen), tenure, MappingProxyType(targets))


def _tenure(key: str, item: Mapping[str, Any], problems: list[str]) -> Tenure | None:
    given = {k: item[k] for k in _TENURE_KEYS if k in item}
    units = {_TENURE_KEYS[k][0] for k in given}
    if len(units) > 1:
        problems.append(f"{key}: tenure mixes days and months ({', '.join(sorted(given))})")
        return None
    bounds: dict[str, int] = {}
    for name, value in given.items():
        number = _int(f"{key}.{name}", value, problems)
        if number is None:
            return None
        bounds[_TENURE_KEYS[name][1]] = number
    if not units:
        return Tenure()
    tenure = Tenure(units.pop(), bounds.get("start", 0), bounds.get("before"))
    if tenure.before is not None and tenure.before <= tenure.start:
        problems.append(
            f"{key}: tenure from {tenure.start} before {tenure.before} {tenure.unit} "
            "matches no agent"
        )
        return None
    return tenure


def _tier_problems(where: str, version: RuleSetVersion, levels: tuple[str, ...]) -> list[str]:
    """Overlaps, gaps and duplicate names among one version's tiers, level by level."""
    problems: list[str] = []
    names = [t.name for t in version.tiers]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{where}: tier name {name!r} is used twice")
    for level in levels:
        tiers = [t for t in version.tiers if level in t.levels]
        units = {t.tenure.unit for t in tiers} - {None}
        if len(units) > 1:
            problems.append(
                f"{where}: the tiers for level {level} mix tenure in days and in months; "
                "use one unit per level so overlaps and gaps can be checked"
            )
            continue
        unit = units.pop() if units else "days"
        for i, first in enumerate(tiers):
            for second in tiers[i + 1 :]:
                if _intersect(first.tenure, second.tenure):
                    problems.append(
                        f"{where}: tiers {first.name!r} and {second.name!r} overlap for level "
                        f"{level} ({first.tenure.describe()} / {second.tenure.describe()})"
                    )
        for start, end in _gaps([t.tenure for t in tiers]):
            span = (
                f"from {start} completed {unit} on"
                if end is None
                else (f"from {start} up to {end} completed {unit}")
            )
            problems.append(f"{where}: no tier for level {level} {span}")
    return problems


def _interval(tenure: Tenure) -> tuple[int, float]:
    return tenure.start, float("inf") if tenure.before is None else tenure.before


def _intersect(a: Tenure, b: Tenure) -> bool:
    (a0, a1), (b0, b1) = _interval(a), _interval(b)
    return max(a0, b0) < min(a1, b1)


def _gaps(tenures: list[Tenure]) -> list[tuple[int, int | None]]:
    gaps: list[tuple[int, int | None]] = []
    cursor: float = 0
    for start, end in sorted(_interval(t) for t in tenures):
        if start > cursor:
            gaps.append((int(cursor), start))
        cursor = max(cursor, end)
    if cursor != float("inf"):
        gaps.append((int(cursor), None))
    return gaps


def _version_problems(versions: list[tuple[int, RuleSetVersion]]) -> list[str]:
    problems: list[str] = []
    by_name: dict[str, list[tuple[int, RuleSetVersion]]] = {}
    for i, version in versions:
        by_name.setdefault(version.name, []).append((i, version))
    for name, found in by_name.items():
        for k, (i, first) in enumerate(found):
            for j, second in found[k + 1 :]:
                pair = f"rule_sets[{i}] and rule_sets[{j}]"
                if first.version == second.version:
                    problems.append(f"{pair}: both are version {first.version} of {name!r}")
                if first.effective_from == second.effective_from:
                    problems.append(
                        f"{pair}: versions {first.version} and {second.version} of {name!r} "
                        f"both take effect on {first.effective_from.isoformat()}"
                    )
                elif (first.version < second.version) != (
                    first.effective_from < second.effective_from
                ):
                    problems.append(
                        f"{pair}: version {max(first.version, second.version)} of {name!r} "
                        "takes effect before an earlier version; a later version must start later"
                    )
    return problems


def _declared(value: Any) -> list[str]:
    """Every rule set name the file gives, so one that failed to build is not "unknown" too."""
    if not isinstance(value, list):
        return []
    names = (item.get("name") for item in value if isinstance(item, Mapping))
    return list(dict.fromkeys(n for n in names if isinstance(n, str)))


def _active(
    value: Any,
    versions: list[tuple[int, RuleSetVersion]],
    declared: list[str],
    problems: list[str],
) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if value is None:
        problems.append("active: required, the rule set(s) in force, e.g. active = ['seeds']")
        return ()
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append(f"active: expected a rule set name or a non-empty list, got {value!r}")
        return ()
    known = declared
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"active: {name!r} is listed twice")
            continue
        seen.add(name)
        if name not in known:
            problems.append(f"active: unknown rule set {name!r} (known: {', '.join(known)})")
    active = tuple(dict.fromkeys(n for n in names if n in known))
    rules_of = {
        name: {rule for _, v in versions if v.name == name for t in v.tiers for rule in t.targets}
        for name in active
    }
    for k, first in enumerate(active):
        for second in active[k + 1 :]:
            shared = sorted(rules_of[first] & rules_of[second])
            if shared:
                problems.append(
                    f"active: rule sets {first!r} and {second!r} both set {', '.join(shared)}; "
                    "a target can come from one active rule set only"
                )
    return active
