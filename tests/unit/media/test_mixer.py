"""RecordingMixer: both sides of a call on one stereo timeline, to the sample.

Every synthetic sample's value encodes its true timeline position (and which
side it is, by sign), and no real sample is ever 0, so a recording can be
checked position by position: silence is exactly where nothing was received.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.media.errors import LocalMediaError
from dialer.media.mixer import Channel, RecordingMixer

RATE = 8000
FRAME = 160  # 20 ms packets
START = 1000.125  # a monotonic instant that is not 0, so offsets matter
TICK = 0.02  # how often the driver calls take()
WRAP = 1 << 32


def agent_value(position: int) -> int:
    return 1 + position % 30000


def customer_value(position: int) -> int:
    return -(1 + (position * 7) % 30000)


VALUE = {Channel.AGENT: agent_value, Channel.CUSTOMER: customer_value}


@dataclass(frozen=True, slots=True)
class Packet:
    channel: Channel
    ssrc: int
    timestamp: int
    position: int  # true timeline position of the first sample
    arrival: float

    @property
    def pcm(self) -> bytes:
        value = VALUE[self.channel]
        return array("h", [value(self.position + i) for i in range(FRAME)]).tobytes()


def talk(channel: Channel, ssrc: int, ts0: int, pos0: int, count: int) -> list[Packet]:
    """``count`` packets sampled from ``pos0`` on, timestamps from ``ts0``, on time."""
    return [
        Packet(
            channel,
            ssrc,
            (ts0 + i * FRAME) % WRAP,
            pos0 + i * FRAME,
            START + (pos0 + i * FRAME) / RATE,
        )
        for i in range(count)
    ]


def jittered(packets: list[Packet], rng: random.Random, most: float = 0.039) -> list[Packet]:
    return [replace(p, arrival=p.arrival + rng.uniform(0.0, most)) for p in packets]


def delay(packets: list[Packet], indices: Iterable[int], by: float) -> list[Packet]:
    chosen = set(indices)
    return [replace(p, arrival=p.arrival + by) if i in chosen else p for i, p in enumerate(packets)]


def drop(packets: list[Packet], indices: Iterable[int]) -> list[Packet]:
    chosen = set(indices)
    return [p for i, p in enumerate(packets) if i not in chosen]


def run(packets: Iterable[Packet], *, tick: float | None = TICK) -> tuple[bytes, RecordingMixer]:
    """Feed packets in arrival order, taking every ``tick`` seconds, then finish."""
    mixer = RecordingMixer(START)
    out = bytearray()
    due = START
    for packet in sorted(packets, key=lambda p: p.arrival):
        while tick is not None and due <= packet.arrival:
            out += mixer.take(due)
            due += tick
        mixer.add(packet.channel, packet.ssrc, packet.timestamp, packet.pcm, packet.arrival)
    out += mixer.finish()
    assert len(out) == 4 * mixer.samples_out
    return bytes(out), mixer


def split(stereo: bytes) -> tuple[list[int], list[int]]:
    samples = array("h", stereo)
    return list(samples[0::2]), list(samples[1::2])


def expected(packets: Iterable[Packet], length: int, offset: int = 0) -> list[int]:
    """The channel as it must come out: each packet at its true position + offset."""
    out = [0] * length
    for p in packets:
        value = VALUE[p.channel]
        for i in range(FRAME):
            out[p.position + offset + i] = value(p.position + i)
    return out


def anchor_offset(packets: list[Packet]) -> int:
    """How late the first arriving packet was: where arrival anchors its stream."""
    first = min(packets, key=lambda p: p.arrival)
    return round((first.arrival - START) * RATE) - first.position


def both_streams(count: int = 150) -> tuple[list[Packet], list[Packet]]:
    # The customer starts 100 ms after the agent; different SSRCs and bases.
    agent = talk(Channel.AGENT, 0x1111, 0x0123_4567, 0, count)
    customer = talk(Channel.CUSTOMER, 0x2222, 0xDEAD_0000, 800, count)
    return agent, customer


@pytest.mark.parametrize("most", [0.0, 0.039])
def test_no_loss_both_channels_exact(most: float) -> None:
    rng = random.Random(1)
    agent, customer = both_streams()
    agent, customer = jittered(agent, rng, most), jittered(customer, rng, most)
    stereo, mixer = run(agent + customer)
    left, right = split(stereo)
    a_off, c_off = anchor_offset(agent), anchor_offset(customer)
    if most == 0.0:
        assert (a_off, c_off) == (0, 0)
    assert len(left) == max(150 * FRAME + a_off, 800 + 150 * FRAME + c_off)
    assert left == expected(agent, len(left), a_off)
    assert right == expected(customer, len(right), c_off)
    assert (mixer.late_dropped, mixer.overlaps_dropped, mixer.resyncs) == (0, 0, 0)


def test_loss_on_one_channel_is_silence_there_and_touches_nothing_else() -> None:
    rng = random.Random(2)
    agent, customer = both_streams()
    agent, customer = jittered(agent, rng), jittered(customer, rng)
    lost = [10, 11, 12, 50, *range(100, 121)]
    kept = drop(customer, lost)
    stereo, mixer = run(agent + kept)
    left, right = split(stereo)
    a_off, c_off = anchor_offset(agent), anchor_offset(kept)
    assert left == expected(agent, len(left), a_off)
    assert right == expected(kept, len(right), c_off)
    for i in lost:
        start = customer[i].position + c_off
        assert right[start : start + FRAME] == [0] * FRAME
    assert all(left[a_off : a_off + 150 * FRAME])  # the agent side has no hole anywhere
    assert mixer.late_dropped == 0


def test_reordering_within_the_window_is_exact() -> None:
    rng = random.Random(3)
    agent, customer = both_streams()
    agent = delay(jittered(agent, rng), range(5, 150, 7), 0.15)
    customer = delay(jittered(customer, rng), range(3, 150, 4), 0.09)
    stereo, mixer = run(agent + customer)
    left, right = split(stereo)
    assert left == expected(agent, len(left), anchor_offset(agent))
    assert right == expected(customer, len(right), anchor_offset(customer))
    assert (mixer.late_dropped, mixer.resyncs) == (0, 0)


def test_reordering_beyond_the_window_drops_and_counts_only_those() -> None:
    agent, customer = both_streams()
    late = [40, 90]
    customer = delay(customer, late, 0.5)
    stereo, mixer = run(agent + customer)
    left, right = split(stereo)
    assert mixer.late_dropped == 2
    assert mixer.resyncs == 0
    assert left == expected(agent, len(left))
    assert right == expected(drop(customer, late), len(right))


def test_duplicates_are_written_once_first_copy_wins() -> None:
    agent = talk(Channel.AGENT, 1, 0, 0, 20)
    copy = replace(agent[7], arrival=agent[7].arrival + 0.01)
    mixer = RecordingMixer(START)
    for p in agent[:10]:
        mixer.add(p.channel, p.ssrc, p.timestamp, p.pcm, p.arrival)
    # A duplicate with other content, shifted half a packet: only its
    # second half falls on empty positions.
    half = FRAME // 2
    odd = array("h", [7] * FRAME).tobytes()
    mixer.add(Channel.AGENT, 1, agent[9].timestamp + half, odd, agent[9].arrival)
    mixer.add(copy.channel, copy.ssrc, copy.timestamp, copy.pcm, copy.arrival)
    left, _ = split(mixer.finish())
    assert mixer.overlaps_dropped == 2
    assert left[: 10 * FRAME] == expected(agent[:10], 10 * FRAME)
    assert left[10 * FRAME :] == [7] * half


def test_ssrc_change_is_placed_by_arrival_after_the_old_stream() -> None:
    rng = random.Random(5)
    old = jittered(talk(Channel.CUSTOMER, 0xA, 5000, 0, 100), rng)
    # The new source starts 40 ms after the old one's last packet.
    gap = 320
    new = jittered(talk(Channel.CUSTOMER, 0xB, 0x9ABC_DEF0, 100 * FRAME + gap, 100), rng)
    agent = jittered(talk(Channel.AGENT, 0xC, 77, 0, 202), rng)
    stereo, mixer = run(old + new + agent)
    left, right = split(stereo)
    assert mixer.resyncs == 1
    o1 = anchor_offset(old)
    assert right[: 100 * FRAME + o1] == expected(old, 100 * FRAME + o1, o1)
    # The new stream comes out whole, at one offset: as late as its first
    # packet arrived, but never onto the old stream.
    first = next(i for i in range(100 * FRAME + o1, len(right)) if right[i])
    o2 = first - 100 * FRAME - gap
    assert o2 == anchor_offset(new)
    assert 0 <= o2 < 0.04 * RATE
    assert right == expected(old, len(right), o1)[:first] + expected(new, len(right), o2)[first:]
    assert left == expected(agent, len(left), anchor_offset(agent))


def test_ssrc_change_without_jitter_is_exact() -> None:
    old = talk(Channel.CUSTOMER, 0xA, 5000, 0, 100)
    new = talk(Channel.CUSTOMER, 0xB, 0x1234, 100 * FRAME, 50)
    stereo, mixer = run(old + new)
    assert split(stereo)[1] == expected(old + new, 150 * FRAME)
    assert mixer.resyncs == 1


def test_new_ssrc_never_lands_on_the_old_stream() -> None:
    # The old stream was anchored by a first packet 15 ms late, so its audio
    # runs 120 positions later than it arrives; the new source, heard on
    # time, would start inside it. It starts where the old one ends instead.
    old = delay(talk(Channel.CUSTOMER, 0xA, 5000, 0, 100), [0], 0.015)
    new = talk(Channel.CUSTOMER, 0xB, 0x1234, 100 * FRAME, 50)
    stereo, mixer = run(old + new)
    _, right = split(stereo)
    shift = 120
    assert right[: 100 * FRAME + shift] == expected(old, 100 * FRAME + shift, shift)
    assert right[100 * FRAME + shift :] == expected(new, len(right), shift)[100 * FRAME + shift :]
    assert len(right) == 150 * FRAME + shift
    assert (mixer.resyncs, mixer.overlaps_dropped) == (1, 0)


def test_straggler_of_the_previous_ssrc_goes_where_its_stream_was() -> None:
    old = delay(talk(Channel.CUSTOMER, 0xA, 5000, 0, 50), [49], 0.05)
    new = talk(Channel.CUSTOMER, 0xB, 999, 50 * FRAME, 50)
    stereo, mixer = run(old + new)
    _, right = split(stereo)
    assert right == expected(old + new, 100 * FRAME)
    assert mixer.resyncs == 1


def hold(*, advanced: bool, count: int = 100) -> tuple[list[Packet], list[Packet], int]:
    """Customer talks, stops for 3 s, talks again (same SSRC)."""
    before = talk(Channel.CUSTOMER, 0x5, 40_000, 0, count)
    resume_pos = count * FRAME + 3 * RATE
    resume_ts = 40_000 + (resume_pos if advanced else count * FRAME)
    after = talk(Channel.CUSTOMER, 0x5, resume_ts, resume_pos, count)
    return before, after, resume_pos + count * FRAME


@pytest.mark.parametrize("advanced", [True, False])
def test_hold_then_resume_lines_up_to_the_sample(advanced: bool) -> None:
    before, after, length = hold(advanced=advanced)
    agent = talk(Channel.AGENT, 0x6, 3, 0, length // FRAME)
    stereo, mixer = run(before + after + agent)
    left, right = split(stereo)
    assert left == expected(agent, length)
    assert right == expected(before + after, length)
    assert right[len(before) * FRAME : after[0].position] == [0] * (3 * RATE)
    assert mixer.resyncs == (0 if advanced else 1)


def test_hold_without_timestamp_advance_resyncs_by_arrival_within_jitter() -> None:
    rng = random.Random(6)
    before, after, _ = hold(advanced=False)
    before, after = jittered(before, rng), jittered(after, rng)
    stereo, mixer = run(before + after)
    _, right = split(stereo)
    o1, o2 = anchor_offset(before), anchor_offset(after)
    assert 0 <= o2 < 0.04 * RATE
    assert (
        right
        == expected(before, len(right), o1)[: after[0].position]
        + expected(after, len(right), o2)[after[0].position :]
    )
    assert mixer.resyncs == 1


def test_timestamp_wrap_around_is_exact() -> None:
    agent = talk(Channel.AGENT, 1, WRAP - 50 * FRAME, 0, 120)
    customer = talk(Channel.CUSTOMER, 2, WRAP - 7 * FRAME - 40, 0, 120)
    customer = delay(customer, [6, 7, 8], 0.1)  # reordered across the wrap
    stereo, mixer = run(agent + customer)
    left, right = split(stereo)
    assert left == expected(agent, 120 * FRAME)
    assert right == expected(customer, 120 * FRAME)
    assert (mixer.late_dropped, mixer.resyncs) == (0, 0)


def test_backward_timestamp_jump_costs_one_packet() -> None:
    # 6 s in, the sender's timestamp goes back 5 s. The first packet after
    # the jump looks like a straggler; the second confirms the jump.
    first = talk(Channel.CUSTOMER, 9, 100_000, 0, 300)
    jumped = talk(Channel.CUSTOMER, 9, 100_000 + 300 * FRAME - 40_000, 300 * FRAME, 50)
    stereo, mixer = run(first + jumped)
    _, right = split(stereo)
    assert right == expected(first + jumped[1:], 350 * FRAME)
    assert (mixer.late_dropped, mixer.resyncs) == (1, 1)


def test_a_late_anchor_keeps_its_stream_whole_and_exact() -> None:
    # A 150 ms stall at call start: the first 8 packets arrive in one burst,
    # so the stream is anchored 1200 positions late and every later packet
    # looks early. That is no timestamp jump: nothing is re-anchored, and a
    # later reordered packet still lands by its timestamp.
    agent = talk(Channel.AGENT, 1, 0, 0, 60)
    burst = [replace(p, arrival=START + 0.15 + i * 1e-4) for i, p in enumerate(agent[:8])]
    rest = delay(agent[8:], [30], 0.03)
    stereo, mixer = run(burst + rest)
    left, _ = split(stereo)
    assert left == expected(agent, 60 * FRAME + 1200, 1200)
    assert (mixer.resyncs, mixer.overlaps_dropped, mixer.late_dropped) == (0, 0, 0)


def test_forward_timestamp_jump_is_placed_by_arrival() -> None:
    first = talk(Channel.AGENT, 9, 0, 0, 50)
    jumped = talk(Channel.AGENT, 9, 50 * FRAME + 10 * RATE, 50 * FRAME, 50)
    stereo, mixer = run(first + jumped)
    left, _ = split(stereo)
    assert left == expected(first + jumped, 100 * FRAME)
    assert mixer.resyncs == 1


@pytest.mark.parametrize("tick", [0.007, 0.1, 1.3])
def test_take_is_incremental_and_adds_up_to_the_one_shot_result(tick: float) -> None:
    rng = random.Random(8)
    agent, customer = both_streams()
    agent = delay(jittered(agent, rng), range(2, 150, 5), 0.12)
    customer = jittered(drop(customer, [3, 4, 77]), rng)
    one_shot, _ = run(agent + customer, tick=None)
    incremental, mixer = run(agent + customer, tick=tick)
    assert incremental == one_shot
    assert mixer.late_dropped == 0


def test_take_writes_silence_while_nothing_arrives() -> None:
    mixer = RecordingMixer(START)
    assert mixer.take(START + 0.1) == b""  # still inside the reorder window
    assert mixer.take(START + 1.2) == bytes(4 * RATE)
    assert mixer.samples_out == RATE
    assert mixer.take(START + 1.2) == b""
    assert mixer.take(START + 0.5) == b""  # time never runs backwards here
    assert mixer.finish() == b""
    assert mixer.samples_out == RATE


def test_take_returns_only_positions_older_than_the_window() -> None:
    agent = talk(Channel.AGENT, 1, 0, 0, 10)
    mixer = RecordingMixer(START)
    for p in agent:
        mixer.add(p.channel, p.ssrc, p.timestamp, p.pcm, p.arrival)
    left, right = split(mixer.take(START + 0.25))
    whole = expected(agent, 10 * FRAME)
    assert left == whole[:400]  # 50 ms: 0.25 s minus the 0.2 s window
    assert right == [0] * 400
    assert split(mixer.finish())[0] == whole[400:]


def test_packets_after_their_positions_were_returned_are_late() -> None:
    agent = talk(Channel.AGENT, 1, 0, 0, 10)
    mixer = RecordingMixer(START)
    for p in agent[:5]:
        mixer.add(p.channel, p.ssrc, p.timestamp, p.pcm, p.arrival)
    mixer.take(START + 0.2 + 3 * FRAME / RATE + 0.01)  # 560 positions out
    for p in agent[5:]:
        mixer.add(p.channel, p.ssrc, p.timestamp, p.pcm, p.arrival)
    # A copy of packet 3 straddles the returned edge: one late packet.
    late = agent[3]
    mixer.add(late.channel, late.ssrc, late.timestamp, late.pcm, late.arrival + 0.01)
    rest, _ = split(mixer.finish())
    assert mixer.late_dropped == 1
    assert mixer.overlaps_dropped == 1
    assert rest == expected(agent, 10 * FRAME)[560:]


def test_audio_before_the_recording_start_is_clipped_not_late() -> None:
    mixer = RecordingMixer(START)
    early = Packet(Channel.AGENT, 1, 0, -80, START - 0.01)
    mixer.add(early.channel, early.ssrc, early.timestamp, early.pcm, early.arrival)
    left, _ = split(mixer.finish())
    assert left == [agent_value(-80 + i) for i in range(80, FRAME)]
    assert mixer.late_dropped == 0


def test_misuse_is_a_local_error() -> None:
    mixer = RecordingMixer(START)
    with pytest.raises(LocalMediaError, match="even length"):
        mixer.add(Channel.AGENT, 1, 0, b"\x00\x01\x02", START)
    with pytest.raises(LocalMediaError, match="sample rate"):
        RecordingMixer(START, sample_rate=0)
    with pytest.raises(LocalMediaError, match="reorder window"):
        RecordingMixer(START, reorder_window=-0.1)
    with pytest.raises(LocalMediaError, match="resync threshold"):
        RecordingMixer(START, resync_threshold=0.0)
    mixer.add(Channel.AGENT, 1, 0, b"", START)  # an empty payload is nothing
    assert mixer.finish() == b""


def test_loss_reordering_ssrc_change_and_hold_together_line_up_to_the_sample() -> None:
    # Agent: 8 s of speech with loss and reordering.
    agent = talk(Channel.AGENT, 0xA1, 0xFFFF_8000, 0, 400)  # wraps at 4.1 s
    agent = delay(drop(agent, [17, 18, 200]), range(9, 390, 11), 0.13)
    # Customer: talks 2 s, holds 3 s without advancing its timestamp,
    # resumes for 1 s, then a new SSRC for 2 s, with loss and reordering.
    talk1 = talk(Channel.CUSTOMER, 0xC1, 0x7FFF_F000, 0, 100)
    resumed = talk(Channel.CUSTOMER, 0xC1, (0x7FFF_F000 + 100 * FRAME) % WRAP, 40_000, 50)
    switched = talk(Channel.CUSTOMER, 0xC2, 12345, 48_000, 100)
    customer = delay(drop(talk1, [5, 99]), [30, 31], 0.1)
    customer += delay(drop(resumed, [20]), [1, 2, 40], 0.15)
    customer += delay(drop(switched, [50, 51, 52]), [0, 3], 0.05)
    stereo, mixer = run(agent + customer)
    left, right = split(stereo)
    assert len(left) == 400 * FRAME
    assert left == expected(agent, len(left))
    assert right == expected(customer, len(right))
    assert mixer.resyncs == 2
    assert (mixer.late_dropped, mixer.overlaps_dropped) == (0, 0)


@st.composite
def segment(draw: st.DrawFn) -> tuple[int, set[int], list[float]]:
    """A run of packets: how many, which are lost, how late each arrives."""
    count = draw(st.integers(3, 30))
    lost = draw(st.sets(st.integers(0, count - 1), max_size=count // 2))
    delays = draw(st.lists(st.integers(0, 180), min_size=count, max_size=count))
    return count, lost, [ms / 1000 for ms in delays]


def planned(
    channel: Channel, ssrc: int, ts0: int, pos0: int, plan: tuple[int, set[int], list[float]]
) -> list[Packet]:
    count, lost, delays = plan
    packets = talk(channel, ssrc, ts0, pos0, count)
    kept = [i for i in range(count) if i not in lost]
    # The first packet heard of a stream is its anchor: it must be on time
    # for "exact" to mean the true position rather than the anchor's.
    return [
        replace(packets[i], arrival=packets[i].arrival + (delays[i] if i != kept[0] else 0.0))
        for i in kept
    ]


Plan = tuple[int, set[int], list[float]]


@settings(max_examples=60, deadline=None)
@given(
    agent_plan=segment(),
    customer_plan=st.tuples(segment(), segment(), segment()),
    hold_plan=st.tuples(st.integers(300, 3000), st.booleans()),
    ts0=st.integers(0, WRAP - 1),
    tick=st.sampled_from([0.01, 0.02, 0.05]),
)
def test_every_received_sample_is_at_its_true_position(
    agent_plan: Plan,
    customer_plan: tuple[Plan, Plan, Plan],
    hold_plan: tuple[int, bool],
    ts0: int,
    tick: float,
) -> None:
    first, second, third = customer_plan
    pause, advanced = hold_plan
    # Customer: a segment, a hold of ``pause`` ms, a segment, an SSRC change.
    resume = first[0] * FRAME + pause * RATE // 1000
    resume_ts = ts0 + (resume if advanced else first[0] * FRAME)
    switch = resume + second[0] * FRAME
    customer = planned(Channel.CUSTOMER, 0xC, ts0, 0, first)
    customer += planned(Channel.CUSTOMER, 0xC, resume_ts, resume, second)
    customer += planned(Channel.CUSTOMER, 0xD, ts0 ^ 0x5555_5555, switch, third)
    # Agent: one stream spanning the same call, loss and reordering spread out.
    count, lost, delays = agent_plan
    stretch = max(1, (switch + third[0] * FRAME) // (count * FRAME))
    spread = {i * stretch for i in lost} - {0}
    agent = talk(Channel.AGENT, 0xA, WRAP - ts0 - 1, 0, count * stretch)
    agent = [
        replace(p, arrival=p.arrival + (delays[i % count] if i > 0 else 0.0))
        for i, p in enumerate(agent)
        if i not in spread
    ]
    stereo, mixer = run(agent + customer, tick=tick)
    left, right = split(stereo)
    assert left == expected(agent, len(left))
    assert right == expected(customer, len(right))
    assert mixer.late_dropped == 0
