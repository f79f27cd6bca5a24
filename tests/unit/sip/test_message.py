"""SIP message parsing and serialisation (RFC 3261 §7, §20): golden bytes and error paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.message import (
    REASON_PHRASES,
    CSeq,
    Headers,
    NameAddr,
    Request,
    Response,
    Via,
    parse_message,
)

SDP = (
    b"v=0\r\n"
    b"o=dialer 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 0 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+34911234567@trunk.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Campaign 7" <sip:dialer@192.0.2.10>;tag=9fxced76sl\r\n'
    b"To: <sip:+34911234567@trunk.example.net>\r\n"
    b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:dialer@192.0.2.10:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n"
    b"Supported: timer, 100rel\r\n"
    b"User-Agent: telesales-dialer/0.1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.10\r\n"
    b'From: "Campaign 7" <sip:dialer@192.0.2.10>;tag=9fxced76sl\r\n'
    b"To: <sip:+34911234567@trunk.example.net>;tag=314159\r\n"
    b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:+34911234567@198.51.100.7:5060>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OK_SDP = SDP.replace(b"192.0.2.10", b"198.51.100.7").replace(b"40000", b"31000")
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport=5060;received=192.0.2.10\r\n"
    b"Record-Route: <sip:198.51.100.1;lr>\r\n"
    b'From: "Campaign 7" <sip:dialer@192.0.2.10>;tag=9fxced76sl\r\n'
    b"To: <sip:+34911234567@trunk.example.net>;tag=314159\r\n"
    b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:+34911234567@198.51.100.7:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(OK_SDP)).encode() + b"\r\n"
    b"\r\n" + OK_SDP
)

REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::20]:5060;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Agent 201 <sip:201@pbx.example.com>;tag=456248\r\n"
    b"To: Agent 201 <sip:201@pbx.example.com>\r\n"
    b"Call-ID: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:201@[2001:db8::20]:5060>;expires=3600, <sip:201@192.0.2.20>;q=0.5\r\n"
    b"Expires: 7200\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OPTIONS = (
    b"OPTIONS sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:dialer@192.0.2.10>;tag=1928301774\r\n"
    b"To: <sip:pbx.example.com>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

GOLDEN = {"invite": INVITE, "ringing": RINGING, "ok": OK, "register": REGISTER, "options": OPTIONS}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_round_trip_is_exact(name: str) -> None:
    data = GOLDEN[name]
    message = parse_message(data)
    assert message.to_bytes() == data
    assert bytes(message) == data
    assert parse_message(message.to_bytes()) == message


def test_invite_fields() -> None:
    invite = parse_message(INVITE)
    assert isinstance(invite, Request)
    assert (invite.method, invite.uri) == ("INVITE", "sip:+34911234567@trunk.example.net")
    assert invite.body == SDP
    assert invite.call_id == "3848276298220188511@192.0.2.10"
    assert invite.cseq == CSeq(1, "INVITE")
    assert invite.top_via == Via(
        "UDP", "192.0.2.10", 5060, (("branch", "z9hG4bK74bf9"), ("rport", None))
    )
    assert invite.top_via.branch == "z9hG4bK74bf9"
    assert invite.from_ == NameAddr("Campaign 7", "sip:dialer@192.0.2.10", (("tag", "9fxced76sl"),))
    assert invite.from_.tag == "9fxced76sl"
    assert invite.to.tag is None
    assert invite.headers.get_all("Allow") == ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO")
    assert invite.headers.get("allow") == "INVITE"
    assert invite.headers.values("Allow") == ("INVITE, ACK, CANCEL, BYE, OPTIONS, INFO",)


def test_response_fields() -> None:
    ok = parse_message(OK)
    assert isinstance(ok, Response)
    assert (ok.status, ok.reason) == (200, "OK")
    assert ok.to.tag == "314159"
    assert ok.top_via.param("received") == "192.0.2.10"
    assert ok.top_via.param("rport") == "5060"
    assert ok.body == OK_SDP


def test_register_ipv6_and_contact_list() -> None:
    register = parse_message(REGISTER)
    via = register.top_via
    assert (via.transport, via.host, via.port) == ("UDP", "2001:db8::20", 5060)
    assert str(via) == "SIP/2.0/UDP [2001:db8::20]:5060;branch=z9hG4bKnashds7"
    contacts = [NameAddr.parse(c) for c in register.headers.get_all("Contact")]
    assert [c.uri for c in contacts] == ["sip:201@[2001:db8::20]:5060", "sip:201@192.0.2.20"]
    assert [c.param("expires") for c in contacts] == ["3600", None]
    assert register.from_.display == "Agent 201"


COMPACT_INVITE = (
    b"INVITE sip:+34911234567@trunk.example.net SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n"
    b"max-forwards: 70\r\n"
    b'f: "Campaign 7" <sip:dialer@192.0.2.10>;tag=9fxced76sl\r\n'
    b"T: <sip:+34911234567@trunk.example.net>\r\n"
    b"i: 3848276298220188511@192.0.2.10\r\n"
    b"cseq: 1 INVITE\r\n"
    b"m: <sip:dialer@192.0.2.10:5060;transport=udp>\r\n"
    b"ALLOW: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n"
    b"k: timer, 100rel\r\n"
    b"user-agent: telesales-dialer/0.1\r\n"
    b"c: application/sdp\r\n"
    b"l: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

FOLDED_INVITE = (
    b"INVITE sip:+34911234567@trunk.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n"
    b"Max-Forwards :   70\r\n"
    b'From: "Campaign 7"\r\n <sip:dialer@192.0.2.10>;tag=9fxced76sl\r\n'
    b"To:\r\n\t<sip:+34911234567@trunk.example.net>\r\n"
    b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
    b"CSeq: 1\r\n    INVITE\r\n"
    b"Contact: <sip:dialer@192.0.2.10:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL,\r\n BYE, OPTIONS, INFO\r\n"
    b"Supported: timer,\r\n  100rel\r\n"
    b"User-Agent: telesales-dialer/0.1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


@pytest.mark.parametrize("variant", [COMPACT_INVITE, FOLDED_INVITE])
def test_compact_and_folded_forms_parse_to_the_same_message(variant: bytes) -> None:
    assert parse_message(variant) == parse_message(INVITE)
    assert parse_message(variant).to_bytes() == INVITE


def test_leading_crlfs_are_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + OPTIONS) == parse_message(OPTIONS)


def test_udp_body_beyond_content_length_is_truncated() -> None:
    message = parse_message(INVITE + b"garbage after the body")
    assert message.body == SDP


def test_udp_message_without_content_length_takes_the_whole_datagram() -> None:
    data = OPTIONS.replace(b"Content-Length: 0\r\n", b"") + b"body"
    message = parse_message(data)
    assert message.body == b"body"
    assert (
        message.to_bytes()
        == OPTIONS.replace(b"Content-Length: 0\r\n", b"").replace(
            b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\n"
        )
        + b"body"
    )


def test_to_bytes_writes_the_real_content_length() -> None:
    message = parse_message(OPTIONS)
    assert isinstance(message, Request)
    changed = Request(message.method, message.uri, message.headers, b"hello")
    assert b"\r\nContent-Length: 5\r\n\r\nhello" in changed.to_bytes()
    assert changed.to_bytes().count(b"Content-Length") == 1


def test_building_a_request_from_headers() -> None:
    request = Request(
        "OPTIONS",
        "sip:pbx.example.com",
        Headers.of(
            [
                ("v", "SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK776asdhds"),
                ("max-forwards", "70"),
                ("f", "<sip:dialer@192.0.2.10>;tag=1928301774"),
                ("t", "<sip:pbx.example.com>"),
                ("i", "a84b4c76e66710@192.0.2.10"),
                ("CSEQ", "63104 OPTIONS"),
                ("accept", "application/sdp"),
            ]
        ),
    )
    assert request.to_bytes() == OPTIONS


# --- make_response ---------------------------------------------------------


def test_make_response_copies_dialog_headers_and_adds_to_tag() -> None:
    invite = parse_message(
        INVITE.replace(
            b"Max-Forwards", b"Record-Route: <sip:198.51.100.1;lr>\r\nMax-Forwards"
        ).replace(
            b"CSeq: 1 INVITE\r\n",
            b"CSeq: 1 INVITE\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKp1\r\n",
        )
    )
    assert isinstance(invite, Request)
    ringing = invite.make_response(180, to_tag="314159", headers=[("Contact", "<sip:a@b>")])
    assert ringing.to_bytes() == (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKp1\r\n"
        b'From: "Campaign 7" <sip:dialer@192.0.2.10>;tag=9fxced76sl\r\n'
        b"To: <sip:+34911234567@trunk.example.net>;tag=314159\r\n"
        b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Record-Route: <sip:198.51.100.1;lr>\r\n"
        b"Contact: <sip:a@b>\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    assert [v.branch for v in ringing.vias] == ["z9hG4bK74bf9", "z9hG4bKp1"]
    # Record-Route is for dialog-establishing responses only; final errors do not carry it.
    busy = invite.make_response(486, to_tag="x")
    assert (busy.status, busy.reason) == (486, "Busy Here")
    assert "Record-Route" not in busy.headers


def test_make_response_keeps_an_existing_to_tag() -> None:
    ok = parse_message(OK)
    bye = Request(
        "BYE",
        "sip:+34911234567@198.51.100.7:5060",
        ok.headers.without("Contact").without("Content-Type").replace("CSeq", "2 BYE"),
    )
    response = bye.make_response(200, to_tag="other")
    assert response.to.tag == "314159"
    assert response.reason == "OK"
    assert response.cseq == CSeq(2, "BYE")


def test_make_response_reason_and_trying_timestamp() -> None:
    options = parse_message(OPTIONS.replace(b"Accept", b"Timestamp: 54\r\nAccept"))
    assert isinstance(options, Request)
    trying = options.make_response(100)
    assert (trying.reason, trying.headers.get("Timestamp")) == ("Trying", "54")
    assert trying.to.tag is None
    assert options.make_response(699).reason == ""
    assert options.make_response(503, "Overloaded").reason == "Overloaded"
    assert "Timestamp" not in options.make_response(200).headers
    assert REASON_PHRASES[513] == "Message Too Large"


def test_ack_is_never_answered() -> None:
    ack = Request("ACK", "sip:a@b", parse_message(OPTIONS).headers.replace("CSeq", "1 ACK"))
    with pytest.raises(LocalProtocolError, match="ACK is never answered"):
        ack.make_response(200)


# --- Headers, Via, CSeq, NameAddr ----------------------------------------------


def test_headers_api() -> None:
    headers = Headers.of(
        [("v", "SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;branch=2"), ("Via", "SIP/2.0/UDP c")]
    )
    assert list(headers) == [
        ("Via", "SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b;branch=2"),
        ("Via", "SIP/2.0/UDP c"),
    ]
    assert headers.get_all("VIA") == (
        "SIP/2.0/UDP a;branch=1",
        "SIP/2.0/UDP b;branch=2",
        "SIP/2.0/UDP c",
    )
    assert headers.get("v") == "SIP/2.0/UDP a;branch=1"
    assert headers.get("To") is None and headers.get_all("To") == ()
    added = headers.with_header("x-campaign", "7")
    assert list(added)[-1] == ("x-campaign", "7") and added.get("X-Campaign") == "7"
    assert list(added.replace("v", "SIP/2.0/TCP d")) == [
        ("x-campaign", "7"),
        ("Via", "SIP/2.0/TCP d"),
    ]
    assert list(added.without("VIA")) == [("x-campaign", "7")]
    assert len(added) == 3 and "via" in added and "To" not in added


def test_list_splitting_respects_quotes_and_angle_brackets() -> None:
    headers = Headers.of(
        [
            ("Contact", '"Smith, John" <sip:j@a;x=1,2>;q=0.5, <sip:k@b>'),
            ("Route", "<sip:p1;lr>,<sip:p2;lr>"),
        ]
    )
    assert headers.get_all("Contact") == ('"Smith, John" <sip:j@a;x=1,2>;q=0.5', "<sip:k@b>")
    assert headers.get_all("Route") == ("<sip:p1;lr>", "<sip:p2;lr>")


def test_non_list_headers_are_not_split() -> None:
    value = 'Digest username="201", realm="pbx", nonce="abc", uri="sip:pbx", response="x"'
    headers = Headers.of([("WWW-Authenticate", value), ("Subject", "a, b")])
    assert headers.get_all("www-authenticate") == (value,)
    assert headers.get("Subject") == "a, b"


def test_headers_of_rejects_local_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="header name is not a token"):
        Headers.of([("Bad Name", "x")])
    with pytest.raises(LocalProtocolError, match="value contains CR or LF"):
        Headers.of([("Subject", "a\r\nVia: injected")])


def test_via_api() -> None:
    via = Via.parse("SIP / 2.0 / udp  [2001:db8::1]:5060 ; branch = z9hG4bK1 ; rport")
    assert via == Via("UDP", "2001:db8::1", 5060, (("branch", "z9hG4bK1"), ("rport", None)))
    stamped = via.with_param("received", "2001:db8::9").with_param("rport", "5062")
    assert (
        str(stamped)
        == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;received=2001:db8::9;rport=5062"
    )
    assert Via.parse(str(stamped)) == stamped
    assert Via.parse("SIP/2.0/TLS host").branch is None


def test_name_addr_api() -> None:
    addr = NameAddr.parse('"A \\"B\\"" <sip:a@b;lr>;tag=1;x')
    assert addr == NameAddr('A "B"', "sip:a@b;lr", (("tag", "1"), ("x", None)))
    assert str(addr.with_tag("2")) == '"A \\"B\\"" <sip:a@b;lr>;x;tag=2'
    assert str(NameAddr.parse("sip:a@b;tag=9")) == "<sip:a@b>;tag=9"
    assert NameAddr.parse("sip:a@b;tag=9").with_tag("3").tag == "3"
    assert NameAddr.parse("<tel:+1234>").uri == "tel:+1234"
    assert str(NameAddr(None, "sip:x@y").with_param("expires", "60")) == "<sip:x@y>;expires=60"


def test_cseq_api() -> None:
    assert CSeq.parse("  0042   REGISTER ") == CSeq(42, "REGISTER")
    assert str(CSeq(42, "REGISTER")) == "42 REGISTER"


# --- error paths ---------------------------------------------------------------


def _expect(data: bytes, status: int, reason: str, **limits: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data, **limits)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_too_large_is_513() -> None:
    _expect(
        OPTIONS,
        513,
        f"message too large: {len(OPTIONS)} bytes exceeds the 100-byte limit",
        max_size=100,
    )
    big = OPTIONS.replace(b"Accept:", b"X-Pad: " + b"a" * 70000 + b"\r\nAccept:")
    _expect(big, 513, f"message too large: {len(big)} bytes exceeds the 65536-byte limit")


def test_too_many_headers_is_400() -> None:
    many = OPTIONS.replace(b"Accept:", b"X-A: 1\r\n" * 95 + b"Accept:")
    _expect(many, 400, "too many header fields (limit 100)")
    assert parse_message(many, max_headers=200).headers.get("X-A") == "1"


@pytest.mark.parametrize(
    ("old", "new", "status", "reason"),
    [
        (b"SIP/2.0\r\nVia", b"SIP/2.1\r\nVia", 505, "unsupported SIP version: SIP/2.1"),
        (
            b"SIP/2.0\r\nVia",
            b"HTTP/1.1\r\nVia",
            400,
            "malformed SIP-Version in Request-Line: 'HTTP/1.1'",
        ),
        (
            b"OPTIONS sip:pbx.example.com SIP/2.0",
            b"OPTIONS sip:pbx.example.com",
            400,
            "malformed Request-Line: 'OPTIONS sip:pbx.example.com'",
        ),
        (b"OPTIONS sip:", b"OPT(ONS sip:", 400, "malformed method in Request-Line: 'OPT(ONS'"),
        (
            b"OPTIONS sip:pbx.example.com",
            b"OPTIONS pbx.example.com",
            400,
            "malformed Request-URI: 'pbx.example.com'",
        ),
        (
            b"OPTIONS sip:pbx.example.com",
            b"OPTIONS sip:pbx.example.com:99999",
            400,
            "malformed port in URI: '99999'",
        ),
        (
            b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n",
            b"",
            400,
            "missing mandatory header: Via",
        ),
        (
            b"From: <sip:dialer@192.0.2.10>;tag=1928301774\r\n",
            b"",
            400,
            "missing mandatory header: From",
        ),
        (b"To: <sip:pbx.example.com>\r\n", b"", 400, "missing mandatory header: To"),
        (b"Call-ID: a84b4c76e66710@192.0.2.10\r\n", b"", 400, "missing mandatory header: Call-ID"),
        (b"CSeq: 63104 OPTIONS\r\n", b"", 400, "missing mandatory header: CSeq"),
        (
            b"CSeq: 63104 OPTIONS",
            b"CSeq: 63104 INVITE",
            400,
            "CSeq method INVITE does not match request method OPTIONS",
        ),
        (b"CSeq: 63104 OPTIONS", b"CSeq: OPTIONS", 400, "malformed CSeq: 'OPTIONS'"),
        (
            b"CSeq: 63104 OPTIONS",
            b"CSeq: 4294967296 OPTIONS",
            400,
            "CSeq number out of range: 4294967296",
        ),
        (
            b"Call-ID: a84b4c76e66710@192.0.2.10",
            b"Call-ID: a84b b",
            400,
            "malformed Call-ID: 'a84b b'",
        ),
        (
            b"To: <sip:pbx.example.com>\r\n",
            b"To: <sip:pbx.example.com>\r\nTo: <sip:x@y>\r\n",
            400,
            "multiple To headers",
        ),
        (b"Max-Forwards: 70", b"Max-Forwards: 256", 400, "Max-Forwards out of range: '256'"),
        (
            b"Content-Length: 0",
            b"Content-Length: 1",
            400,
            "Content-Length 1 exceeds the 0 body bytes received",
        ),
        (
            b"Content-Length: 0",
            b"Content-Length: 0x10",
            400,
            "Content-Length is not a non-negative integer: '0x10'",
        ),
        (
            b"Via: SIP/2.0/TCP 192.0.2.10:5060",
            b"Via: SIP/3.0/TCP 192.0.2.10:5060",
            400,
            "Via protocol must be SIP/2.0, got SIP/3.0",
        ),
        (
            b"Via: SIP/2.0/TCP 192.0.2.10:5060;",
            b"Via: SIP/2.0/TCP;",
            400,
            "malformed Via (no sent-by): 'SIP/2.0/TCP;branch=z9hG4bK776asdhds'",
        ),
        (
            b"Via: SIP/2.0/TCP 192.0.2.10:5060",
            b"Via: SIP/2.0/TCP [2001:db8::1:5060",
            400,
            "unterminated IPv6 reference in Via",
        ),
        (
            b"From: <sip:dialer@192.0.2.10>",
            b"From: <sip:dialer@192.0.2.10",
            400,
            "missing '>' in '<sip:dialer@192.0.2.10;tag=1928301774'",
        ),
        (
            b"From: <sip:dialer@192.0.2.10>",
            b"From: <dialer@192.0.2.10>",
            400,
            "malformed URI in '<dialer@192.0.2.10>;tag=1928301774'",
        ),
        (
            b"From: <sip:dialer@192.0.2.10>",
            b"From: <sip:a@b> junk",
            400,
            "unexpected text after URI in '<sip:a@b> junk;tag=1928301774'",
        ),
        (
            b"Accept: application/sdp",
            b"Accept application/sdp",
            400,
            "malformed header line: 'Accept application/sdp'",
        ),
        (
            b"Accept: application/sdp",
            b"Acc ept: application/sdp",
            400,
            "malformed header line: 'Acc ept: application/sdp'",
        ),
        (b"Accept: application/sdp", b"Accept: \xff\xfe", 400, "header section is not valid UTF-8"),
        (b"Accept: application/sdp", b"Accept: a\nb", 400, "bare CR or LF in the header section"),
        (b"OPTIONS", b" OPTIONS", 400, "missing or indented start line"),
    ],
)
def test_error_paths(old: bytes, new: bytes, status: int, reason: str) -> None:
    assert old in OPTIONS
    _expect(OPTIONS.replace(old, new, 1), status, reason)


def test_blank_line_ends_the_headers() -> None:
    # What follows the first blank line is body, even if it looks like headers.
    data = OPTIONS.replace(b"Accept: application/sdp\r\nContent-Length: 0\r\n", b"\r\nAccept: x")
    message = parse_message(data)
    assert message.headers.get("Accept") is None
    assert message.body == b"Accept: x\r\n"


def test_missing_header_terminator() -> None:
    _expect(OPTIONS[:-4], 400, "no empty line after the header section")


def test_continuation_before_any_header() -> None:
    _expect(b"OPTIONS sip:a SIP/2.0\r\n folded\r\n\r\n", 400, "continuation line before any header")


@pytest.mark.parametrize(
    ("start", "status", "reason"),
    [
        (b"SIP/2.0 2000 OK", 400, "malformed Status-Line: 'SIP/2.0 2000 OK'"),
        (b"SIP/2.0 099 Early", 400, "status code out of range: 099"),
        (b"SIP/2.0 700 Beyond", 400, "status code out of range: 700"),
        (b"SIP/2.0", 400, "malformed Status-Line: 'SIP/2.0'"),
        (b"SIP/3.0 200 OK", 505, "unsupported SIP version: SIP/3.0"),
    ],
)
def test_status_line_errors(start: bytes, status: int, reason: str) -> None:
    _expect(OK.replace(b"SIP/2.0 200 OK", start, 1), status, reason)


def test_response_missing_header() -> None:
    _expect(RINGING.replace(b"CSeq: 1 INVITE\r\n", b""), 400, "missing mandatory header: CSeq")


def test_accessors_raise_remote_errors_for_missing_headers() -> None:
    request = Request("OPTIONS", "sip:a", Headers())
    for accessor in ("call_id", "cseq", "vias", "top_via", "from_", "to"):
        with pytest.raises(RemoteProtocolError, match="missing mandatory header"):
            getattr(request, accessor)


def test_local_construction_errors() -> None:
    with pytest.raises(LocalProtocolError, match="method is not a token"):
        Request("IN VITE", "sip:a")
    with pytest.raises(LocalProtocolError, match="Request-URI is empty"):
        Request("INVITE", "sip:a b")
    with pytest.raises(LocalProtocolError, match="status code out of range: 99"):
        Response(99, "x")
    with pytest.raises(LocalProtocolError, match="reason phrase contains CR or LF"):
        Response(200, "OK\r\nVia: x")


# --- property ------------------------------------------------------------------

_token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
_value = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30
).map(lambda s: s.strip(" \t\x1c\x1d\x1e\x1f\x85\xa0"))
_extension_name = _token.filter(
    lambda n: (
        n.lower()
        not in {
            "via",
            "v",
            "from",
            "f",
            "to",
            "t",
            "call-id",
            "i",
            "cseq",
            "content-length",
            "l",
            "max-forwards",
            "contact",
            "m",
            "route",
            "record-route",
            "date",
            "content-type",
            "c",
        }
    )
)


@given(
    method=_token,
    extra=st.lists(st.tuples(_extension_name, _value), max_size=15),
    body=st.binary(max_size=200),
    seq=st.integers(0, 2**32 - 1),
    branch=_token,
    tag=_token,
)
def test_any_generated_request_round_trips(
    *, method: str, extra: list[tuple[str, str]], body: bytes, seq: int, branch: str, tag: str
) -> None:
    headers = Headers.of(
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}"),
            ("From", f"<sip:a@example.com>;tag={tag}"),
            ("To", "<sip:b@example.com>"),
            ("Call-ID", f"{branch}@192.0.2.1"),
            ("CSeq", f"{seq} {method}"),
            *extra,
        ]
    )
    request = Request(method, "sip:b@example.com", headers, body)
    parsed = parse_message(request.to_bytes())
    assert parsed == Request(
        method, "sip:b@example.com", headers.with_header("Content-Length", str(len(body))), body
    )
    assert parsed.to_bytes() == request.to_bytes()
    assert parsed.cseq == CSeq(seq, method)


@given(
    status=st.integers(100, 699),
    reason=_value,
    extra=st.lists(st.tuples(_extension_name, _value), max_size=10),
    body=st.binary(max_size=100),
)
def test_any_generated_response_round_trips(
    status: int, reason: str, extra: list[tuple[str, str]], body: bytes
) -> None:
    headers = Headers.of(
        [
            ("Via", "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx"),
            ("From", "<sip:a@example.com>;tag=1"),
            ("To", "<sip:b@example.com>;tag=2"),
            ("Call-ID", "c@d"),
            ("CSeq", "1 INVITE"),
            ("Content-Length", "999"),
            *extra,
        ]
    )
    response = Response(status, reason, headers, body)
    parsed = parse_message(response.to_bytes())
    # The stale Content-Length is rewritten in place, keeping header order.
    fixed = Headers(tuple((n, str(len(body)) if n == "Content-Length" else v) for n, v in headers))
    assert parsed == Response(status, reason, fixed, body)
    assert parsed.to_bytes() == response.to_bytes()
