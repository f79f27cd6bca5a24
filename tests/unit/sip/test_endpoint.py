"""SipEndpoint driven sans-IO: bytes in, datagrams out, the clock stepped by hand.

Four groups: hostile input (every malformed message is answered with the
status it deserves or dropped, counted, logged once, and the endpoint keeps
serving), RFC 3581 response routing, an outbound call against hand-written
callee responses, and a registration refreshed through two endpoints wired
back to back in memory.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.events import (
    CallAnswered,
    CallEnded,
    CallOutcome,
    CallProgress,
    CallStarted,
    Event,
    HangupBy,
    PhoneRegistered,
)
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.call import LegConfig, LegState
from dialer.sip.endpoint import Address, SipEndpoint
from dialer.sip.message import Headers, Request, Response, parse_message
from dialer.sip.registrar import Registrar
from dialer.sip.registration import RegistrationClient, RegistrationState, RegistrationTarget

LOCAL: Address = ("10.0.0.1", 5060)
PEER: Address = ("10.0.0.9", 5070)
CALLEE: Address = ("10.0.0.2", 5060)
LOGGER = "dialer.sip.endpoint"


def request_bytes(
    method: str = "OPTIONS",
    *,
    uri: str = "sip:dialer@10.0.0.1",
    version: str = "SIP/2.0",
    via: str = "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKopt1",
    call_id: str | None = "c1@10.0.0.9",
    cseq: int = 1,
    extra: str = "",
    body: bytes = b"",
    content_length: int | None = None,
) -> bytes:
    lines = [
        f"{method} {uri} {version}",
        f"Via: {via}",
        "Max-Forwards: 70",
        "From: <sip:agent@10.0.0.9>;tag=f1",
        "To: <sip:dialer@10.0.0.1>",
    ]
    if call_id is not None:
        lines.append(f"Call-ID: {call_id}")
    lines.append(f"CSeq: {cseq} {method}")
    length = len(body) if content_length is None else content_length
    head = "\r\n".join(lines) + "\r\n" + extra + f"Content-Length: {length}\r\n\r\n"
    return head.encode() + body


def options(n: int = 99) -> bytes:
    return request_bytes(via=f"SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKok{n}", call_id=f"ok{n}")


def exchange(
    endpoint: SipEndpoint, data: bytes, now: float, source: Address = PEER
) -> list[tuple[bytes, Address]]:
    endpoint.receive_datagram(data, source, now)
    return endpoint.take_datagrams()


def response_of(datagram: tuple[bytes, Address]) -> Response:
    message = parse_message(datagram[0])
    assert isinstance(message, Response)
    return message


def request_of(datagram: tuple[bytes, Address]) -> Request:
    message = parse_message(datagram[0])
    assert isinstance(message, Request)
    return message


def assert_still_serving(endpoint: SipEndpoint, now: float) -> None:
    malformed = endpoint.counters.malformed
    out = exchange(endpoint, options(), now)
    assert [(response_of(d).status, d[1]) for d in out] == [(200, PEER)]
    assert endpoint.counters.malformed == malformed


# --- 1. bad input -------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    data: bytes
    status: int | None  # None: dropped silently
    reason: str  # what the log line (and the Warning header, when answered) says
    max_message_bytes: int = 65536


HUGE_HEADERS = "".join(f"X-Junk-{i}: {i}\r\n" for i in range(100_000))
OVERSIZED = request_bytes(extra="X-Pad: " + "a" * 3000 + "\r\n")

BAD_INPUT: dict[str, Bad] = {
    "garbage": Bad(
        b"hello, is it me you're looking for?", None, "no empty line after the header section"
    ),
    "truncated INVITE": Bad(
        request_bytes("INVITE", body=b"v=0\r\n", content_length=300),
        400,
        "Content-Length 300 exceeds the 5 body bytes received",
    ),
    "oversized": Bad(
        OVERSIZED,
        513,
        f"message too large: {len(OVERSIZED)} bytes exceeds the 2048-byte limit",
        max_message_bytes=2048,
    ),
    "wrong SIP version": Bad(
        request_bytes(version="SIP/3.0"), 505, "unsupported SIP version: SIP/3.0"
    ),
    "missing Call-ID": Bad(request_bytes(call_id=None), None, "missing mandatory header: Call-ID"),
    "garbage response": Bad(
        b"SIP/2.0 200 OK\r\nthis is not a header\r\n\r\n",
        None,
        "malformed header line: 'this is not a header'",
    ),
    "response with every header but a bad Content-Length": Bad(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: r1\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 50\r\n\r\n",
        None,
        "Content-Length 50 exceeds the 0 body bytes received",
    ),
    "ACK is never answered": Bad(
        request_bytes("ACK", content_length=40),
        None,
        "Content-Length 40 exceeds the 0 body bytes received",
    ),
    "binary junk with NULs": Bad(
        b"\x00\xff\xfe\x00INVITE\x00\r\n\x00\x00\r\n\r\n\x00",
        None,
        "header section is not valid UTF-8",
    ),
    "NULs in the Request-URI": Bad(
        b"INVITE \x00\x00 SIP/2.0\r\n\r\n", None, "malformed Request-URI: '\\x00\\x00'"
    ),
    "100 000 header lines, over the size limit": Bad(
        request_bytes(extra=HUGE_HEADERS),
        513,
        f"message too large: {len(request_bytes(extra=HUGE_HEADERS))} bytes "
        "exceeds the 65536-byte limit",
    ),
    "100 000 header lines, under the size limit": Bad(
        request_bytes(extra=HUGE_HEADERS),
        400,
        "too many header fields (limit 100)",
        max_message_bytes=10_000_000,
    ),
    "Via branch without the magic cookie": Bad(
        request_bytes(via="SIP/2.0/UDP 10.0.0.9:5070;branch=1234abcd"),
        400,
        "Via branch '1234abcd' lacks the RFC 3261 magic cookie z9hG4bK",
    ),
    "Via without a branch": Bad(
        request_bytes(via="SIP/2.0/UDP 10.0.0.9:5070"), 400, "top Via has no branch parameter"
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_answered_or_dropped_counted_logged_once(
    case: Bad, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = SipEndpoint(LOCAL, max_message_bytes=case.max_message_bytes)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = exchange(endpoint, case.data, 0.0)
        assert_still_serving(endpoint, 1.0)

    assert [r.getMessage() for r in caplog.records] == [
        f"malformed SIP from 10.0.0.9:5070: {case.reason}"
    ]
    assert endpoint.counters.malformed == 1
    assert endpoint.counters.received == 2
    assert endpoint.take_events() == []
    assert endpoint.calls == {}
    if case.status is None:
        assert out == []
        assert endpoint.counters.answered_malformed == 0
        return
    assert endpoint.counters.answered_malformed == 1
    assert len(out) == 1
    answer = response_of(out[0])
    assert out[0][1] == PEER
    assert answer.status == case.status
    assert answer.headers.get("Warning") == f'399 dialer "{case.reason}"'
    assert answer.call_id == "c1@10.0.0.9"
    assert answer.headers.get("From") == "<sip:agent@10.0.0.9>;tag=f1"


def test_wrong_version_answer_is_exact_bytes() -> None:
    endpoint = SipEndpoint(LOCAL)
    out = exchange(endpoint, request_bytes(version="SIP/3.0"), 0.0)
    assert out == [
        (
            b"SIP/2.0 505 Version Not Supported\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKopt1\r\n"
            b"From: <sip:agent@10.0.0.9>;tag=f1\r\n"
            b"To: <sip:dialer@10.0.0.1>\r\n"
            b"Call-ID: c1@10.0.0.9\r\n"
            b"CSeq: 1 OPTIONS\r\n"
            b'Warning: 399 dialer "unsupported SIP version: SIP/3.0"\r\n'
            b"Content-Length: 0\r\n\r\n",
            PEER,
        )
    ]


def test_keepalive_crlf_is_neither_malformed_nor_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = SipEndpoint(LOCAL)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert exchange(endpoint, b"\r\n\r\n", 0.0) == []
    assert caplog.records == []
    assert endpoint.counters.malformed == 0
    assert endpoint.counters.received == 1


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE"])
def test_unsupported_request_uri_scheme_is_answered_416(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = SipEndpoint(LOCAL)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = exchange(endpoint, request_bytes(method, uri="http://dialer.example.com/"), 0.0)
    assert [response_of(d).status for d in out] == [416]
    assert endpoint.counters.malformed == 1
    assert len(caplog.records) == 1
    assert_still_serving(endpoint, 1.0)


def test_hostile_bytes_never_go_into_the_log_line_raw(caplog: pytest.LogCaptureFixture) -> None:
    # A header line with CR/LF tricks must not forge a second log line.
    data = b"OPTIONS sip:d@10.0.0.1 SIP/2.0\r\nVia: x\rINFO forged entry\r\n\r\n"
    endpoint = SipEndpoint(LOCAL)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        exchange(endpoint, data, 0.0)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "\r" not in message
    assert "\n" not in message
    assert endpoint.counters.malformed == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise_place_a_call_or_stop_the_service(data: bytes) -> None:
    endpoint = SipEndpoint(LOCAL)
    out = exchange(endpoint, data, 0.0)
    assert endpoint.calls == {}
    assert endpoint.take_events() == []
    # Whatever came back is a well-formed response to the sender, never a request.
    assert all(isinstance(parse_message(d), Response) and a == PEER for d, a in out)
    assert_still_serving(endpoint, 1.0)


TRUNCATABLE = request_bytes("INVITE", body=b"v=0\r\n")


@pytest.mark.parametrize("cut", range(len(TRUNCATABLE)))
def test_every_truncation_of_an_invite_is_harmless(cut: int) -> None:
    endpoint = SipEndpoint(LOCAL)
    out = exchange(endpoint, TRUNCATABLE[:cut], 0.0)
    assert endpoint.calls == {}
    assert endpoint.take_events() == []
    # A cut before the end of the body is a 400 or silence, never a 100 or a 403.
    assert all(d.startswith(b"SIP/2.0 400 Bad Request\r\n") and a == PEER for d, a in out)
    assert endpoint.counters.malformed == (1 if cut > 0 else 0)
    assert_still_serving(endpoint, 1.0)


# Cut inside the CSeq line: every mandatory header is there, so it is answered.
CSEQ_CUTS = [TRUNCATABLE.index(b"CSeq:") + n for n in (5, 6, 7, 8)]


@pytest.mark.parametrize("cut", CSEQ_CUTS)
def test_an_answer_to_a_truncated_request_is_itself_well_formed(cut: int) -> None:
    endpoint = SipEndpoint(LOCAL)
    out = exchange(endpoint, TRUNCATABLE[:cut], 0.0)
    for data, _ in out:
        assert isinstance(parse_message(data), Response)


# --- 2. rport / received (RFC 3581) ----------------------------------------------


def test_rport_request_is_answered_to_its_source_with_received_and_rport() -> None:
    endpoint = SipEndpoint(LOCAL)
    data = request_bytes(via="SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKnat1;rport")
    out = exchange(endpoint, data, 0.0, source=("203.0.113.7", 40123))
    assert len(out) == 1
    assert out[0][1] == ("203.0.113.7", 40123)
    via = response_of(out[0]).top_via
    assert via.param("received") == "203.0.113.7"
    assert via.param("rport") == "40123"
    assert via.branch == "z9hG4bKnat1"
    assert (via.host, via.port) == ("192.168.1.5", 5060)


def test_without_rport_the_answer_goes_to_the_received_host_and_via_port() -> None:
    # §18.2.2: received= replaces the host, the port stays the sent-by port.
    endpoint = SipEndpoint(LOCAL)
    data = request_bytes(via="SIP/2.0/UDP 192.168.1.5:5062;branch=z9hG4bKnat2")
    out = exchange(endpoint, data, 0.0, source=("203.0.113.7", 40123))
    assert [d[1] for d in out] == [("203.0.113.7", 5062)]
    via = response_of(out[0]).top_via
    assert via.param("received") == "203.0.113.7"
    assert via.param("rport") is None


def test_via_that_matches_the_source_is_left_alone() -> None:
    endpoint = SipEndpoint(LOCAL)
    out = exchange(endpoint, options(1), 0.0)
    assert [d[1] for d in out] == [PEER]
    assert response_of(out[0]).headers.get("Via") == "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKok1"


# --- 3. an unauthenticated INVITE ------------------------------------------------


def test_unauthenticated_invite_is_refused_and_its_retransmission_absorbed() -> None:
    endpoint = SipEndpoint(LOCAL)
    invite = request_bytes("INVITE", via="SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKinv1")
    first = exchange(endpoint, invite, 0.0)
    assert [response_of(d).status for d in first] == [100, 403]
    refusal = first[1]
    assert response_of(refusal).reason == "Calls are not accepted here"
    assert response_of(refusal).to.tag is not None
    assert endpoint.take_events() == []
    assert endpoint.calls == {}

    again = exchange(endpoint, invite, 0.2)
    assert again == [refusal]  # byte for byte the same final response
    assert endpoint.take_events() == []
    assert endpoint.calls == {}
    assert endpoint.inbound == {}
    assert endpoint.counters.requests_by_method == {"INVITE": 2}
    assert endpoint.counters.malformed == 0

    # Without an ACK the 403 is retransmitted at Timer G (T1 = 0.5 s) ...
    endpoint.handle_timer(0.5)
    assert endpoint.take_datagrams() == [refusal]
    # ... and the ACK for it stops that.
    to = response_of(refusal).headers.get("To")
    ack = (
        "ACK sip:dialer@10.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKinv1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:agent@10.0.0.9>;tag=f1\r\n"
        f"To: {to}\r\nCall-ID: c1@10.0.0.9\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    assert exchange(endpoint, ack, 0.6) == []
    endpoint.handle_timer(1.5)
    endpoint.handle_timer(3.5)
    assert endpoint.take_datagrams() == []
    assert endpoint.take_events() == []


def test_invite_without_credentials_at_a_registrar_is_challenged_not_offered() -> None:
    verifier = DigestVerifier(REALM, NonceIssuer(b"k" * 32, lifetime=300.0))
    endpoint = SipEndpoint(LOCAL, registrar=Registrar(verifier, {"1001": "secret"}))
    out = exchange(endpoint, request_bytes("INVITE"), 0.0)
    assert [response_of(d).status for d in out] == [100, 407]
    challenge = response_of(out[1]).headers.get("Proxy-Authenticate")
    assert challenge is not None
    assert f'realm="{REALM}"' in challenge
    assert endpoint.take_events() == []
    assert endpoint.inbound == {}
    assert endpoint.calls == {}


# --- 4. an outbound call against hand-written callee responses ----------------------

CALLER_SDP = b"v=0\r\no=dialer 1 1 IN IP4 10.0.0.1\r\ns=-\r\n"
CALLEE_SDP = b"v=0\r\no=callee 7 7 IN IP4 10.0.0.2\r\ns=-\r\n"
CALLEE_TAG = "callee-tag-1"


def leg(call_id: str = "call-1") -> LegConfig:
    return LegConfig(
        call_id=call_id,
        target="sip:13800138000@10.0.0.2",
        local_uri="sip:dialer@10.0.0.1",
        contact="sip:dialer@10.0.0.1:5060",
        via_host="10.0.0.1",
        via_port=5060,
        sdp=CALLER_SDP,
    )


def start_call(call_id: str = "call-1") -> tuple[SipEndpoint, Request]:
    endpoint = SipEndpoint(LOCAL, rng=random.Random(11))
    endpoint.place_call(leg(call_id), CALLEE, 0.0)
    out = endpoint.take_datagrams()
    assert [d[1] for d in out] == [CALLEE]
    invite = request_of(out[0])
    assert invite.method == "INVITE"
    assert invite.body == CALLER_SDP
    events = endpoint.take_events()
    assert [type(e) for e in events] == [CallStarted]
    return endpoint, invite


def ok_with_sdp(invite: Request) -> Response:
    base = invite.make_response(
        200,
        to_tag=CALLEE_TAG,
        headers=[("Contact", "<sip:callee@10.0.0.2:5060>"), ("Content-Type", "application/sdp")],
    )
    return Response(200, "OK", base.headers, CALLEE_SDP)


def from_callee(endpoint: SipEndpoint, message: Response | Request, now: float) -> list[bytes]:
    endpoint.receive_datagram(message.to_bytes(), CALLEE, now)
    out = endpoint.take_datagrams()
    assert all(a == CALLEE for _, a in out)
    return [d for d, _ in out]


def callee_bye(invite: Request, ok: Response, branch: str = "z9hG4bKbye1") -> Request:
    pairs = [
        ("Via", f"SIP/2.0/UDP 10.0.0.2:5060;branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", ok.headers.get("To") or ""),
        ("To", invite.headers.get("From") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", "1 BYE"),
    ]
    return Request("BYE", "sip:dialer@10.0.0.1:5060", Headers.of(pairs))


def ended(events: list[Event]) -> CallEnded:
    finals = [e for e in events if isinstance(e, CallEnded)]
    assert len(finals) == 1
    return finals[0]


def test_answered_call_is_acked_and_ended_by_the_callees_bye() -> None:
    endpoint, invite = start_call()

    assert from_callee(endpoint, invite.make_response(180, to_tag=CALLEE_TAG), 0.1) == []
    assert endpoint.take_events() == [
        CallProgress(call_id="call-1", at_ms=100, mono=0.1, status=180, early_media=False)
    ]

    ok = ok_with_sdp(invite)
    out = from_callee(endpoint, ok, 0.3)
    assert len(out) == 1
    ack = parse_message(out[0])
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == "sip:callee@10.0.0.2:5060"  # the 2xx's Contact is the remote target
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (invite.cseq.seq, "ACK")
    assert ack.to.tag == CALLEE_TAG
    assert ack.from_.tag == invite.from_.tag
    assert ack.top_via.branch != invite.top_via.branch
    assert ack.top_via.branch is not None
    assert ack.top_via.branch.startswith("z9hG4bK")
    assert endpoint.take_events() == [
        CallAnswered(call_id="call-1", at_ms=300, mono=0.3, status=200)
    ]
    call = endpoint.calls["call-1"]
    assert call.state is LegState.CONFIRMED
    assert call.remote_sdp == CALLEE_SDP

    # The callee did not hear our ACK and retransmits its 200: it is ACKed again.
    out = from_callee(endpoint, ok, 0.8)
    assert len(out) == 1
    again = parse_message(out[0])
    assert isinstance(again, Request)
    assert again.method == "ACK"
    assert (again.call_id, again.cseq.seq, again.to.tag) == (ack.call_id, 1, CALLEE_TAG)
    assert endpoint.take_events() == []

    bye = callee_bye(invite, ok)
    out = from_callee(endpoint, bye, 5.0)
    assert len(out) == 1
    answer = parse_message(out[0])
    assert isinstance(answer, Response)
    assert (answer.status, answer.cseq.method, answer.call_id) == (200, "BYE", "call-1")
    final = ended(endpoint.take_events())
    assert final.hangup_by is HangupBy.REMOTE
    assert final.outcome is CallOutcome.ANSWERED
    assert final.status == 200
    assert "call-1" not in endpoint.calls

    # The BYE retransmitted after the call is gone still gets its 200 (the
    # transaction absorbs it) and no second CallEnded.
    assert [parse_message(d) for d in from_callee(endpoint, bye, 5.2)] == [answer]
    assert endpoint.take_events() == []


def test_retransmitted_200_gets_the_identical_ack() -> None:
    endpoint, invite = start_call()
    ok = ok_with_sdp(invite)
    first = from_callee(endpoint, ok, 0.3)
    again = from_callee(endpoint, ok, 0.8)
    assert len(first) == 1
    assert again == first


def test_bye_with_the_wrong_tags_does_not_end_the_call() -> None:
    endpoint, invite = start_call()
    ok = ok_with_sdp(invite)
    from_callee(endpoint, ok, 0.3)
    endpoint.take_events()
    stranger = Request(
        "BYE",
        "sip:dialer@10.0.0.1:5060",
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKbyeX"),
                ("From", "<sip:13800138000@10.0.0.2>;tag=someone-else"),
                ("To", "<sip:dialer@10.0.0.1>;tag=not-ours"),
                ("Call-ID", "call-1"),
                ("CSeq", "1 BYE"),
            ]
        ),
    )
    out = from_callee(endpoint, stranger, 1.0)
    assert [response_of((d, CALLEE)).status for d in out] == [481]
    assert endpoint.take_events() == []
    assert endpoint.calls["call-1"].state is LegState.CONFIRMED


def test_hangup_while_calling_cancels_once_a_provisional_arrives() -> None:
    endpoint, invite = start_call()

    endpoint.hangup("call-1", 0.05)
    assert endpoint.take_datagrams() == []  # §9.1: no CANCEL before a provisional
    assert endpoint.take_events() == []

    out = from_callee(endpoint, invite.make_response(180, to_tag=CALLEE_TAG), 0.1)
    assert len(out) == 1
    cancel = parse_message(out[0])
    assert isinstance(cancel, Request)
    assert cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    assert cancel.top_via.branch == invite.top_via.branch
    assert (cancel.cseq.seq, cancel.cseq.method) == (invite.cseq.seq, "CANCEL")
    assert cancel.call_id == invite.call_id
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert cancel.headers.get("To") == invite.headers.get("To")
    assert [type(e) for e in endpoint.take_events()] == [CallProgress]

    assert from_callee(endpoint, cancel.make_response(200, to_tag=CALLEE_TAG), 0.15) == []
    assert endpoint.take_events() == []

    out = from_callee(endpoint, invite.make_response(487, to_tag=CALLEE_TAG), 0.2)
    # The INVITE client transaction ACKs the 487 itself, on the INVITE's branch.
    assert len(out) == 1
    ack = parse_message(out[0])
    assert isinstance(ack, Request)
    assert (ack.method, ack.top_via.branch, ack.to.tag) == (
        "ACK",
        invite.top_via.branch,
        CALLEE_TAG,
    )
    final = ended(endpoint.take_events())
    assert final.outcome is CallOutcome.CANCELLED
    assert final.status == 487
    assert endpoint.calls == {}


def test_a_callee_that_never_answers_the_cancel_does_not_keep_the_call() -> None:
    endpoint, invite = start_call()
    from_callee(endpoint, invite.make_response(180, to_tag=CALLEE_TAG), 0.1)
    endpoint.take_events()
    endpoint.hangup("call-1", 1.0)
    [cancel] = [request_of(d) for d in endpoint.take_datagrams()]
    assert cancel.method == "CANCEL"
    from_callee(endpoint, cancel.make_response(200, to_tag=CALLEE_TAG), 1.05)
    # No 487 ever comes. 64*T1 after the CANCEL (§9.1), the call is given up.
    give_up = 1.0 + 64 * 0.5
    assert endpoint.next_deadline() is not None
    endpoint.handle_timer(give_up - 0.01)
    assert "call-1" in endpoint.calls
    endpoint.handle_timer(give_up)
    final = ended(endpoint.take_events())
    assert final.outcome is CallOutcome.CANCELLED
    assert "64*T1" in final.reason
    assert endpoint.calls == {}


def test_held_cancel_goes_out_on_100_trying() -> None:
    endpoint, invite = start_call()
    endpoint.hangup("call-1", 0.05)
    out = from_callee(endpoint, invite.make_response(100), 0.1)
    assert [request_of((d, CALLEE)).method for d in out] == ["CANCEL"]


def test_call_to_an_endpoint_that_refuses_ends_declined() -> None:
    # Two real endpoints back to back: the callee refuses unannounced INVITEs.
    net = Network()
    caller = net.add(SipEndpoint(LOCAL, rng=random.Random(3)))
    callee = net.add(SipEndpoint(CALLEE, rng=random.Random(4)))
    caller.place_call(leg(), CALLEE, 0.0)
    net.pump(0.0)
    statuses = [response_of((m, a)).status for m, a in net.log if a == LOCAL]
    assert statuses == [100, 403]
    # The caller's INVITE transaction ACKs the 403; the callee absorbs it.
    assert [m.split(b" ", 1)[0] for m, a in net.log if a == CALLEE] == [b"INVITE", b"ACK"]
    final = ended(caller.take_events())
    assert (final.outcome, final.status) == (CallOutcome.DECLINED, 403)
    assert callee.take_events() == []
    assert caller.calls == {}
    net.advance(0.0, 40.0)
    assert caller.next_deadline() is None
    assert callee.next_deadline() is None
    assert [m.split(b" ", 1)[0] for m, a in net.log if a == CALLEE] == [b"INVITE", b"ACK"]


# --- 5. registration refresh through two endpoints ------------------------------------

REALM = "dialer.local"
PHONE: Address = ("127.0.0.1", 5062)
REGISTRAR: Address = ("127.0.0.1", 5060)


@dataclass
class Network:
    """Endpoints wired back to back in memory; every datagram is kept in ``log``."""

    endpoints: dict[Address, SipEndpoint] = field(default_factory=dict)
    log: list[tuple[bytes, Address]] = field(default_factory=list)

    def add(self, endpoint: SipEndpoint) -> SipEndpoint:
        self.endpoints[endpoint.local] = endpoint
        return endpoint

    def pump(self, now: float) -> None:
        """Deliver until nobody has anything left to send."""
        moved = True
        while moved:
            moved = False
            for source, endpoint in self.endpoints.items():
                for data, destination in endpoint.take_datagrams():
                    moved = True
                    self.log.append((data, destination))
                    self.endpoints[destination].receive_datagram(data, source, now)

    def advance(self, now: float, until: float) -> float:
        """Fire every timer due up to ``until``, in order, delivering as we go."""
        while True:
            deadlines = [d for e in self.endpoints.values() if (d := e.next_deadline()) is not None]
            due = min(deadlines, default=None)
            if due is None or due > until:
                return until
            now = max(now, due)
            for endpoint in self.endpoints.values():
                endpoint.handle_timer(now)
            self.pump(now)


def registers(net: Network) -> list[Request]:
    sent = [parse_message(m) for m, a in net.log if a == REGISTRAR]
    return [r for r in sent if isinstance(r, Request) and r.method == "REGISTER"]


def test_registration_is_refreshed_before_it_expires() -> None:
    verifier = DigestVerifier(REALM, NonceIssuer(b"k" * 32, lifetime=300.0))
    registrar = Registrar(verifier, {"1001": "secret"})
    net = Network()
    server = net.add(SipEndpoint(REGISTRAR, registrar=registrar, rng=random.Random(1)))
    phone = net.add(SipEndpoint(PHONE, rng=random.Random(2)))
    target = RegistrationTarget(
        registrar_uri=f"sip:{REALM}",
        aor=f"sip:1001@{REALM}",
        contact="sip:1001@127.0.0.1:5062",
        via_host="127.0.0.1",
        via_port=5062,
        username="1001",
        password="secret",
        expires=600,
    )
    client = RegistrationClient(target, random.Random(5))

    phone.add_registration(client, REGISTRAR, 0.0)
    net.pump(0.0)
    assert [r.headers.get("Authorization") is not None for r in registers(net)] == [False, True]
    assert client.state is RegistrationState.REGISTERED
    assert client.granted_expires == 600
    (binding,) = registrar.lookup("1001", 0.0)
    assert binding.expires_at == 600.0
    assert [type(e) for e in server.take_events()] == [PhoneRegistered]
    # 10 % of the granted 600 s is the refresh margin: the phone's deadline is 540 s.
    assert client.next_deadline() == 540.0

    net.advance(0.0, 539.0)
    assert len(registers(net)) == 2  # nothing early (server-side timers fired quietly)
    net.advance(539.0, 540.0)
    sent = registers(net)
    assert len(sent) == 4  # the refresh, challenged again (no cached nonce), then answered
    refresh = sent[2]
    assert refresh.call_id == sent[0].call_id  # §10.2.4: same Call-ID, higher CSeq
    assert refresh.cseq.seq > sent[1].cseq.seq
    assert refresh.headers.get("Expires") == "600"
    assert refresh.top_via.branch != sent[1].top_via.branch
    assert sent[3].headers.get("Authorization") is not None

    assert client.state is RegistrationState.REGISTERED
    (binding,) = registrar.lookup("1001", 540.0)
    assert binding.expires_at == 1140.0
    assert registrar.lookup("1001", 700.0) == (binding,)  # alive past the first expiry
    events = server.take_events()
    assert [(type(e), getattr(e, "expires", None)) for e in events] == [(PhoneRegistered, 600)]
    assert client.next_deadline() == 1080.0
    net.advance(540.0, 1000.0)  # the refresh's transactions finish; nothing else happens
    assert phone.next_deadline() == 1080.0
    assert len(registers(net)) == 4
    assert registrar.counters.expired == 0
