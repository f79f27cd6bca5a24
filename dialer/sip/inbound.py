"""An inbound call leg (UAS side of RFC 3261 §13.3 and §15), sans-IO.

A desk phone that dials out through us (manual dial) or a trunk delivering a
call arrives here, but only after the endpoint has checked its digest
credentials: nothing an unauthenticated peer sends may place a call. The leg
answers or refuses as the service decides, is ACKed (the 2xx is retransmitted
by ``SuccessRetransmitter`` until then), can be cancelled while it is being
set up, and is ended by BYE from either side.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from dialer.events import (
    CallAnswered,
    CallEvent,
    CallOutcome,
    HangupBy,
    IncomingCall,
    classify_final,
)
from dialer.sip.errors import LocalProtocolError
from dialer.sip.leg import ended, transition
from dialer.sip.message import Headers, NameAddr, Request, Response


class InboundState(StrEnum):
    OFFERED = "offered"  # INVITE accepted for processing, not answered yet
    ANSWERED = "answered"  # 2xx sent, waiting for the ACK
    CONFIRMED = "confirmed"
    ENDING = "ending"  # our BYE is out
    ENDED = "ended"


_TABLE: dict[tuple[InboundState, str], InboundState] = {
    (InboundState.OFFERED, "answer"): InboundState.ANSWERED,
    (InboundState.OFFERED, "reject"): InboundState.ENDED,
    (InboundState.OFFERED, "cancel"): InboundState.ENDED,
    (InboundState.ANSWERED, "ack"): InboundState.CONFIRMED,
    (InboundState.ANSWERED, "ack_timeout"): InboundState.ENDING,
    (InboundState.ANSWERED, "remote_bye"): InboundState.ENDED,
    (InboundState.CONFIRMED, "remote_bye"): InboundState.ENDED,
    (InboundState.CONFIRMED, "hangup"): InboundState.ENDING,
    (InboundState.ENDING, "bye_done"): InboundState.ENDED,
    (InboundState.ENDING, "remote_bye"): InboundState.ENDED,
}


@dataclass
class InboundCall:
    invite: Request
    source: tuple[str, int]
    contact: str  # our Contact URI
    via_host: str
    via_port: int
    rng: random.Random
    state: InboundState = InboundState.OFFERED
    local_sdp: bytes = b""
    events: list[CallEvent] = field(default_factory=list)
    _tag: str = ""
    _cseq: int = 0

    def __post_init__(self) -> None:
        self._tag = f"{self.rng.getrandbits(48):012x}"

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def remote_sdp(self) -> bytes:
        return self.invite.body

    def offered(self, now: float, at_ms: int) -> None:
        self.events.append(
            IncomingCall(
                call_id=self.call_id,
                at_ms=at_ms,
                mono=now,
                caller=self.invite.from_.uri,
                target=self.invite.uri,
                source=f"{self.source[0]}:{self.source[1]}",
            )
        )

    def answer(self, sdp: bytes, now: float, at_ms: int) -> Response:
        self.state = _next(self.state, "answer")
        self.local_sdp = sdp
        headers = [("Contact", f"<{self.contact}>")]
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        response = self.invite.make_response(200, to_tag=self._tag, headers=headers)
        self.events.append(CallAnswered(call_id=self.call_id, at_ms=at_ms, mono=now, status=200))
        return Response(response.status, response.reason, response.headers, sdp)

    def reject(self, status: int, now: float, at_ms: int, reason: str | None = None) -> Response:
        if not 300 <= status < 700:
            raise LocalProtocolError(f"a rejection needs a 3xx-6xx status, not {status}")
        self.state = _next(self.state, "reject")
        response = self.invite.make_response(status, reason, to_tag=self._tag)
        self._end(now, at_ms, classify_final(status), status, HangupBy.LOCAL, response.reason)
        return response

    def cancelled(self, now: float, at_ms: int) -> Response:
        """The caller CANCELled before we answered: 487 to the INVITE (§9.2)."""
        self.state = _next(self.state, "cancel")
        self._end(now, at_ms, CallOutcome.CANCELLED, 487, HangupBy.REMOTE, "caller cancelled")
        return self.invite.make_response(487, to_tag=self._tag)

    def acked(self) -> None:
        if self.state is InboundState.ANSWERED:
            self.state = _next(self.state, "ack")

    def ack_timed_out(self) -> Request:
        """§13.3.1.4: no ACK within 64*T1 — the dialog is ended with BYE."""
        self.state = _next(self.state, "ack_timeout")
        return self._bye()

    def hangup(self) -> Request | None:
        if self.state is not InboundState.CONFIRMED:
            return None
        self.state = _next(self.state, "hangup")
        return self._bye()

    def on_bye_done(self, now: float, at_ms: int) -> None:
        if self.state is InboundState.ENDING:
            self.state = _next(self.state, "bye_done")
            self._end(now, at_ms, CallOutcome.ANSWERED, 200, HangupBy.LOCAL, "local BYE")

    def on_remote_bye(self, request: Request, now: float, at_ms: int) -> Response:
        if self.state not in (InboundState.ANSWERED, InboundState.CONFIRMED, InboundState.ENDING):
            return request.make_response(481)
        by = HangupBy.LOCAL if self.state is InboundState.ENDING else HangupBy.REMOTE
        self.state = _next(self.state, "remote_bye")
        self._end(now, at_ms, CallOutcome.ANSWERED, 200, by, "remote BYE")
        return request.make_response(200)

    def matches_dialog(self, request: Request) -> bool:
        return request.call_id == self.call_id and request.to.tag == self._tag

    def _bye(self) -> Request:
        # As UAS our From is the INVITE's To (with our tag) and our To is its From.
        self._cseq += 1
        branch = f"z9hG4bK{self.rng.getrandbits(64):016x}"
        contacts = self.invite.headers.get_all("Contact")
        target = NameAddr.parse(contacts[0]).uri if contacts else self.invite.from_.uri
        pairs = [("Via", f"SIP/2.0/UDP {self.via_host}:{self.via_port};branch={branch};rport")]
        # §12.1.1: the UAS route set is the Record-Route list in order.
        pairs += [("Route", r) for r in self.invite.headers.get_all("Record-Route")]
        pairs += [
            ("Max-Forwards", "70"),
            ("From", str(self.invite.to.with_tag(self._tag))),
            ("To", self.invite.headers.get("From") or ""),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._cseq} BYE"),
        ]
        return Request("BYE", target, Headers.of(pairs))

    def _end(  # noqa: PLR0917 - every field is always given
        self,
        now: float,
        at_ms: int,
        outcome: CallOutcome,
        status: int | None,
        by: HangupBy | None,
        reason: str,
    ) -> None:
        self.events.append(
            ended(
                self.call_id,
                now,
                at_ms,
                outcome=outcome,
                status=status,
                cause=None,
                by=by,
                reason=reason,
            )
        )


def _next(state: InboundState, kind: str) -> InboundState:
    return transition(_TABLE, state, kind, "inbound call")
