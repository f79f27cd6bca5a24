"""Exempt days: the 09:00 deadline, the monthly limit, and the reasons for a refusal."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from quota.exemptions import ExemptionBook, ExemptionRefusedError
from quota.policy import Policy, parse_policy

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT = Path(__file__).parents[3] / "deploy" / "quota" / "default-policy.toml"
RAW: dict[str, Any] = tomllib.loads(DEFAULT.read_text(encoding="utf-8"))
MONDAY = date(2024, 3, 4)


def policy(**assessment: Any) -> Policy:
    raw = copy.deepcopy(RAW)
    raw["assessment"].update(assessment)
    return parse_policy(raw)


def local(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=SHANGHAI)


def test_a_request_before_nine_on_the_day_is_approved_and_at_nine_is_refused() -> None:
    book = ExemptionBook(policy())
    approved = book.request_exemption("a1", MONDAY, local(MONDAY, 8, 59, 59), "lead-1")
    assert approved.approved_by == "lead-1" and book.is_exempt("a1", MONDAY)
    tuesday = MONDAY + timedelta(days=1)
    with pytest.raises(ExemptionRefusedError) as refused:
        book.request_exemption("a1", tuesday, local(tuesday, 9, 0), "lead-1")
    assert "must be requested before 09:00 that day (Asia/Shanghai)" in refused.value.reason
    assert "2024-03-05 09:00:00" in refused.value.reason
    assert not book.is_exempt("a1", tuesday)


def test_the_deadline_is_on_the_floors_clock_whatever_zone_the_request_carries() -> None:
    book = ExemptionBook(policy())
    # 00:59 UTC is 08:59 in Shanghai: still in time; 01:00 UTC is 09:00: too late.
    in_time = datetime.combine(MONDAY, time(0, 59), tzinfo=UTC)
    book.request_exemption("a1", MONDAY, in_time, "lead-1")
    with pytest.raises(ExemptionRefusedError):
        book.request_exemption("a2", MONDAY, datetime.combine(MONDAY, time(1, 0), tzinfo=UTC), "x")


def test_the_third_exempt_day_of_a_month_is_refused_with_the_days_already_taken() -> None:
    book = ExemptionBook(policy())
    ask = local(date(2024, 3, 1), 8)  # days ahead, well before each deadline
    book.request_exemption("a1", date(2024, 3, 5), ask, "lead-1")
    book.request_exemption("a1", date(2024, 3, 12), ask, "lead-1")
    with pytest.raises(ExemptionRefusedError) as refused:
        book.request_exemption("a1", date(2024, 3, 19), ask, "lead-1")
    assert refused.value.reason == (
        "agent a1: the limit is 2 exempt days a month and 2024-03 already has 2 "
        "(2024-03-05, 2024-03-12)"
    )
    # Another agent, and the next month, have their own allowance.
    book.request_exemption("a2", date(2024, 3, 19), ask, "lead-1")
    book.request_exemption("a1", date(2024, 4, 1), ask, "lead-1")
    assert [e.day for e in book.of("a1", "2024-04")] == [date(2024, 4, 1)]


def test_the_limit_and_deadline_come_from_the_policy() -> None:
    book = ExemptionBook(policy(exempt_days_per_month=1, exemption_deadline=time(10, 30)))
    book.request_exemption("a1", MONDAY, local(MONDAY, 10, 29), "lead-1")
    with pytest.raises(ExemptionRefusedError, match="the limit is 1 exempt days a month"):
        book.request_exemption("a1", date(2024, 3, 6), local(MONDAY, 8), "lead-1")


def test_approving_the_same_day_again_uses_no_second_day() -> None:
    book = ExemptionBook(policy())
    first = book.request_exemption("a1", MONDAY, local(MONDAY, 8), "lead-1")
    again = book.request_exemption("a1", MONDAY, local(MONDAY, 11), "lead-2")
    assert again is first
    assert len(book) == 1


def test_requests_without_approver_or_on_a_day_off_are_refused() -> None:
    book = ExemptionBook(policy())
    with pytest.raises(ExemptionRefusedError, match="needs an approver"):
        book.request_exemption("a1", MONDAY, local(MONDAY, 8), "  ")
    saturday = date(2024, 3, 9)
    with pytest.raises(ExemptionRefusedError, match=r"2024-03-09 \(sat\) is not a work day"):
        book.request_exemption("a1", saturday, local(saturday, 8), "lead-1")
    with pytest.raises(ValueError, match="has no time zone"):
        book.request_exemption("a1", MONDAY, datetime(2024, 3, 4, 8), "lead-1")
    assert len(book) == 0
