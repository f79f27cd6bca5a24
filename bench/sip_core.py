"""Benchmark of the sans-IO SIP core: parse/serialise and whole call setups.

Prints medians over repeated runs and writes them to bench/results.md.
Run: uv run python bench/sip_core.py
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.endpoint import SipEndpoint
from dialer.sip.message import Request, parse_message
from dialer.sip.registrar import Registrar
from dialer.sip.registration import RegistrationClient, RegistrationTarget

RESULTS = Path(__file__).with_name("results.md")
INVITE = (
    b"INVITE sip:13800138000@trunk.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Dialer" <sip:dialer@10.0.0.1>;tag=1928301774\r\n'
    b"To: <sip:13800138000@trunk.example.com>\r\n"
    b"Call-ID: a84b4c76e66710@10.0.0.1\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:dialer@10.0.0.1:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 129\r\n\r\n"
    b"v=0\r\no=dialer 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


def median_rate(run: Callable[[], int], repeats: int = 5) -> tuple[float, float]:
    """Operations per second: median and spread (max/min) over ``repeats`` runs."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), max(rates) / min(rates)


def parse_many(n: int = 5000) -> int:
    for _ in range(n):
        parse_message(INVITE)
    return n


def round_trip_many(n: int = 5000) -> int:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    for _ in range(n):
        parse_message(message.to_bytes())
    return n


def registrations(n: int = 300) -> int:
    """Full digest REGISTER exchanges (401, then 200) through two endpoints, in memory."""
    verifier = DigestVerifier("dialer.local", NonceIssuer(b"k" * 32, lifetime=300))
    registrar = Registrar(verifier, {str(1000 + i): "pw" for i in range(n)})
    service = SipEndpoint(("127.0.0.1", 5060), registrar=registrar)
    rng = random.Random(1)
    now = 0.0
    for i in range(n):
        ext = str(1000 + i)
        phone = SipEndpoint(("127.0.0.1", 6000 + i))
        target = RegistrationTarget(
            "sip:dialer.local",
            f"sip:{ext}@dialer.local",
            f"sip:{ext}@127.0.0.1:{6000 + i}",
            "127.0.0.1",
            6000 + i,
            username=ext,
            password="pw",
        )
        phone.add_registration(RegistrationClient(target, rng), ("127.0.0.1", 5060), now)
        for _ in range(4):  # REGISTER, 401, REGISTER, 200
            for data, _ in phone.take_datagrams():
                service.receive_datagram(data, ("127.0.0.1", 6000 + i), now)
            for data, _ in service.take_datagrams():
                phone.receive_datagram(data, ("127.0.0.1", 5060), now)
    assert len(registrar.registered_extensions(now)) == n
    return n


def main() -> None:
    rows = [
        ("parse INVITE with SDP", *median_rate(parse_many), "messages/s"),
        ("serialise + parse INVITE", *median_rate(round_trip_many), "messages/s"),
        (
            "digest REGISTER exchange (2 round trips)",
            *median_rate(registrations),
            "registrations/s",
        ),
    ]
    lines = [
        "# Benchmark results",
        "",
        "`uv run python bench/sip_core.py` — one core, pure Python, median of 5 runs",
        "(spread = fastest/slowest run; the machine is shared, so read ratios, not absolutes).",
        "",
        "| what | median | spread | unit |",
        "|---|---:|---:|---|",
    ]
    for name, rate, spread, unit in rows:
        print(f"{name:45s} {rate:10.0f} {unit} (spread {spread:.2f})")
        lines.append(f"| {name} | {rate:.0f} | {spread:.2f} | {unit} |")
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
