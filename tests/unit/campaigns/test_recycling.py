from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.campaigns.recycling import (
    OUTCOME_POLICY,
    Callback,
    Decision,
    LeadState,
    RetryRules,
    decide,
)
from dialer.campaigns.windows import CampaignError
from dialer.events import CallOutcome

NOW = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)
RULES = RetryRules()


def test_every_outcome_has_a_policy() -> None:
    assert set(OUTCOME_POLICY) == set(CallOutcome)


@pytest.mark.parametrize(
    ("outcome", "delay"),
    [
        (CallOutcome.BUSY, timedelta(minutes=30)),
        (CallOutcome.NO_ANSWER, timedelta(hours=2)),
        (CallOutcome.UNAVAILABLE, timedelta(hours=4)),
        (CallOutcome.TIMEOUT, timedelta(hours=4)),
        (CallOutcome.REJECTED, timedelta(hours=4)),
        # Declined counts like busy but waits like no answer: not a harassment redial.
        (CallOutcome.DECLINED, timedelta(hours=2)),
    ],
)
def test_counted_failures_redial_after_their_delay(outcome: CallOutcome, delay: timedelta) -> None:
    decision = decide(outcome, 0, NOW, RULES)
    assert decision.lead_state is LeadState.QUEUED
    assert decision.next_attempt_at == NOW + delay
    assert decision.attempts == 1
    assert decision.reason == f"{outcome.value}: attempt 1 of 3; redial in {delay}"


def test_busy_until_max_attempts_then_exhausted() -> None:
    attempts, states = 0, []
    for _ in range(3):
        decision = decide(CallOutcome.BUSY, attempts, NOW, RULES)
        attempts = decision.attempts
        states.append(decision.lead_state)
    assert states == [LeadState.QUEUED, LeadState.QUEUED, LeadState.EXHAUSTED]
    assert decision == Decision(
        LeadState.EXHAUSTED, None, 3, "busy: attempt 3 of 3, no attempts left"
    )


@pytest.mark.parametrize(
    "outcome", [CallOutcome.TRUNK_FAILURE, CallOutcome.AUTH_FAILED, CallOutcome.CANCELLED]
)
def test_our_failures_do_not_count(outcome: CallOutcome) -> None:
    decision = decide(outcome, 2, NOW, RULES)
    assert decision.lead_state is LeadState.QUEUED
    assert decision.attempts == 2
    assert decision.next_attempt_at == NOW + timedelta(minutes=5)


def test_invalid_number_fails_for_good() -> None:
    decision = decide(CallOutcome.INVALID_NUMBER, 0, NOW, RULES)
    assert decision == Decision(LeadState.FAILED, None, 1, "invalid_number: never redialed")


def test_answered_is_done() -> None:
    assert decide(CallOutcome.ANSWERED, 1, NOW, RULES, disposition="sale") == Decision(
        LeadState.DONE, None, 2, "answered: 'sale'"
    )
    assert decide(CallOutcome.ANSWERED, 0, NOW, RULES).lead_state is LeadState.DONE


def test_answered_on_the_last_attempt_is_still_done() -> None:
    assert decide(CallOutcome.ANSWERED, 2, NOW, RULES).lead_state is LeadState.DONE


def test_answered_do_not_call() -> None:
    decision = decide(CallOutcome.ANSWERED, 0, NOW, RULES, disposition="DNC")
    assert decision.lead_state is LeadState.DNC
    assert decision.next_attempt_at is None


def test_answered_callback_at_the_agreed_time() -> None:
    at = NOW + timedelta(days=1, hours=2)
    decision = decide(CallOutcome.ANSWERED, 0, NOW, RULES, disposition="callback", callback_at=at)
    assert decision.lead_state is LeadState.CALLBACK
    assert decision.next_attempt_at == at
    assert decision.attempts == 1


def test_callback_needs_its_time() -> None:
    with pytest.raises(CampaignError, match="disposition 'callback' needs callback_at"):
        decide(CallOutcome.ANSWERED, 0, NOW, RULES, disposition="callback")


def test_callback_time_without_callback_disposition_is_refused() -> None:
    with pytest.raises(CampaignError, match="callback_at is only for an answered call"):
        decide(CallOutcome.BUSY, 0, NOW, RULES, callback_at=NOW)
    with pytest.raises(CampaignError, match="callback_at is only for an answered call"):
        decide(CallOutcome.ANSWERED, 0, NOW, RULES, disposition="sale", callback_at=NOW)


def test_disposition_on_an_unanswered_call_is_refused() -> None:
    with pytest.raises(CampaignError, match=r"disposition 'dnc' given for an unanswered call"):
        decide(CallOutcome.NO_ANSWER, 0, NOW, RULES, disposition="dnc")


def test_custom_dispositions() -> None:
    rules = RetryRules(callback_dispositions=frozenset({"回访"}), dnc_dispositions=frozenset())
    at = NOW + timedelta(hours=3)
    callback = decide(CallOutcome.ANSWERED, 0, NOW, rules, disposition="回访", callback_at=at)
    assert callback.lead_state is LeadState.CALLBACK
    done = decide(CallOutcome.ANSWERED, 0, NOW, rules, disposition="dnc")
    assert done.lead_state is LeadState.DONE


def test_bad_inputs_are_named() -> None:
    with pytest.raises(CampaignError, match="attempts_so_far must be an integer >= 0, got -1"):
        decide(CallOutcome.BUSY, -1, NOW, RULES)
    with pytest.raises(CampaignError, match="now must be timezone-aware"):
        decide(CallOutcome.BUSY, 0, datetime(2024, 6, 3), RULES)
    with pytest.raises(CampaignError, match="callback_at must be timezone-aware"):
        decide(
            CallOutcome.ANSWERED,
            0,
            NOW,
            RULES,
            disposition="callback",
            callback_at=datetime(2024, 6, 4),
        )


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_attempts": 0}, "RetryRules.max_attempts must be an integer >= 1, got 0"),
        ({"max_attempts": True}, "RetryRules.max_attempts must be an integer >= 1, got True"),
        (
            {"busy_delay": timedelta(0)},
            "RetryRules.busy_delay must be a positive timedelta, got datetime.timedelta(0)",
        ),
        (
            {"trunk_failure_delay": 300},
            "RetryRules.trunk_failure_delay must be a positive timedelta, got 300",
        ),
        (
            {"dnc_dispositions": frozenset({"Callback"})},
            "RetryRules: dispositions ['callback'] are both callback and do-not-call",
        ),
    ],
)
def test_bad_rules_are_named(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(CampaignError) as caught:
        RetryRules(**kwargs)  # type: ignore[arg-type]
    assert caught.value.problems == (problem,)


def test_callback_validation() -> None:
    assert Callback("L1", NOW).agent_id is None
    with pytest.raises(CampaignError, match=r"Callback\.at must be timezone-aware"):
        Callback("L1", datetime(2024, 6, 3))
    with pytest.raises(CampaignError, match=r"Callback\.agent_id must be None"):
        Callback("L1", NOW, "")


@given(
    st.sampled_from(list(CallOutcome)),
    st.integers(0, 10),
    st.integers(1, 10),
)
def test_attempts_never_exceed_the_limit_and_finals_never_redial(
    outcome: CallOutcome, attempts_so_far: int, max_attempts: int
) -> None:
    rules = RetryRules(max_attempts=max_attempts)
    decision = decide(outcome, attempts_so_far, NOW, rules)
    assert decision.attempts in (attempts_so_far, attempts_so_far + 1)
    if decision.lead_state is LeadState.QUEUED:
        assert decision.next_attempt_at is not None and decision.next_attempt_at > NOW
        if decision.attempts > attempts_so_far:
            assert decision.attempts < max_attempts
    else:
        assert decision.next_attempt_at is None
        assert decision.lead_state in (LeadState.DONE, LeadState.FAILED, LeadState.EXHAUSTED)
