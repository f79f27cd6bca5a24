"""Free loopback ports, asked of the OS rather than guessed.

The machine is shared: 5060, 6000 or 8888 may belong to someone else, so each
peer gets ports the kernel just handed out. There is a window between closing
the probe socket and the peer binding it; on loopback with ephemeral ports that
race is rare, and a peer that loses it fails loudly at bind time.
"""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"

# Enough tries to find an even/odd pair even when the ephemeral range is busy.
_PAIR_ATTEMPTS = 64


def _bound(kind: socket.SocketKind, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        raise
    return sock


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nobody held a moment ago."""
    with _bound(socket.SOCK_DGRAM, 0) as sock:
        port: int = sock.getsockname()[1]
        return port


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nobody held a moment ago."""
    with _bound(socket.SOCK_STREAM, 0) as sock:
        port: int = sock.getsockname()[1]
        return port


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP, for SIP listeners that serve both."""
    for _ in range(_PAIR_ATTEMPTS):
        with _bound(socket.SOCK_DGRAM, 0) as udp:
            port: int = udp.getsockname()[1]
            try:
                with _bound(socket.SOCK_STREAM, port):
                    return port
            except OSError:
                continue
    raise OSError("no port free for both UDP and TCP on 127.0.0.1")


def free_sip_tls_port() -> int:
    """A port free for UDP and TCP whose successor is free for TCP: baresip listens on
    SIP over UDP and TCP on it and SIP over TLS on the next one."""
    for _ in range(_PAIR_ATTEMPTS):
        port = free_udp_tcp_port()
        try:
            with _bound(socket.SOCK_STREAM, port + 1):
                return port
        except OSError:
            continue
    raise OSError("no port free for UDP and TCP with the next one free for TCP on 127.0.0.1")


def free_port_pair(span: int = 2) -> int:
    """An even UDP port with the ``span - 1`` after it also free: RTP on it, RTCP on +1
    (RFC 3550 §11); SIPp also binds +2 for video, so it asks for a span of 4."""
    for _ in range(_PAIR_ATTEMPTS):
        with _bound(socket.SOCK_DGRAM, 0) as probe:
            port: int = probe.getsockname()[1]
        even = port if port % 2 == 0 else port - 1
        if even < 1024 or even + span > 65536:
            continue
        try:
            with contextlib.ExitStack() as held:
                for offset in range(span):
                    held.enter_context(_bound(socket.SOCK_DGRAM, even + offset))
                return even
        except OSError:
            continue
    raise OSError(f"no {span} free UDP ports in a row from an even one on 127.0.0.1")


def listening(port: int, kind: socket.SocketKind) -> bool:
    """Whether some process has ``port`` bound (UDP) or listening (TCP) on IPv4 now.

    Read from /proc rather than probed with a bind, which could take the port
    from the very peer being waited for.
    """
    table, wanted_state = ("udp", None) if kind is socket.SOCK_DGRAM else ("tcp", "0A")
    suffix = f":{port:04X}"
    with open(f"/proc/net/{table}", encoding="ascii") as rows:
        next(rows)  # the header
        for row in rows:
            fields = row.split()
            if fields[1].endswith(suffix) and wanted_state in (None, fields[3]):
                return True
    return False
