"""SIP/SIPS/tel URI parsing and serialisation (RFC 3261 §19.1, §25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sip.errors import RemoteProtocolError
from dialer.sip.uri import SipUri


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.example.com",
        "sip:alice:secretword@atlanta.example.com;transport=tcp",
        "sips:alice@atlanta.example.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.example.com;user=phone",
        "sip:alice@192.0.2.4",
        "sip:atlanta.example.com;method=REGISTER?to=alice%40atlanta.example.com",
        "sip:alice;day=tuesday@atlanta.example.com",
        "sip:agent201@[2001:db8::1]:5060;transport=udp;lr",
        "sip:pbx.example.com:5080",
        "tel:+1-201-555-0123;phone-context=example.com",
    ],
)
def test_canonical_uris_round_trip_exactly(text: str) -> None:
    assert str(SipUri.parse(text)) == text


def test_fields() -> None:
    uri = SipUri.parse("SIP:alice:pw@[2001:db8::1]:5070;transport=tcp;lr?subject=hi")
    assert uri == SipUri(
        scheme="sip",
        user="alice",
        password="pw",
        host="2001:db8::1",
        port=5070,
        params=(("transport", "tcp"), ("lr", None)),
        headers=(("subject", "hi"),),
    )
    assert uri.param("TRANSPORT") == "tcp"
    assert uri.param("lr") == ""
    assert uri.param("maddr") is None


def test_host_only_uri_has_no_user() -> None:
    uri = SipUri.parse("sip:registrar.example.com")
    assert (uri.user, uri.host, uri.port) == (None, "registrar.example.com", None)


def test_escaped_user_is_unescaped_and_re_escaped() -> None:
    uri = SipUri.parse("sip:%61lice%20smith@example.com")
    assert uri.user == "alice smith"
    assert str(uri) == "sip:alice%20smith@example.com"
    assert SipUri.parse("sip:%32%30%31@pbx") == SipUri.parse("sip:201@pbx")


def test_null_and_non_utf8_escapes_survive() -> None:
    uri = SipUri.parse("sip:null-%00-%FF@example.com")
    assert uri.user is not None and uri.user.startswith("null-\x00-")
    assert str(uri) == "sip:null-%00-%FF@example.com"


def test_tel_uri() -> None:
    uri = SipUri.parse("tel:+34911234567;phone-context=+34")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+34911234567", "")
    assert uri.param("phone-context") == "+34"


@pytest.mark.parametrize(
    "text",
    ["http://www.example.com", "nobodyKnowsThisScheme:opaque", "isbn:2983792873", "mailto:a@b"],
)
def test_unsupported_scheme_is_416(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipUri.parse(text)
    assert info.value.status == 416
    assert info.value.reason == f"unsupported URI scheme: {text.partition(':')[0].lower()}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("alice@example.com", "malformed URI (no scheme): 'alice@example.com'"),
        ("sip:alice@example.com; lr", "whitespace in URI: 'sip:alice@example.com; lr'"),
        ("sip:al%zzice@example.com", "malformed %-escape in URI user part: 'al%zzice'"),
        ("sip:al<ice@example.com", "character '<' not allowed in URI user part: 'al<ice'"),
        ("sip:@example.com", "empty user part in URI: 'sip:@example.com'"),
        ("sip:alice@", "malformed host in URI: ''"),
        ("sip:alice@exa mple.com", "whitespace in URI: 'sip:alice@exa mple.com'"),
        ("sip:alice@example.com:99999", "malformed port in URI: '99999'"),
        ("sip:alice@example.com:", "malformed port in URI: ''"),
        ("sip:alice@[2001:db8::1", "unterminated IPv6 reference in URI"),
        ("sip:alice@[2001:db8::zz]", "malformed IPv6 address in URI: '2001:db8::zz'"),
        ("sip:alice@example.com;;lr", "malformed URI parameter: ''"),
        (
            "sip:alice@example.com?subject",
            "URI header without '=': 'sip:alice@example.com?subject'",
        ),
        ("tel:", "malformed URI telephone-subscriber: ''"),
    ],
)
def test_malformed_uris_are_400(text: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SipUri.parse(text)
    assert info.value.status == 400
    assert info.value.reason == reason


_user = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_host = st.one_of(
    st.lists(_label, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'", min_size=1, max_size=8)


@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | _user,
    password=st.none() | _user,
    host=_host,
    port=st.none() | st.integers(0, 65535),
    params=st.lists(st.tuples(_token, st.none() | _token), max_size=3),
    headers=st.lists(st.tuples(_token, _token), max_size=2),
)
def test_any_uri_round_trips(
    *,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
    headers: list[tuple[str, str]],
) -> None:
    uri = SipUri(
        scheme,
        user,
        password if user is not None else None,
        host,
        port,
        tuple(params),
        tuple(headers),
    )
    assert SipUri.parse(str(uri)) == uri
