"""Early-media screening on audio synthesised here: tones, cadences, SITs, speech-like babble."""

from __future__ import annotations

import cmath
import math
import random
from array import array
from collections.abc import Iterable
from functools import lru_cache

import pytest

from dialer.events import CallOutcome
from dialer.media.errors import LocalMediaError
from dialer.media.screening import (
    SIT_TEMPLATES,
    EarlyMediaClassifier,
    Goertzel,
    ScreenClass,
    ScreeningConfig,
    SitKind,
    SitTemplate,
    Verdict,
    outcome_for,
)

RATE = 8000
CHUNK = 160  # 20 ms, as RTP brings it

Audio = list[float]


@lru_cache(maxsize=64)
def _tone(frequencies: tuple[float, ...], seconds: float, dbfs: float) -> tuple[float, ...]:
    amplitude = 32768 * 10 ** (dbfs / 20) * math.sqrt(2 / len(frequencies))
    steps = [2 * math.pi * hz / RATE for hz in frequencies]
    return tuple(
        amplitude * sum(math.sin(step * n) for step in steps) for n in range(round(seconds * RATE))
    )


def tone(*frequencies: float, seconds: float, dbfs: float = -20.0) -> Audio:
    return list(_tone(frequencies, seconds, dbfs))


def silence(seconds: float) -> Audio:
    return [0.0] * round(seconds * RATE)


def noisy(audio: Audio, dbfs: float, seed: int = 1) -> Audio:
    rng = random.Random(seed)
    sigma = 32768 * 10 ** (dbfs / 20)
    return [value + rng.gauss(0.0, sigma) for value in audio]


def joined(parts: Iterable[Audio]) -> Audio:
    return [value for part in parts for value in part]


def pcm(audio: Audio) -> bytes:
    samples = array("h", (max(-32768, min(32767, round(value))) for value in audio))
    if array("h", [1]).tobytes() != b"\x01\x00":  # pragma: no cover - big-endian hosts
        samples.byteswap()
    return samples.tobytes()


_VOWELS = ((730.0, 1090.0), (270.0, 2290.0), (530.0, 1840.0), (570.0, 840.0), (300.0, 870.0))


def babble(seconds: float, seed: int = 3, dbfs: float = -20.0) -> Audio:
    """Speech-like: a noisy consonant, then a voiced vowel whose pitch and formants glide."""
    rng = random.Random(seed)
    amplitude = 32768 * 10 ** (dbfs / 20)
    out: Audio = []
    phase = 0.0
    while len(out) < seconds * RATE:
        out += [rng.gauss(0.0, amplitude / 3) for _ in range(round(rng.uniform(0.02, 0.05) * RATE))]
        count = round(rng.uniform(0.12, 0.25) * RATE)
        start_f0, end_f0 = rng.uniform(100, 220), rng.uniform(100, 220)
        vowel_from, vowel_to = rng.choice(_VOWELS), rng.choice(_VOWELS)
        for block in range(0, count, 40):  # formants move every 5 ms, as articulation does
            share = block / count
            f0 = start_f0 + (end_f0 - start_f0) * share
            formants = [a + (b - a) * share for a, b in zip(vowel_from, vowel_to, strict=True)]
            weights = [
                (k, sum(1 / (1 + ((k * f0 - f) / 100) ** 2) for f in formants))
                for k in range(1, int(3000 / f0))
            ]
            for n in range(block, min(count, block + 40)):
                phase += 2 * math.pi * f0 / RATE
                envelope = math.sin(math.pi * n / count)
                value = sum(w * math.sin(k * phase) for k, w in weights if w > 0.05)
                out.append(amplitude * envelope * value)
        out += silence(rng.uniform(0.04, 0.12))
    return out


def classify(
    audio: Audio,
    chunk: int = CHUNK,
    config: ScreeningConfig | None = None,
    sample_rate: int = RATE,
) -> Verdict | None:
    classifier = EarlyMediaClassifier(sample_rate, config)
    data = pcm(audio)
    for offset in range(0, len(data), 2 * chunk):
        verdict = classifier.feed(data[offset : offset + 2 * chunk], offset / 2 / sample_rate)
        if verdict is not None:
            return verdict
    return None


def decided(audio: Audio, **options: object) -> Verdict:
    verdict = classify(audio, **options)  # type: ignore[arg-type]
    assert verdict is not None, "the audio ended before a verdict"
    return verdict


def ringing(*frequencies: float, on: float, off: float, cycles: int = 3) -> Audio:
    return (tone(*frequencies, seconds=on) + silence(off)) * cycles


def sit(*segments: tuple[float, float], dbfs: float = -27.0, then: float = 1.0) -> Audio:
    audio: Audio = []
    for hz, seconds in segments:
        audio += tone(hz, seconds=seconds, dbfs=dbfs)
    return audio + silence(then)


# -- the Goertzel term -------------------------------------------------------------


@pytest.mark.parametrize("frequency", [425.0, 913.8, 1428.5, 1776.7, 3000.0])
def test_goertzel_term_is_the_dft_sum_turned_by_a_constant_phase(frequency: float) -> None:
    rng = random.Random(int(frequency))
    frame = [rng.randint(-20000, 20000) for _ in range(80)]
    omega = 2 * math.pi * frequency / RATE
    dft = sum(sample * cmath.exp(-1j * omega * n) for n, sample in enumerate(frame))
    re, im = Goertzel(frequency, RATE, 80).term(frame)
    assert complex(re, im) == pytest.approx(dft * cmath.exp(1j * omega * 79), rel=1e-9)


def test_goertzel_refuses_what_it_cannot_do() -> None:
    with pytest.raises(LocalMediaError, match="not below Nyquist"):
        Goertzel(4000.0, RATE, 80)
    with pytest.raises(LocalMediaError, match="frame length must be positive"):
        Goertzel(450.0, RATE, 0)
    with pytest.raises(LocalMediaError, match="frame of 79 samples, filter for 80"):
        Goertzel(450.0, RATE, 80).term([0] * 79)


# -- ringback ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequencies", "on", "off", "hz", "within_s"),
    [
        ((450.0,), 1.0, 4.0, 450.0, 1.6),  # China
        ((425.0,), 1.0, 4.0, 425.0, 1.6),  # Europe
        ((440.0, 480.0), 2.0, 4.0, 460.0, 2.6),  # North America: the phase sees their middle
    ],
)
def test_ringback_of_each_region_is_called_after_one_burst(
    frequencies: tuple[float, ...], on: float, off: float, hz: float, within_s: float
) -> None:
    verdict = decided(ringing(*frequencies, on=on, off=off))
    assert verdict.kind is ScreenClass.RINGBACK
    assert verdict.decided_after_s <= within_s
    assert verdict.features["on_s"] == pytest.approx(on, abs=0.03)
    assert verdict.features["tone_hz"] == pytest.approx(hz, abs=3.0)
    assert outcome_for(verdict) is None


def test_ringback_caught_mid_burst_is_called_from_the_off_time() -> None:
    audio = ringing(450.0, on=1.0, off=4.0)[round(0.7 * RATE) :]  # 0.3 s of the first burst
    verdict = decided(audio)
    assert verdict.kind is ScreenClass.RINGBACK
    assert verdict.features["off_s"] == pytest.approx(4.0, abs=0.05)
    assert 4.5 < verdict.decided_after_s < 5.0  # 0.3 on + 4 off + 0.3 into the next burst


@pytest.mark.parametrize(
    ("name", "audio"),
    [
        ("continuous 450 Hz (dial tone)", tone(450.0, seconds=11.0)),
        ("busy 0.35/0.35", (tone(450.0, seconds=0.35) + silence(0.35)) * 15),
        ("congestion 0.7/0.7", (tone(450.0, seconds=0.7) + silence(0.7)) * 8),
        ("bursts too short", silence(0.5) + (tone(450.0, seconds=0.5) + silence(4.0)) * 2),
    ],
)
def test_cadence_matters(name: str, audio: Audio) -> None:
    verdict = decided(audio + silence(max(0.0, 10.5 - len(audio) / RATE)))
    assert verdict.kind is not ScreenClass.RINGBACK, name
    assert outcome_for(verdict) is None


def test_a_continuous_tone_is_unknown_at_the_deadline() -> None:
    verdict = decided(tone(450.0, seconds=11.0))
    assert verdict.kind is ScreenClass.UNKNOWN
    assert verdict.decided_after_s == pytest.approx(10.0)
    assert verdict.features["longest_tone_s"] == pytest.approx(10.0, abs=0.05)


# -- special information tones -----------------------------------------------------


@pytest.mark.parametrize("spec", SIT_TEMPLATES, ids=lambda spec: spec.name)
def test_each_sit_is_recognised_with_its_subtype(spec: SitTemplate) -> None:
    durations = (*(ms / 1000 for ms in spec.durations_ms), 0.38)
    verdict = decided(sit(*zip(spec.frequencies_hz, durations, strict=True)))
    assert verdict.kind is ScreenClass.SIT
    assert verdict.sit is spec.kind
    assert verdict.decided_after_s < 1.0
    for position, hz in enumerate(spec.frequencies_hz, start=1):
        assert verdict.features[f"f{position}_hz"] == pytest.approx(hz, abs=2.0)


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        (SitKind.INTERCEPT, CallOutcome.INVALID_NUMBER),
        (SitKind.VACANT_CODE, CallOutcome.INVALID_NUMBER),
        (SitKind.INEFFECTIVE_OTHER, CallOutcome.INVALID_NUMBER),
        (SitKind.REORDER, CallOutcome.TRUNK_FAILURE),
        (SitKind.NO_CIRCUIT, CallOutcome.TRUNK_FAILURE),
        (SitKind.UNSPECIFIED, CallOutcome.INVALID_NUMBER),
    ],
)
def test_sit_outcomes(kind: SitKind, outcome: CallOutcome) -> None:
    assert outcome_for(Verdict(ScreenClass.SIT, 0.9, 0.8, sit=kind)) is outcome


@pytest.mark.parametrize(
    "segments",
    [
        ((1800.0, 0.33), (1400.0, 0.33), (950.0, 0.33)),  # falling
        ((950.0, 0.33), (1800.0, 0.33), (1400.0, 0.33)),  # out of order
        ((950.0, 0.6), (1400.0, 0.6), (1800.0, 0.6)),  # segments too long
        ((950.0, 0.33), (1400.0, 0.33)),  # the third is missing
    ],
    ids=["falling", "shuffled", "too-long", "two-only"],
)
def test_sit_needs_three_rising_segments_of_the_right_length(
    segments: tuple[tuple[float, float], ...],
) -> None:
    verdict = decided(sit(*segments, then=10.0))
    assert verdict.kind is not ScreenClass.SIT


def test_sit_segments_may_be_up_to_sixty_ms_apart_but_no_more() -> None:
    def spaced(gap: float) -> Audio:
        parts = [tone(hz, seconds=0.33, dbfs=-27.0) + silence(gap) for hz in (950.0, 1400.0)]
        return parts[0] + parts[1] + tone(1800.0, seconds=0.33, dbfs=-27.0) + silence(10.0)

    assert decided(spaced(0.03)).kind is ScreenClass.SIT
    assert decided(spaced(0.15)).kind is not ScreenClass.SIT


def test_sit_then_announcement_is_a_sit() -> None:
    audio = sit((913.8, 0.274), (1370.6, 0.274), (1776.7, 0.38), then=0.2) + babble(4.0)
    verdict = decided(audio)
    assert verdict.kind is ScreenClass.SIT
    assert verdict.sit is SitKind.INTERCEPT
    assert outcome_for(verdict) is CallOutcome.INVALID_NUMBER


# -- noise -------------------------------------------------------------------------


def test_ringback_in_noise_at_10_db_snr() -> None:
    verdict = decided(noisy(ringing(450.0, on=1.0, off=4.0), dbfs=-30.0))
    assert verdict.kind is ScreenClass.RINGBACK


def test_sit_in_noise_at_10_db_snr() -> None:
    audio = noisy(sit((985.2, 0.38), (1428.5, 0.38), (1776.7, 0.38), dbfs=-25.0), dbfs=-35.0)
    verdict = decided(audio + silence(0.1))
    assert verdict.kind is ScreenClass.SIT
    assert verdict.sit is SitKind.NO_CIRCUIT


def test_announcement_in_noise_at_15_db_snr() -> None:
    verdict = decided(noisy(silence(0.5) + babble(5.0), dbfs=-38.0))
    assert verdict.kind is ScreenClass.ANNOUNCEMENT


# -- announcements, silence, the deadline ------------------------------------------


def test_speech_is_an_announcement_within_two_and_a_half_seconds() -> None:
    verdict = decided(babble(6.0))
    assert verdict.kind is ScreenClass.ANNOUNCEMENT
    assert verdict.decided_after_s < 2.5
    assert verdict.features["syllables"] >= 3
    assert outcome_for(verdict) is CallOutcome.UNAVAILABLE


@pytest.mark.parametrize(
    ("name", "audio"),
    [
        (
            "melody",
            joined(tone(hz, seconds=0.3) for hz in (262.0, 330.0, 392.0, 523.0, 392.0, 330.0) * 6),
        ),
        (
            "dtmf",
            joined(
                tone(row, column, seconds=0.1) + silence(0.08)
                for row, column in ((697.0, 1209.0), (770.0, 1336.0), (852.0, 1477.0)) * 8
            ),
        ),
    ],
)
def test_tone_sequences_are_not_announcements(name: str, audio: Audio) -> None:
    verdict = decided(audio + silence(max(0.0, 10.5 - len(audio) / RATE)))
    assert verdict.kind is not ScreenClass.ANNOUNCEMENT, name
    assert outcome_for(verdict) is None


@pytest.mark.parametrize(
    "audio",
    [silence(6.0), noisy(silence(6.0), dbfs=-60.0), noisy(silence(6.0), dbfs=-30.0)],
    ids=["zero", "comfort-noise", "steady-noise"],
)
def test_silence_is_called_once_it_outlasts_a_ringback_pause(audio: Audio) -> None:
    verdict = decided(audio)
    assert verdict.kind is ScreenClass.SILENCE
    assert verdict.decided_after_s == pytest.approx(5.0)
    assert outcome_for(verdict) is None


def test_the_deadline_gives_unknown() -> None:
    chord = tone(523.0, 659.0, 784.0, seconds=7.0)
    config = ScreeningConfig(deadline_s=6.0, silence_s=3.0)
    verdict = decided(chord, config=config)
    assert verdict.kind is ScreenClass.UNKNOWN
    assert verdict.confidence == 0.0
    assert verdict.decided_after_s == pytest.approx(6.0)
    assert outcome_for(verdict) is None


# -- feeding -------------------------------------------------------------------------


def test_chunking_does_not_change_the_verdict() -> None:
    audio = sit((950.0, 0.33), (1400.0, 0.33), (1800.0, 0.33))
    verdicts = [decided(audio, chunk=chunk) for chunk in (37, 160, 1000)]
    assert {(v.kind, v.sit, v.decided_after_s) for v in verdicts} == {
        (ScreenClass.SIT, SitKind.UNSPECIFIED, verdicts[0].decided_after_s)
    }


def test_a_hole_in_time_is_heard_as_silence() -> None:
    classifier = EarlyMediaClassifier()
    assert classifier.feed(pcm(tone(450.0, seconds=1.0)), 10.0) is None
    verdict = classifier.feed(pcm(tone(450.0, seconds=0.02)), 15.0)  # 4 s later than the audio
    assert verdict is not None
    assert verdict.kind is ScreenClass.RINGBACK
    assert verdict.decided_after_s == pytest.approx(1.52, abs=0.03)
    assert classifier.verdict is verdict


def test_sixteen_kilohertz_audio() -> None:
    def tone16(hz: float, seconds: float) -> Audio:
        amplitude = 32768 * 10 ** (-27 / 20) * math.sqrt(2)
        return [
            amplitude * math.sin(2 * math.pi * hz * n / 16000)
            for n in range(round(seconds * 16000))
        ]

    audio = tone16(913.8, 0.38) + tone16(1428.5, 0.274) + tone16(1776.7, 0.38) + [0.0] * 8000
    verdict = decided(audio, sample_rate=16000, chunk=320)
    assert verdict.kind is ScreenClass.SIT
    assert verdict.sit is SitKind.INEFFECTIVE_OTHER


def test_misuse_is_a_local_error() -> None:
    classifier = EarlyMediaClassifier()
    with pytest.raises(LocalMediaError, match="even length, got 3 octets"):
        classifier.feed(b"\x00\x00\x00", 0.0)
    with pytest.raises(LocalMediaError, match="finite time"):
        classifier.feed(b"", math.nan)
    classifier.feed(bytes(320), 1.0)
    with pytest.raises(LocalMediaError, match=r"t went backwards: 0\.5 after 1\.0"):
        classifier.feed(bytes(320), 0.5)
    verdict = decided(silence(6.0))
    done = EarlyMediaClassifier()
    done.feed(pcm(silence(6.0)), 0.0)
    assert done.verdict == verdict
    with pytest.raises(LocalMediaError, match="already decided silence"):
        done.feed(bytes(320), 7.0)
    with pytest.raises(LocalMediaError, match="multiple of 100 Hz from 8000 Hz, not 8001"):
        EarlyMediaClassifier(8001)


def test_a_bad_config_lists_every_problem() -> None:
    with pytest.raises(LocalMediaError) as caught:
        ScreeningConfig(deadline_s=200.0, silence_s=0.0, gap_tolerance_s=-1.0, tone_floor_dbfs=3.0)
    message = str(caught.value)
    for fragment in ("silence_s (0.0)", "deadline_s (200.0)", "gap_tolerance_s", "tone_floor_dbfs"):
        assert fragment in message


def test_verdicts_are_validated() -> None:
    with pytest.raises(LocalMediaError, match=r"within 0\.\.1"):
        Verdict(ScreenClass.RINGBACK, 1.5, 1.0)
    with pytest.raises(LocalMediaError, match="SIT kind goes with a SIT verdict"):
        Verdict(ScreenClass.ANNOUNCEMENT, 0.9, 1.0, sit=SitKind.REORDER)
    with pytest.raises(LocalMediaError, match="SIT kind goes with a SIT verdict"):
        Verdict(ScreenClass.SIT, 0.9, 1.0)
    verdict = Verdict(ScreenClass.SILENCE, 0.9, 5.0, features={"sounding_share": 0.0})
    with pytest.raises(TypeError):
        verdict.features["sounding_share"] = 1.0  # type: ignore[index]
