"""An outbound call leg (UAC side of RFC 3261 §13 and §15), sans-IO.

The leg builds its INVITE, follows the responses the INVITE client
transaction passes up, answers digest challenges from a PBX or trunk (401 and
407, once per nonce), ACKs every 2xx itself (§13.2.2.4: the 2xx ACK is the
core's, not the transaction's), CANCELs a ringing call (§9.1: only after a
provisional response, so a CANCEL is held until one arrives), ends a
confirmed call with BYE, and takes the peer's BYE. Each step is a domain
event: the final word is always exactly one ``CallEnded``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from dialer.events import (
    CallAnswered,
    CallEvent,
    CallOutcome,
    CallProgress,
    CallStarted,
    HangupBy,
    classify_final,
    parse_q850_reason,
)
from dialer.sip.auth import Challenge, DigestClient, choose
from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.leg import ended, transition
from dialer.sip.message import Headers, NameAddr, Request, Response


class LegState(StrEnum):
    CALLING = "calling"  # INVITE sent, nothing back yet
    EARLY = "early"  # a provisional response arrived
    CONFIRMED = "confirmed"  # 2xx received and ACKed
    ENDING = "ending"  # our BYE is out
    ENDED = "ended"


# (state, input) -> next state: the call leg's whole life.
_TABLE: dict[tuple[LegState, str], LegState] = {
    (LegState.CALLING, "provisional"): LegState.EARLY,
    (LegState.EARLY, "provisional"): LegState.EARLY,
    (LegState.CALLING, "success"): LegState.CONFIRMED,
    (LegState.EARLY, "success"): LegState.CONFIRMED,
    (LegState.CALLING, "failure"): LegState.ENDED,
    (LegState.EARLY, "failure"): LegState.ENDED,
    (LegState.CALLING, "timeout"): LegState.ENDED,
    (LegState.EARLY, "timeout"): LegState.ENDED,
    (LegState.CONFIRMED, "hangup"): LegState.ENDING,
    (LegState.CONFIRMED, "remote_bye"): LegState.ENDED,
    (LegState.ENDING, "remote_bye"): LegState.ENDED,
    (LegState.ENDING, "bye_done"): LegState.ENDED,
}


@dataclass(frozen=True, slots=True)
class LegConfig:
    call_id: str  # our call attempt's id (also the SIP Call-ID)
    target: str  # Request-URI, e.g. sip:13800138000@trunk.example.com
    local_uri: str  # From, e.g. sip:dialer@10.0.0.1
    contact: str  # our Contact, e.g. sip:dialer@10.0.0.1:5060
    via_host: str
    via_port: int
    sdp: bytes = b""
    extra_headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    trunk: str | None = None
    transport: str = "UDP"


@dataclass
class OutboundCall:
    config: LegConfig
    rng: random.Random
    state: LegState = LegState.CALLING
    remote_sdp: bytes | None = None
    local_sdp: bytes = b""  # our current session: the offer, then re-INVITE answers
    final_status: int | None = None
    _invite: Request | None = None
    _from_tag: str = ""
    _cseq: int = 1
    _dialog_to: str | None = None
    _remote_target: str | None = None
    _route: tuple[str, ...] = ()
    _cancel_wanted: bool = False
    _cancel_sent: bool = False
    _auth_tries: int = 0
    _ack: Request | None = None
    _sent_ack: Request | None = None  # retransmitted 2xx get this very ACK again
    _hangup_after_answer: bool = False
    _digest: DigestClient | None = None
    events: list[CallEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._from_tag = f"{self.rng.getrandbits(48):012x}"
        self.local_sdp = self.config.sdp
        if self.config.username and self.config.password is not None:
            self._digest = DigestClient(self.config.username, self.config.password)

    @property
    def call_id(self) -> str:
        return self.config.call_id

    # --- requests we send (the endpoint wraps each in a client transaction) ---

    def start(self, now: float, at_ms: int) -> Request:
        self.events.append(
            CallStarted(
                call_id=self.call_id,
                at_ms=at_ms,
                mono=now,
                target=self.config.target,
                trunk=self.config.trunk,
            )
        )
        self._invite = self._build_invite(authorization=None)
        return self._invite

    def cancel(self) -> Request | None:
        """Give up on a call that is not answered yet; None until it may be sent."""
        if self.state not in (LegState.CALLING, LegState.EARLY):
            return None
        self._cancel_wanted = True
        if self.state is LegState.CALLING or self._cancel_sent:
            return None
        return self._build_cancel()

    def hangup(self, now: float) -> Request | None:
        """End a confirmed call with BYE; a ringing one is cancelled instead."""
        if self.state in (LegState.CALLING, LegState.EARLY):
            return self.cancel()
        if self.state is not LegState.CONFIRMED:
            return None
        self.state = _next(self.state, "hangup")
        return self._in_dialog("BYE")

    def take_ack(self) -> Request | None:
        ack, self._ack = self._ack, None
        return ack

    # --- what the wire says -------------------------------------------------

    def on_invite_response(self, response: Response, now: float, at_ms: int) -> Request | None:
        """A response to our INVITE; returns a request to send next, if any."""
        status = response.status
        if 200 <= status < 300:
            return self._on_success(response, now, at_ms)
        if self.state not in (LegState.CALLING, LegState.EARLY):
            return None  # a late provisional or failure after the end
        if status < 200:
            if status == 100:
                # §9.1: any provisional, 100 included, releases a held CANCEL.
                if self._cancel_wanted and not self._cancel_sent:
                    return self._build_cancel()
                return None
            self.state = _next(self.state, "provisional")
            self.events.append(
                CallProgress(
                    call_id=self.call_id,
                    at_ms=at_ms,
                    mono=now,
                    status=status,
                    early_media=bool(response.body),
                )
            )
            if status == 183 and response.body:
                self.remote_sdp = response.body
            if self._cancel_wanted and not self._cancel_sent:
                return self._build_cancel()
            return None
        if status in (401, 407) and not self._cancel_wanted:
            retry = self._answer_challenge(response)
            if retry is not None:
                return retry
        self.final_status = status
        self.state = _next(self.state, "failure")
        cause = _cause(response)
        outcome = classify_final(status, cause)
        if self._cancel_sent and status == 487:
            outcome = CallOutcome.CANCELLED
        self._end(now, at_ms, outcome, status, cause, None, response.reason)
        return None

    def on_invite_timeout(self, now: float, at_ms: int) -> None:
        if self.state in (LegState.CALLING, LegState.EARLY):
            self.state = _next(self.state, "timeout")
            outcome = CallOutcome.CANCELLED if self._cancel_sent else CallOutcome.TIMEOUT
            self._end(now, at_ms, outcome, 408, None, None, "no final response (Timer B)")

    def on_cancel_unanswered(self, now: float, at_ms: int) -> None:
        """§9.1: no final response 64*T1 after our CANCEL: the call is over all the same."""
        if self.state in (LegState.CALLING, LegState.EARLY):
            self.state = _next(self.state, "timeout")
            reason = "no final response to the INVITE after CANCEL (64*T1)"
            self._end(now, at_ms, CallOutcome.CANCELLED, None, None, None, reason)

    def on_bye_done(self, now: float, at_ms: int, status: int | None) -> None:
        """Our BYE got its final response (or timed out: the call is over anyway)."""
        if self.state is LegState.ENDING:
            self.state = _next(self.state, "bye_done")
            self._end(now, at_ms, CallOutcome.ANSWERED, 200, None, HangupBy.LOCAL, "local BYE")
        del status

    def on_remote_bye(self, request: Request, now: float, at_ms: int) -> Response:
        if self.state not in (LegState.CONFIRMED, LegState.ENDING):
            return request.make_response(481)
        hung_up_by = HangupBy.REMOTE if self.state is LegState.CONFIRMED else HangupBy.LOCAL
        self.state = _next(self.state, "remote_bye")
        cause = _cause(request)
        self._end(now, at_ms, CallOutcome.ANSWERED, 200, cause, hung_up_by, "remote BYE")
        return request.make_response(200)

    def matches_dialog(self, request: Request) -> bool:
        return request.call_id == self.call_id and request.to.tag == self._from_tag

    # --- internals ----------------------------------------------------------

    def _on_success(self, response: Response, now: float, at_ms: int) -> Request | None:
        first = self.state in (LegState.CALLING, LegState.EARLY)
        if first:
            self.final_status = response.status
            self._dialog_to = response.headers.get("To")
            contact = response.headers.get_all("Contact")
            self._remote_target = NameAddr.parse(contact[0]).uri if contact else self.config.target
            # §12.1.2: the route set is the Record-Route list in reverse.
            self._route = tuple(reversed(response.headers.get_all("Record-Route")))
            self.remote_sdp = response.body or self.remote_sdp
            self.state = _next(self.state, "success")
            self.events.append(
                CallAnswered(call_id=self.call_id, at_ms=at_ms, mono=now, status=response.status)
            )
        # Every 2xx (the first and its retransmissions) gets the same ACK.
        assert self._invite is not None
        if self._sent_ack is None:
            self._sent_ack = self._in_dialog("ACK", cseq=self._invite.cseq.seq, body=b"")
        self._ack = self._sent_ack
        if first and self._cancel_wanted:
            # The callee answered as we cancelled (§9.1 race): end it with BYE.
            self.state = _next(self.state, "hangup")
            return self._in_dialog("BYE")
        return None

    def _answer_challenge(self, response: Response) -> Request | None:
        if self._digest is None or self._auth_tries >= 2:
            return None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            challenges = [Challenge.parse(v) for v in response.headers.get_all(header)]
        except RemoteProtocolError:
            return None
        if not challenges or (self._auth_tries >= 1 and not any(c.stale for c in challenges)):
            return None
        self._auth_tries += 1
        credentials = self._digest.respond(
            choose(challenges),
            "INVITE",
            self.config.target,
            cnonce=f"{self.rng.getrandbits(64):016x}",
        )
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self._cseq += 1
        self._invite = self._build_invite(authorization=(name, str(credentials)))
        return self._invite

    def _build_invite(self, authorization: tuple[str, str] | None) -> Request:
        c = self.config
        pairs = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", f"<{c.local_uri}>;tag={self._from_tag}"),
            ("To", f"<{c.target}>"),
            ("Call-ID", c.call_id),
            ("CSeq", f"{self._cseq} INVITE"),
            ("Contact", f"<{c.contact}>"),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"),
            ("User-Agent", "telesales-dialer"),
            *c.extra_headers,
        ]
        if authorization is not None:
            pairs.append(authorization)
        if c.sdp:
            pairs.append(("Content-Type", "application/sdp"))
        return Request("INVITE", c.target, Headers.of(pairs), c.sdp)

    def _build_cancel(self) -> Request:
        # §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via as the INVITE.
        assert self._invite is not None
        self._cancel_sent = True
        invite = self._invite
        pairs = [
            ("Via", invite.headers.get_all("Via")[0]),
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("From") or ""),
            ("To", invite.headers.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
            ("Reason", 'SIP;cause=487;text="Request Terminated"'),
        ]
        return Request("CANCEL", invite.uri, Headers.of(pairs))

    def _in_dialog(self, method: str, cseq: int | None = None, body: bytes = b"") -> Request:
        if self._dialog_to is None or self._remote_target is None:
            raise LocalProtocolError(f"{method} needs a confirmed dialog")
        if cseq is None:
            self._cseq += 1
            cseq = self._cseq
        c = self.config
        pairs = [("Via", self._via())]
        pairs += [("Route", r) for r in self._route]
        pairs += [
            ("Max-Forwards", "70"),
            ("From", f"<{c.local_uri}>;tag={self._from_tag}"),
            ("To", self._dialog_to),
            ("Call-ID", c.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        return Request(method, self._remote_target, Headers.of(pairs), body)

    def _via(self) -> str:
        c = self.config
        branch = f"z9hG4bK{self.rng.getrandbits(64):016x}"
        return f"SIP/2.0/{c.transport} {c.via_host}:{c.via_port};branch={branch};rport"

    def _end(  # noqa: PLR0917 - one call site per outcome, all fields always given
        self,
        now: float,
        at_ms: int,
        outcome: CallOutcome,
        status: int | None,
        cause: int | None,
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
                cause=cause,
                by=by,
                reason=reason,
            )
        )


def _next(state: LegState, kind: str) -> LegState:
    return transition(_TABLE, state, kind, "call leg")


def _cause(message: Request | Response) -> int | None:
    for value in message.headers.get_all("Reason"):
        cause = parse_q850_reason(value)
        if cause is not None:
            return cause
    return None
