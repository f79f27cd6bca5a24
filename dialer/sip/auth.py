"""HTTP Digest authentication as SIP uses it (RFC 2617, RFC 7616, RFC 8760).

Sans-IO and clock-free: challenge and credential *header values* go in and
out as strings, the caller passes ``now`` and the client nonce. Three parts:

* ``Challenge`` / ``Credentials``: the ``WWW-Authenticate`` /
  ``Proxy-Authenticate`` and ``Authorization`` / ``Proxy-Authorization``
  values, parsed and serialised (RFC 3261 §25.1 ``challenge`` / ``credentials``).
* ``DigestClient``: answers a challenge, counting ``nc`` per nonce.
* ``NonceIssuer`` and ``DigestVerifier``: the registrar's side. Nonces are
  stateless (issue time + serial, HMAC-signed), so a restart or a second
  worker with the same secret understands them; only the replay map is state.

Passwords and the nonce secret never appear in any ``repr``/``str``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError

# RFC 7616 §3.4: the hash behind each algorithm name; "-sess" changes only A1.
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
_CANONICAL = {
    "MD5": "MD5",
    "MD5-SESS": "MD5-sess",
    "SHA-256": "SHA-256",
    "SHA-256-SESS": "SHA-256-sess",
}
# choose(): the strongest first (RFC 8760 §2.4 asks clients to prefer SHA-256).
_PREFERENCE = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")

# RFC 3261 §25.1 token characters; names must be tokens.
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# Values some servers send unquoted although the grammar wants quotes (nonce,
# opaque with "/" or "="): tolerate anything up to the next separator.
_BARE = re.compile(r'[^\s,"]+')
_HEX = re.compile(r"[0-9a-fA-F]+")
_NC = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def canonical_algorithm(name: str | None) -> str:
    """The RFC spelling of an algorithm name; absent means MD5 (RFC 2617 §3.2.1)."""
    if name is None:
        return "MD5"
    return _CANONICAL.get(name.upper(), name)


def is_supported(algorithm: str | None) -> bool:
    return canonical_algorithm(algorithm) in _PREFERENCE


# --- header value syntax ---------------------------------------------------


def _quote(value: str) -> str:
    # quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE (RFC 3261 §25.1)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_value(field: str, value: str | None) -> None:
    if value is not None and _CONTROL.search(value):
        raise LocalProtocolError(f"Digest {field} contains a control character")


def _split_scheme(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise RemoteProtocolError(f"control character in {what}")
    text = value.strip(" \t")
    match = _TOKEN.match(text)
    if match is None:
        raise RemoteProtocolError(f"{what} has no scheme")
    if match.group().lower() != "digest":
        raise RemoteProtocolError(f"unsupported {what} scheme {match.group()!r}")
    rest = text[match.end() :]
    if rest and rest[0] not in " \t":
        raise RemoteProtocolError(f"unsupported {what} scheme {text.split()[0]!r}")
    return rest


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _parse_params(text: str, what: str) -> dict[str, str]:
    """``auth-param *(COMMA auth-param)`` into lower-cased names -> unquoted values."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        # RFC 7230 §7 #rule: empty list elements are allowed and ignored.
        i = _skip_ws(text, i)
        while i < n and text[i] == ",":
            i = _skip_ws(text, i + 1)
        if i >= n:
            break
        name_match = _TOKEN.match(text, i)
        if name_match is None:
            raise RemoteProtocolError(f"{what}: expected a parameter name at {text[i:][:20]!r}")
        name = name_match.group()
        i = _skip_ws(text, name_match.end())
        if i >= n or text[i] != "=":
            raise RemoteProtocolError(f"{what}: parameter {name!r} has no value")
        i = _skip_ws(text, i + 1)
        if i < n and text[i] == '"':
            value, i = _unquote(text, i, name, what)
        else:
            bare = _BARE.match(text, i)
            if bare is None:
                raise RemoteProtocolError(f"{what}: parameter {name!r} has no value")
            value, i = bare.group(), bare.end()
        key = name.lower()
        if key in params:
            raise RemoteProtocolError(f"{what}: duplicate parameter {key!r}")
        params[key] = value
        i = _skip_ws(text, i)
        if i < n and text[i] != ",":
            raise RemoteProtocolError(f"{what}: expected ',' after parameter {name!r}")
    return params


def _unquote(text: str, i: int, name: str, what: str) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\":
            i += 1
            if i == len(text):
                break
            char = text[i]
        out.append(char)
        i += 1
    raise RemoteProtocolError(f"{what}: unterminated quoted-string in parameter {name!r}")


def _require(params: dict[str, str], name: str, what: str) -> str:
    try:
        return params[name]
    except KeyError:
        raise RemoteProtocolError(f"{what}: missing {name}") from None


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``Digest`` challenge (RFC 3261 §25.1 ``digest-cln``)."""

    realm: str
    nonce: str
    algorithm: str | None = None  # None: not sent, which means MD5
    qop: tuple[str, ...] = ()  # empty: RFC 2069 style, no qop
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None

    def __post_init__(self) -> None:
        for field in ("realm", "nonce", "algorithm", "opaque", "domain"):
            _check_value(field, getattr(self, field))
        for option in self.qop:
            if not _TOKEN.fullmatch(option):
                raise LocalProtocolError(f"Digest qop option {option!r} is not a token")

    @classmethod
    def parse(cls, value: str) -> Challenge:
        what = "Digest challenge"
        params = _parse_params(_split_scheme(value, what), what)
        qop = tuple(
            option.strip(" \t").lower()
            for option in params.get("qop", "").split(",")
            if option.strip(" \t")
        )
        for option in qop:
            if not _TOKEN.fullmatch(option):
                raise RemoteProtocolError(f"{what}: bad qop option {option!r}")
        return cls(
            realm=_require(params, "realm", what),
            nonce=_require(params, "nonce", what),
            algorithm=params.get("algorithm"),
            qop=qop,
            opaque=params.get("opaque"),
            # RFC 7616 §3.3: anything but a case-insensitive "true" is false.
            stale=params.get("stale", "").lower() == "true",
            domain=params.get("domain"),
        )

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One ``Digest`` answer (RFC 3261 §25.1 ``digest-response``)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None

    def __post_init__(self) -> None:
        for field in ("username", "realm", "nonce", "uri", "algorithm", "cnonce", "opaque"):
            _check_value(field, getattr(self, field))
        if not _HEX.fullmatch(self.response):
            raise LocalProtocolError("Digest response must be hexadecimal")
        if self.qop is not None:
            if not _TOKEN.fullmatch(self.qop):
                raise LocalProtocolError(f"Digest qop {self.qop!r} is not a token")
            if self.cnonce is None or self.nc is None:
                raise LocalProtocolError("Digest qop needs cnonce and nc")
        if self.nc is not None and not 0 < self.nc <= 0xFFFFFFFF:
            raise LocalProtocolError(f"Digest nc {self.nc} out of range")

    @classmethod
    def parse(cls, value: str) -> Credentials:
        what = "Digest credentials"
        params = _parse_params(_split_scheme(value, what), what)
        response = _require(params, "response", what)
        if not _HEX.fullmatch(response):
            raise RemoteProtocolError(f"{what}: response {response[:70]!r} is not hexadecimal")
        qop = params.get("qop")
        nc_text = params.get("nc")
        if qop is not None:
            if not _TOKEN.fullmatch(qop):
                raise RemoteProtocolError(f"{what}: bad qop {qop!r}")
            qop = qop.lower()
            # RFC 2617 §3.2.2: with qop, cnonce and nc MUST be present.
            if "cnonce" not in params:
                raise RemoteProtocolError(f"{what}: qop without cnonce")
            if nc_text is None:
                raise RemoteProtocolError(f"{what}: qop without nc")
        nc = None
        if nc_text is not None:
            if not _NC.fullmatch(nc_text):
                raise RemoteProtocolError(f"{what}: nc must be 8 hex digits, got {nc_text[:20]!r}")
            nc = int(nc_text, 16)
            if nc == 0:
                raise RemoteProtocolError(f"{what}: nc must not be 00000000")
        return cls(
            username=_require(params, "username", what),
            realm=_require(params, "realm", what),
            nonce=_require(params, "nonce", what),
            uri=_require(params, "uri", what),
            response=response,
            algorithm=params.get("algorithm"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
            qop=qop,
            nc=nc,
        )

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
        ]
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        return "Digest " + ", ".join(parts)


# --- the digest itself -------------------------------------------------------


def digest_response(
    *,
    algorithm: str | None,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1, RFC 2069 when ``qop`` is None)."""
    name = canonical_algorithm(algorithm)
    if name not in _PREFERENCE:
        raise LocalProtocolError(f"unsupported Digest algorithm {name!r}")
    session = name.endswith("-sess")
    hash_hex = _HASHES[name.removesuffix("-sess")]

    def h(text: str) -> str:
        return hash_hex(text.encode("utf-8"))

    a1 = f"{username}:{realm}:{password}"
    if session:
        if cnonce is None:
            raise LocalProtocolError(f"{name} needs a cnonce")
        # RFC 7616 §3.4.2: A1 = H(user:realm:passwd):nonce:cnonce
        a1 = f"{h(a1)}:{nonce}:{cnonce}"
    if qop == "auth-int":
        a2 = f"{method}:{uri}:{hash_hex(body)}"
    elif qop in (None, "auth"):
        a2 = f"{method}:{uri}"
    else:
        raise LocalProtocolError(f"unsupported Digest qop {qop!r}")
    if qop is None:
        return h(f"{h(a1)}:{nonce}:{h(a2)}")
    if nc is None or cnonce is None:
        raise LocalProtocolError("Digest qop needs cnonce and nc")
    return h(f"{h(a1)}:{nonce}:{nc:08x}:{cnonce}:{qop}:{h(a2)}")


# --- client ------------------------------------------------------------------


def choose(challenges: Iterable[Challenge]) -> Challenge:
    """The challenge to answer: the strongest supported algorithm, first offered wins ties."""
    offered = list(challenges)
    usable = [c for c in offered if is_supported(c.algorithm)]
    if not usable:
        names = ", ".join(canonical_algorithm(c.algorithm) for c in offered) or "nothing"
        raise RemoteProtocolError(f"no supported Digest algorithm offered (offered: {names})")
    return min(usable, key=lambda c: _PREFERENCE.index(canonical_algorithm(c.algorithm)))


class DigestClient:
    """Answers Digest challenges for one account (RFC 7616 §3.4)."""

    __slots__ = ("_counts", "_max_nonces", "_password", "username")

    def __init__(self, username: str, password: str, *, max_nonces: int = 16) -> None:
        self.username = username
        self._password = password
        self._max_nonces = max_nonces
        # nonce -> last nc we sent with it. Bounded: servers rotate nonces.
        self._counts: OrderedDict[str, int] = OrderedDict()

    def __repr__(self) -> str:
        return f"DigestClient(username={self.username!r})"

    def respond(
        self, challenge: Challenge, method: str, uri: str, cnonce: str, body: bytes = b""
    ) -> Credentials:
        algorithm = canonical_algorithm(challenge.algorithm)
        if not is_supported(algorithm):
            raise RemoteProtocolError(f"unsupported Digest algorithm {algorithm!r}")
        # auth before auth-int: a proxy may not see the body we would hash.
        if "auth" in challenge.qop:
            qop: str | None = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        elif not challenge.qop:
            qop = None  # RFC 2069 style, still common on old PBXes
        else:
            offered = ",".join(challenge.qop)
            raise RemoteProtocolError(f"no supported Digest qop offered (offered: {offered})")
        if not cnonce and (qop is not None or algorithm.endswith("-sess")):
            raise LocalProtocolError("a Digest cnonce must not be empty")
        nc: int | None = None
        sent_cnonce: str | None = None
        if qop is not None:
            nc = self._counts.pop(challenge.nonce, 0) + 1
            self._counts[challenge.nonce] = nc
            while len(self._counts) > self._max_nonces:
                self._counts.popitem(last=False)
            sent_cnonce = cnonce
        elif algorithm.endswith("-sess"):
            sent_cnonce = cnonce
        response = digest_response(
            algorithm=algorithm,
            username=self.username,
            realm=challenge.realm,
            password=self._password,
            method=method,
            uri=uri,
            nonce=challenge.nonce,
            qop=qop,
            nc=nc,
            cnonce=sent_cnonce,
            body=body,
        )
        return Credentials(
            username=self.username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            # Echo the server's spelling, and nothing when it sent nothing:
            # some RFC 2069 era PBXes reject an algorithm they did not name.
            algorithm=challenge.algorithm,
            cnonce=sent_cnonce,
            opaque=challenge.opaque,
            qop=qop,
            nc=nc,
        )


# --- server ------------------------------------------------------------------


class NonceState(Enum):
    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


_NONCE_BODY = struct.Struct(">dQ")  # issue time, serial
_NONCE_MAC_BYTES = 16
_NONCE_CHARS = 43  # base64url of 8 + 8 + 16 bytes, unpadded


class NonceIssuer:
    """Stateless server nonces: ``base64url(issued_at, serial, HMAC-SHA256[:16])``.

    ``now`` must come from one clock for issue and check (the process's
    monotonic clock; wall-clock time if several nodes share the secret).
    """

    __slots__ = ("_secret", "_serial", "lifetime")

    def __init__(self, secret: bytes, lifetime: float) -> None:
        if len(secret) < 16:
            raise LocalProtocolError("the nonce secret must be at least 16 bytes")
        if not lifetime > 0:
            raise LocalProtocolError("the nonce lifetime must be positive")
        self._secret = secret
        self.lifetime = lifetime
        # Two nonces issued at the same instant still differ, so the replay
        # map never merges two clients' counters.
        self._serial = 0

    def __repr__(self) -> str:
        return f"NonceIssuer(lifetime={self.lifetime!r})"

    def _mac(self, body: bytes) -> bytes:
        return hmac.digest(self._secret, b"dialer-digest-nonce\x00" + body, "sha256")[
            :_NONCE_MAC_BYTES
        ]

    def issue(self, now: float) -> str:
        if not math.isfinite(now):
            raise LocalProtocolError(f"cannot issue a nonce at time {now!r}")
        self._serial += 1
        body = _NONCE_BODY.pack(now, self._serial)
        return base64.urlsafe_b64encode(body + self._mac(body)).rstrip(b"=").decode("ascii")

    def issued_at(self, nonce: str) -> float | None:
        """When we issued ``nonce``, or None if we did not."""
        if len(nonce) != _NONCE_CHARS or not nonce.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[: _NONCE_BODY.size], raw[_NONCE_BODY.size :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        issued: float = _NONCE_BODY.unpack(body)[0]
        return issued

    def check(self, nonce: str, now: float) -> NonceState:
        issued = self.issued_at(nonce)
        if issued is None:
            return NonceState.INVALID
        # A nonce "from the future" is ours (the MAC holds) but from before a
        # clock reset: stale, so the client silently fetches a fresh one.
        if now - issued > self.lifetime or issued > now:
            return NonceState.STALE
        return NonceState.VALID


class AuthResult(Enum):
    OK = "ok"
    STALE = "stale"  # right password, old nonce: challenge again with stale=TRUE
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Verdict:
    """``AuthResult`` plus a reason for the log; the same for unknown user and wrong password."""

    result: AuthResult
    reason: str


# Hashed instead of the missing password so an unknown user costs the same
# work and gets the same verdict as a wrong password.
_DUMMY_PASSWORD = "\x00unknown-user\x00"


class DigestVerifier:
    """Checks ``Credentials`` against our own challenges for one realm."""

    __slots__ = (
        "_accept",
        "_allow_rfc2069",
        "_issuer",
        "_max_nonces",
        "_seen",
        "_watermark",
        "realm",
    )

    def __init__(
        self,
        realm: str,
        issuer: NonceIssuer,
        *,
        accept: Iterable[str] = ("SHA-256", "MD5"),
        allow_rfc2069: bool = False,
        max_nonces: int = 10_000,
    ) -> None:
        self.realm = realm
        self._issuer = issuer
        self._accept = frozenset(canonical_algorithm(a) for a in accept)
        unknown = sorted(a for a in self._accept if a not in _PREFERENCE)
        if unknown:
            raise LocalProtocolError(f"unsupported Digest algorithms {unknown}")
        # Without qop there is no nc, so nothing stops a replay within the
        # nonce lifetime: only for PBXes that cannot do better.
        self._allow_rfc2069 = allow_rfc2069
        self._max_nonces = max_nonces
        # nonce -> highest nc accepted (RFC 7616 §3.4.5 replay protection).
        self._seen: OrderedDict[str, int] = OrderedDict()
        # Issue time of the newest nonce evicted from _seen: older unknown
        # nonces may have been used already, so they are treated as stale.
        self._watermark = -math.inf

    def __repr__(self) -> str:
        return f"DigestVerifier(realm={self.realm!r}, issuer={self._issuer!r})"

    def challenge(
        self, now: float, stale: bool = False, algorithms: Iterable[str] = ("SHA-256", "MD5")
    ) -> list[Challenge]:
        """One challenge per algorithm, best first (RFC 8760 §2.4), sharing a nonce."""
        nonce = self._issuer.issue(now)
        challenges = []
        for algorithm in algorithms:
            name = canonical_algorithm(algorithm)
            if name not in self._accept:
                raise LocalProtocolError(f"challenge with {name} which this verifier rejects")
            challenges.append(
                Challenge(self.realm, nonce, algorithm=name, qop=("auth",), stale=stale)
            )
        return challenges

    def verify(
        self,
        credentials: Credentials,
        method: str,
        password: str | None,
        now: float,
        *,
        request_uri: str | None = None,
    ) -> AuthResult:
        """``password`` is None for an unknown user; the answer is then FAILED."""
        return self.judge(credentials, method, password, now, request_uri=request_uri).result

    def judge(
        self,
        credentials: Credentials,
        method: str,
        password: str | None,
        now: float,
        *,
        request_uri: str | None = None,
    ) -> Verdict:
        """Like ``verify`` with a reason that never says whether the user exists."""
        algorithm = canonical_algorithm(credentials.algorithm)
        if credentials.realm != self.realm:
            return Verdict(AuthResult.FAILED, f"realm {credentials.realm!r} is not ours")
        if algorithm not in self._accept:
            return Verdict(AuthResult.FAILED, f"algorithm {algorithm!r} not accepted")
        if credentials.qop is None and not self._allow_rfc2069:
            return Verdict(AuthResult.FAILED, "credentials without qop not accepted")
        if credentials.qop not in (None, "auth"):
            return Verdict(AuthResult.FAILED, f"qop {credentials.qop!r} not offered")
        if request_uri is not None and credentials.uri != request_uri:
            return Verdict(AuthResult.FAILED, "digest uri does not match the Request-URI")
        if algorithm.endswith("-sess") and credentials.cnonce is None:
            return Verdict(AuthResult.FAILED, f"{algorithm} without cnonce")
        issued = self._issuer.issued_at(credentials.nonce)
        if issued is None:
            return Verdict(AuthResult.FAILED, "nonce not issued by us")
        state = self._issuer.check(credentials.nonce, now)
        if credentials.nonce not in self._seen and issued <= self._watermark:
            state = NonceState.STALE
        expected = digest_response(
            algorithm=algorithm,
            username=credentials.username,
            realm=self.realm,
            password=_DUMMY_PASSWORD if password is None else password,
            method=method,
            uri=credentials.uri,
            nonce=credentials.nonce,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
        )
        matches = hmac.compare_digest(
            expected.encode("ascii"), credentials.response.lower().encode("ascii")
        )
        if not matches or password is None:
            return Verdict(AuthResult.FAILED, "response does not match")
        # RFC 7616 §3.3: stale only when the digest itself was right.
        if state is NonceState.STALE:
            return Verdict(AuthResult.STALE, "nonce is stale")
        if credentials.qop is not None:
            assert credentials.nc is not None
            last = self._seen.get(credentials.nonce, 0)
            if credentials.nc <= last:
                return Verdict(AuthResult.FAILED, f"nonce count {credentials.nc:08x} replayed")
            self._remember(credentials.nonce, credentials.nc)
        return Verdict(AuthResult.OK, "authenticated")

    def _remember(self, nonce: str, nc: int) -> None:
        self._seen.pop(nonce, None)
        self._seen[nonce] = nc
        while len(self._seen) > self._max_nonces:
            evicted, _ = self._seen.popitem(last=False)
            issued = self._issuer.issued_at(evicted)
            if issued is not None:
                self._watermark = max(self._watermark, issued)
