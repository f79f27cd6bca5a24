from __future__ import annotations

import math
import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.media.vad import (
    SILENCE_DBFS,
    SpeechMeter,
    SpeechStats,
    VadConfig,
    VoiceDetector,
    frame_dbfs,
    speech_ms,
)

RATE = 8000
SAMPLES_PER_MS = RATE // 1000
HANGOVER_MS = 200
LOUD = 8000  # a sine of this amplitude is about -19 dBFS: a normal talker


def silence(ms: int) -> list[int]:
    return [0] * (ms * SAMPLES_PER_MS)


def tone(ms: int, amplitude: int = LOUD, hz: float = 440.0, start: int = 0) -> list[int]:
    step = 2 * math.pi * hz / RATE
    return [round(amplitude * math.sin((start + n) * step)) for n in range(ms * SAMPLES_PER_MS)]


def noise(ms: int, amplitude: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(-amplitude, amplitude) for _ in range(ms * SAMPLES_PER_MS)]


def stereo(agent: list[int], customer: list[int]) -> bytes:
    length = max(len(agent), len(customer))
    agent = agent + [0] * (length - len(agent))
    customer = customer + [0] * (length - len(customer))
    frames = array("h", [0] * (2 * length))
    frames[0::2] = array("h", agent)
    frames[1::2] = array("h", customer)
    if array("h", [1]).tobytes() != b"\x01\x00":  # pragma: no cover - big-endian hosts
        frames.byteswap()
    return frames.tobytes()


def mono_bytes(samples: list[int]) -> bytes:
    data = array("h", samples)
    if array("h", [1]).tobytes() != b"\x01\x00":  # pragma: no cover - big-endian hosts
        data.byteswap()
    return data.tobytes()


def measure(data: bytes) -> SpeechStats:
    meter = SpeechMeter()
    meter.feed(data)
    return meter.stats()


def test_frame_levels() -> None:
    assert frame_dbfs([0] * 160) == SILENCE_DBFS
    assert frame_dbfs([32767, -32768] * 80) == pytest.approx(0.0, abs=0.01)
    # A sine's RMS is its amplitude over root two.
    expected = 20 * math.log10(LOUD / math.sqrt(2) / 32768)
    assert frame_dbfs(tone(20)) == pytest.approx(expected, abs=0.1)
    assert frame_dbfs([1] + [0] * 159) == SILENCE_DBFS  # below the 16-bit floor
    with pytest.raises(ValueError, match="at least one sample"):
        frame_dbfs([])


def test_silence_is_not_speech() -> None:
    stats = measure(stereo(silence(3000), silence(3000)))
    assert stats == SpeechStats(0, 0, 0, longest_silence_ms=3000, duration_ms=3000)


def test_low_level_line_noise_is_not_speech() -> None:
    # ±100 uniform noise is about -55 dBFS, a noisy but idle line.
    stats = measure(stereo(noise(5000, 100), noise(5000, 100, seed=8)))
    assert (stats.agent_speech_ms, stats.customer_speech_ms) == (0, 0)
    assert stats.longest_silence_ms == 5000


def test_tone_burst_counts_its_length_plus_hangover() -> None:
    stats = measure(stereo(silence(1000) + tone(500) + silence(1000), []))
    assert stats.agent_speech_ms == 500 + HANGOVER_MS
    assert stats.customer_speech_ms == 0
    assert stats.duration_ms == 2500
    assert stats.longest_silence_ms == 1000  # the lead-in; the tail loses the hangover


@settings(max_examples=40, deadline=None)
@given(
    lead_samples=st.integers(0, 2000),
    burst_ms=st.integers(60, 1500),
    amplitude=st.integers(1500, 30000),
)
def test_burst_anywhere_is_measured_within_a_frame(
    lead_samples: int, burst_ms: int, amplitude: int
) -> None:
    customer = [0] * lead_samples + tone(burst_ms, amplitude) + silence(400)
    stats = measure(stereo([], customer))
    # The burst touches one or two frames more than its length at its edges.
    assert 0 <= stats.customer_speech_ms - (burst_ms + HANGOVER_MS) < 40
    assert stats.agent_speech_ms == 0


def test_a_click_is_not_speech() -> None:
    click = [30000, -30000] * 20  # 5 ms, inside one frame
    stats = measure(stereo(silence(400) + click + silence(595), []))
    assert stats.agent_speech_ms == 0


def test_pause_between_syllables_stays_speech() -> None:
    agent = silence(200) + tone(300) + silence(100) + tone(300) + silence(1000)
    stats = measure(stereo(agent, []))
    assert stats.agent_speech_ms == 300 + 100 + 300 + HANGOVER_MS
    assert stats.longest_silence_ms == 1000 - HANGOVER_MS


def test_pause_longer_than_hangover_splits_speech() -> None:
    agent = tone(300) + silence(600) + tone(300) + silence(600)
    stats = measure(stereo(agent, []))
    assert stats.agent_speech_ms == 2 * (300 + HANGOVER_MS)
    assert stats.longest_silence_ms == 600 - HANGOVER_MS


def test_alternating_turns_do_not_overlap() -> None:
    # agent 400-1400, customer 1900-2900, agent 3400-4000, then 1000 ms of silence.
    agent = silence(400) + tone(1000) + silence(2000) + tone(600) + silence(1000)
    customer = silence(1900) + tone(1000, hz=300.0) + silence(2100)
    stats = measure(stereo(agent, customer))
    assert stats == SpeechStats(
        agent_speech_ms=1000 + 600 + 2 * HANGOVER_MS,
        customer_speech_ms=1000 + HANGOVER_MS,
        overlap_ms=0,
        longest_silence_ms=1000 - HANGOVER_MS,
        duration_ms=5000,
    )


def test_simultaneous_talk_overlaps() -> None:
    agent = silence(1000) + tone(1000) + silence(1000)
    customer = silence(1000) + tone(1500, hz=300.0) + silence(500)
    stats = measure(stereo(agent, customer))
    assert stats.agent_speech_ms == 1000 + HANGOVER_MS
    assert stats.customer_speech_ms == 1500 + HANGOVER_MS
    assert stats.overlap_ms == 1000 + HANGOVER_MS
    assert stats.longest_silence_ms == 1000


def test_steady_hum_is_adapted_away() -> None:
    # A -27 dBFS hum for 30 s: counted at first, then the noise floor catches up.
    hum = tone(30_000, amplitude=1500, hz=100.0)
    meter = SpeechMeter()
    meter.feed(stereo([], hum))
    early = meter.stats().customer_speech_ms
    meter.feed(stereo([], tone(5000, amplitude=1500, hz=100.0, start=len(hum))))
    assert 0 < early < 20_000
    assert meter.stats().customer_speech_ms == early  # the last 5 s are background


def test_speech_after_loud_noise_is_still_heard() -> None:
    # Background settles at about -40 dBFS; a talker at -19 dBFS stands out.
    background = noise(6000, 1000)
    talk = [a + b for a, b in zip(tone(1000), noise(1000, 1000, seed=9), strict=True)]
    meter = SpeechMeter()
    meter.feed(stereo(background, []))
    before = meter.stats().agent_speech_ms
    meter.feed(stereo(talk + noise(1000, 1000, seed=10), []))
    assert meter.stats().agent_speech_ms - before >= 1000


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 24_000), max_size=12))
def test_chunking_does_not_change_the_result(cuts: list[int]) -> None:
    agent = silence(300) + tone(700) + silence(500)
    customer = silence(900) + tone(400, hz=300.0) + silence(200)
    data = stereo(agent, customer)
    whole = measure(data)
    meter = SpeechMeter()
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        meter.feed(data[previous:cut])
        meter.stats()  # reading midway must not disturb the measurement
        previous = max(previous, cut)
    assert meter.stats() == whole


def test_stats_midway_count_undecided_onset_as_silence() -> None:
    meter = SpeechMeter()
    meter.feed(stereo(silence(100) + tone(20), []))  # one active frame: maybe a click
    assert meter.stats().agent_speech_ms == 0
    meter.feed(stereo(tone(20, start=160), []))  # a second: it was speech
    assert meter.stats().agent_speech_ms == 40


def test_duration_counts_partial_frames() -> None:
    meter = SpeechMeter()
    meter.feed(stereo(silence(10), []) + b"\x00\x00")  # 80 stereo samples and half of one
    assert meter.stats().duration_ms == 10
    assert meter.stats().longest_silence_ms == 0  # no whole frame yet


def test_mono_helper() -> None:
    samples = silence(640) + tone(640) + silence(640)
    assert speech_ms(mono_bytes(samples)) == 640 + HANGOVER_MS
    assert speech_ms(mono_bytes(silence(1000))) == 0
    assert speech_ms(mono_bytes(samples), 16000, 20) == 320 + HANGOVER_MS  # read as 16 kHz
    # The audio ends in speech: no hangover past the end, a partial frame is not counted.
    assert speech_ms(mono_bytes(silence(640) + tone(640))[:-3]) == 620


def test_detector_decisions_come_in_order() -> None:
    detector = VoiceDetector(VadConfig(onset_ms=60, hangover_ms=40))
    assert detector.push(-20.0) == (0, False)
    assert detector.push(-20.0) == (0, False)
    assert detector.pending == 2
    assert detector.push(-20.0) == (3, True)
    assert detector.push(-90.0) == (1, True)
    assert detector.push(-90.0) == (1, True)
    assert detector.push(-90.0) == (1, False)
    assert detector.push(-20.0) == (0, False)
    assert detector.push(-90.0) == (2, False)  # a burst shorter than the onset


def test_noise_floor_drops_at_once_and_rises_slowly() -> None:
    detector = VoiceDetector()
    detector.push(-70.0)
    assert detector.noise_floor_dbfs == -70.0
    detector.push(-60.0)
    assert -70.0 < detector.noise_floor_dbfs < -69.0


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="not a whole number of samples"):
        SpeechMeter(11025, 20)
    with pytest.raises(ValueError, match="config is for 20 ms frames, meter for 10 ms"):
        SpeechMeter(8000, 10, config=VadConfig())
    with pytest.raises(ValueError, match=r"floor rise rates must be within 0\.\.1"):
        VadConfig(floor_rise_quiet=2.0)
    with pytest.raises(ValueError, match="frame_ms must be positive"):
        VadConfig(frame_ms=0)
    assert SpeechMeter(8000, 10).stats().duration_ms == 0
