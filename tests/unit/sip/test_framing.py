"""Stream framing: Content-Length cuts, keep-alives, one byte at a time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.framing import StreamFramer
from dialer.sip.message import Request, Response, parse_message

OPTIONS = (
    b"OPTIONS sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:agent201@pbx.example.com>;tag=1928301774\r\n"
    b"To: <sip:pbx.example.com>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
MESSAGE = (
    b"MESSAGE sip:agent201@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP pbx.example.com;branch=z9hG4bK-1\r\n"
    b"From: <sip:pbx.example.com>;tag=9\r\n"
    b"To: <sip:agent201@192.0.2.10>\r\n"
    b"Call-ID: m1\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Content-Type: text/plain\r\n"
    b"l: 13\r\n"
    b"\r\n"
    b"hello\r\n\r\n\x00bye"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n"
    b"From: <sip:agent201@pbx.example.com>;tag=1928301774\r\n"
    b"To: <sip:pbx.example.com>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
STREAM = b"\r\n\r\n" + OPTIONS + MESSAGE + b"\r\n\r\n\r\n\r\n" + OK


def feed_bytewise(framer: StreamFramer, data: bytes) -> list[Request | Response]:
    out: list[Request | Response] = []
    for i in range(len(data)):
        out += framer.feed(data[i : i + 1])
    return out


def test_one_byte_at_a_time() -> None:
    framer = StreamFramer()
    messages = feed_bytewise(framer, STREAM)
    assert messages == [parse_message(OPTIONS), parse_message(MESSAGE), parse_message(OK)]
    assert messages[1].body == b"hello\r\n\r\n\x00bye"
    assert framer.pings == 3
    assert framer.pongs == 0
    assert framer.buffered == 0


def test_message_is_delivered_on_its_last_byte() -> None:
    framer = StreamFramer()
    assert framer.feed(OPTIONS[:-1]) == []
    assert framer.buffered == len(OPTIONS) - 1
    assert framer.feed(OPTIONS[-1:]) == [parse_message(OPTIONS)]


def test_several_messages_in_one_chunk() -> None:
    framer = StreamFramer()
    assert framer.feed(OPTIONS + OK + OPTIONS[:10]) == [parse_message(OPTIONS), parse_message(OK)]
    assert framer.buffered == 10


def test_single_crlf_is_a_pong_once_disambiguated() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    # Could still be the first half of a ping.
    assert (framer.pings, framer.pongs) == (0, 0)
    assert framer.feed(OK) == [parse_message(OK)]
    assert (framer.pings, framer.pongs) == (0, 1)


def test_ping_pong_sequence() -> None:
    framer = StreamFramer()
    assert feed_bytewise(framer, b"\r\n\r\n\r\n\r\n\r\n" + OK) == [parse_message(OK)]
    assert (framer.pings, framer.pongs) == (2, 1)


@given(st.lists(st.integers(1, 64), max_size=40))
def test_any_chunking_gives_the_same_messages(sizes: list[int]) -> None:
    framer = StreamFramer()
    out: list[Request | Response] = []
    pos = 0
    for size in sizes:
        out += framer.feed(STREAM[pos : pos + size])
        pos += size
    out += framer.feed(STREAM[pos:])
    assert out == [parse_message(OPTIONS), parse_message(MESSAGE), parse_message(OK)]
    assert framer.pings == 3


def test_missing_content_length_is_an_error_on_streams() -> None:
    framer = StreamFramer()
    data = OPTIONS.replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(RemoteProtocolError) as info:
        feed_bytewise(framer, data)
    assert info.value.status == 400
    assert info.value.reason == "Content-Length is mandatory on stream transports"
    with pytest.raises(LocalProtocolError, match="close the connection"):
        framer.feed(b"x")


def test_bad_content_length_is_an_error() -> None:
    framer = StreamFramer()
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: five"))
    assert info.value.reason == "Content-Length is not a non-negative integer: 'five'"


def test_endless_header_section_is_513() -> None:
    framer = StreamFramer(max_size=1024)
    framer.feed(OPTIONS[:-4])
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(b"X-Filler: " + b"a" * 1024)
    assert info.value.status == 513
    assert info.value.reason == "message too large: header section exceeds the 1024-byte limit"


def test_announced_body_beyond_limit_is_513_without_waiting() -> None:
    framer = StreamFramer(max_size=1024)
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 5000"))
    assert info.value.status == 513
    assert info.value.reason == (
        f"message too large: {len(OPTIONS) + 3 + 5000} bytes exceeds the 1024-byte limit"
    )


def test_too_many_headers_on_a_stream() -> None:
    framer = StreamFramer(max_headers=5)
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(OPTIONS)
    assert (info.value.status, info.value.reason) == (400, "too many header fields (limit 5)")


def test_stray_cr_between_messages() -> None:
    framer = StreamFramer()
    with pytest.raises(RemoteProtocolError, match="stray CR between messages"):
        framer.feed(b"\rOPTIONS")


def test_malformed_message_surfaces_the_parse_error() -> None:
    framer = StreamFramer()
    with pytest.raises(RemoteProtocolError) as info:
        framer.feed(OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert (info.value.status, info.value.reason) == (505, "unsupported SIP version: SIP/3.0")
