"""SIP timer values (RFC 3261 §17, Table 4; RFC 6026 §7 for Timers L and M).

Only the three base values are configurable; every timer is derived from them
exactly as Table 4 says, so a deployment that shortens T1 on a fast LAN gets
consistent B/F/H/J/L/M without having to reason about each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dialer.sip.errors import LocalProtocolError


class Timer(StrEnum):
    A = "A"  # INVITE client: request retransmission (unreliable only)
    B = "B"  # INVITE client: transaction timeout
    D = "D"  # INVITE client: wait for response retransmissions in Completed
    E = "E"  # non-INVITE client: request retransmission (unreliable only)
    F = "F"  # non-INVITE client: transaction timeout
    G = "G"  # INVITE server: final response retransmission (unreliable only)
    H = "H"  # INVITE server: wait for ACK
    I = "I"  # INVITE server: absorb ACK retransmissions in Confirmed  # noqa: E741
    J = "J"  # non-INVITE server: absorb request retransmissions in Completed
    K = "K"  # non-INVITE client: absorb response retransmissions in Completed
    L = "L"  # INVITE server (RFC 6026): absorb INVITE retransmissions in Accepted
    M = "M"  # INVITE client (RFC 6026): pass 2xx retransmissions up in Accepted


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (non-INVITE retransmit cap), T4 (network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # Table 4: "> 32s for UDP". The RFC leaves the exact figure to us; 32 s is
    # the smallest value that honours it and what most stacks use.
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 > 0 and self.timer_d >= 32.0):
            raise LocalProtocolError(
                f"invalid SIP timers: t1={self.t1} t2={self.t2} t4={self.t4} "
                f"timer_d={self.timer_d} (need t1 > 0, t2 >= t1, t4 > 0, timer_d >= 32)"
            )

    @property
    def transaction_timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1

    def d(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timer_d

    def i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def j(self, reliable: bool) -> float:
        return 0.0 if reliable else 64 * self.t1

    def k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4
