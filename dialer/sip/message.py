"""SIP requests and responses (RFC 3261 §7): parse from a datagram, serialise to bytes.

``parse_message`` is the datagram (UDP) reading of §18.3: the body is what
Content-Length says, surplus octets are discarded, a shortfall is an error.
Stream framing lives in ``dialer.sip.framing`` and hands complete messages
here. Every malformed input raises ``RemoteProtocolError`` with the status
the peer deserves (400, 505, 513) and a reason naming the fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.headers import (
    COMPACT_FORMS,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    is_token,
)
from dialer.sip.uri import SipUri

__all__ = [
    "COMPACT_FORMS",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_SIZE",
    "REASON_PHRASES",
    "CSeq",
    "Headers",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "Via",
    "parse_head",
    "parse_message",
]

SIP_VERSION = "SIP/2.0"
DEFAULT_MAX_SIZE = 64 * 1024
DEFAULT_MAX_HEADERS = 100

# §21, plus the 1xx/4xx codes of the extensions a desk phone or trunk uses.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
# Headers that may appear at most once (a second value makes the message ambiguous).
SINGLE = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type")
# Address headers whose values are name-addr/addr-spec; validated on parse.
ADDRESS_LISTS = ("Contact", "Route", "Record-Route")

_VERSION = re.compile(r"SIP/(\d+)\.(\d+)", re.IGNORECASE)
# §25.1 SIP-date = rfc1123-date: "Sun, 06 Nov 1994 08:49:37 GMT"
_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
)


def _mandatory(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise RemoteProtocolError(f"missing mandatory header: {name}")
    return value


class Message:
    """Shared accessors of ``Request`` and ``Response`` (both define ``headers`` and ``body``)."""

    __slots__ = ()
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return _mandatory(self.headers, "Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(_mandatory(self.headers, "CSeq"))

    @property
    def vias(self) -> tuple[Via, ...]:
        values = self.headers.get_all("Via")
        if not values:
            raise RemoteProtocolError("missing mandatory header: Via")
        return tuple(Via.parse(v) for v in values)

    @property
    def top_via(self) -> Via:
        return Via.parse(_mandatory(self.headers, "Via"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(_mandatory(self.headers, "From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(_mandatory(self.headers, "To"))

    def _serialise(self, start_line: str) -> bytes:
        lines = [start_line]
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if length_written:
                    continue
                length_written = True
                lines.append(f"{name}: {len(self.body)}")
                continue
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body


def _check_method(method: str) -> None:
    if not is_token(method):
        raise LocalProtocolError(f"method is not a token: {method!r}")


@dataclass(frozen=True, slots=True)
class Request(Message):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __post_init__(self) -> None:
        _check_method(self.method)
        if not self.uri or any(c.isspace() for c in self.uri):
            raise LocalProtocolError(f"Request-URI is empty or contains whitespace: {self.uri!r}")

    def to_bytes(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} {SIP_VERSION}")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A response to this request per §8.2.6.2.

        Copies every Via (in order), From, To, Call-ID and CSeq; adds ``to_tag``
        to To unless it already carries one; copies Timestamp into a 100
        (§8.2.6.1) and Record-Route into dialog-establishing INVITE responses
        (§12.1.1).
        """
        if self.method == "ACK":
            raise LocalProtocolError("ACK is never answered (§17.1.1.3)")
        pairs: list[tuple[str, str]] = [("Via", v) for v in self.headers.values("Via")]
        from_ = self.headers.values("From")
        to = self.headers.values("To")
        pairs += [("From", v) for v in from_[:1]]
        if to:
            to_value = to[0]
            if to_tag is not None and NameAddr.parse(to_value).tag is None:
                # Appending keeps the peer's To byte for byte, as §8.2.6.2 asks.
                to_value = f"{to_value};tag={to_tag}"
            pairs.append(("To", to_value))
        pairs += [("Call-ID", v) for v in self.headers.values("Call-ID")[:1]]
        pairs += [("CSeq", v) for v in self.headers.values("CSeq")[:1]]
        if status == 100:
            pairs += [("Timestamp", v) for v in self.headers.values("Timestamp")]
        if self.method == "INVITE" and 101 <= status < 300:
            pairs += [("Record-Route", v) for v in self.headers.values("Record-Route")]
        phrase = REASON_PHRASES.get(status, "") if reason is None else reason
        return Response(status, phrase, Headers.of([*pairs, *headers]))


@dataclass(frozen=True, slots=True)
class Response(Message):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise LocalProtocolError(f"status code out of range: {self.status}")
        if "\r" in self.reason or "\n" in self.reason:
            raise LocalProtocolError("reason phrase contains CR or LF")

    def to_bytes(self) -> bytes:
        return self._serialise(f"{SIP_VERSION} {self.status} {self.reason}")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


def parse_head(
    head: bytes, *, max_headers: int = DEFAULT_MAX_HEADERS
) -> tuple[str, list[tuple[str, str]]]:
    """Split a header section (without the blank line) into start line and fields.

    Folded lines (§7.3.1: CRLF followed by SP/HTAB) are joined with one SP;
    names are returned as written.
    """
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("header section is not valid UTF-8") from None
    lines = text.split("\r\n")
    if any("\r" in line or "\n" in line for line in lines):
        raise RemoteProtocolError("bare CR or LF in the header section")
    start = lines[0]
    if not start or start[0] in " \t":
        raise RemoteProtocolError("missing or indented start line")
    fields: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not fields:
                raise RemoteProtocolError("continuation line before any header")
            fields[-1].append(line.strip(" \t"))
            continue
        if not line:
            raise RemoteProtocolError("empty line inside the header section")
        fields.append([line])
        if len(fields) > max_headers:
            raise RemoteProtocolError(f"too many header fields (limit {max_headers})")
    pairs: list[tuple[str, str]] = []
    for parts in fields:
        name, colon, value = parts[0].partition(":")
        name = name.rstrip(" \t")
        if not colon or not is_token(name):
            raise RemoteProtocolError(f"malformed header line: {parts[0]!r}")
        joined = " ".join(p for p in [value.strip(" \t"), *parts[1:]] if p)
        pairs.append((name, joined))
    return start, pairs


def content_length(pairs: Iterable[tuple[str, str]]) -> int | None:
    """The Content-Length of header ``pairs``; None when absent."""
    values = [v for n, v in pairs if canonical_name(n) == "Content-Length"]
    if len(values) > 1:
        raise RemoteProtocolError("multiple Content-Length headers")
    if not values:
        return None
    value = values[0]
    if not value.isdigit() or not value.isascii():
        raise RemoteProtocolError(f"Content-Length is not a non-negative integer: {value!r}")
    return int(value)


def _parse_status_line(line: str) -> tuple[int, str]:
    version, sp, rest = line.partition(" ")
    _check_version(version, "Status-Line")
    code, _, reason = rest.partition(" ")
    if not sp or len(code) != 3 or not code.isdigit() or not code.isascii():
        raise RemoteProtocolError(f"malformed Status-Line: {line!r}")
    status = int(code)
    if not 100 <= status <= 699:
        raise RemoteProtocolError(f"status code out of range: {code}")
    return status, reason


def _parse_request_line(line: str) -> tuple[str, str]:
    # Request-Line = Method SP Request-URI SP SIP-Version: single spaces only
    # (RFC 4475 lwsstart, trws and lwsruri are rejected, which §3.1.2 permits).
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise RemoteProtocolError(f"malformed Request-Line: {line!r}")
    method, uri, version = parts
    if not is_token(method):
        raise RemoteProtocolError(f"malformed method in Request-Line: {method!r}")
    _check_version(version, "Request-Line")
    return method, uri


def _check_version(version: str, where: str) -> None:
    match = _VERSION.fullmatch(version)
    if match is None:
        raise RemoteProtocolError(f"malformed SIP-Version in {where}: {version!r}")
    if version.upper() != SIP_VERSION:
        raise RemoteProtocolError(f"unsupported SIP version: {version}", 505)


def _check_request_uri(uri: str) -> None:
    scheme, colon, _ = uri.partition(":")
    if not colon or not scheme or not scheme[0].isalpha() or not scheme.isascii():
        raise RemoteProtocolError(f"malformed Request-URI: {uri!r}")
    if not all(c.isalnum() or c in "+-." for c in scheme):
        raise RemoteProtocolError(f"malformed Request-URI: {uri!r}")
    if scheme.lower() in ("sip", "sips"):
        parsed = SipUri.parse(uri)
        if parsed.headers:
            # §19.1.5: headers are not allowed in a Request-URI (RFC 4475 escruri).
            raise RemoteProtocolError("Request-URI must not contain headers")


def _validate(message: Request | Response) -> None:
    headers = message.headers
    for name in MANDATORY:
        if name not in headers:
            raise RemoteProtocolError(f"missing mandatory header: {name}")
    for name in SINGLE:
        if len(headers.values(name)) > 1:
            raise RemoteProtocolError(f"multiple {name} headers")
    cseq = message.cseq
    if isinstance(message, Request) and cseq.method != message.method:
        raise RemoteProtocolError(
            f"CSeq method {cseq.method} does not match request method {message.method}"
        )
    call_id = message.call_id
    if any(c.isspace() for c in call_id):
        raise RemoteProtocolError(f"malformed Call-ID: {call_id!r}")
    message.vias  # noqa: B018 - parsing validates every via-parm
    message.from_  # noqa: B018
    message.to  # noqa: B018
    for name in ADDRESS_LISTS:
        for value in headers.get_all(name):
            if not (name == "Contact" and value == "*"):
                NameAddr.parse(value)
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and (
        not max_forwards.isdigit() or not max_forwards.isascii() or int(max_forwards) > 255
    ):
        raise RemoteProtocolError(f"Max-Forwards out of range: {max_forwards!r}")
    date = headers.get("Date")
    if date is not None and _DATE.fullmatch(date) is None:
        raise RemoteProtocolError(f"Date is not an RFC 1123 date in GMT: {date!r}")


def parse_message(
    data: bytes,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
) -> Request | Response:
    """Parse one SIP message from a datagram (or a frame cut by ``StreamFramer``)."""
    if len(data) > max_size:
        raise RemoteProtocolError(
            f"message too large: {len(data)} bytes exceeds the {max_size}-byte limit", 513
        )
    # §7.5: CRLFs before the start line are ignored.
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise RemoteProtocolError("no empty line after the header section")
    start, pairs = parse_head(data[:end], max_headers=max_headers)
    is_response = start[:4].upper() == "SIP/"
    status_line = _parse_status_line(start) if is_response else None
    request_line = None if is_response else _parse_request_line(start)
    rest = data[end + 4 :]
    length = content_length(pairs)
    if length is None:
        body = rest
    elif length > len(rest):
        raise RemoteProtocolError(
            f"Content-Length {length} exceeds the {len(rest)} body bytes received"
        )
    else:
        # §18.3: octets past Content-Length in a datagram are discarded.
        body = rest[:length]
    headers = Headers.of(pairs)
    message: Request | Response
    if status_line is not None:
        message = Response(status_line[0], status_line[1], headers, body)
    else:
        assert request_line is not None
        method, uri = request_line
        _check_request_uri(uri)
        message = Request(method, uri, headers, body)
    _validate(message)
    return message
