"""What the outbound and inbound call legs share: state lookup and the final event."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from dialer.events import CallEnded, CallOutcome, HangupBy
from dialer.sip.errors import LocalProtocolError

S = TypeVar("S", bound=StrEnum)


def transition(table: Mapping[tuple[S, str], S], state: S, kind: str, what: str) -> S:
    """The next state; an input the table lacks is our own misuse, named in the error."""
    try:
        return table[(state, kind)]
    except KeyError:
        raise LocalProtocolError(f"{what} cannot take {kind!r} in state {state}") from None


def ended(
    call_id: str,
    now: float,
    at_ms: int,
    *,
    outcome: CallOutcome,
    status: int | None,
    cause: int | None,
    by: HangupBy | None,
    reason: str,
) -> CallEnded:
    """The one ``CallEnded`` a leg emits, whichever side it is."""
    return CallEnded(
        call_id=call_id,
        at_ms=at_ms,
        mono=now,
        outcome=outcome,
        status=status,
        q850_cause=cause,
        hangup_by=by,
        reason=reason,
    )
