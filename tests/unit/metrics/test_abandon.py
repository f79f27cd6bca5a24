"""The abandon ledger on its own: local days, the rolling window, and refused counts."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from metrics.abandon import AbandonLedger
from metrics.calls import CallLabelMap, CallLabels
from metrics.errors import MetricsError

NEW_YORK = ZoneInfo("America/New_York")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp() * 1000)


def test_days_are_local_across_a_daylight_saving_change() -> None:
    ledger = AbandonLedger(NEW_YORK)
    # 2026-03-08: clocks go from 02:00 to 03:00; the local day is 23 hours long.
    assert ledger.day_of(ms("2026-03-08 00:30")) == date(2026, 3, 8)
    assert ledger.day_of(ms("2026-03-08 23:30")) == date(2026, 3, 8)
    assert ledger.day_of(ms("2026-03-08 23:30") + 31 * 60_000) == date(2026, 3, 9)


def test_a_short_window_counts_today_and_the_days_before() -> None:
    ledger = AbandonLedger(NEW_YORK, window_days=2)
    ledger.add("c1", ms("2026-03-01 10:00"), live=10, abandoned=1)
    ledger.add("c1", ms("2026-03-02 10:00"), live=10, abandoned=3)
    ledger.add("c2", ms("2026-03-02 11:00"), live=4, abandoned=0)
    rates = ledger.rates(ms("2026-03-02 12:00"))
    assert (rates["c1"].today, rates["c1"].window) == (0.3, 0.2)
    assert (rates["c2"].today, rates["c2"].window) == (0.0, 0.0)
    later = ledger.rates(ms("2026-03-03 12:00"))["c1"]
    assert (later.live_today, later.live_window, later.abandoned_window) == (0, 10, 3)


def test_impossible_counts_and_windows_are_refused() -> None:
    ledger = AbandonLedger(NEW_YORK)
    with pytest.raises(
        MetricsError, match=r"campaign 'c1': need 0 <= abandoned <= live, got live=1 abandoned=2"
    ):
        ledger.add("c1", 0, live=1, abandoned=2)
    with pytest.raises(MetricsError, match="window_days must be at least 1, got 0"):
        AbandonLedger(NEW_YORK, window_days=0)
    assert ledger.rates(0) == {}


def test_the_call_map_refuses_a_call_tracked_twice() -> None:
    calls = CallLabelMap(max_calls=2)
    assert calls.add("k1", CallLabels("c1", "t1")) == []
    with pytest.raises(MetricsError, match="call 'k1' is already tracked"):
        calls.add("k1", CallLabels("c2", "t1"))
    assert calls.get("k1") == CallLabels("c1", "t1")
    assert calls.add("k2", CallLabels("c1", "t1")) == []
    assert calls.add("k3", CallLabels("c3", "t3")) == [CallLabels("c1", "t1")]
    assert len(calls) == 2
    with pytest.raises(MetricsError, match="max_calls must be at least 1"):
        CallLabelMap(0)
