from __future__ import annotations

from dialer.media.rtcp import ReportBlock, SenderReport
from dialer.media.stats import MAX_DROPOUT, MAX_MISORDER, ReceptionStats

SOURCE = 0xAABBCCDD


def paced(stats: ReceptionStats, seqs: list[int], first_seq: int = 0) -> list[bool]:
    """Feed packets as a perfect 20 ms sender would stamp and deliver them."""
    results = []
    for seq in seqs:
        n = (seq - first_seq) & 0xFFFF  # packets since the first, across the wrap
        results.append(stats.update(seq, n * 160, n / 50))
    return results


def test_probation_needs_two_packets_in_sequence() -> None:
    stats = ReceptionStats()
    assert stats.update(100, 0, 0.0) is False
    assert stats.update(105, 800, 0.1) is False  # out of sequence: probation restarts
    assert stats.update(106, 960, 0.12) is True
    assert stats.received == 1
    assert stats.expected == 1
    assert stats.update(107, 1120, 0.14) is True
    assert stats.received == 2


def test_nothing_expected_during_probation() -> None:
    stats = ReceptionStats()
    assert stats.expected == 0
    stats.update(7, 0, 0.0)
    assert stats.expected == 0
    assert stats.make_report_block(SOURCE) == ReportBlock(SOURCE, 0, 0, 7, 0)


def test_sequence_wrap_counts_a_cycle() -> None:
    stats = ReceptionStats()
    seqs = list(range(65530, 65536)) + list(range(6))
    assert paced(stats, seqs, first_seq=65530) == [False] + [True] * 11
    assert stats.cycles == 65536
    assert stats.extended_max_seq == 65536 + 5
    # The first packet was only probation, so the count starts at 65531.
    assert stats.expected == 11
    assert stats.lost == 0
    block = stats.make_report_block(SOURCE)
    assert block.highest_seq == 0x0001_0005
    assert block.cumulative_lost == 0


def test_loss_of_3_in_100() -> None:
    stats = ReceptionStats()
    # Sequence 0 only ends probation's first step, so 1..100 is the 100 expected.
    dropped = {10, 50, 77}
    paced(stats, [seq for seq in range(101) if seq not in dropped])
    assert stats.expected == 100
    assert stats.received == 97
    assert stats.lost == 3
    block = stats.make_report_block(SOURCE)
    assert block.cumulative_lost == 3
    assert block.fraction_lost == 3 * 256 // 100 == 7  # 7.68, truncated
    assert block.highest_seq == 100
    # A.3: the fraction covers the interval since the last report only.
    paced(stats, list(range(101, 201)))
    block = stats.make_report_block(SOURCE)
    assert block.fraction_lost == 0
    assert block.cumulative_lost == 3
    paced(stats, [seq for seq in range(201, 251) if seq != 230])
    assert stats.make_report_block(SOURCE).fraction_lost == 256 // 50


def test_reordering_is_not_loss() -> None:
    stats = ReceptionStats()
    seqs = list(range(30))
    seqs[10], seqs[11] = seqs[11], seqs[10]
    seqs[20], seqs[25] = seqs[25], seqs[20]
    assert all(paced(stats, seqs)[1:])
    assert stats.lost == 0
    assert stats.extended_max_seq == 29
    assert stats.make_report_block(SOURCE).fraction_lost == 0


def test_late_packet_across_the_wrap_is_not_a_cycle() -> None:
    stats = ReceptionStats()
    paced(stats, [65533, 65534, 0, 1], first_seq=65533)
    assert stats.lost == 1
    stats.update(65535, 320, 0.1)  # the missing one, late
    assert stats.cycles == 65536
    assert stats.extended_max_seq == 65537
    assert stats.lost == 0


def test_duplicates_make_cumulative_lost_negative() -> None:
    stats = ReceptionStats()
    paced(stats, [0, 1, 2, 3, 3, 3])
    assert stats.lost == -2
    block = stats.make_report_block(SOURCE)
    assert block.cumulative_lost == -2
    assert block.fraction_lost == 0


def test_big_jump_seen_once_is_dropped() -> None:
    stats = ReceptionStats()
    paced(stats, list(range(10)))
    assert stats.update(10 + MAX_DROPOUT, 0, 0.5) is False
    assert stats.update(10, 1600, 0.2) is True
    assert stats.extended_max_seq == 10
    assert stats.lost == 0


def test_big_jump_seen_twice_resyncs() -> None:
    stats = ReceptionStats()
    paced(stats, list(range(10)))
    assert stats.update(20000, 5_000_000, 1.0) is False
    assert stats.update(20001, 5_000_160, 1.02) is True  # the sender restarted
    assert stats.extended_max_seq == 20001
    assert stats.expected == 1
    assert stats.received == 1
    assert stats.lost == 0
    # The restart's new timestamps do not register as jitter.
    assert stats.update(20002, 5_000_320, 1.04) is True
    assert stats.jitter == 0


def test_small_backward_jump_is_misorder_larger_is_a_jump() -> None:
    stats = ReceptionStats()
    paced(stats, list(range(1000)))
    assert stats.update(1000 - MAX_MISORDER, 0, 20.0) is True  # late: counted
    assert stats.update(999 - MAX_MISORDER, 0, 20.0) is False  # too old: suspicious
    assert stats.extended_max_seq == 999


def test_jitter_is_zero_for_perfectly_paced_packets() -> None:
    stats = ReceptionStats()
    paced(stats, list(range(500)))
    assert stats.jitter == 0
    assert stats.make_report_block(SOURCE).jitter == 0


def test_jitter_is_zero_across_a_timestamp_wrap() -> None:
    stats = ReceptionStats()
    for i in range(100):
        assert stats.update(i, (0xFFFF_F000 + 160 * i) & 0xFFFF_FFFF, 3.0 + i / 50) is (i > 0)
    assert stats.jitter == 0


def test_jitter_for_a_known_arrival_pattern() -> None:
    stats = ReceptionStats(clock_rate=8000)
    # (seq, rtp timestamp, arrival s): every packet stamped 160 after the last.
    pattern = [
        (0, 0, 0.000),  # probation only
        (1, 160, 0.020),  # first accepted: the reference
        (2, 320, 0.045),  # 200 units after the last, 40 late: D = 40
        (3, 480, 0.060),  # 120 after: D = |120 - 160| = 40
        (4, 640, 0.080),  # 160 after: D = 0
        (5, 800, 0.140),  # 480 after: D = 320
    ]
    for seq, ts, arrival in pattern:
        stats.update(seq, ts, arrival)
    # J += (|D| - J) / 16, by hand:
    j = 0.0
    j += (40 - j) / 16  # 2.5
    j += (40 - j) / 16  # 4.84375
    j += (0 - j) / 16  # 4.541015625
    j += (320 - j) / 16  # 24.257202148...
    assert int(j) == 24
    assert stats.jitter == 24
    assert stats.make_report_block(SOURCE).jitter == 24


def test_lsr_and_dlsr_echo_the_last_sender_report() -> None:
    stats = ReceptionStats()
    paced(stats, [0, 1, 2])
    sr = SenderReport(SOURCE, 0xE94A2B3C80000000, 0, 0, 0)
    stats.on_sender_report(sr, arrival=10.0)
    block = stats.make_report_block(SOURCE, now=11.5)
    assert block.lsr == 0x2B3C8000
    assert block.dlsr == 0x0001_8000  # 1.5 s in 1/65536 s
    # Without a time, we cannot say how long we held it: no RTT sample.
    no_time = stats.make_report_block(SOURCE)
    assert (no_time.lsr, no_time.dlsr) == (0, 0)


def test_reset_for_a_new_ssrc_starts_over() -> None:
    stats = ReceptionStats()
    paced(stats, [0, 1, 2, 5])
    stats.on_sender_report(SenderReport(SOURCE, 1 << 40, 0, 0, 0), 1.0)
    assert stats.lost == 2
    stats.reset()
    assert stats.received == 0
    assert stats.expected == 0
    assert stats.update(40000, 0, 2.0) is False
    assert stats.update(40001, 160, 2.02) is True
    assert stats.lost == 0
    assert stats.cycles == 0
    assert stats.make_report_block(SOURCE, now=3.0) == ReportBlock(SOURCE, 0, 0, 40001, 0)
