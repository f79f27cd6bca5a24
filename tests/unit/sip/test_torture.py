"""RFC 4475 torture messages: what a robust parser accepts, and what it must refuse."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from dialer.sip.errors import RemoteProtocolError
from dialer.sip.message import NameAddr, Request, Response, parse_message
from dialer.sip.uri import SipUri

CORPUS = Path(__file__).parent / "torture"
MANIFEST: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "manifest.toml").read_text())
VALID = sorted(name for name, case in MANIFEST.items() if case["valid"])
INVALID = sorted(name for name, case in MANIFEST.items() if not case["valid"])


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.dat").read_bytes()


def test_manifest_and_corpus_match() -> None:
    files = {p.stem for p in CORPUS.glob("*.dat")}
    assert files == set(MANIFEST)
    assert len(VALID) >= 25 and len(INVALID) >= 20
    for name in INVALID:
        assert isinstance(MANIFEST[name]["status"], int), name
        assert MANIFEST[name]["match"], name


def test_corpus_uses_crlf_only() -> None:
    for name in MANIFEST:
        head = load(name).split(b"\r\n\r\n", 1)[0]
        assert b"\n" not in head.replace(b"\r\n", b""), name


@pytest.mark.parametrize("name", VALID)
def test_valid_message_parses_and_round_trips(name: str) -> None:
    message = parse_message(load(name))
    # Every structured view of a valid message parses too.
    assert message.vias and message.top_via == message.vias[0]
    assert message.cseq.seq >= 0
    assert message.call_id
    assert message.from_.uri and message.to.uri
    for contact in message.headers.get_all("Contact"):
        assert NameAddr.parse(contact).uri

    again = parse_message(message.to_bytes())
    assert type(again) is type(message)
    assert again.body == message.body
    # to_bytes writes Content-Length even when the original had none (inv2543).
    assert again.headers.without("Content-Length") == message.headers.without("Content-Length")
    assert again.headers.get("Content-Length") == str(len(message.body))
    assert parse_message(again.to_bytes()) == again
    if isinstance(message, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri) == (message.method, message.uri)
    else:
        assert isinstance(again, Response) and isinstance(message, Response)
        assert (again.status, again.reason) == (message.status, message.reason)


@pytest.mark.parametrize("name", VALID)
def test_request_uri_scheme_outcome(name: str) -> None:
    message = parse_message(load(name))
    if not isinstance(message, Request):
        return
    expected = MANIFEST[name].get("uri_status")
    if expected is None:
        assert SipUri.parse(message.uri).scheme in ("sip", "sips")
    else:
        with pytest.raises(RemoteProtocolError) as info:
            SipUri.parse(message.uri)
        assert info.value.status == expected


@pytest.mark.parametrize("name", INVALID)
def test_invalid_message_is_refused_with_status(name: str) -> None:
    case = MANIFEST[name]
    data = load(name)
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(data)
    assert info.value.status == case["status"]
    assert case["match"] in info.value.reason
    assert str(info.value) == info.value.reason
    # Responses cannot be answered: they are the ones marked to be dropped.
    assert case.get("drop", False) == data.startswith(b"SIP/")


def test_wsinv_details() -> None:
    message = parse_message(load("wsinv"))
    assert isinstance(message, Request)
    assert message.cseq.seq == 9 and message.cseq.method == "INVITE"
    assert message.headers.get("Max-Forwards") == "0068"
    assert [(v.transport, v.host, v.branch) for v in message.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.from_.display == 'J Rosenberg \\"'
    assert message.from_.tag == "98asjd8"
    assert message.to.tag == "1918181833n"
    assert message.headers.get("Subject") == ""
    assert message.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    contact = NameAddr.parse(message.headers.get_all("Contact")[0])
    assert contact.display == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))


def test_intmeth_details() -> None:
    message = parse_message(load("intmeth"))
    assert isinstance(message, Request)
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = SipUri.parse(message.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert message.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_.display == "token1~` token2'+_ token3*%!.-"
    assert message.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert message.from_.tag == "_token~1'+`*%!-."
    assert message.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_are_resolved_only_in_uri_userinfo() -> None:
    esc01 = parse_message(load("esc01"))
    assert isinstance(esc01, Request)
    assert SipUri.parse(esc01.uri).user == "sips:user@example.com"
    assert SipUri.parse(esc01.to.uri).user == "user"
    assert SipUri.parse(esc01.from_.uri).user == "I have spaces"
    contact = SipUri.parse(NameAddr.parse(esc01.headers.get_all("Contact")[0]).uri)
    assert contact.user == "caller"
    # Parameters are not unescaped by the URI layer (and never twice: %25%34%31 is "%41").
    assert contact.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))

    escnull = parse_message(load("escnull"))
    assert SipUri.parse(escnull.to.uri).user == "null-\x00-null"
    users = [SipUri.parse(NameAddr.parse(c).uri).user for c in escnull.headers.get_all("Contact")]
    assert users == ["\x00", "\x00\x00"]

    esc02 = parse_message(load("esc02"))
    assert isinstance(esc02, Request)
    assert esc02.method == "RE%47IST%45R"
    assert esc02.to.display == "%Z%45"
    assert len(esc02.headers.get_all("Contact")) == 2
    assert esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_dblreq_keeps_only_the_first_request() -> None:
    message = parse_message(load("dblreq"))
    assert isinstance(message, Request)
    assert message.method == "REGISTER" and message.body == b""


def test_semiuri_user_holds_semicolon() -> None:
    message = parse_message(load("semiuri"))
    assert isinstance(message, Request)
    uri = SipUri.parse(message.uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u@example.net", "example.com", ())
    assert len(message.headers.get_all("Accept")) == 6


def test_longreq_has_34_vias() -> None:
    message = parse_message(load("longreq"))
    assert len(message.vias) == 34
    assert [v.host for v in message.vias[:2]] == ["sip33.example.com", "sip32.example.com"]
    assert message.vias[-1].param("received") == "192.0.2.5"


def test_mpart01_binary_body_is_exact() -> None:
    data = load("mpart01")
    message = parse_message(data)
    assert message.body == data.split(b"\r\n\r\n", 1)[1]
    assert b"\x00" in message.body and message.body.endswith(b"--7a9cbec02ceef655--\r\n")


def test_unreason_and_noreason_phrases() -> None:
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")
    assert noreason.to_bytes().startswith(b"SIP/2.0 100 \r\n")


def test_valid_corpus_through_the_stream_framer_one_byte_at_a_time() -> None:
    from dialer.sip.framing import StreamFramer

    # dblreq relies on datagram truncation and inv2543 has no Content-Length:
    # neither can be framed on a stream.
    names = [n for n in VALID if n not in ("dblreq", "inv2543")]
    stream = b"\r\n\r\n".join(load(n) for n in names)
    framer = StreamFramer()
    out: list[Request | Response] = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert out == [parse_message(load(n)) for n in names]
    assert framer.pings == len(names) - 1
