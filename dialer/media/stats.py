"""Reception statistics of one source (RFC 3550 Appendix A.1, A.3, A.8).

One ``ReceptionStats`` per SSRC we receive. The session calls ``reset`` when
a source's SSRC changes (a restarted phone), since its sequence numbers and
timestamps then start from new random values.
"""

from __future__ import annotations

from dialer.media.rtcp import ReportBlock, SenderReport, ntp_middle
from dialer.media.rtp import ts_diff

RTP_SEQ_MOD = 1 << 16
MIN_SEQUENTIAL = 2  # packets in sequence before a source is valid
MAX_DROPOUT = 3000  # a forward jump beyond this is suspicious
MAX_MISORDER = 100  # a backward jump within this is a late packet

_CUMULATIVE_MAX = (1 << 23) - 1
_CUMULATIVE_MIN = -(1 << 23)


class ReceptionStats:
    """Sequence validation, loss and interarrival jitter of one source."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self._clock_rate = clock_rate
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next packet starts a probation period."""
        self._probation = MIN_SEQUENTIAL
        self._started = False
        self._init_seq(0)
        self._jitter = 0.0
        self._last_arrival: float | None = None
        self._last_timestamp = 0
        self._last_sr: int | None = None
        self._last_sr_arrival = 0.0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1  # so that seq == bad_seq is false
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, seq: int, rtp_ts: int, arrival: float) -> bool:
        """Account one packet; False if it is not (yet) accepted as valid (A.1)."""
        if not self._started:
            # A.1: the first packet opens probation as if its predecessor came.
            self._started = True
            self._init_seq(seq)
            self._max_seq = (seq - 1) & 0xFFFF
        if not self._update_seq(seq):
            return False
        self._update_jitter(rtp_ts, arrival)
        return True

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._received += 1
                    return True
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with permissible gap; a smaller value means it wrapped.
            if seq < self._max_seq:
                self._cycles += RTP_SEQ_MOD
            self._max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: believe it only if the next packet follows
            # it, i.e. the sender restarted without changing SSRC.
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
            self._init_seq(seq)
            self._last_arrival = None  # its timestamps restarted too
        # else: a duplicate or a late packet, counted but not moving max_seq.
        self._received += 1
        return True

    def _update_jitter(self, rtp_ts: int, arrival: float) -> None:
        # A.8 with D(i-1, i) taken between consecutive packets: the
        # difference of timestamps uses ts_diff so that 32-bit wrap is harmless.
        last_arrival = self._last_arrival
        self._last_arrival = arrival
        last_ts, self._last_timestamp = self._last_timestamp, rtp_ts
        if last_arrival is None:
            return
        d = abs((arrival - last_arrival) * self._clock_rate - ts_diff(rtp_ts, last_ts))
        self._jitter += (d - self._jitter) / 16

    def on_sender_report(self, report: SenderReport, arrival: float) -> None:
        """Remember the source's last SR so our reports carry LSR and DLSR."""
        self._last_sr = ntp_middle(report.ntp_timestamp)
        self._last_sr_arrival = arrival

    @property
    def received(self) -> int:
        return self._received

    @property
    def cycles(self) -> int:
        """Sequence wrap-arounds seen, times 65536 (the A.1 ``cycles``)."""
        return self._cycles

    @property
    def extended_max_seq(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self._probation:
            return 0
        return self.extended_max_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative lost (A.3); negative with duplicates, clamped to 24 bits."""
        return max(_CUMULATIVE_MIN, min(_CUMULATIVE_MAX, self.expected - self._received))

    @property
    def jitter(self) -> int:
        """Interarrival jitter estimate in timestamp units (A.8)."""
        return int(self._jitter)

    def make_report_block(self, ssrc: int, now: float | None = None) -> ReportBlock:
        """Report on source ``ssrc`` and start a new loss interval (A.3).

        LSR/DLSR are filled only when an SR was received and ``now`` is given;
        otherwise both are 0, which the sender reads as "no RTT sample".
        """
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self._received - self._received_prior
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        lsr = dlsr = 0
        if self._last_sr is not None and now is not None:
            lsr = self._last_sr
            # DLSR in units of 1/65536 s (§6.4.1).
            dlsr = max(0, min(int((now - self._last_sr_arrival) * 65536), 0xFFFF_FFFF))
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=self.lost,
            highest_seq=self.extended_max_seq & 0xFFFF_FFFF,
            jitter=min(self.jitter, 0xFFFF_FFFF),
            lsr=lsr,
            dlsr=dlsr,
        )
