"""A call the dialer released for its early media keeps what the screening found as its outcome.

On the wire such a call is our CANCEL (487, ``cancelled``); the
``EarlyMediaScreened`` event before it says what the 183 audio was, and the
CDR must carry that outcome, not "cancelled". Every verdict the screening
can reach with an outcome is checked, as ``outcome_for`` maps it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cdr.builder import build
from cdr.effective import DEFAULT_RULE
from cdr.record import CallRecord, Outcome
from dialer.events import CallOutcome, EarlyMediaScreened, Event
from dialer.media.screening import ScreenClass, SitKind, Verdict, outcome_for

# The scenario helper sits beside its tests (the unit tier has no packages).
sys.path.insert(0, str(Path(__file__).parent))
from scenario import MONO0, ms, table

HEAD = """
  t(s)   event
  0.000  assigned campaign=c1 lead=L1 mode=predictive number=+8613800000001 trunk=t1
  0.010  started target=sip:+8613800000001@gw.example trunk=t1
  0.300  progress 183 early
"""
CANCELLED = """
  2.110  cleared by=system reason="screened: {verdict}"
  2.150  ended cancelled status=487 hangup=local
"""


def screened(
    t: float, verdict: str, outcome: CallOutcome, sit: str | None = None, after_s: float = 1.8
) -> EarlyMediaScreened:
    return EarlyMediaScreened(
        call_id="call-1",
        at_ms=ms(t),
        mono=MONO0 + t,
        verdict=verdict,
        outcome=outcome,
        after_s=after_s,
        sit=sit,
    )


def cdr(events: list[Event], *, interrupted: bool = False) -> CallRecord:
    return build("call-1", events, DEFAULT_RULE, interrupted=interrupted)


def _verdicts() -> list[tuple[str, str | None, CallOutcome]]:
    """(verdict, SIT subtype, outcome) of every screening verdict that releases a call."""
    verdicts = [Verdict(ScreenClass.ANNOUNCEMENT, 0.9, 1.8)]
    verdicts += [Verdict(ScreenClass.SIT, 0.9, 1.0, sit=kind) for kind in SitKind]
    pairs = []
    for verdict in verdicts:
        outcome = outcome_for(verdict)
        assert outcome is not None
        pairs.append((verdict.kind.value, verdict.sit.value if verdict.sit else None, outcome))
    return pairs


VERDICTS = _verdicts()


def test_the_verdicts_cover_more_than_one_outcome() -> None:
    # Otherwise the mapping below could pass by always answering the same thing.
    assert {outcome for _, _, outcome in VERDICTS} >= {
        CallOutcome.UNAVAILABLE,
        CallOutcome.INVALID_NUMBER,
        CallOutcome.TRUNK_FAILURE,
    }


@pytest.mark.parametrize(("verdict", "sit", "outcome"), VERDICTS)
def test_a_screened_cancel_is_the_screenings_outcome(
    verdict: str, sit: str | None, outcome: CallOutcome
) -> None:
    events = [
        *table(HEAD),
        screened(2.1, verdict, outcome, sit),
        *table(CANCELLED.format(verdict=verdict)),
    ]
    record = cdr(events)
    assert record == CallRecord(
        call_id="call-1",
        campaign="c1",
        lead_id="L1",
        agent=None,
        direction="outbound",
        mode="predictive",
        number="+8613800000001",
        trunk="t1",
        created_at_ms=ms(0),
        ringing_at_ms=ms(0.3),
        ended_at_ms=ms(2.15),
        ring_ms=1850,
        outcome=Outcome(outcome.value),
        sip_status=487,
        hangup_by="system",
        end_reason=f"screened: {verdict}",
        effective_rule="default@1",
    )
    assert record.outcome is not Outcome.CANCELLED


def test_a_cancel_without_screening_stays_cancelled() -> None:
    record = cdr(table(HEAD + CANCELLED.format(verdict="none")))
    assert (record.outcome, record.sip_status) == (Outcome.CANCELLED, 487)


def test_a_ring_timeout_without_screening_is_still_no_answer() -> None:
    events = table(
        HEAD
        + """
  30.010 cleared by=system reason=ring_timeout
  30.050 ended cancelled status=487 hangup=local
"""
    )
    assert cdr(events).outcome is Outcome.NO_ANSWER


@pytest.mark.parametrize(
    ("ended", "outcome"),
    [
        ("ended invalid_number status=404 cause=1 hangup=remote", Outcome.INVALID_NUMBER),
        ("ended busy status=486 cause=17 hangup=remote", Outcome.BUSY),
    ],
)
def test_a_final_answer_from_the_network_before_our_cancel_stands(
    ended: str, outcome: Outcome
) -> None:
    # The carrier's own final response crossed our CANCEL: the network said it first.
    events = [*table(HEAD), screened(2.1, "announcement", CallOutcome.UNAVAILABLE)]
    events += table(f'2.110 cleared by=system reason="screened: announcement"\n2.150 {ended}')
    assert cdr(events).outcome is outcome


def test_the_first_screening_verdict_is_the_one_kept() -> None:
    events = [
        *table(HEAD),
        screened(2.1, "sit", CallOutcome.TRUNK_FAILURE, "reorder"),
        screened(2.12, "announcement", CallOutcome.UNAVAILABLE),
        *table(CANCELLED.format(verdict="sit")),
    ]
    assert cdr(events).outcome is Outcome.TRUNK_FAILURE


def test_a_screened_call_whose_end_was_lost_is_interrupted() -> None:
    events = [*table(HEAD), screened(2.1, "announcement", CallOutcome.UNAVAILABLE)]
    assert cdr(events, interrupted=True).outcome is Outcome.INTERRUPTED
