"""Inbound INVITEs through the sans-IO endpoint: authentication first, then the
SDP offer, then the call — no sockets, the clock stepped by hand."""

from __future__ import annotations

import random

from dialer.events import CallAnswered, CallEnded, CallOutcome, HangupBy, IncomingCall
from dialer.sip.auth import Challenge, DigestClient, DigestVerifier, NonceIssuer
from dialer.sip.endpoint import SipEndpoint
from dialer.sip.message import Headers, Request, Response, parse_message
from dialer.sip.registrar import Registrar

PHONE = ("127.0.0.1", 5062)
PCMU = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
G729 = PCMU.replace(b"RTP/AVP 0", b"RTP/AVP 18").replace(b"0 PCMU/8000", b"18 G729/8000")


def endpoint() -> SipEndpoint:
    verifier = DigestVerifier("dialer.local", NonceIssuer(b"s" * 32, lifetime=300))
    registrar = Registrar(verifier, {"1001": "pw"})
    return SipEndpoint(("127.0.0.1", 5060), registrar=registrar, rng=random.Random(1))


def invite(cseq: int, body: bytes, auth: str | None = None, branch: str = "z9hG4bK1") -> Request:
    pairs = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5062;branch={branch}{cseq}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:1001@dialer.local>;tag=ph1"),
        ("To", "<sip:13800138000@dialer.local>"),
        ("Call-ID", "inbound-1"),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", "<sip:1001@127.0.0.1:5062>"),
        ("Content-Type", "application/sdp"),
    ]
    if auth is not None:
        pairs.append(("Proxy-Authorization", auth))
    return Request("INVITE", "sip:13800138000@dialer.local", Headers.of(pairs), body)


def responses(ep: SipEndpoint) -> list[Response]:
    out = []
    for data, destination in ep.take_datagrams():
        assert destination == PHONE
        message = parse_message(data)
        if isinstance(message, Response):
            out.append(message)
    return out


def authorised_invite(ep: SipEndpoint, body: bytes, password: str = "pw") -> Request:
    ep.receive_datagram(invite(1, body).to_bytes(), PHONE, 0.0)
    challenge = [r for r in responses(ep) if r.status == 407]
    assert len(challenge) == 1
    first = invite(1, body)
    ack = Request(  # §17.1.1.3: the ACK for the 407 shares the INVITE's branch
        "ACK",
        first.uri,
        Headers.of(
            [
                ("Via", first.headers.get_all("Via")[0]),
                ("From", "<sip:1001@dialer.local>;tag=ph1"),
                ("To", str(challenge[0].to)),
                ("Call-ID", "inbound-1"),
                ("CSeq", "1 ACK"),
            ]
        ),
    )
    ep.receive_datagram(ack.to_bytes(), PHONE, 0.0)
    value = challenge[0].headers.get_all("Proxy-Authenticate")[0]
    credentials = DigestClient("1001", password).respond(
        Challenge.parse(value), "INVITE", "sip:13800138000@dialer.local", cnonce="c1"
    )
    return invite(2, body, str(credentials))


def test_unauthenticated_invite_is_challenged_and_places_no_call() -> None:
    ep = endpoint()
    ep.receive_datagram(invite(1, PCMU).to_bytes(), PHONE, 0.0)
    assert [r.status for r in responses(ep)] == [100, 407]
    assert ep.take_events() == []
    assert ep.inbound == {}


def test_wrong_password_is_forbidden() -> None:
    ep = endpoint()
    request = authorised_invite(ep, PCMU, password="guess")
    ep.receive_datagram(request.to_bytes(), PHONE, 0.1)
    assert [r.status for r in responses(ep)] == [100, 403]
    assert ep.take_events() == []


def test_offer_without_a_common_codec_gets_488_naming_it() -> None:
    ep = endpoint()
    request = authorised_invite(ep, G729)
    ep.receive_datagram(request.to_bytes(), PHONE, 0.1)
    final = responses(ep)[-1]
    assert final.status == 488
    assert "G729" in final.reason
    assert ep.inbound == {}


def test_answered_call_retransmits_2xx_until_acked_then_remote_bye_ends_it() -> None:
    ep = endpoint()
    request = authorised_invite(ep, PCMU)
    ep.receive_datagram(request.to_bytes(), PHONE, 0.1)
    assert [r.status for r in responses(ep)] == [100]
    (offered,) = ep.take_events()
    assert isinstance(offered, IncomingCall) and offered.call_id == "inbound-1"

    ep.answer("inbound-1", PCMU, 0.2)
    (ok,) = responses(ep)
    assert ok.status == 200 and ok.body == PCMU and ok.to.tag
    # T1 later, no ACK yet: the 2xx goes out again (§13.3.1.4).
    ep.handle_timer(0.7)
    assert [r.status for r in responses(ep)] == [200]

    ack = Request(
        "ACK",
        "sip:dialer@127.0.0.1:5060",
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKack"),
                ("From", "<sip:1001@dialer.local>;tag=ph1"),
                ("To", str(ok.to)),
                ("Call-ID", "inbound-1"),
                ("CSeq", "2 ACK"),
            ]
        ),
    )
    ep.receive_datagram(ack.to_bytes(), PHONE, 0.8)
    ep.handle_timer(5.0)
    assert responses(ep) == []  # no more retransmissions after the ACK

    bye = Request(
        "BYE",
        "sip:dialer@127.0.0.1:5060",
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKbye"),
                ("From", "<sip:1001@dialer.local>;tag=ph1"),
                ("To", str(ok.to)),
                ("Call-ID", "inbound-1"),
                ("CSeq", "3 BYE"),
            ]
        ),
    )
    ep.receive_datagram(bye.to_bytes(), PHONE, 9.0)
    assert [r.status for r in responses(ep)] == [200]
    answered, ended = ep.take_events()
    assert isinstance(answered, CallAnswered)
    assert isinstance(ended, CallEnded)
    assert (ended.outcome, ended.hangup_by) == (CallOutcome.ANSWERED, HangupBy.REMOTE)
    assert ep.inbound == {}


def test_caller_cancels_before_answer() -> None:
    ep = endpoint()
    request = authorised_invite(ep, PCMU)
    ep.receive_datagram(request.to_bytes(), PHONE, 0.1)
    responses(ep)
    ep.take_events()
    cancel = Request(
        "CANCEL",
        request.uri,
        Headers.of(
            [
                ("Via", request.headers.get_all("Via")[0]),
                ("From", "<sip:1001@dialer.local>;tag=ph1"),
                ("To", "<sip:13800138000@dialer.local>"),
                ("Call-ID", "inbound-1"),
                ("CSeq", "2 CANCEL"),
            ]
        ),
    )
    ep.receive_datagram(cancel.to_bytes(), PHONE, 1.0)
    statuses = sorted((r.status, r.cseq.method) for r in responses(ep))
    assert statuses == [(200, "CANCEL"), (487, "INVITE")]
    (ended,) = ep.take_events()
    assert isinstance(ended, CallEnded) and ended.outcome is CallOutcome.CANCELLED


def in_dialog(method: str, cseq: int, to: str, body: bytes = b"") -> Request:
    pairs = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK{method}{cseq}"),
        ("From", "<sip:1001@dialer.local>;tag=ph1"),
        ("To", to),
        ("Call-ID", "inbound-1"),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:1001@127.0.0.1:5062>"),
    ]
    if body:
        pairs.append(("Content-Type", "application/sdp"))
    return Request(method, "sip:dialer@127.0.0.1:5060", Headers.of(pairs), body)


def test_hold_and_unhold_re_invites_are_answered_per_rfc_3264() -> None:
    ep = endpoint()
    request = authorised_invite(ep, PCMU)
    ep.receive_datagram(request.to_bytes(), PHONE, 0.1)
    responses(ep)
    ours = PCMU.replace(b"m=audio 4000", b"m=audio 30000").replace(b"o=- 1 1", b"o=- 7 1")
    ep.answer("inbound-1", ours + b"a=sendrecv\r\n", 0.2)
    (ok,) = responses(ep)
    to = str(ok.to)
    ep.receive_datagram(in_dialog("ACK", 2, to).to_bytes(), PHONE, 0.3)

    hold = PCMU + b"a=sendonly\r\n"
    ep.receive_datagram(in_dialog("INVITE", 3, to, hold).to_bytes(), PHONE, 1.0)
    (answer,) = [r for r in responses(ep) if r.status == 200]
    assert b"a=recvonly" in answer.body
    assert b"m=audio 30000 RTP/AVP 0" in answer.body  # our port is kept
    assert b"o=- 7 2 IN IP4" in answer.body  # same session, next version

    unhold = PCMU + b"a=sendrecv\r\n"
    ep.receive_datagram(in_dialog("ACK", 3, to).to_bytes(), PHONE, 1.1)
    ep.receive_datagram(in_dialog("INVITE", 4, to, unhold).to_bytes(), PHONE, 2.0)
    (answer,) = [r for r in responses(ep) if r.status == 200]
    assert b"a=sendrecv" in answer.body
    assert b"o=- 7 3 IN IP4" in answer.body

    g729 = G729 + b"a=sendrecv\r\n"
    ep.receive_datagram(in_dialog("INVITE", 5, to, g729).to_bytes(), PHONE, 3.0)
    assert [r.status for r in responses(ep) if r.status >= 200] == [488]
    assert "inbound-1" in ep.inbound  # a refused re-offer leaves the call up
