"""Header fields of RFC 3261 §7.3 and §20, and the grammar pieces they share (§25.1).

``Headers`` keeps the fields of one message in wire order with their names in
long canonical form; values are kept as received (after unfolding), so a
proxy-like use can forward what it does not understand. The structured views
(``Via``, ``CSeq``, ``NameAddr``) are parsed on demand from those strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError

# §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")

# §7.3.3 compact forms, plus the ones registered since (RFC 3265, 3515, 3892, 4028, 4474).
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "Path",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update(COMPACT_FORMS)

# Headers whose grammar is a comma-separated list (§7.3.1): only these may be
# split. Authorization and friends contain commas inside one value.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "P-Asserted-Identity",
        "Path",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Require",
        "Route",
        "Service-Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    )
)

Params = tuple[tuple[str, str | None], ...]


def canonical_name(name: str) -> str:
    """Long, conventionally cased form of a header name; unknown names are kept as given."""
    return _CANONICAL.get(name.lower(), name)


def is_token(text: str) -> bool:
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def split_commas(value: str) -> list[str]:
    """Split a list header on top-level commas (not inside quotes or ``<>``), stripped."""
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    while i < len(value):
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return parts


def _split_semicolons(text: str) -> list[str]:
    """Split on top-level ``;`` (not inside quoted strings)."""
    parts: list[str] = []
    start = 0
    in_quotes = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise RemoteProtocolError("unterminated quoted string in parameters")
    parts.append(text[start:])
    return parts


def parse_params(text: str, where: str) -> Params:
    """Parse ``*( SEMI generic-param )``; ``text`` starts right after the first ``;``.

    Values are kept as written (a quoted value keeps its quotes) so that
    re-serialisation is faithful.
    """
    params: list[tuple[str, str | None]] = []
    for raw in _split_semicolons(text):
        name, eq, value = raw.partition("=")
        name = name.strip()
        if not is_token(name):
            raise RemoteProtocolError(f"empty or malformed parameter in {where}: {raw.strip()!r}")
        if not eq:
            params.append((name, None))
            continue
        value = value.strip()
        quoted = len(value) >= 2 and value[0] == '"' and value[-1] == '"'
        if not value or (not quoted and any(c.isspace() or c == '"' for c in value)):
            raise RemoteProtocolError(f"malformed value of parameter {name!r} in {where}")
        params.append((name, value))
    return tuple(params)


def format_params(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def param(params: Params, name: str) -> str | None:
    """Value of a parameter (case-insensitive name); ``""`` for a valueless one."""
    wanted = name.lower()
    for n, v in params:
        if n.lower() == wanted:
            return "" if v is None else v
    return None


def _set_param(params: Params, name: str, value: str | None) -> Params:
    wanted = name.lower()
    kept = tuple((n, v) for n, v in params if n.lower() != wanted)
    return (*kept, (name, value))


def format_host(host: str) -> str:
    """An IPv6 address goes back into brackets (§25.1 IPv6reference)."""
    return f"[{host}]" if ":" in host else host


def parse_hostport(text: str, where: str) -> tuple[str, int | None]:
    """``host [ ":" port ]`` with IPv6 references; the host comes back without brackets."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise RemoteProtocolError(f"unterminated IPv6 reference in {where}")
        host = text[1:close]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise RemoteProtocolError(f"malformed IPv6 address in {where}: {host!r}") from None
        rest = text[close + 1 :].strip()
    else:
        host, colon, port_text = text.partition(":")
        host = host.strip()
        if not host or not host.isascii() or not all(c.isalnum() or c in "-._" for c in host):
            raise RemoteProtocolError(f"malformed host in {where}: {text!r}")
        rest = colon + port_text
    if not rest:
        return host, None
    if not rest.startswith(":"):
        raise RemoteProtocolError(f"malformed host in {where}: {text!r}")
    port_text = rest[1:].strip()
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise RemoteProtocolError(f"malformed port in {where}: {port_text!r}")
    return host, int(port_text)


def unquote(quoted: str) -> str:
    """The content of a quoted-string (with its quotes) with quoted-pairs resolved."""
    out: list[str] = []
    i = 1
    end = len(quoted) - 1
    while i < end:
        c = quoted[i]
        if c == "\\" and i + 1 < end:
            i += 1
            c = quoted[i]
        out.append(c)
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Quote ``text`` as a quoted-string, escaping what qdtext cannot carry (§25.1)."""
    out = ['"']
    for c in text:
        if c in '"\\' or (ord(c) < 0x20 and c != "\t") or c == "\x7f":
            out.append("\\")
        out.append(c)
    out.append('"')
    return "".join(out)


def _end_of_quoted(text: str, start: int) -> int:
    """Index of the closing quote of the quoted-string opening at ``start``."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise RemoteProtocolError("unterminated quoted string")


def _has_scheme(uri: str) -> bool:
    scheme, colon, _ = uri.partition(":")
    return (
        bool(colon)
        and bool(scheme)
        and scheme[0].isascii()
        and scheme[0].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
    )


@dataclass(frozen=True, slots=True)
class Headers:
    """Header fields in wire order; names canonical, lookups case-insensitive."""

    items: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        items: list[tuple[str, str]] = []
        for name, value in pairs:
            if not is_token(name):
                raise LocalProtocolError(f"header name is not a token: {name!r}")
            if "\r" in value or "\n" in value:
                raise LocalProtocolError(f"header {name} value contains CR or LF")
            items.append((canonical_name(name), value))
        return cls(tuple(items))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.values(name))

    def values(self, name: str) -> tuple[str, ...]:
        """Every field value of ``name`` as received, one per header line, unsplit."""
        wanted = canonical_name(name).lower()
        return tuple(v for n, v in self.items if n.lower() == wanted)

    def get_all(self, name: str) -> tuple[str, ...]:
        """All values in order; list headers (§7.3.1) are split on commas."""
        raw = self.values(name)
        if canonical_name(name).lower() not in LIST_HEADERS:
            return raw
        return tuple(part for value in raw for part in split_commas(value))

    def get(self, name: str) -> str | None:
        found = self.get_all(name)
        return found[0] if found else None

    def with_header(self, name: str, value: str) -> Headers:
        return Headers(self.items + Headers.of([(name, value)]).items)

    def replace(self, name: str, value: str) -> Headers:
        return self.without(name).with_header(name, value)

    def without(self, name: str) -> Headers:
        wanted = canonical_name(name).lower()
        return Headers(tuple((n, v) for n, v in self.items if n.lower() != wanted))


@dataclass(frozen=True, slots=True)
class Via:
    """One via-parm (§20.42): ``SIP/2.0/transport sent-by *(;via-params)``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        return Via(self.transport, self.host, self.port, _set_param(self.params, name, value))

    @classmethod
    def parse(cls, value: str) -> Via:
        head, semi, rest = value.partition(";")
        # sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
        pieces = head.split("/")
        if len(pieces) != 3:
            raise RemoteProtocolError(f"malformed Via: {value!r}")
        name, version = pieces[0].strip(), pieces[1].strip()
        transport_and_host = pieces[2].strip().split(None, 1)
        if len(transport_and_host) != 2:
            raise RemoteProtocolError(f"malformed Via (no sent-by): {value!r}")
        transport, sent_by = transport_and_host
        if name.upper() != "SIP" or version != "2.0":
            raise RemoteProtocolError(f"Via protocol must be SIP/2.0, got {name}/{version}")
        if not is_token(transport):
            raise RemoteProtocolError(f"malformed Via transport: {transport!r}")
        host, port = parse_hostport(sent_by, "Via")
        params = parse_params(rest, "Via") if semi else ()
        return cls(transport.upper(), host, port, params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return (
            f"SIP/2.0/{self.transport} {format_host(self.host)}{port}{format_params(self.params)}"
        )


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 1*DIGIT LWS Method`` (§20.16); the number is below 2**32."""

    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
            raise RemoteProtocolError(f"malformed CSeq: {value!r}")
        if not is_token(parts[1]):
            raise RemoteProtocolError(f"malformed CSeq method: {parts[1]!r}")
        seq = int(parts[0])
        if seq >= 2**32:
            raise RemoteProtocolError(f"CSeq number out of range: {parts[0]}")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From/To/Contact/Route value (§20.10): ``[display] <uri> *(;param)`` or addr-spec.

    ``display`` is unquoted (quoted-pairs resolved); ``uri`` is the URI text,
    any scheme (RFC 4475 §3.1.2.x: unknown schemes in To/From are fine).
    """

    display: str | None
    uri: str
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        return NameAddr(self.display, self.uri, _set_param(self.params, "tag", tag))

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return NameAddr(self.display, self.uri, _set_param(self.params, name, value))

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        text = value.strip()
        display: str | None = None
        if text.startswith('"'):
            close = _end_of_quoted(text, 0)
            display = unquote(text[: close + 1])
            text = text[close + 1 :].lstrip()
            if not text.startswith("<"):
                raise RemoteProtocolError(f"display name not followed by <uri>: {value!r}")
        elif "<" in text:
            lt = text.index("<")
            words = text[:lt].split()
            # lwsdisp (RFC 4475 §3.1.1.6): no LWS before "<" is accepted.
            if not all(is_token(w) for w in words):
                raise RemoteProtocolError(f"unquoted display name is not tokens: {value!r}")
            display = " ".join(words) if words else None
            text = text[lt:]
        if text.startswith("<"):
            gt = text.find(">")
            if gt < 0:
                raise RemoteProtocolError(f"missing '>' in {value!r}")
            uri = text[1:gt]
            rest = text[gt + 1 :].strip()
            if uri != uri.strip():
                raise RemoteProtocolError(f"whitespace inside <> in {value!r}")
        else:
            uri, semi, after = text.partition(";")
            uri = uri.strip()
            rest = semi + after
            # §20.10: a URI with , ? or ; must be in name-addr form.
            if "?" in uri or "," in uri:
                raise RemoteProtocolError(f"URI with '?' or ',' must be enclosed in <>: {value!r}")
        if not uri or any(c.isspace() for c in uri) or not _has_scheme(uri):
            raise RemoteProtocolError(f"malformed URI in {value!r}")
        if rest and not rest.startswith(";"):
            raise RemoteProtocolError(f"unexpected text after URI in {value!r}")
        params = parse_params(rest[1:], "name-addr") if rest else ()
        return cls(display, uri, params)

    def __str__(self) -> str:
        display = "" if self.display is None else quote(self.display) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"
