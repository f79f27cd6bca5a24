"""Calling windows: the weekday hours a lead may be rung, in the lead's own zone.

Windows are wall-clock times ("10:30-12:00" means what the customer's clock
says), so each one is turned into a pair of UTC instants per local date:

- a window is open at instant t when t's local wall time is inside it and t
  is the *first* occurrence of that wall time (fold=0, PEP 495). So each
  wall-clock minute of a window is callable at most once: on a fall-back day
  the repeated hour is never counted twice, and on a spring-forward day a
  window starting in the gap opens at the first valid instant after it.
- as instants, that is [first instant at start, first instant at end) on
  the local date, minus the repeated stretch after a fall-back transition.
  A window is assumed to hold at most one transition (true of every tzdata
  zone for windows shorter than a day minus a few hours).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# Eight days covers every weekday once even when today's windows are all over.
SEARCH_DAYS = 8

_TIME = re.compile(r"(\d{2}):(\d{2})")


class CampaignError(ValueError):
    """A campaign setting or input is wrong; ``problems`` lists every fault."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a CampaignError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CampaignError([f"unknown time zone {name!r}"]) from None


def require_aware(value: datetime, what: str) -> None:
    # A naive datetime would silently mean the host's zone: refuse it.
    if value.tzinfo is None or value.utcoffset() is None:
        raise CampaignError([f"{what} must be timezone-aware, got naive {value.isoformat()}"])


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """One window on one weekday, in minutes after local midnight (end may be 1440)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= MINUTES_PER_DAY:
            raise CampaignError([f"window {self} must satisfy 0 <= start < end <= 1440"])

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


@dataclass(frozen=True, slots=True)
class CallingWindows:
    """Per-weekday windows (index 0 = Monday), each day's sorted and disjoint."""

    days: tuple[tuple[Window, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise CampaignError([f"days must have 7 entries (Monday first), got {len(self.days)}"])
        for name, windows in zip(DAY_NAMES, self.days, strict=True):
            for before, after in pairwise(windows):
                if after.start <= before.end:
                    raise CampaignError(
                        [f"{name}: {before} and {after} overlap, touch or are out of order"]
                    )

    @classmethod
    def parse(cls, mapping: Mapping[str, Sequence[str]], *, key: str = "windows") -> CallingWindows:
        """Build from config such as ``{"mon-fri": ["10:30-12:00", "15:30-17:30"]}``.

        Day keys are ``mon``..``sun``, a forward range ``mon-fri`` or a comma list
        ``sat,sun``; a day missing from the mapping has no windows. ``key`` is the
        config path used in error messages. Every problem is reported at once.
        """
        problems: list[str] = []
        per_day: list[list[tuple[Window, str]]] = [[] for _ in DAY_NAMES]
        listed_by: dict[int, str] = {}
        if not isinstance(mapping, Mapping):
            raise CampaignError([f"{key} must be a table of day -> windows, got {mapping!r}"])
        for day_key, values in mapping.items():
            where = f"{key}[{day_key!r}]"
            days: list[int] = []
            for day in _parse_days(day_key, where, problems):
                if day in listed_by:
                    problems.append(
                        f"{where}: {DAY_NAMES[day]} is already listed under {listed_by[day]!r}"
                    )
                else:
                    listed_by[day] = str(day_key)
                    days.append(day)
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                problems.append(f"{where} must be a list of 'HH:MM-HH:MM' strings, got {values!r}")
                continue
            for index, value in enumerate(values):
                window = _parse_window(value, f"{where}[{index}]", problems)
                if window is not None:
                    for day in days:
                        per_day[day].append((window, f"{where}[{index}] = {value!r}"))
        # One config line usually feeds several days: report each clash once.
        clashes: dict[str, list[str]] = {}
        for name, entries in zip(DAY_NAMES, per_day, strict=True):
            entries.sort()
            for (before, before_at), (after, after_at) in pairwise(entries):
                # Touching windows are refused too: closes_at would report the
                # first one's end while the lead is in fact callable on.
                if after.start <= before.end:
                    message = f"{after_at} overlaps {before_at}; merge them into one window"
                    clashes.setdefault(message, []).append(name)
        problems.extend(f"{message} (on {', '.join(days)})" for message, days in clashes.items())
        if problems:
            raise CampaignError(problems)
        return cls(tuple(tuple(w for w, _ in entries) for entries in per_day))

    def has_any(self) -> bool:
        return any(self.days)

    def is_open(self, now: datetime, tz: str) -> bool:
        """Whether ``now`` falls inside a window in zone ``tz``."""
        return self.closes_at(now, tz) is not None

    def closes_at(self, now: datetime, tz: str) -> datetime | None:
        """When the window ``now`` is in closes (UTC), or None if ``now`` is outside."""
        require_aware(now, "now")
        for opens, closes in self._intervals(now, zone(tz), range(-1, 2)):
            if opens <= now < closes:
                return closes
        return None

    def next_open(self, now: datetime, tz: str) -> datetime | None:
        """The earliest instant at or after ``now`` when a window is open in ``tz``.

        That is ``now`` itself while a window is open. None if no window opens
        within the next eight days, which only happens when there are none.
        """
        require_aware(now, "now")
        best: datetime | None = None
        for opens, closes in self._intervals(now, zone(tz), range(-1, SEARCH_DAYS + 1)):
            if opens <= now < closes:
                return now.astimezone(UTC)
            if now < opens and (best is None or opens < best):
                best = opens
        return best

    def _intervals(
        self, now: datetime, tzinfo: ZoneInfo, offsets: range
    ) -> Iterator[tuple[datetime, datetime]]:
        # Neighbouring dates are included: around a transition at midnight an
        # instant's local date is not always the date whose window holds it.
        today = now.astimezone(tzinfo).date()
        for offset in offsets:
            day = today + timedelta(days=offset)
            for window in self.days[day.weekday()]:
                opens = first_instant_at(day, window.start, tzinfo)
                closes = first_instant_at(day, window.end, tzinfo)
                yield from _without_repeat(opens, closes, tzinfo)


def _without_repeat(
    opens: datetime, closes: datetime, tzinfo: ZoneInfo
) -> Iterator[tuple[datetime, datetime]]:
    # Both bounds are fold=0 instants, so a fall-back shows as a bigger UTC
    # offset at the opening than at the closing.
    before, after = _offset(opens, tzinfo), _offset(closes, tzinfo)
    if before <= after:
        if opens < closes:  # a window wholly inside a DST gap never opens
            yield opens, closes
        return
    lo, hi = int(opens.timestamp()), int(closes.timestamp())
    while lo < hi:  # the transition: the first second on the later offset
        mid = (lo + hi) // 2
        if _offset(datetime.fromtimestamp(mid, UTC), tzinfo) == after:
            hi = mid
        else:
            lo = mid + 1
    transition = datetime.fromtimestamp(lo, UTC)
    # Wall times repeat for (before - after) after the transition: skip them.
    for part in ((opens, transition), (transition + (before - after), closes)):
        if part[0] < part[1]:
            yield part


def _offset(instant: datetime, tzinfo: ZoneInfo) -> timedelta:
    offset = instant.astimezone(tzinfo).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def first_instant_at(day: date, minute: int, tzinfo: ZoneInfo) -> datetime:
    """The first UTC instant whose wall time in ``tzinfo`` is at or after ``day`` + ``minute``."""
    if minute == MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(minute // 60, minute % 60))
    # fold=0 is the first occurrence of a repeated time (PEP 495).
    candidate = wall.replace(tzinfo=tzinfo, fold=0).astimezone(UTC)
    if candidate.astimezone(tzinfo).replace(tzinfo=None) == wall:
        return candidate
    # ``wall`` is in a gap. Its two readings straddle the transition; the
    # transition instant is the first one whose wall time reaches ``wall``.
    other = wall.replace(tzinfo=tzinfo, fold=1).astimezone(UTC)
    low, high = sorted((candidate, other))
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while lo < hi:  # tzdata transitions fall on whole seconds
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tzinfo).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


def _parse_days(day_key: object, where: str, problems: list[str]) -> list[int]:
    if not isinstance(day_key, str):
        problems.append(f"{where}: day key must be a string, got {day_key!r}")
        return []
    days: list[int] = []
    for part in day_key.split(","):
        name = part.strip().lower()
        first, dash, last = name.partition("-")
        if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
            problems.append(
                f"{where}: {part.strip()!r} is not a day or day range; use {', '.join(DAY_NAMES)}"
                " or a range such as 'mon-fri'"
            )
            continue
        start = DAY_NAMES.index(first)
        end = DAY_NAMES.index(last) if dash else start
        if end < start:
            problems.append(f"{where}: range {name!r} runs backwards; ranges go Monday to Sunday")
            continue
        for day in range(start, end + 1):
            if day in days:
                problems.append(f"{where}: {DAY_NAMES[day]} appears twice in the key")
            else:
                days.append(day)
    return days


def _parse_window(value: object, where: str, problems: list[str]) -> Window | None:
    if not isinstance(value, str):
        problems.append(f"{where} = {value!r}: expected 'HH:MM-HH:MM'")
        return None
    start_text, dash, end_text = value.strip().partition("-")
    start = _parse_minute(start_text.strip())
    end = _parse_minute(end_text.strip())
    if not dash or start is None or end is None or start == MINUTES_PER_DAY:
        problems.append(f"{where} = {value!r}: expected 'HH:MM-HH:MM' (00:00 to 24:00)")
        return None
    if end <= start:
        problems.append(f"{where} = {value!r}: end must be after start (no window spans midnight)")
        return None
    return Window(start, end)


def _parse_minute(text: str) -> int | None:
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
