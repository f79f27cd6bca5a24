from __future__ import annotations

import json

import pytest

from dialer.events import CallEnded, CallOutcome, HangupBy, classify_final, parse_q850_reason


@pytest.mark.parametrize(
    ("status", "cause", "outcome"),
    [
        (200, None, CallOutcome.ANSWERED),
        (486, None, CallOutcome.BUSY),
        (486, 17, CallOutcome.BUSY),
        (404, None, CallOutcome.INVALID_NUMBER),
        (480, None, CallOutcome.UNAVAILABLE),
        (480, 20, CallOutcome.UNAVAILABLE),
        (480, 1, CallOutcome.INVALID_NUMBER),  # carrier maps "unallocated" to 480
        (480, 19, CallOutcome.NO_ANSWER),
        (603, None, CallOutcome.DECLINED),
        (487, 16, CallOutcome.CANCELLED),
        (408, None, CallOutcome.TIMEOUT),
        (407, None, CallOutcome.AUTH_FAILED),
        (503, None, CallOutcome.TRUNK_FAILURE),
        (500, 34, CallOutcome.TRUNK_FAILURE),
        (415, None, CallOutcome.REJECTED),
    ],
)
def test_final_status_and_cause_classify(
    status: int, cause: int | None, outcome: CallOutcome
) -> None:
    assert classify_final(status, cause) is outcome


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        ('Q.850;cause=17;text="User busy"', 17),
        ("q.850 ; cause = 20", 20),
        ('SIP;cause=200;text="Call completed elsewhere"', None),
        ("Q.850;cause=abc", None),
        ('Q.850;text="x"', None),
    ],
)
def test_reason_header_cause(value: str, cause: int | None) -> None:
    assert parse_q850_reason(value) == cause


def test_event_json_carries_schema_and_kind() -> None:
    event = CallEnded(
        call_id="c1",
        at_ms=1,
        mono=2.5,
        outcome=CallOutcome.BUSY,
        status=486,
        q850_cause=17,
        hangup_by=HangupBy.REMOTE,
    )
    body = json.loads(event.to_json())
    assert body == {
        "schema": 1,
        "kind": "call_ended",
        "at_ms": 1,
        "mono": 2.5,
        "call_id": "c1",
        "outcome": "busy",
        "status": 486,
        "q850_cause": 17,
        "hangup_by": "remote",
        "reason": "",
    }
    with pytest.raises(AttributeError):
        event.status = 200  # type: ignore[misc]
