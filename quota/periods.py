"""Which quota day, week and month an instant belongs to, on the floor's clock.

Quotas are assessed per local working day, not per UTC day: a floor in
Asia/Shanghai whose day starts at 05:00 counts a call at 04:59 local time to
the previous day and one at 05:00 to the new day. The day key is the local
calendar date on which the quota day starts; the week is keyed by its
Monday's day key (ISO weeks) and the month by ``YYYY-MM`` of the day key, so
a week that straddles a month boundary is one week with days in two months.

Instants come in as UTC milliseconds (what the CDR stores); wall-clock
arithmetic is done in the floor's zone, so a DST change (not in Shanghai, but
elsewhere) never moves a call to the wrong day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Asia/Shanghai"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or ValueError naming the zone that does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone such as 'Asia/Shanghai'") from None


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def week_key(day: date) -> date:
    """The Monday of the ISO week the day key falls in."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True, slots=True)
class PeriodKeys:
    day: date
    week: date  # that week's Monday
    month: str  # "YYYY-MM"


@dataclass(frozen=True, slots=True)
class Periods:
    """The floor's calendar: its zone and the local time at which a quota day starts."""

    timezone: str = DEFAULT_TIMEZONE
    day_starts: time = time(0, 0)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.day_starts.tzinfo is not None:
            raise ValueError("day_starts is a local wall-clock time, without a zone")
        object.__setattr__(self, "_zone", zone(self.timezone))

    @property
    def tz(self) -> ZoneInfo:
        return self._zone

    def local(self, at_ms: int) -> datetime:
        """The instant on the floor's wall clock, exact to the millisecond."""
        return (_EPOCH + timedelta(milliseconds=at_ms)).astimezone(self._zone)

    def day_of(self, at_ms: int) -> date:
        # Shifting the wall-clock time back by the boundary makes the quota day
        # the calendar date of the shifted time (04:59 with a 05:00 start is
        # 23:59 of the day before).
        shift = timedelta(
            hours=self.day_starts.hour,
            minutes=self.day_starts.minute,
            seconds=self.day_starts.second,
            microseconds=self.day_starts.microsecond,
        )
        return (self.local(at_ms).replace(tzinfo=None) - shift).date()

    def keys(self, at_ms: int) -> PeriodKeys:
        day = self.day_of(at_ms)
        return PeriodKeys(day=day, week=week_key(day), month=month_key(day))

    def at(self, day: date, wall: time) -> datetime:
        """The local wall-clock ``wall`` on the calendar date ``day``, as an aware datetime."""
        return datetime.combine(day, wall, tzinfo=self._zone)

    def day_start(self, day: date) -> datetime:
        return self.at(day, self.day_starts)

    def day_end(self, day: date) -> datetime:
        """The start of the next quota day (exclusive end of ``day``)."""
        return self.day_start(day + timedelta(days=1))

    def day_bounds_ms(self, day: date) -> tuple[int, int]:
        """``[start, end)`` of the quota day in UTC milliseconds, for CDR queries."""
        return to_ms(self.day_start(day)), to_ms(self.day_end(day))

    @staticmethod
    def week_days(week: date) -> tuple[date, ...]:
        monday = week_key(week)
        return tuple(monday + timedelta(days=i) for i in range(7))


def to_ms(instant: datetime) -> int:
    """UTC milliseconds of an aware datetime, exact (no float rounding)."""
    if instant.tzinfo is None:
        raise ValueError(f"{instant.isoformat()} has no time zone; pass an aware datetime")
    delta = instant.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
