from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.sdp import (
    Attribute,
    Codec,
    Connection,
    Direction,
    NegotiatedMedia,
    SessionDescription,
    accept_answer,
    answer,
    bump_version,
    make_offer,
    revise,
)


def sdp(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


YEALINK = sdp(
    "v=0",
    "o=- 20064 20064 IN IP4 192.168.10.21",
    "s=SDP data",
    "c=IN IP4 192.168.10.21",
    "t=0 0",
    "m=audio 11796 RTP/AVP 0 8 18 9 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:9 G722/8000",
    "a=fmtp:101 0-15",
    "a=rtpmap:101 telephone-event/8000",
    "a=ptime:20",
    "a=sendrecv",
)

POLYCOM = sdp(
    "v=0",
    "o=- 1706521800 1706521800 IN IP4 10.20.0.31",
    "s=Polycom IP Phone",
    "c=IN IP4 10.20.0.31",
    "t=0 0",
    "a=sendrecv",
    "m=audio 2250 RTP/AVP 9 115 0 8 18 127",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:115 G7221/32000",
    "a=fmtp:115 bitrate=48000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:127 telephone-event/8000",
)

BARESIP_IPV6 = sdp(
    "v=0",
    "o=- 1717232465 3418112930 IN IP6 2001:db8::20",
    "s=-",
    "c=IN IP6 2001:db8::20",
    "t=0 0",
    "m=audio 10002 RTP/AVP 96 9 0 8 101",
    "b=AS:80",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 stereo=1;sprop-stereo=1",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=rtcp:10003",
    "a=sendrecv",
    "a=label:1",
    "a=ssrc:1234567890 cname:d6a1f5e0-1f2b-4c3d-9e8f-0a1b2c3d4e5f",
    "a=ptime:20",
)

ASTERISK_TRUNK = sdp(
    "v=0",
    "o=root 1821 1821 IN IP4 203.0.113.5",
    "s=Asterisk PBX 18.20.0",
    "i=trunk call",
    "c=IN IP4 203.0.113.5",
    "b=CT:384",
    "t=0 0",
    "m=audio 17218 RTP/AVP 8 0 101",
    "i=voice",
    "b=AS:64",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=maxptime:150",
    "a=ptime:30",
    "a=sendrecv",
    "m=video 17220 RTP/AVP 99",
    "a=rtpmap:99 H264/90000",
    "a=fmtp:99 profile-level-id=42801F",
    "a=sendrecv",
)

# An old phone putting us on hold the RFC 2543 way, with repeat times.
OLD_HOLD = sdp(
    "v=0",
    "o=user1 53655765 2353687638 IN IP4 0.0.0.0",
    "s=-",
    "c=IN IP4 0.0.0.0",
    "t=3034423619 3042462419",
    "r=604800 3600 0 90000",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0",
)


@pytest.mark.parametrize(
    "golden",
    [YEALINK, POLYCOM, BARESIP_IPV6, ASTERISK_TRUNK, OLD_HOLD],
    ids=["yealink", "polycom", "baresip-ipv6", "asterisk-trunk", "old-hold"],
)
def test_golden_descriptions_round_trip_exactly(golden: bytes) -> None:
    assert SessionDescription.parse(golden).to_bytes() == golden


def test_bare_lf_is_accepted_and_written_back_as_crlf() -> None:
    assert SessionDescription.parse(YEALINK.replace(b"\r\n", b"\n")).to_bytes() == YEALINK


def test_yealink_readers() -> None:
    offer = SessionDescription.parse(YEALINK)
    assert offer.origin.session_id == offer.origin.session_version == 20064
    audio = offer.audio()
    assert audio is not None
    assert audio.codecs() == (
        Codec(0, "PCMU", 8000),
        Codec(8, "PCMA", 8000),
        Codec(18, "G729", 8000, fmtp="annexb=no"),
        Codec(9, "G722", 8000),
        Codec(101, "telephone-event", 8000, fmtp="0-15"),
    )
    assert audio.telephone_event() == 101
    assert audio.ptime() == 20
    assert offer.direction(audio) is Direction.SENDRECV
    assert offer.rtp_address(audio) == ("192.168.10.21", 11796)
    assert offer.rtcp_address(audio) == ("192.168.10.21", 11797)


def test_static_payload_types_need_no_rtpmap() -> None:
    audio = SessionDescription.parse(OLD_HOLD).media[0]
    assert audio.codecs() == (Codec(0, "PCMU", 8000),)
    assert audio.telephone_event() is None


def test_baresip_ipv6_readers() -> None:
    offer = SessionDescription.parse(BARESIP_IPV6)
    audio = offer.media[0]
    assert offer.connection == Connection("IP6", "2001:db8::20")
    assert offer.rtp_address(audio) == ("2001:db8::20", 10002)
    assert offer.rtcp_address(audio) == ("2001:db8::20", 10003)
    assert audio.codecs()[0] == Codec(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1")
    assert audio.extra_lines == (("b", "AS:80"),)


def test_rtcp_attribute_with_address() -> None:
    text = YEALINK.replace(b"a=ptime:20\r\n", b"a=rtcp:53020 IN IP4 126.16.64.4\r\na=ptime:20\r\n")
    offer = SessionDescription.parse(text)
    assert offer.rtcp_address(offer.media[0]) == ("126.16.64.4", 53020)
    assert offer.to_bytes() == text


# --- answering -------------------------------------------------------------------


def test_answer_to_asterisk_trunk_exact_bytes() -> None:
    offer = SessionDescription.parse(ASTERISK_TRUNK)
    description, media = answer(offer, "192.0.2.10", 40000, session_id=7, version=1)
    assert description.to_bytes() == sdp(
        "v=0",
        "o=- 7 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 40000 RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "m=video 0 RTP/AVP 99",
    )
    assert media == NegotiatedMedia(
        remote=("203.0.113.5", 17218),
        remote_rtcp=("203.0.113.5", 17219),
        payload_type=8,
        codec="PCMA",
        telephone_event=101,
        direction=Direction.SENDRECV,
        ptime=30,
    )


def test_answer_to_polycom_keeps_its_dynamic_payload_type() -> None:
    offer = SessionDescription.parse(POLYCOM)
    description, media = answer(offer, "192.0.2.10", 40000, session_id=7, version=1)
    # G.722 and G.722.1 come first but are not ours; PCMU is the first we share.
    assert (media.payload_type, media.codec, media.telephone_event) == (0, "PCMU", 127)
    audio = description.media[0]
    assert audio.formats == ("0", "127")
    # No fmtp in the offer means events 0-15 (RFC 4733 §2.4.1).
    assert Attribute("fmtp", "127 0-15") in audio.attributes
    assert media.ptime == 20


def test_answer_to_baresip_over_ipv6_from_ipv4() -> None:
    offer = SessionDescription.parse(BARESIP_IPV6)
    description, media = answer(
        offer, "2001:db8::1", 40000, supported=("PCMA", "PCMU"), session_id=1, version=2
    )
    # The offerer's preference order wins, not ours.
    assert media.codec == "PCMU"
    assert media.remote == ("2001:db8::20", 10002)
    assert media.remote_rtcp == ("2001:db8::20", 10003)
    assert description.connection == Connection("IP6", "2001:db8::1")
    assert b"o=- 1 2 IN IP6 2001:db8::1\r\n" in description.to_bytes()


def test_answer_keeps_the_offer_timing() -> None:
    offer = SessionDescription.parse(OLD_HOLD)
    description, _ = answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert description.timing == (3034423619, 3042462419)


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        ("sendrecv", Direction.SENDRECV),
        ("sendonly", Direction.RECVONLY),  # we are put on hold
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_answer_direction_follows_rfc3264_section_6_1(offered: str, expected: Direction) -> None:
    offer = SessionDescription.parse(YEALINK.replace(b"a=sendrecv", b"a=" + offered.encode()))
    description, media = answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert media.direction is expected
    assert description.media[0].attributes[-1] == Attribute(expected.value)
    assert description.direction(description.media[0]) is expected


def test_old_style_hold_is_answered_recvonly() -> None:
    offer = SessionDescription.parse(OLD_HOLD)
    assert offer.direction(offer.media[0]) is Direction.SENDONLY
    description, media = answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert media.direction is Direction.RECVONLY
    assert media.remote == ("0.0.0.0", 49170)
    assert description.media[0].direction() is Direction.RECVONLY


def test_hold_and_unhold_reinvite_bumps_our_version() -> None:
    first, _ = answer(
        SessionDescription.parse(YEALINK), "192.0.2.10", 40000, session_id=5, version=1
    )
    held = SessionDescription.parse(YEALINK.replace(b"a=sendrecv", b"a=sendonly"))
    on_hold, media = answer(held, "192.0.2.10", 40000, session_id=99, version=99)
    on_hold = revise(first, on_hold)
    assert media.direction is Direction.RECVONLY
    assert (on_hold.origin.session_id, on_hold.origin.session_version) == (5, 2)
    # A session refresh with nothing changed keeps the version (RFC 3264 §8).
    refreshed, _ = answer(held, "192.0.2.10", 40000, session_id=5, version=1)
    assert revise(on_hold, refreshed) is on_hold
    unheld, media = answer(
        SessionDescription.parse(YEALINK), "192.0.2.10", 40000, session_id=5, version=1
    )
    unheld = revise(on_hold, unheld)
    assert media.direction is Direction.SENDRECV
    assert unheld.origin.session_version == 3
    assert b"a=sendrecv" in unheld.to_bytes()


def test_we_can_put_the_remote_on_hold_in_our_answer() -> None:
    offer = SessionDescription.parse(YEALINK)
    _, media = answer(offer, "192.0.2.10", 40000, session_id=1, version=1, direction="sendonly")
    assert media.direction is Direction.SENDONLY


def test_bump_version() -> None:
    offer = make_offer("192.0.2.10", 40000, session_id=3, version=41)
    bumped = bump_version(offer)
    assert bumped.origin.session_version == 42
    assert bumped.origin.session_id == 3
    assert bumped.media == offer.media


def test_telephone_event_lists_are_intersected() -> None:
    def events(fmtp: bytes) -> tuple[int | None, bytes]:
        offer = SessionDescription.parse(YEALINK.replace(b"a=fmtp:101 0-15", fmtp))
        description, media = answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
        return media.telephone_event, description.to_bytes()

    te, body = events(b"a=fmtp:101 0-15,66,70-72")
    assert te == 101
    assert b"a=fmtp:101 0-15\r\n" in body
    te, body = events(b"a=fmtp:101 0-11,16")
    assert b"a=fmtp:101 0-11,16\r\n" in body
    # Only events we cannot handle, or a list we cannot read: no telephone-event.
    assert events(b"a=fmtp:101 66-70")[0] is None
    assert events(b"a=fmtp:101 zero-nine")[0] is None
    offer = SessionDescription.parse(YEALINK)
    assert (
        answer(offer, "192.0.2.10", 1, session_id=1, version=1, telephone_event=False)[
            1
        ].telephone_event
        is None
    )


def test_answer_echoes_the_offered_profile() -> None:
    offer = SessionDescription.parse(YEALINK.replace(b"RTP/AVP", b"RTP/AVPF"))
    description, _ = answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert b"m=audio 40000 RTP/AVPF 0 101\r\n" in description.to_bytes()


def test_second_audio_stream_is_rejected() -> None:
    offer = SessionDescription.parse(
        YEALINK + b"m=audio 11798 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    description, media = answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert [m.port for m in description.media] == [40000, 0]
    assert media.remote == ("192.168.10.21", 11796)


def test_nothing_in_common_is_488_naming_the_offer() -> None:
    offer = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.9",
            "s=-",
            "c=IN IP4 10.0.0.9",
            "t=0 0",
            "m=audio 5004 RTP/AVP 18 9 98 101",
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:101 telephone-event/8000",
            "m=video 0 RTP/AVP 99",
            "m=audio 5006 RTP/SAVP 0",
        )
    )
    with pytest.raises(RemoteProtocolError) as info:
        answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert info.value.status == 488
    assert info.value.reason == (
        "no acceptable audio in offer (audio RTP/AVP G729/8000 G722/8000 98 "
        "telephone-event/8000; video rejected; audio RTP/SAVP PCMU/8000); "
        "we support PCMU, PCMA"
    )


def test_g711_at_another_clock_rate_does_not_match() -> None:
    offer = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.9",
            "s=-",
            "c=IN IP4 10.0.0.9",
            "t=0 0",
            "m=audio 5004 RTP/AVP 96",
            "a=rtpmap:96 PCMU/16000",
        )
    )
    with pytest.raises(RemoteProtocolError) as info:
        answer(offer, "192.0.2.10", 40000, session_id=1, version=1)
    assert info.value.reason == (
        "no acceptable audio in offer (audio RTP/AVP PCMU/16000); we support PCMU, PCMA"
    )


def test_offer_without_media_is_488() -> None:
    offer = SessionDescription.parse(sdp("v=0", "o=- 1 1 IN IP4 10.0.0.9", "s=-", "t=0 0"))
    with pytest.raises(RemoteProtocolError) as info:
        answer(offer, "192.0.2.10", 40000, supported=("pcma",), session_id=1, version=1)
    assert (info.value.status, info.value.reason) == (
        488,
        "no acceptable audio in offer (no media); we support PCMA",
    )


# --- our offers ----------------------------------------------------------------


def test_make_offer_exact_bytes() -> None:
    offer = make_offer("192.0.2.10", 40000, session_id=1234, version=1)
    assert offer.to_bytes() == sdp(
        "v=0",
        "o=- 1234 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_make_offer_ipv6_hold_without_events() -> None:
    offer = make_offer(
        "::1", 40000, ("PCMA",), telephone_event=None, direction="sendonly", session_id=1, version=2
    )
    assert offer.to_bytes() == sdp(
        "v=0",
        "o=- 1 2 IN IP6 ::1",
        "s=-",
        "c=IN IP6 ::1",
        "t=0 0",
        "m=audio 40000 RTP/AVP 8",
        "a=rtpmap:8 PCMA/8000",
        "a=ptime:20",
        "a=sendonly",
    )


def test_make_offer_refuses_our_own_mistakes() -> None:
    with pytest.raises(LocalProtocolError):
        make_offer("192.0.2.10", 1, ("G729",), session_id=1, version=1)
    with pytest.raises(LocalProtocolError):
        make_offer("192.0.2.10", 1, (), session_id=1, version=1)
    with pytest.raises(LocalProtocolError):
        make_offer("192.0.2.10", 1, telephone_event=8, session_id=1, version=1)
    with pytest.raises(LocalProtocolError):
        make_offer("pbx.example.com", 1, session_id=1, version=1)


def test_accept_a_phone_answer() -> None:
    offer = make_offer("192.0.2.10", 40000, session_id=1, version=1)
    phone_answer = sdp(
        "v=0",
        "o=- 20065 20065 IN IP4 192.168.10.21",
        "s=SDP data",
        "c=IN IP4 192.168.10.21",
        "t=0 0",
        "m=audio 11800 RTP/AVP 8 101",
        "a=rtpmap:8 PCMA/8000",
        "a=fmtp:101 0-15",
        "a=rtpmap:101 telephone-event/8000",
        "a=ptime:20",
        "a=recvonly",
    )
    media = accept_answer(offer, SessionDescription.parse(phone_answer))
    assert media == NegotiatedMedia(
        remote=("192.168.10.21", 11800),
        remote_rtcp=("192.168.10.21", 11801),
        payload_type=8,
        codec="PCMA",
        telephone_event=101,
        direction=Direction.SENDONLY,
        ptime=20,
    )


def test_offer_answer_back_to_back() -> None:
    offer = make_offer("192.0.2.10", 40000, direction="sendonly", session_id=1, version=1)
    wire_offer = SessionDescription.parse(offer.to_bytes())
    their_answer, theirs = answer(wire_offer, "198.51.100.7", 50000, session_id=2, version=1)
    ours = accept_answer(offer, SessionDescription.parse(their_answer.to_bytes()))
    assert (ours.codec, ours.payload_type, ours.telephone_event) == ("PCMU", 0, 101)
    assert (theirs.codec, theirs.payload_type, theirs.telephone_event) == ("PCMU", 0, 101)
    assert ours.direction is Direction.SENDONLY
    assert theirs.direction is Direction.RECVONLY
    assert ours.remote == ("198.51.100.7", 50000)
    assert theirs.remote == ("192.0.2.10", 40000)


def test_bad_answers() -> None:
    offer = make_offer("192.0.2.10", 40000, session_id=1, version=1)
    head = ("v=0", "o=- 1 1 IN IP4 10.0.0.9", "s=-", "c=IN IP4 10.0.0.9", "t=0 0")
    cases = [
        (sdp(*head, "m=audio 0 RTP/AVP 0"), 488, "SDP answer rejected the audio stream"),
        (
            sdp(*head, "m=audio 5004 RTP/AVP 18"),
            488,
            "SDP answer selects none of our codecs (answered: 18)",
        ),
        (
            sdp(*head, "m=audio 5004 RTP/AVP 0", "m=audio 5006 RTP/AVP 0"),
            400,
            "SDP answer has 2 media lines, the offer had 1",
        ),
        (sdp(*head, "m=video 5004 RTP/AVP 0"), 400, "SDP answer media 1 is video, not audio"),
    ]
    for body, status, reason in cases:
        with pytest.raises(RemoteProtocolError) as info:
            accept_answer(offer, SessionDescription.parse(body))
        assert (info.value.status, info.value.reason) == (status, reason)


@given(
    st.builds(
        make_offer,
        address=st.ip_addresses().map(str),
        port=st.integers(1, 65535),
        codecs=st.lists(st.sampled_from(["PCMU", "PCMA"]), min_size=1, max_size=2, unique=True),
        telephone_event=st.none() | st.integers(96, 127),
        direction=st.sampled_from(list(Direction)),
        session_id=st.integers(0, 2**63),
        version=st.integers(0, 2**32),
    )
)
def test_offers_round_trip_and_answer_themselves(offer: SessionDescription) -> None:
    parsed = SessionDescription.parse(offer.to_bytes())
    assert parsed == offer
    audio = offer.media[0]
    if offer.direction(audio) is Direction.SENDRECV:
        _, media = answer(parsed, "192.0.2.1", 4000, session_id=1, version=1)
        assert media.codec == audio.codecs()[0].name
        assert media.telephone_event == audio.telephone_event()
        assert media.remote == offer.rtp_address(audio)


# --- malformed descriptions ----------------------------------------------------

HEAD = ("v=0", "o=- 1 1 IN IP4 10.0.0.9", "s=-", "c=IN IP4 10.0.0.9", "t=0 0")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "SDP is empty"),
        (b"v=0\r\n\xff\r\n", "SDP is not UTF-8"),
        (sdp("v=0", "s=-", "o=- 1 1 IN IP4 10.0.0.9"), "SDP must start with v=, o= and s= lines"),
        (sdp("v=1", *HEAD[1:]), "bad SDP line 1 'v=1': unsupported SDP version"),
        (
            sdp("v=0", "o=- 1 IN IP4 10.0.0.9", "s=-", "t=0 0"),
            "bad SDP line 2 'o=- 1 IN IP4 10.0.0.9': o= needs 6 fields",
        ),
        (
            sdp("v=0", "o=- one 1 IN IP4 10.0.0.9", "s=-", "t=0 0"),
            "bad SDP line 2 'o=- one 1 IN IP4 10.0.0.9': session id and version must be numbers",
        ),
        (
            sdp(*HEAD[:3], "c IN IP4 10.0.0.9"),
            "bad SDP line 4 'c IN IP4 10.0.0.9': not a <type>=<value> line",
        ),
        (
            sdp(*HEAD[:3], "C=IN IP4 10.0.0.9"),
            "bad SDP line 4 'C=IN IP4 10.0.0.9': not a <type>=<value> line",
        ),
        (
            sdp(*HEAD[:3], "c=IN IP4 999.1.1.1"),
            "bad SDP line 4 'c=IN IP4 999.1.1.1': bad IP4 address '999.1.1.1'",
        ),
        (
            sdp(*HEAD[:3], "c=IN IP4 ::1"),
            "bad SDP line 4 'c=IN IP4 ::1': '::1' is not an IP4 address",
        ),
        (
            sdp(*HEAD[:3], "c=IN IP6 10.0.0.9"),
            "bad SDP line 4 'c=IN IP6 10.0.0.9': '10.0.0.9' is not an IP6 address",
        ),
        (
            sdp(*HEAD[:3], "c=ATM NSAP 47.0005"),
            "bad SDP line 4 'c=ATM NSAP 47.0005': unsupported network type 'ATM'",
        ),
        (
            sdp(*HEAD[:3], "c=IN IPX 10.0.0.9"),
            "bad SDP line 4 'c=IN IPX 10.0.0.9': unsupported address type 'IPX'",
        ),
        (
            sdp(*HEAD[:3], "c=IN IP4 224.2.1.1/127"),
            "bad SDP line 4 'c=IN IP4 224.2.1.1/127': bad IP4 address '224.2.1.1/127'",
        ),
        (
            sdp(*HEAD, "c=IN IP4 10.0.0.8"),
            "bad SDP line 6 'c=IN IP4 10.0.0.8': second session c= line",
        ),
        (sdp(*HEAD[:4], "t=now"), "bad SDP line 5 't=now': t= needs start and stop times"),
        (sdp(*HEAD[:4]), "SDP has no t= line"),
        (
            sdp(*HEAD[:4], "m=audio 4000 RTP/AVP 0"),
            "bad SDP line 5 'm=audio 4000 RTP/AVP 0': m= before any t= line",
        ),
        (sdp(*HEAD, "x=unknown"), "bad SDP line 6 'x=unknown': unexpected x= line"),
        (
            sdp(*HEAD, "m=audio abc RTP/AVP 0"),
            "bad SDP line 6 'm=audio abc RTP/AVP 0': bad port 'abc'",
        ),
        (
            sdp(*HEAD, "m=audio 70000 RTP/AVP 0"),
            "bad SDP line 6 'm=audio 70000 RTP/AVP 0': bad port '70000'",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP"),
            "bad SDP line 6 'm=audio 4000 RTP/AVP': "
            "m= needs media, port, proto and at least one format",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "t=0 0"),
            "bad SDP line 7 't=0 0': t= not allowed in media",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU"),
            "bad SDP line 7 'a=rtpmap:0 PCMU': bad rtpmap",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap:200 X/8000"),
            "bad SDP line 7 'a=rtpmap:200 X/8000': bad rtpmap",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=ptime:fast"),
            "bad SDP line 7 'a=ptime:fast': bad ptime",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=fmtp:x 0-15"),
            "bad SDP line 7 'a=fmtp:x 0-15': bad fmtp",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtcp:x"),
            "bad SDP line 7 'a=rtcp:x': bad rtcp attribute",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=sendrecv:yes"),
            "bad SDP line 7 'a=sendrecv:yes': sendrecv takes no value",
        ),
        (
            sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a= bad"),
            "bad SDP line 7 'a= bad': bad attribute name",
        ),
        (sdp(*HEAD[:3], "t=0 0", "m=audio 4000 RTP/AVP 0"), "SDP media 1 (audio) has no c= line"),
        (
            sdp(*HEAD, "x=" + "y" * 100),
            "bad SDP line 6 'x=" + "y" * 75 + "...': unexpected x= line",
        ),
    ],
)
def test_malformed_descriptions_name_the_line(body: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SessionDescription.parse(body)
    assert (info.value.status, info.value.reason) == (400, reason)


def test_rejected_stream_needs_no_connection() -> None:
    body = sdp(*HEAD[:3], "t=0 0", "m=video 0 RTP/AVP 99")
    assert SessionDescription.parse(body).to_bytes() == body


def test_host_names_are_legal_connection_addresses() -> None:
    body = sdp(*HEAD[:3], "c=IN IP4 media.example.com", "t=0 0", "m=audio 4000 RTP/AVP 0")
    parsed = SessionDescription.parse(body)
    assert parsed.rtp_address(parsed.media[0]) == ("media.example.com", 4000)
