from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sip.auth import (
    AuthResult,
    Challenge,
    Credentials,
    DigestClient,
    DigestVerifier,
    NonceIssuer,
    NonceState,
    Verdict,
    choose,
)
from dialer.sip.errors import LocalProtocolError, RemoteProtocolError

SECRET = b"s3cr3t-nonce-key-0123456789abcdef"
REALM = "dialer.local"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- published vectors --------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_section_3_5_example() -> None:
    challenge = Challenge.parse(RFC2617_CHALLENGE)
    credentials = DigestClient("Mufasa", "Circle Of Life").respond(
        challenge, "GET", "/dir/index.html", cnonce="0a4f113b"
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert str(credentials) == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
    )


def test_rfc2617_authorization_header_parses() -> None:
    value = (
        'Digest username="Mufasa",\t realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        "qop=auth, nc=00000001, "
        'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert Credentials.parse(value) == Credentials(
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response="6629fae49393a05397450978507c4ef1",
        cnonce="0a4f113b",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        qop="auth",
        nc=1,
    )


RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_section_3_9_1_example(algorithm: str, expected: str) -> None:
    challenge = Challenge.parse(
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    assert challenge.qop == ("auth", "auth-int")
    credentials = DigestClient("Mufasa", "Circle of Life").respond(
        challenge, "GET", "/dir/index.html", cnonce=RFC7616_CNONCE
    )
    assert credentials.response == expected
    assert credentials.algorithm == algorithm
    assert credentials.opaque == RFC7616_OPAQUE


# --- SIP-style computations, checked independently with hashlib ------------------


def test_sip_register_sha256_computed_independently() -> None:
    challenge = Challenge.parse(
        'Digest realm="pbx.example.com", nonce="5f1c2d3e4b", algorithm=SHA-256, qop="auth"'
    )
    client = DigestClient("1001", "pa$$word")
    first = client.respond(challenge, "REGISTER", "sip:pbx.example.com", cnonce="a1b2c3d4")
    second = client.respond(challenge, "REGISTER", "sip:pbx.example.com", cnonce="e5f6a7b8")
    ha1 = sha256("1001:pbx.example.com:pa$$word")
    ha2 = sha256("REGISTER:sip:pbx.example.com")
    assert first.response == sha256(f"{ha1}:5f1c2d3e4b:00000001:a1b2c3d4:auth:{ha2}")
    assert second.response == sha256(f"{ha1}:5f1c2d3e4b:00000002:e5f6a7b8:auth:{ha2}")
    assert (first.nc, second.nc) == (1, 2)
    assert "nc=00000002" in str(second)


def test_nonce_count_is_kept_per_nonce() -> None:
    client = DigestClient("1001", "pw")
    a = Challenge("r", "nonce-a", qop=("auth",))
    b = Challenge("r", "nonce-b", qop=("auth",))
    counts = [client.respond(c, "INVITE", "sip:x@r", cnonce="c").nc for c in (a, a, b, a, b)]
    assert counts == [1, 2, 1, 3, 2]


def test_rfc2069_challenge_without_qop_or_algorithm() -> None:
    # Old PBXes: no qop, no algorithm; the answer must not add cnonce/nc/algorithm.
    challenge = Challenge.parse('Digest realm="asterisk",nonce="4c1f2e6a"')
    credentials = DigestClient("200", "secret").respond(
        challenge, "INVITE", "sip:300@10.0.0.1", cnonce="ignored"
    )
    ha1, ha2 = md5("200:asterisk:secret"), md5("INVITE:sip:300@10.0.0.1")
    assert credentials.response == md5(f"{ha1}:4c1f2e6a:{ha2}")
    assert str(credentials) == (
        'Digest username="200", realm="asterisk", nonce="4c1f2e6a", '
        f'uri="sip:300@10.0.0.1", response="{md5(f"{ha1}:4c1f2e6a:{ha2}")}"'
    )


def test_md5_sess_and_auth_int_computed_independently() -> None:
    challenge = Challenge("r", "n1", algorithm="MD5-sess", qop=("auth-int",))
    body = b"v=0\r\n"
    credentials = DigestClient("u", "p").respond(challenge, "INVITE", "sip:a@r", "cn", body)
    ha1 = md5(f"{md5('u:r:p')}:n1:cn")
    ha2 = md5(f"INVITE:sip:a@r:{hashlib.md5(body).hexdigest()}")
    assert credentials.qop == "auth-int"
    assert credentials.response == md5(f"{ha1}:n1:00000001:cn:auth-int:{ha2}")


def test_client_refuses_what_it_cannot_answer() -> None:
    client = DigestClient("u", "p")
    with pytest.raises(RemoteProtocolError) as info:
        client.respond(Challenge("r", "n", algorithm="SHA-512-256"), "REGISTER", "sip:r", "c")
    assert info.value.reason == "unsupported Digest algorithm 'SHA-512-256'"
    with pytest.raises(RemoteProtocolError) as info:
        client.respond(Challenge("r", "n", qop=("auth-conf",)), "REGISTER", "sip:r", "c")
    assert info.value.reason == "no supported Digest qop offered (offered: auth-conf)"
    with pytest.raises(LocalProtocolError):
        client.respond(Challenge("r", "n", qop=("auth",)), "REGISTER", "sip:r", "")


def test_choose_prefers_sha256() -> None:
    md5_challenge = Challenge("r", "n", algorithm="MD5")
    sha_challenge = Challenge("r", "n", algorithm="sha-256")
    legacy = Challenge("r", "n")
    assert choose([md5_challenge, sha_challenge]) is sha_challenge
    assert choose([legacy, Challenge("r", "n", algorithm="SHA-512-256")]) is legacy
    with pytest.raises(RemoteProtocolError) as info:
        choose([Challenge("r", "n", algorithm="SHA-512-256")])
    assert info.value.reason == "no supported Digest algorithm offered (offered: SHA-512-256)"


# --- server side ---------------------------------------------------------------


def make_verifier(**kwargs: bool | int) -> DigestVerifier:
    return DigestVerifier(REALM, NonceIssuer(SECRET, lifetime=300.0), **kwargs)  # type: ignore[arg-type]


def answer(
    verifier: DigestVerifier, now: float, user: str = "1001", password: str = "right"
) -> Credentials:
    """Through the wire format both ways, as a phone would."""
    challenges = [Challenge.parse(str(c)) for c in verifier.challenge(now)]
    credentials = DigestClient(user, password).respond(
        choose(challenges), "REGISTER", f"sip:{REALM}", cnonce="0badc0de"
    )
    return Credentials.parse(str(credentials))


def test_challenge_offers_sha256_then_md5_with_one_nonce() -> None:
    challenges = make_verifier().challenge(0.0)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert challenges[0].nonce == challenges[1].nonce
    assert str(challenges[0]) == (
        f'Digest realm="{REALM}", nonce="{challenges[0].nonce}", algorithm=SHA-256, qop="auth"'
    )
    stale = make_verifier().challenge(0.0, stale=True, algorithms=("MD5",))
    assert [c.algorithm for c in stale] == ["MD5"]
    assert "stale=TRUE" in str(stale[0])
    assert Challenge.parse(str(stale[0])).stale


def test_good_credentials_verify() -> None:
    verifier = make_verifier()
    credentials = answer(verifier, 10.0)
    assert credentials.algorithm == "SHA-256"
    assert verifier.verify(credentials, "REGISTER", "right", 11.0) is AuthResult.OK


def test_md5_credentials_verify() -> None:
    verifier = make_verifier()
    challenge = verifier.challenge(0.0, algorithms=("MD5",))[0]
    credentials = DigestClient("1001", "right").respond(challenge, "REGISTER", "sip:r", "cn")
    assert verifier.verify(credentials, "REGISTER", "right", 1.0) is AuthResult.OK
    # The method is part of A2: the same answer does not authorise an INVITE.
    again = DigestClient("1001", "right").respond(challenge, "REGISTER", "sip:r", "cn")
    assert verifier.verify(again, "INVITE", "right", 1.0) is AuthResult.FAILED


def test_nonce_lifetime_and_stale_flow() -> None:
    issuer = NonceIssuer(SECRET, lifetime=300.0)
    nonce = issuer.issue(0.0)
    assert issuer.check(nonce, 300.0) is NonceState.VALID
    assert issuer.check(nonce, 301.0) is NonceState.STALE
    assert issuer.issued_at(nonce) == 0.0

    verifier = DigestVerifier(REALM, issuer)
    credentials = answer(verifier, 0.0)
    # Right password on an expired nonce: STALE (challenge again, stale=TRUE) ...
    assert verifier.judge(credentials, "REGISTER", "right", 301.0) == Verdict(
        AuthResult.STALE, "nonce is stale"
    )
    # ... a wrong one is simply FAILED (RFC 7616 §3.3).
    assert verifier.verify(credentials, "REGISTER", "wrong", 301.0) is AuthResult.FAILED
    # The client answers the stale challenge with a fresh nonce and succeeds.
    assert verifier.verify(answer(verifier, 301.0), "REGISTER", "right", 302.0) is AuthResult.OK


def test_nonce_from_before_a_clock_reset_is_stale() -> None:
    issuer = NonceIssuer(SECRET, lifetime=300.0)
    assert issuer.check(issuer.issue(1000.0), 5.0) is NonceState.STALE


def test_tampered_or_foreign_nonce_is_invalid() -> None:
    issuer = NonceIssuer(SECRET, lifetime=300.0)
    nonce = issuer.issue(0.0)
    flipped = nonce[:5] + ("A" if nonce[5] != "A" else "B") + nonce[6:]
    assert issuer.check(flipped, 1.0) is NonceState.INVALID
    assert issuer.check(nonce + "A", 1.0) is NonceState.INVALID
    assert issuer.check("not base64 at all!!", 1.0) is NonceState.INVALID
    assert issuer.check("é" * 43, 1.0) is NonceState.INVALID
    other = NonceIssuer(b"another-secret-0123456789abcdef", lifetime=300.0)
    assert other.check(nonce, 1.0) is NonceState.INVALID

    verifier = DigestVerifier(REALM, issuer)
    good = answer(verifier, 0.0)
    client = DigestClient("1001", "right")
    forged = client.respond(Challenge(REALM, flipped, qop=("auth",)), "REGISTER", "sip:r", "c")
    assert verifier.judge(forged, "REGISTER", "right", 1.0) == Verdict(
        AuthResult.FAILED, "nonce not issued by us"
    )
    assert verifier.verify(good, "REGISTER", "right", 1.0) is AuthResult.OK


def test_nonces_issued_at_the_same_instant_differ() -> None:
    issuer = NonceIssuer(SECRET, lifetime=300.0)
    assert issuer.issue(5.0) != issuer.issue(5.0)


def test_unknown_user_and_wrong_password_are_indistinguishable() -> None:
    verifier = make_verifier()
    wrong = answer(verifier, 0.0, user="1001", password="guess")
    unknown = answer(verifier, 0.0, user="9999", password="guess")
    wrong_verdict = verifier.judge(wrong, "REGISTER", "right", 1.0)
    unknown_verdict = verifier.judge(unknown, "REGISTER", None, 1.0)
    assert wrong_verdict == unknown_verdict == Verdict(AuthResult.FAILED, "response does not match")
    # Even on a stale nonce neither reveals anything more.
    assert verifier.judge(unknown, "REGISTER", None, 400.0) == wrong_verdict
    assert verifier.judge(wrong, "REGISTER", "right", 400.0) == wrong_verdict


def test_unknown_user_fails_even_with_the_dummy_password() -> None:
    verifier = make_verifier()
    credentials = answer(verifier, 0.0, user="9999", password="\x00unknown-user\x00")
    assert verifier.verify(credentials, "REGISTER", None, 1.0) is AuthResult.FAILED


def test_nonce_count_replay_is_rejected() -> None:
    verifier = make_verifier()
    challenge = verifier.challenge(0.0)[0]
    client = DigestClient("1001", "right")
    first = client.respond(challenge, "REGISTER", "sip:r", cnonce="c1")
    assert verifier.verify(first, "REGISTER", "right", 1.0) is AuthResult.OK
    assert verifier.judge(first, "REGISTER", "right", 2.0) == Verdict(
        AuthResult.FAILED, "nonce count 00000001 replayed"
    )
    second = client.respond(challenge, "REGISTER", "sip:r", cnonce="c2")
    assert second.nc == 2
    assert verifier.verify(second, "REGISTER", "right", 3.0) is AuthResult.OK
    assert verifier.verify(first, "REGISTER", "right", 4.0) is AuthResult.FAILED


def test_failed_attempts_do_not_advance_the_nonce_count() -> None:
    # Otherwise anyone holding a nonce could lock its owner out with nc=ffffffff.
    verifier = make_verifier()
    challenge = verifier.challenge(0.0)[0]
    attacker = DigestClient("1001", "guess")
    for _ in range(3):
        attacker.respond(challenge, "REGISTER", "sip:r", cnonce="x")
    bogus = attacker.respond(challenge, "REGISTER", "sip:r", cnonce="x")
    assert verifier.verify(bogus, "REGISTER", "right", 1.0) is AuthResult.FAILED
    owner = DigestClient("1001", "right").respond(challenge, "REGISTER", "sip:r", cnonce="y")
    assert owner.nc == 1
    assert verifier.verify(owner, "REGISTER", "right", 1.0) is AuthResult.OK


def test_evicted_nonces_turn_stale_instead_of_replayable() -> None:
    verifier = make_verifier(max_nonces=2)
    issued = [verifier.challenge(float(t))[0] for t in range(3)]
    clients = [DigestClient("1001", "right") for _ in issued]
    first_answers = [
        client.respond(c, "REGISTER", "sip:r", cnonce="c")
        for client, c in zip(clients, issued, strict=True)
    ]
    for credentials in first_answers:
        assert verifier.verify(credentials, "REGISTER", "right", 5.0) is AuthResult.OK
    # The first nonce fell out of the map: its old answer must not be accepted.
    assert verifier.verify(first_answers[0], "REGISTER", "right", 6.0) is AuthResult.STALE
    # The two remembered nonces still reject replays.
    assert verifier.verify(first_answers[2], "REGISTER", "right", 6.0) is AuthResult.FAILED


def test_credentials_without_qop_need_explicit_permission() -> None:
    challenge = make_verifier().challenge(0.0, algorithms=("MD5",))[0]
    legacy = Challenge(challenge.realm, challenge.nonce)  # as an RFC 2069 phone sees it
    credentials = DigestClient("1001", "right").respond(legacy, "REGISTER", "sip:r", "c")
    assert credentials.qop is None
    strict = DigestVerifier(REALM, NonceIssuer(SECRET, lifetime=300.0))
    assert strict.judge(credentials, "REGISTER", "right", 1.0) == Verdict(
        AuthResult.FAILED, "credentials without qop not accepted"
    )
    lenient = DigestVerifier(REALM, NonceIssuer(SECRET, lifetime=300.0), allow_rfc2069=True)
    assert lenient.verify(credentials, "REGISTER", "right", 1.0) is AuthResult.OK


def test_other_rejections_name_their_reason() -> None:
    verifier = make_verifier()
    nonce = verifier.challenge(0.0)[0].nonce
    client = DigestClient("1001", "right")

    def judge(challenge: Challenge, **kwargs: str) -> Verdict:
        credentials = client.respond(challenge, "REGISTER", "sip:r", cnonce="c")
        return verifier.judge(credentials, "REGISTER", "right", 1.0, **kwargs)

    assert judge(Challenge("elsewhere", nonce, qop=("auth",))).reason == (
        "realm 'elsewhere' is not ours"
    )
    assert judge(Challenge(REALM, nonce, algorithm="SHA-256-sess", qop=("auth",))).reason == (
        "algorithm 'SHA-256-sess' not accepted"
    )
    assert judge(Challenge(REALM, nonce, qop=("auth-int",))).reason == "qop 'auth-int' not offered"
    assert judge(Challenge(REALM, nonce, qop=("auth",)), request_uri="sip:other").reason == (
        "digest uri does not match the Request-URI"
    )


def test_secrets_never_appear_in_repr_or_str() -> None:
    password, secret = "hunter2-password", b"very-secret-nonce-key-material!!"
    client = DigestClient("1001", password)
    issuer = NonceIssuer(secret, lifetime=60.0)
    verifier = DigestVerifier(REALM, issuer)
    credentials = client.respond(verifier.challenge(0.0)[0], "REGISTER", "sip:r", "c")
    verdict = verifier.judge(credentials, "REGISTER", password, 1.0)
    assert verdict.result is AuthResult.OK
    shown = " ".join(
        text
        for obj in (client, issuer, verifier, credentials, verdict)
        for text in (repr(obj), str(obj))
    )
    assert password not in shown
    assert secret.decode() not in shown
    assert secret.hex() not in shown
    assert repr(client) == "DigestClient(username='1001')"
    assert repr(issuer) == "NonceIssuer(lifetime=60.0)"


def test_weak_secret_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        NonceIssuer(b"short", lifetime=300.0)


# --- header value syntax ---------------------------------------------------------


def test_parsing_is_tolerant_of_case_spaces_and_empty_elements() -> None:
    challenge = Challenge.parse(
        'digest  REALM = "a\\"b\\\\c" ,, Nonce=abc/def=, ALGORITHM=sha-256,'
        ' QOP="Auth , auth-int", stale=true, Opaque="", unknown-param=xyz,'
    )
    assert challenge == Challenge(
        realm='a"b\\c',
        nonce="abc/def=",
        algorithm="sha-256",
        qop=("auth", "auth-int"),
        opaque="",
        stale=True,
    )
    assert str(challenge) == (
        'Digest realm="a\\"b\\\\c", nonce="abc/def=", opaque="", stale=TRUE, '
        'algorithm=sha-256, qop="auth,auth-int"'
    )
    assert Challenge.parse('Digest realm="r", nonce="n", stale=FALSE').stale is False
    assert Challenge.parse('Digest realm="r", nonce="n", qop=auth').qop == ("auth",)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "Digest challenge has no scheme"),
        ('Basic realm="x"', "unsupported Digest challenge scheme 'Basic'"),
        ('DigestX realm="x"', "unsupported Digest challenge scheme 'DigestX'"),
        ('Digest nonce="n"', "Digest challenge: missing realm"),
        ('Digest realm="r"', "Digest challenge: missing nonce"),
        ('Digest realm="r', "Digest challenge: unterminated quoted-string in parameter 'realm'"),
        ('Digest realm="r\\', "Digest challenge: unterminated quoted-string in parameter 'realm'"),
        ('Digest realm="a", Realm="b", nonce="n"', "Digest challenge: duplicate parameter 'realm'"),
        ("Digest realm", "Digest challenge: parameter 'realm' has no value"),
        ("Digest realm=, nonce=n", "Digest challenge: parameter 'realm' has no value"),
        ('Digest realm="a" nonce="b"', "Digest challenge: expected ',' after parameter 'realm'"),
        ('Digest ="a"', "Digest challenge: expected a parameter name at '=\"a\"'"),
        ('Digest realm="a\r\n", nonce="n"', "control character in Digest challenge"),
        ('Digest realm="r", nonce="n", qop="auth,a/b"', "Digest challenge: bad qop option 'a/b'"),
    ],
)
def test_malformed_challenges(value: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Challenge.parse(value)
    assert info.value.reason == reason
    assert info.value.status == 400


GOOD = 'username="u", realm="r", nonce="n", uri="sip:r", response="0a1b"'


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            'Digest realm="r", nonce="n", uri="sip:r", response="0a"',
            "Digest credentials: missing username",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="sip:r"',
            "Digest credentials: missing response",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="sip:r", response="xyz"',
            "Digest credentials: response 'xyz' is not hexadecimal",
        ),
        (f"Digest {GOOD}, qop=auth, nc=00000001", "Digest credentials: qop without cnonce"),
        (f'Digest {GOOD}, qop=auth, cnonce="c"', "Digest credentials: qop without nc"),
        (
            f'Digest {GOOD}, qop=auth, cnonce="c", nc=1',
            "Digest credentials: nc must be 8 hex digits, got '1'",
        ),
        (
            f'Digest {GOOD}, qop=auth, cnonce="c", nc=00000000',
            "Digest credentials: nc must not be 00000000",
        ),
        (f"Basic {GOOD}", "unsupported Digest credentials scheme 'Basic'"),
    ],
)
def test_malformed_credentials(value: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Credentials.parse(value)
    assert info.value.reason == reason


def test_credentials_qop_may_be_quoted_by_lenient_clients() -> None:
    credentials = Credentials.parse(f'Digest {GOOD}, qop="AUTH", cnonce="c", nc=0000000A')
    assert (credentials.qop, credentials.nc) == ("auth", 10)


def test_construction_rejects_header_injection() -> None:
    with pytest.raises(LocalProtocolError):
        Challenge("r\r\nX-Evil: 1", "n")
    with pytest.raises(LocalProtocolError):
        Credentials("u", "r", "n", "sip:r", "0a", qop="auth")  # no cnonce / nc


_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)
_token = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)


@given(
    st.builds(
        Challenge,
        realm=_text,
        nonce=_text,
        algorithm=st.none() | _token,
        qop=st.lists(_token.map(str.lower), max_size=3).map(tuple),
        opaque=st.none() | _text,
        stale=st.booleans(),
        domain=st.none() | _text,
    )
)
def test_challenge_round_trips(challenge: Challenge) -> None:
    assert Challenge.parse(str(challenge)) == challenge


@given(
    st.builds(
        Credentials,
        username=_text,
        realm=_text,
        nonce=_text,
        uri=_text,
        response=st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        algorithm=st.none() | _token,
        cnonce=_text,
        opaque=st.none() | _text,
        qop=st.just("auth"),
        nc=st.integers(1, 0xFFFFFFFF),
    )
)
def test_credentials_round_trip(credentials: Credentials) -> None:
    assert Credentials.parse(str(credentials)) == credentials
