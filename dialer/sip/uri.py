"""SIP, SIPS (RFC 3261 §19.1, grammar §25.1) and tel (RFC 3966) URIs.

``user`` and ``password`` are held unescaped (``sip:%75ser@h`` has user
``user``, §19.1.4 makes them equal) and re-escaped by ``str()``; parameters
and headers are kept as written, since unescaping them is the business of
whoever interprets a given parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialer.sip.errors import RemoteProtocolError
from dialer.sip.headers import format_host, parse_hostport

SCHEMES = ("sip", "sips", "tel")

_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
_USER_SAFE = _UNRESERVED | frozenset("&=+$,;?/")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_SAFE = _UNRESERVED | frozenset("&=+$,")
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
_PARAM_SAFE = _UNRESERVED | frozenset("[]/:&+$%")
# hvalue chars: hnv-unreserved / unreserved / escaped; hnv-unreserved = [ ] / ? : + $
_HEADER_SAFE = _UNRESERVED | frozenset("[]/?:+$%")
_HEX = frozenset("0123456789abcdefABCDEF")
_TEL_SAFE = _UNRESERVED | frozenset("+#%&=$,/:[]")

UriParams = tuple[tuple[str, str | None], ...]


def unescape(text: str, safe: frozenset[str], where: str) -> str:
    """Resolve ``%HH`` escapes; anything outside ``safe`` unescaped is malformed."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(h in _HEX for h in pair):
                raise RemoteProtocolError(f"malformed %-escape in URI {where}: {text!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        if c not in safe:
            raise RemoteProtocolError(f"character {c!r} not allowed in URI {where}: {text!r}")
        out += c.encode()
        i += 1
    # surrogateescape keeps non-UTF-8 octets (e.g. %FF) round-trippable.
    return out.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str]) -> str:
    out: list[str] = []
    for byte in text.encode("utf-8", "surrogateescape"):
        c = chr(byte)
        out.append(c if c in safe else f"%{byte:02X}")
    return "".join(out)


def _check_chars(text: str, safe: frozenset[str], where: str) -> None:
    if not text or not all(c in safe for c in text):
        raise RemoteProtocolError(f"malformed URI {where}: {text!r}")


def _parse_pairs(text: str, sep: str, safe: frozenset[str], where: str) -> UriParams:
    pairs: list[tuple[str, str | None]] = []
    for raw in text.split(sep):
        name, eq, value = raw.partition("=")
        _check_chars(name, safe, where)
        if eq:
            _check_chars(value, safe, where)
            pairs.append((name, value))
        else:
            pairs.append((name, None))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A parsed sip:, sips: or tel: URI (for tel, the number is in ``user``, host is "")."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: UriParams = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (case-insensitive name); ``""`` for a valueless one."""
        wanted = name.lower()
        for n, v in self.params:
            if n.lower() == wanted:
                return "" if v is None else v
        return None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme:
            raise RemoteProtocolError(f"malformed URI (no scheme): {text!r}")
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            raise RemoteProtocolError(f"unsupported URI scheme: {scheme}", 416)
        if any(c.isspace() for c in text):
            raise RemoteProtocolError(f"whitespace in URI: {text!r}")
        if scheme == "tel":
            return cls._parse_tel(rest)
        user: str | None = None
        password: str | None = None
        if "@" in rest:
            # '@' cannot appear unescaped in host, params or headers, so the last
            # one ends the userinfo even when the user part holds ';' or '?'.
            userinfo, _, rest = rest.rpartition("@")
            raw_user, has_password, raw_password = userinfo.partition(":")
            if not raw_user:
                raise RemoteProtocolError(f"empty user part in URI: {text!r}")
            user = unescape(raw_user, _USER_SAFE, "user part")
            if has_password:
                password = unescape(raw_password, _PASSWORD_SAFE, "password")
        rest, has_headers, header_text = rest.partition("?")
        hostport, has_params, param_text = rest.partition(";")
        host, port = parse_hostport(hostport, "URI")
        params = _parse_pairs(param_text, ";", _PARAM_SAFE, "parameter") if has_params else ()
        headers: tuple[tuple[str, str], ...] = ()
        if has_headers:
            pairs = _parse_pairs(header_text, "&", _HEADER_SAFE, "header")
            if any(v is None for _, v in pairs):
                raise RemoteProtocolError(f"URI header without '=': {text!r}")
            headers = tuple((n, v or "") for n, v in pairs)
        return cls(scheme, user, password, host, port, params, headers)

    @classmethod
    def _parse_tel(cls, rest: str) -> SipUri:
        number, has_params, param_text = rest.partition(";")
        _check_chars(number, _TEL_SAFE, "telephone-subscriber")
        params = _parse_pairs(param_text, ";", _TEL_SAFE, "parameter") if has_params else ()
        return cls("tel", number, None, "", None, params, ())

    def __str__(self) -> str:
        params = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self.params)
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{params}"
        userinfo = ""
        if self.user is not None:
            userinfo = escape(self.user, _USER_SAFE)
            if self.password is not None:
                userinfo += ":" + escape(self.password, _PASSWORD_SAFE)
            userinfo += "@"
        port = "" if self.port is None else f":{self.port}"
        headers = "&".join(f"{n}={v}" for n, v in self.headers)
        tail = f"?{headers}" if headers else ""
        return f"{self.scheme}:{userinfo}{format_host(self.host)}{port}{params}{tail}"
