"""Abandon rate per campaign, on the day and over a rolling window of days.

The abandon cap is judged per calendar day and over the last 30 days, in the
floor's time zone (a day that starts at midnight UTC would split a European
afternoon shift). So the ledger keeps, per campaign, one pair of counts per
local day (live answers, abandoned calls) and computes the rates for a given
``now_ms``; nothing here reads the clock. Days that have left the window are
pruned, so memory is bounded by campaigns x window days.

Rate = abandoned / live answers; with no live answer the rate is 0 (nothing
could be abandoned). "Rolling 30 days" is today and the 29 local days before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from metrics.errors import MetricsError

DEFAULT_WINDOW_DAYS = 30


@dataclass(frozen=True, slots=True)
class AbandonRates:
    """One campaign's figures for the day containing ``now_ms`` and for the window."""

    live_today: int
    abandoned_today: int
    live_window: int
    abandoned_window: int

    @property
    def today(self) -> float:
        return self.abandoned_today / self.live_today if self.live_today else 0.0

    @property
    def window(self) -> float:
        return self.abandoned_window / self.live_window if self.live_window else 0.0


class AbandonLedger:
    """Daily live-answer and abandon counts per campaign, in one time zone."""

    def __init__(self, tz: tzinfo, window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        if window_days < 1:
            raise MetricsError(
                "abandon ledger", [f"window_days must be at least 1, got {window_days}"]
            )
        self._tz = tz
        self._window = window_days
        # campaign -> local day -> [live answers, abandoned]
        self._days: dict[str, dict[date, list[int]]] = {}
        self._newest: date | None = None

    def day_of(self, at_ms: int) -> date:
        """The local calendar day of a UTC millisecond instant."""
        return datetime.fromtimestamp(at_ms / 1000, self._tz).date()

    def add(self, campaign: str, at_ms: int, *, live: int, abandoned: int) -> None:
        """Count live answers and abandons that happened at ``at_ms``."""
        if live < 0 or abandoned < 0 or abandoned > live:
            raise MetricsError(
                f"abandon counts of campaign {campaign!r}",
                [f"need 0 <= abandoned <= live, got live={live} abandoned={abandoned}"],
            )
        day = self.day_of(at_ms)
        counts = self._days.setdefault(campaign, {}).setdefault(day, [0, 0])
        counts[0] += live
        counts[1] += abandoned
        if self._newest is None or day > self._newest:
            self._newest = day
            self._prune(day)

    def rates(self, now_ms: int) -> dict[str, AbandonRates]:
        """Every campaign's rates as of ``now_ms``, by campaign."""
        today = self.day_of(now_ms)
        first = today - timedelta(days=self._window - 1)
        self._prune(today)
        result: dict[str, AbandonRates] = {}
        for campaign, days in self._days.items():
            live_today, abandoned_today = days.get(today, (0, 0))
            live_window = abandoned_window = 0
            for day, (live, abandoned) in days.items():
                if first <= day <= today:
                    live_window += live
                    abandoned_window += abandoned
            result[campaign] = AbandonRates(
                live_today, abandoned_today, live_window, abandoned_window
            )
        return result

    def _prune(self, today: date) -> None:
        first = today - timedelta(days=self._window - 1)
        for days in self._days.values():
            for day in [day for day in days if day < first]:
                del days[day]
