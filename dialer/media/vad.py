"""Voice activity detection by frame energy against an adaptive noise floor.

Why not webrtcvad: the original ``webrtcvad`` package was last released in
2017 and is a C extension without wheels for current Pythons, so it would
need a compiler on every host (forks that ship wheels are still a compiled,
thinly maintained dependency). What we measure is telephone-band G.711
speech against line silence, for talk-time and "did the customer speak"
rules; for that an energy detector is sufficient, and it is deterministic,
dependency-free and cheap enough to run on every frame of every call.

The method: each frame (20 ms) gets its level in dBFS. A frame is *active*
when its level is above both an absolute floor (-45 dBFS: below that nobody
is talking on a phone line) and the channel's noise floor plus a margin.
The noise floor follows quieter frames at once and louder frames slowly, so
it settles on the line's background level and a steady hum stops counting
after a few seconds. Activity becomes speech only after a short onset (a
click or a single pop is one frame, a syllable is several) and stays speech
through a hangover, so the gaps between syllables and words are speech.

Limits: it measures energy, not voice. Loud noise, music on hold, a TV in
the background and cross-talk all count as speech while they are louder
than the floor; only steady noise is adapted away. It does not tell a human
from an answering machine.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

SILENCE_DBFS = -96.0  # an all-zero frame: about the 16-bit quantisation floor
_FULL_SCALE_SQUARED = 32768.0 * 32768.0
_BIG_ENDIAN = sys.byteorder == "big"
_STEREO_BYTES = 4  # one s16le sample for each of two channels


def frame_dbfs(samples: Sequence[int]) -> float:
    """The RMS level of a frame of 16-bit samples, in dB relative to full scale."""
    if not samples:
        raise ValueError("a frame needs at least one sample")
    # hypot is the square root of the sum of squares done in C: about twice
    # as fast as sum(map(operator.mul, ...)), and exact enough for a level.
    root = math.hypot(*samples)
    if root == 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(root * root / (len(samples) * _FULL_SCALE_SQUARED)))


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Tuning of the detector; the defaults suit 8 kHz G.711 telephone speech."""

    frame_ms: int = 20
    absolute_floor_dbfs: float = -45.0
    margin_db: float = 10.0  # above the noise floor
    onset_ms: int = 40  # active this long before it counts as speech
    hangover_ms: int = 200  # speech this long after the last active frame
    # Share of the gap to a louder frame's level the noise floor climbs, per frame.
    floor_rise_quiet: float = 0.05
    floor_rise_active: float = 0.002

    def __post_init__(self) -> None:
        if self.frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, not {self.frame_ms}")
        if self.onset_ms < 0 or self.hangover_ms < 0:
            raise ValueError("onset_ms and hangover_ms must not be negative")
        for rise in (self.floor_rise_quiet, self.floor_rise_active):
            if not 0.0 <= rise <= 1.0:
                raise ValueError(f"floor rise rates must be within 0..1, not {rise}")

    @property
    def onset_frames(self) -> int:
        return max(1, math.ceil(self.onset_ms / self.frame_ms))

    @property
    def hangover_frames(self) -> int:
        return math.ceil(self.hangover_ms / self.frame_ms)


class VoiceDetector:
    """Speech/non-speech decisions for one channel, one frame level at a time.

    A frame's decision can depend on the frames after it (is this the start
    of a syllable or a click?), so ``push`` returns the decisions it has
    become sure of: ``(count, speech)`` for the oldest ``count`` undecided
    frames, all with the same verdict. ``pending`` frames are undecided.
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        self._config = config or VadConfig()
        self._onset = self._config.onset_frames
        self._hangover = self._config.hangover_frames
        # Start as if the line's noise sat at the absolute floor, so speech
        # in the very first frames is not mistaken for background.
        self._floor = self._config.absolute_floor_dbfs - self._config.margin_db
        self._pending = 0
        self._talking = False
        self._hang_left = 0

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def noise_floor_dbfs(self) -> float:
        return self._floor

    def push(self, dbfs: float) -> tuple[int, bool]:
        config = self._config
        active = dbfs > max(config.absolute_floor_dbfs, self._floor + config.margin_db)
        if dbfs < self._floor:
            self._floor = dbfs
        else:
            # Background may get louder (a call moves to a noisy room): follow
            # it quickly through quiet frames, and only very slowly through
            # active ones, so that a long monologue is not taken for noise.
            rise = config.floor_rise_active if active else config.floor_rise_quiet
            self._floor += (dbfs - self._floor) * rise

        if self._talking:
            if active:
                self._hang_left = self._hangover
                return 1, True
            if self._hang_left > 0:
                self._hang_left -= 1
                return 1, True
            self._talking = False
            return 1, False
        if not active:
            # A burst shorter than the onset was a click: it and this frame are not speech.
            decided = self._pending + 1
            self._pending = 0
            return decided, False
        self._pending += 1
        if self._pending < self._onset:
            return 0, False
        decided = self._pending
        self._pending = 0
        self._talking = True
        self._hang_left = self._hangover
        return decided, True


@dataclass(frozen=True, slots=True)
class SpeechStats:
    """Speech measured on a two-channel recording; all durations in ms."""

    agent_speech_ms: int
    customer_speech_ms: int
    overlap_ms: int  # both speaking in the same frame
    longest_silence_ms: int  # longest run of frames where neither speaks
    duration_ms: int


class _Tally:
    """Totals over frames decided on both channels."""

    __slots__ = ("agent", "customer", "longest_silence", "overlap", "silence_run")

    def __init__(self) -> None:
        self.agent = 0
        self.customer = 0
        self.overlap = 0
        self.silence_run = 0
        self.longest_silence = 0

    def copy(self) -> _Tally:
        other = _Tally()
        other.agent, other.customer, other.overlap = self.agent, self.customer, self.overlap
        other.silence_run, other.longest_silence = self.silence_run, self.longest_silence
        return other

    def add(self, frames: int, agent: bool, customer: bool) -> None:
        if agent:
            self.agent += frames
        if customer:
            self.customer += frames
        if agent and customer:
            self.overlap += frames
        if agent or customer:
            self.silence_run = 0
        else:
            self.silence_run += frames
            self.longest_silence = max(self.longest_silence, self.silence_run)


def _pair_runs(agent: deque[list[int]], customer: deque[list[int]], tally: _Tally) -> None:
    # Runs are [count, speech]; consume the common prefix of both channels.
    while agent and customer:
        a, c = agent[0], customer[0]
        frames = min(a[0], c[0])
        tally.add(frames, bool(a[1]), bool(c[1]))
        a[0] -= frames
        c[0] -= frames
        if not a[0]:
            agent.popleft()
        if not c[0]:
            customer.popleft()


def _append_run(runs: deque[list[int]], count: int, speech: bool) -> None:
    if not count:
        return
    if runs and runs[-1][1] == speech:
        runs[-1][0] += count
    else:
        runs.append([count, int(speech)])


class SpeechMeter:
    """Speech on interleaved s16le stereo (left = agent, right = customer).

    Chunks may be of any length; a partial frame waits for the next chunk.
    """

    def __init__(
        self, sample_rate: int = 8000, frame_ms: int = 20, *, config: VadConfig | None = None
    ) -> None:
        if sample_rate <= 0 or sample_rate * frame_ms % 1000:
            raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        base = config or VadConfig(frame_ms=frame_ms)
        if base.frame_ms != frame_ms:
            raise ValueError(f"config is for {base.frame_ms} ms frames, meter for {frame_ms} ms")
        self._sample_rate = sample_rate
        self._frame_ms = frame_ms
        self._frame_samples = sample_rate * frame_ms // 1000
        self._frame_bytes = self._frame_samples * _STEREO_BYTES
        self._buffer = bytearray()
        self._bytes_fed = 0
        self._agent = VoiceDetector(base)
        self._customer = VoiceDetector(base)
        self._agent_runs: deque[list[int]] = deque()
        self._customer_runs: deque[list[int]] = deque()
        self._tally = _Tally()

    def feed(self, stereo: bytes) -> None:
        self._bytes_fed += len(stereo)
        self._buffer += stereo
        usable = len(self._buffer) - len(self._buffer) % self._frame_bytes
        if not usable:
            return
        samples = array("h")
        samples.frombytes(self._buffer[:usable])
        del self._buffer[:usable]
        if _BIG_ENDIAN:  # pragma: no cover - big-endian hosts
            samples.byteswap()
        left, right = samples[0::2], samples[1::2]
        step = self._frame_samples
        for start in range(0, len(left), step):
            _append_run(self._agent_runs, *self._agent.push(frame_dbfs(left[start : start + step])))
            _append_run(
                self._customer_runs, *self._customer.push(frame_dbfs(right[start : start + step]))
            )
        _pair_runs(self._agent_runs, self._customer_runs, self._tally)

    def stats(self) -> SpeechStats:
        """Totals so far; frames still awaiting their onset count as non-speech."""
        tally = self._tally.copy()
        agent = deque([run[:] for run in self._agent_runs])
        customer = deque([run[:] for run in self._customer_runs])
        _append_run(agent, self._agent.pending, False)
        _append_run(customer, self._customer.pending, False)
        _pair_runs(agent, customer, tally)
        ms = self._frame_ms
        return SpeechStats(
            agent_speech_ms=tally.agent * ms,
            customer_speech_ms=tally.customer * ms,
            overlap_ms=tally.overlap * ms,
            longest_silence_ms=tally.longest_silence * ms,
            duration_ms=self._bytes_fed // _STEREO_BYTES * 1000 // self._sample_rate,
        )


def speech_ms(
    mono: bytes, sample_rate: int = 8000, frame_ms: int = 20, *, config: VadConfig | None = None
) -> int:
    """Speech in one channel of s16le mono audio; a trailing partial frame is ignored."""
    if sample_rate <= 0 or sample_rate * frame_ms % 1000:
        raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
    base = config or VadConfig(frame_ms=frame_ms)
    if base.frame_ms != frame_ms:
        raise ValueError(f"config is for {base.frame_ms} ms frames, not {frame_ms} ms")
    detector = VoiceDetector(base)
    step = sample_rate * frame_ms // 1000
    samples = array("h")
    samples.frombytes(mono[: len(mono) - len(mono) % (2 * step)])
    if _BIG_ENDIAN:  # pragma: no cover - big-endian hosts
        samples.byteswap()
    frames = 0
    for start in range(0, len(samples), step):
        count, speech = detector.push(frame_dbfs(samples[start : start + step]))
        if speech:
            frames += count
    return frames * frame_ms
