"""The UAS core's 2xx retransmission and ACK wait (RFC 3261 §13.3.1.4).

A 2xx to an INVITE is not retransmitted by the INVITE server transaction
(which sits in Accepted, RFC 6026 §7.1) but by the UAS core, until the ACK
arrives: first after T1, the interval doubling up to T2, and for 64*T1 in all.
This holds over any transport, because a UDP hop further along can lose the
2xx or its ACK even if our own hop is TCP. Giving up confirms the dialog but
the session SHOULD then be ended with a BYE, which is the caller's job.
Sans-IO like the transactions: ``now`` is an argument, messages come out of
``take_outgoing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialer.sip.errors import LocalProtocolError
from dialer.sip.message import Request, Response
from dialer.sip.timers import TimerConfig


class SuccessState(StrEnum):
    WAITING = "waiting"
    ACKED = "acked"
    GAVE_UP = "gave_up"


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """No ACK within 64*T1: the dialog is confirmed but the session should be torn down."""

    response: Response


class SuccessRetransmitter:
    """Retransmits one 2xx to an INVITE until its ACK. The first transmission is the
    caller's (it goes through the INVITE server transaction); this only repeats it."""

    def __init__(self, response: Response, now: float, timers: TimerConfig | None = None) -> None:
        if not 200 <= response.status < 300 or response.cseq.method != "INVITE":
            raise LocalProtocolError(
                f"only a 2xx to INVITE is retransmitted by the core, not a {response.status} "
                f"to {response.cseq.method}"
            )
        self.response = response
        self.timers = timers or TimerConfig()
        self.state = SuccessState.WAITING
        self.retransmissions = 0
        self._interval = self.timers.t1
        self._next: float = now + self.timers.t1
        self._give_up = now + self.timers.transaction_timeout
        self._outgoing: list[Response] = []
        # §13.2.2.4/§12.2.1.1: the ACK belongs to the dialog and the INVITE's CSeq
        # number; its branch is new, so Call-ID, tags and CSeq are what identify it.
        self._dialog = (response.call_id, response.from_.tag, response.to.tag)

    def matches(self, ack: Request) -> bool:
        return (
            ack.method == "ACK"
            and ack.cseq.seq == self.response.cseq.seq
            and (ack.call_id, ack.from_.tag, ack.to.tag) == self._dialog
        )

    def receive_ack(self, ack: Request, now: float) -> bool:
        """Stop on the matching ACK; True if it was ours (retransmitted ACKs included)."""
        if not self.matches(ack):
            return False
        if self.state is SuccessState.WAITING:
            self.state = SuccessState.ACKED
        return True

    def next_deadline(self) -> float | None:
        if self.state is not SuccessState.WAITING:
            return None
        return min(self._next, self._give_up)

    def handle_timer(self, now: float) -> list[AckTimeout]:
        while self.state is SuccessState.WAITING:
            if self._give_up <= now and self._give_up <= self._next:
                self.state = SuccessState.GAVE_UP
                return [AckTimeout(self.response)]
            if self._next > now:
                break
            self._outgoing.append(self.response)
            self.retransmissions += 1
            self._interval = min(2 * self._interval, self.timers.t2)
            self._next += self._interval
        return []

    def take_outgoing(self) -> list[Response]:
        out, self._outgoing = self._outgoing, []
        return out
