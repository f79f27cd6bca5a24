"""The little HTTP/1.1 the metrics endpoint needs, sans-IO: a request head in, a response out.

Prometheus, a load balancer's health check and an operator's curl only ever
send ``GET``/``HEAD`` with no body, so the server reads one request head
(RFC 9112 §2.1: start-line, header fields, empty line), answers it and closes
the connection. ``parse_head`` turns the head's bytes into a ``RequestHead``
or raises ``HttpError`` carrying the status to answer with; ``response``
builds the bytes to send. Sizes are capped by the caller before parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 9110 §5.5: field-value characters (VCHAR, SP, HTAB, obs-text); no CR, LF or NUL.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")

MAX_HEADERS = 100
MAX_REQUEST_LINE = 4096
MAX_HEAD = 16384

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request we refuse, and the status that says why (a remote error: the client's fault)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {REASONS.get(status, '')}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    path: str  # the request target's path, without the query
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in arrival order

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


class HeadBuffer:
    """Collects bytes until a whole request head has arrived, within size limits.

    ``feed`` returns the head (up to and including the empty line) once it is
    complete, None while more is needed, and raises ``HttpError`` (414 or 431)
    as soon as the request line or the head is longer than allowed, so an
    endless header never fills memory.
    """

    def __init__(self, max_line: int = MAX_REQUEST_LINE, max_head: int = MAX_HEAD) -> None:
        self._max_line = max_line
        self._max_head = max_head
        self._data = bytearray()

    def feed(self, data: bytes) -> bytes | None:
        self._data += data
        # RFC 9112 §2.2: ignore empty lines received before the request-line.
        while self._data.startswith(b"\r\n"):
            del self._data[:2]
        line_end = self._data.find(b"\r\n")
        if (line_end < 0 and len(self._data) > self._max_line) or line_end > self._max_line:
            raise HttpError(414, f"the request line is longer than {self._max_line} bytes")
        end = self._data.find(b"\r\n\r\n")
        if end < 0:
            if len(self._data) > self._max_head:
                raise HttpError(431, f"the request head is longer than {self._max_head} bytes")
            return None
        if end + 4 > self._max_head:
            raise HttpError(431, f"the request head is longer than {self._max_head} bytes")
        return bytes(self._data[: end + 4])


def parse_head(data: bytes) -> RequestHead:
    """Parse a request head ending in CRLF CRLF; ``HttpError`` names what is wrong."""
    if not data.endswith(b"\r\n\r\n"):
        raise HttpError(400, "the request head does not end with an empty line")
    lines = data[:-4].split(b"\r\n")
    method, path, version = _request_line(lines[0])
    fields = lines[1:]
    if len(fields) > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    headers = tuple(_field(line) for line in fields)
    head = RequestHead(method, path, version, headers)
    hosts = head.header("host")
    # RFC 9112 §3.2: a 1.1 request without exactly one Host is answered 400.
    if version >= (1, 1) and len(hosts) != 1:
        raise HttpError(400, f"an HTTP/1.1 request needs one Host header, got {len(hosts)}")
    _refuse_body(head)
    return head


def _request_line(line: bytes) -> tuple[str, str, tuple[int, int]]:
    # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(400, f"malformed request line {line[:80]!r}")
    raw_method, target, raw_version = parts
    if _TOKEN.fullmatch(raw_method) is None:
        raise HttpError(400, f"malformed method {raw_method[:40]!r}")
    version = _VERSION.fullmatch(raw_version)
    if version is None:
        raise HttpError(400, f"malformed HTTP version {raw_version[:40]!r}")
    major, minor = int(version[1]), int(version[2])
    if major != 1:
        raise HttpError(505, f"only HTTP/1.x is served, got HTTP/{major}.{minor}")
    return raw_method.decode("ascii"), _path(target), (major, minor)


def _path(target: bytes) -> str:
    """The path of an origin-form (``/metrics?x``) or absolute-form target (RFC 9112 §3.2)."""
    if any(byte <= 0x20 or byte >= 0x7F for byte in target):
        raise HttpError(400, "the request target has a control, space or non-ASCII byte")
    text = target.decode("ascii")
    if text.startswith(("http://", "https://")):
        rest = text.split("://", 1)[1]
        slash = rest.find("/")
        text = "/" if slash < 0 else rest[slash:]
    elif text == "*":
        return text  # asterisk-form: only OPTIONS uses it, and OPTIONS is refused anyway
    elif not text.startswith("/"):
        raise HttpError(400, f"the request target {text[:80]!r} is not a path")
    return text.split("?", 1)[0].split("#", 1)[0]


def _field(line: bytes) -> tuple[str, str]:
    # RFC 9112 §5: field-line = field-name ":" OWS field-value OWS
    if line[:1] in (b" ", b"\t"):
        # §5.2: obsolete line folding; a server may reject it with 400.
        raise HttpError(400, "obsolete line folding in the header fields")
    name, colon, value = line.partition(b":")
    if not colon:
        raise HttpError(400, f"a header line has no colon: {line[:80]!r}")
    if _TOKEN.fullmatch(name) is None:
        # §5.1: no whitespace between the name and the colon; a 400 is required.
        raise HttpError(400, f"malformed header name {name[:40]!r}")
    value = value.strip(b" \t")
    if _FIELD_VALUE.fullmatch(value) is None:
        raise HttpError(400, f"header {name.decode('ascii')!r} has a forbidden byte")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _refuse_body(head: RequestHead) -> None:
    """GET and HEAD carry no body here; a body left unread would reset the connection."""
    if head.header("transfer-encoding"):
        raise HttpError(400, "a request body (Transfer-Encoding) is not accepted")
    lengths = head.header("content-length")
    if len(set(lengths)) > 1:
        raise HttpError(400, f"conflicting Content-Length values {sorted(set(lengths))}")
    if lengths:
        if not lengths[0].isdigit():
            raise HttpError(400, f"malformed Content-Length {lengths[0][:40]!r}")
        if int(lengths[0]) != 0:
            raise HttpError(413, "a request body is not accepted")


def response(
    status: int,
    body: bytes,
    content_type: str,
    *,
    head_only: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response that closes the connection after it."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
        *(f"{name}: {value}" for name, value in extra),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
