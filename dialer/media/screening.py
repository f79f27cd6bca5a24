"""Call-progress screening: what a customer leg's early media (183) is playing.

While a leg is in 183 Session Progress the far end plays something: ringback
(the callee's phone is ringing), a special information tone (SIT: the call
cannot be completed), a recorded announcement ("the subscriber you dialed is
powered off"), or nothing. Calls that will never be answered should be
released as soon as we know, and must never reach an agent; calls that ring
must be left alone. ``EarlyMediaClassifier`` is fed the early audio (16-bit
PCM, any chunking) with its time and returns a ``Verdict`` as soon as it is
confident; ``outcome_for`` turns a verdict into the leg's ``CallOutcome``.

Sans-IO and pure: no clock, no sockets; ``t`` comes with every chunk.

How it listens. Audio is cut into 10 ms frames. Each frame costs one energy
sum and, when the frame is loud enough, four Goertzel filters (a ringback
band at 450 Hz and the three SIT bands) plus four autocorrelation lags.
From those:

- Tone runs: a frame belongs to a band when that band holds at least half
  of the frame's energy. Runs of frames make tone segments; the phase advance
  of the band's Goertzel term from one frame to the next measures the tone's
  frequency to a few Hz (modulo 100 Hz, which the band resolves), which is
  what tells the ITU SIT (950/1400/1800 Hz) from the North-American ones
  (913.8 or 985.2, 1370.6 or 1428.5, then 1776.7 Hz, Telcordia: ±0.2 %).
- Ringback is a 400-500 Hz tone burst with a ringback cadence (on 0.8-2.6 s,
  off 2.5-5 s: China 450 Hz 1/4 s, Europe 425 Hz 1/4 s, North America
  440+480 Hz 2/4 s). Cadence is required: a continuous 450 Hz tone (dial
  tone) is not ringback, nor are busy and congestion tones (bursts < 0.8 s).
  Decided after one burst and 0.5 s of quiet; when the first burst was cut
  off by the start of the audio, from the off time, 0.3 s into the next.
- SIT is three tone segments in rising bands, each 200-450 ms, at most 60 ms
  apart; decided 120 ms into the third. The frequencies and the first two
  durations (274 ms short, 380 ms long) pick the nearest template, which
  names the North-American subtype; the ITU SIT carries no subtype.
- Announcement is speech: loud frames above the line's noise floor (the
  minimum level of the last second plus 9 dB), with syllable-rate level
  peaks and a spectrum that keeps changing (the normalised autocorrelation
  of a frame differs from that of the frame 20 ms earlier). Tone sequences
  (melodies, DTMF) are loud and modulated too, but steady within each note.
- Silence is nothing of the above for ``silence_s`` (longer than any
  ringback off period, so a leg caught between two bursts is not silence).
  Steady background noise counts as silence: it is neither tone nor speech;
  a steady sound above -45 dBFS that is no ringback (a chord, a hum) does not.
- Unknown is the answer at ``deadline_s`` when nothing was confident.

One verdict per classifier. RINGBACK and SILENCE mean "keep ringing"; to
catch an announcement played later (some carriers say "no answer" after
ringing for a while), feed the rest of the early media to a new classifier.

Limits. Confidence is a heuristic score in 0..1, not a calibrated
probability. Music played instead of ringback ("colour ring-back tone",
彩铃, very common in China) has not been measured: singing or speech in it
may well look like an announcement, so deployments with CRBT callees
should keep announcement release behind a switch until measured on real
recordings. The classifier hears only the audio it is given: early audio
with holes (lost packets, silence suppression) should be fed with a ``t``
that shows the hole, which is then filled with silence.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from dialer.events import CallOutcome
from dialer.media.errors import LocalMediaError

_BIG_ENDIAN = sys.byteorder == "big"
_FULL_SCALE_SQUARED = 32768.0 * 32768.0
_MUL = operator.mul
_MIN_DBFS = -96.0

FRAMES_PER_SECOND = 100  # 10 ms frames: the phase advance per frame then spans 100 Hz

# Bands: the Goertzel centre sits midway between the frequencies the band
# must tell apart; a measured frequency is read within centre ± 50 Hz.
RINGBACK_BAND_HZ = 450.0  # 400-500: 425 (Europe), 440+480 (N. America), 450 (China)
SIT_BANDS_HZ = (949.5, 1399.55, 1788.35)  # 913.8/950/985.2, 1370.6/1400/1428.5, 1776.7/1800
_BANDS_HZ = (RINGBACK_BAND_HZ, *SIT_BANDS_HZ)
_RING, _SIT1, _SIT2, _SIT3 = range(4)

_PURITY_ON = 0.5  # share of a frame's energy in a band for the frame to be that band's tone
_MIN_SEGMENT_FRAMES = 3
_GLITCH_FRAMES = 2  # a run survives this many missing frames (beats of 440+480, noise)
_ACTIVE_MARGIN_DB = 9.0  # above the last second's minimum: something is being said or played
_STEADY_DISTANCE = 0.08  # autocorrelation change below this over 20 ms: a steady sound
_LEVEL_SMOOTH_FRAMES = 3
_NUCLEUS_RISE_DB = 6.0  # a syllable: the level rises this much above the last dip...
_NUCLEUS_FALL_DB = 6.0  # ...and falls this much before the next one counts

_RING_ON_FRAMES = (80, 260)
_RING_OFF_FRAMES = (250, 500)
_RING_QUIET_FRAMES = 50  # quiet after a complete burst before ringback is called
_RING_CONFIRM_FRAMES = 30  # into the next burst, when the first one was cut off
_RING_OFF_QUIET_SHARE = 0.8

_SIT_SEGMENT_FRAMES = (20, 45)
_SIT_MAX_GAP_FRAMES = 6
_SIT_CONFIRM_FRAMES = 12
_SIT_FREQ_SIGMA_HZ = 10.0
_SIT_DURATION_SIGMA_MS = 35.0

_SPEECH_WINDOW_FRAMES = 150
_SPEECH_MIN_ACTIVE = 50
_SPEECH_MIN_NUCLEI = 4
_SPEECH_MAX_STEADY_SHARE = 0.45
_SPEECH_MAX_TONAL_SHARE = 0.25

_SILENCE_MAX_SOUNDING_SHARE = 0.02
_SILENCE_MAX_TONE_FRAMES = 10


class ScreenClass(StrEnum):
    SILENCE = "silence"
    RINGBACK = "ringback"
    SIT = "sit"
    ANNOUNCEMENT = "announcement"
    UNKNOWN = "unknown"


class SitKind(StrEnum):
    """What a SIT says (Telcordia codes); the ITU SIT does not say, nor do the reserved codes."""

    INTERCEPT = "intercept"  # IC: vacant or changed number
    VACANT_CODE = "vacant_code"  # VC: unassigned code or prefix
    INEFFECTIVE_OTHER = "ineffective_other"  # IO: misdialled, prefix missing
    REORDER = "reorder"  # RO: switching blockage, digits lost
    NO_CIRCUIT = "no_circuit"  # NC: all circuits busy, network management
    UNSPECIFIED = "unspecified"


@dataclass(frozen=True, slots=True)
class SitTemplate:
    name: str
    kind: SitKind
    frequencies_hz: tuple[float, float, float]
    durations_ms: tuple[float, float]  # first and second segment; the third is not coded


_LOW1, _HIGH1, _LOW2, _HIGH2, _THIRD = 913.8, 985.2, 1370.6, 1428.5, 1776.7
_SHORT, _LONG = 274.0, 380.0

SIT_TEMPLATES = (
    SitTemplate("ITU", SitKind.UNSPECIFIED, (950.0, 1400.0, 1800.0), (330.0, 330.0)),
    SitTemplate("IC", SitKind.INTERCEPT, (_LOW1, _LOW2, _THIRD), (_SHORT, _SHORT)),
    SitTemplate("VC", SitKind.VACANT_CODE, (_HIGH1, _LOW2, _THIRD), (_LONG, _SHORT)),
    SitTemplate("IO", SitKind.INEFFECTIVE_OTHER, (_LOW1, _HIGH2, _THIRD), (_LONG, _SHORT)),
    SitTemplate("RO-intra", SitKind.REORDER, (_LOW1, _HIGH2, _THIRD), (_SHORT, _LONG)),
    SitTemplate("RO-inter", SitKind.REORDER, (_HIGH1, _LOW2, _THIRD), (_SHORT, _LONG)),
    SitTemplate("NC-intra", SitKind.NO_CIRCUIT, (_HIGH1, _HIGH2, _THIRD), (_LONG, _LONG)),
    SitTemplate("NC-inter", SitKind.NO_CIRCUIT, (_LOW1, _LOW2, _THIRD), (_LONG, _LONG)),
    SitTemplate("reserved", SitKind.UNSPECIFIED, (_HIGH1, _HIGH2, _THIRD), (_SHORT, _SHORT)),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the early media is, how sure we are, when we knew and from what."""

    kind: ScreenClass
    confidence: float  # heuristic, 0..1
    decided_after_s: float  # audio time from the first frame to the end of the deciding frame
    features: Mapping[str, float] = field(default_factory=dict)
    sit: SitKind | None = None
    detail: str = ""  # for people: the template, cadence or reason

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise LocalMediaError(f"confidence must be within 0..1, not {self.confidence}")
        if (self.sit is not None) != (self.kind is ScreenClass.SIT):
            raise LocalMediaError("a SIT kind goes with a SIT verdict, and only with one")
        object.__setattr__(self, "features", MappingProxyType(dict(self.features)))


_SIT_OUTCOME = {
    SitKind.INTERCEPT: CallOutcome.INVALID_NUMBER,
    SitKind.VACANT_CODE: CallOutcome.INVALID_NUMBER,
    # The number cannot be completed as dialled: the lead's number needs fixing.
    SitKind.INEFFECTIVE_OTHER: CallOutcome.INVALID_NUMBER,
    SitKind.REORDER: CallOutcome.TRUNK_FAILURE,
    SitKind.NO_CIRCUIT: CallOutcome.TRUNK_FAILURE,
    # ITU networks mostly put SIT before "number not in service"; congestion
    # has its own tone there. So an unspecified SIT is taken as invalid.
    SitKind.UNSPECIFIED: CallOutcome.INVALID_NUMBER,
}


def outcome_for(verdict: Verdict) -> CallOutcome | None:
    """The leg's outcome a verdict implies, or None to keep the call ringing.

    An announcement is taken as UNAVAILABLE. Chinese carriers play one for a
    powered-off phone (您拨打的电话已关机), an unreachable one (暂时无法接通),
    a vacant number (空号) and a busy user (正忙); which one it is cannot be
    told without speech recognition. Powered-off and unreachable are by far
    the most common, and UNAVAILABLE lets the lead be retried later, which is
    the cheap mistake for the other two (a vacant number is retried once more
    and then caught by the carrier's SIP status; a busy one should be retried).
    """
    if verdict.kind is ScreenClass.SIT:
        return _SIT_OUTCOME[verdict.sit or SitKind.UNSPECIFIED]
    if verdict.kind is ScreenClass.ANNOUNCEMENT:
        return CallOutcome.UNAVAILABLE
    return None


@dataclass(frozen=True, slots=True)
class ScreeningConfig:
    deadline_s: float = 10.0  # UNKNOWN after this much audio
    silence_s: float = 5.0  # SILENCE after this much of nothing (ringback is off for 4-5 s)
    gap_tolerance_s: float = 0.25  # a later ``t`` than the audio so far explains: a hole
    tone_floor_dbfs: float = -50.0  # quieter frames are not analysed at all
    speech_floor_dbfs: float = -45.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.silence_s < self.deadline_s:
            problems.append(
                f"silence_s ({self.silence_s}) must be positive and below deadline_s "
                f"({self.deadline_s})"
            )
        if self.deadline_s > 120.0:
            problems.append(f"deadline_s ({self.deadline_s}) must not exceed 120 s")
        if self.gap_tolerance_s < 0.0:
            problems.append(f"gap_tolerance_s must not be negative, not {self.gap_tolerance_s}")
        for name in ("tone_floor_dbfs", "speech_floor_dbfs"):
            value = getattr(self, name)
            if not _MIN_DBFS < value < 0.0:
                problems.append(f"{name} must be within {_MIN_DBFS}..0 dBFS, not {value}")
        if problems:
            raise LocalMediaError("invalid screening config: " + "; ".join(problems))


class Goertzel:
    """One DFT term at one frequency over frames of a fixed length (Goertzel's recurrence).

    ``s[n] = x[n] + 2 cos(w) s[n-1] - s[n-2]`` costs one multiply and two adds
    per sample (in CPython 3.11 that loop beats two dot products against
    cosine and sine tables). The term it ends with is the DFT sum
    ``X = sum(x[n] exp(-j w n))`` times ``exp(j w (N-1))``: the same power,
    and a constant phase offset that cancels in the frame-to-frame phase
    advance used to measure a tone's frequency.
    """

    __slots__ = ("_coefficient", "_cos", "_sin", "frequency_hz", "length")

    def __init__(self, frequency_hz: float, sample_rate: int, length: int) -> None:
        if not 0.0 < frequency_hz < sample_rate / 2:
            raise LocalMediaError(f"{frequency_hz} Hz is not below Nyquist at {sample_rate} Hz")
        if length <= 0:
            raise LocalMediaError(f"frame length must be positive, not {length}")
        self.frequency_hz = frequency_hz
        self.length = length
        omega = 2.0 * math.pi * frequency_hz / sample_rate
        self._cos = math.cos(omega)
        self._sin = math.sin(omega)
        self._coefficient = 2.0 * self._cos

    def term(self, frame: list[int]) -> tuple[float, float]:
        """(real, imaginary) of ``exp(j w (N-1)) * sum(x[n] exp(-j w n))`` over one frame."""
        if len(frame) != self.length:
            raise LocalMediaError(f"frame of {len(frame)} samples, filter for {self.length}")
        coefficient = self._coefficient
        s1 = s2 = 0.0
        for sample in frame:
            s1, s2 = sample + coefficient * s1 - s2, s1
        return s1 - self._cos * s2, self._sin * s2


@dataclass(frozen=True, slots=True)
class _Segment:
    band: int
    start: int  # first and last frame index with the tone
    end: int
    frequency_hz: float
    purity: float
    level_dbfs: float
    cut: bool  # started with the audio: its true start is not known

    @property
    def frames(self) -> int:
        return self.end - self.start + 1


class _Run:
    """A tone segment still being heard in one band."""

    __slots__ = ("band", "last", "level", "on", "prev_im", "prev_re", "purity", "start", "zi", "zr")

    def __init__(self, band: int, start: int) -> None:
        self.band = band
        self.start = start
        self.last = start
        self.on = 0
        self.zr = 0.0
        self.zi = 0.0
        self.purity = 0.0
        self.level = 0.0
        self.prev_re = 0.0
        self.prev_im = 0.0

    def add(self, index: int, re: float, im: float, purity: float, level: float) -> None:
        if self.on and index == self.last + 1:
            # Phase advance over one frame: the tone's frequency modulo 100 Hz.
            self.zr += re * self.prev_re + im * self.prev_im
            self.zi += im * self.prev_re - re * self.prev_im
        self.on += 1
        self.last = index
        self.prev_re, self.prev_im = re, im
        self.purity += purity
        self.level += level

    def frequency_hz(self) -> float:
        centre = _BANDS_HZ[self.band]
        if self.zr == 0.0 and self.zi == 0.0:
            return centre
        residue = math.atan2(self.zi, self.zr) / (2.0 * math.pi) * FRAMES_PER_SECOND
        low = centre - FRAMES_PER_SECOND / 2
        return low + (residue - low) % FRAMES_PER_SECOND

    def segment(self) -> _Segment:
        return _Segment(
            band=self.band,
            start=self.start,
            end=self.last,
            frequency_hz=self.frequency_hz(),
            purity=self.purity / self.on,
            level_dbfs=self.level / self.on,
            cut=self.start == 0,
        )


class _MinimumLevel:
    """The lowest level of the last ``span`` frames (a monotonic deque)."""

    __slots__ = ("_queue", "_span")

    def __init__(self, span: int) -> None:
        self._span = span
        self._queue: deque[tuple[int, float]] = deque()

    def push(self, index: int, level: float) -> float:
        queue = self._queue
        while queue and queue[-1][1] >= level:
            queue.pop()
        queue.append((index, level))
        if queue[0][0] <= index - self._span:
            queue.popleft()
        return queue[0][1]


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


class EarlyMediaClassifier:
    """Classifies one leg's early media; feed it chunks until it returns a verdict."""

    def __init__(self, sample_rate: int = 8000, config: ScreeningConfig | None = None) -> None:
        if sample_rate < 8000 or sample_rate % FRAMES_PER_SECOND:
            raise LocalMediaError(
                f"sample rate must be a multiple of {FRAMES_PER_SECOND} Hz from 8000 Hz, "
                f"not {sample_rate}"
            )
        self.sample_rate = sample_rate
        self.config = config or ScreeningConfig()
        self._n = sample_rate // FRAMES_PER_SECOND
        self._filters = [Goertzel(hz, sample_rate, self._n) for hz in _BANDS_HZ]
        self._purity_scale = 2.0 / self._n
        self._deadline = round(self.config.deadline_s * FRAMES_PER_SECOND)
        self._silence = round(self.config.silence_s * FRAMES_PER_SECOND)
        self._pending = array("h")
        self._t0: float | None = None
        self._last_t = -math.inf
        self._samples_in = 0
        self._holes_s = 0.0
        self._verdict: Verdict | None = None
        self._index = 0  # frames analysed
        self._floor = _MinimumLevel(FRAMES_PER_SECOND)
        # Tone runs, closed segments and the ringback and speech trackers.
        self._runs: list[_Run | None] = [None] * len(_BANDS_HZ)
        self._segments: deque[_Segment] = deque(maxlen=8)
        self._longest_tone = 0
        self._ring_last: _Segment | None = None
        self._ring_quiet = 0
        self._ring_loud = 0
        self._ring_off: int | None = None
        self._sounding_total = 0
        self._was_steady = False
        self._rho: deque[tuple[float, ...] | None] = deque([None, None], maxlen=2)
        self._levels: deque[float] = deque(maxlen=_LEVEL_SMOOTH_FRAMES)
        self._valley = 0.0
        self._peak = 0.0
        self._rising = True
        self._window: deque[int] = deque()
        self._win_active = 0
        self._win_known = 0
        self._win_steady = 0
        self._win_tonal = 0
        self._nuclei: deque[int] = deque()
        self._nuclei_total = 0

    @property
    def verdict(self) -> Verdict | None:
        return self._verdict

    @property
    def elapsed_s(self) -> float:
        """Audio analysed so far, holes included."""
        return self._index / FRAMES_PER_SECOND

    def feed(self, pcm: bytes, t: float) -> Verdict | None:
        """Add a chunk of mono s16le audio whose first sample was heard at ``t`` seconds.

        Returns the verdict once one is reached; the classifier is then done
        and further audio is a caller error.
        """
        if self._verdict is not None:
            raise LocalMediaError(f"already decided {self._verdict.kind}: feed a new classifier")
        if len(pcm) % 2:
            raise LocalMediaError(f"16-bit PCM must have an even length, got {len(pcm)} octets")
        if not math.isfinite(t):
            raise LocalMediaError(f"t must be a finite time in seconds, not {t}")
        if t < self._last_t:
            raise LocalMediaError(f"t went backwards: {t} after {self._last_t}")
        self._last_t = t
        if self._t0 is None:
            self._t0 = t
        hole = t - (self._t0 + self._samples_in / self.sample_rate)
        if hole > self.config.gap_tolerance_s:
            # Fill with silence, but never past the deadline: that is all we would analyse.
            wanted = (self._deadline + 1) * self._n - self._samples_in - len(self._pending)
            fill = max(0, min(round(hole * self.sample_rate), wanted))
            self._pending.extend(array("h", bytes(2 * fill)))
            self._samples_in += round(hole * self.sample_rate)
            self._holes_s += hole
        samples = array("h")
        samples.frombytes(pcm)
        if _BIG_ENDIAN:  # pragma: no cover - big-endian hosts
            samples.byteswap()
        self._samples_in += len(samples)
        self._pending.extend(samples)
        n = self._n
        usable = len(self._pending) - len(self._pending) % n
        if not usable:
            return None
        pending = self._pending
        verdict = None
        start = 0
        for start in range(0, usable, n):
            verdict = self._frame(pending[start : start + n].tolist())
            if verdict is not None:
                break
        del pending[: start + n if verdict is not None else usable]
        if verdict is not None:
            self._verdict = verdict
        return verdict

    # -- one frame -----------------------------------------------------

    def _frame(self, x: list[int]) -> Verdict | None:
        index = self._index
        self._index = index + 1
        config = self.config
        energy = float(sum(map(_MUL, x, x)))
        level = (
            max(_MIN_DBFS, 10.0 * math.log10(energy / (self._n * _FULL_SCALE_SQUARED)))
            if energy
            else _MIN_DBFS
        )
        floor = self._floor.push(index, level)
        active = level >= config.speech_floor_dbfs and level >= floor + _ACTIVE_MARGIN_DB
        band = -1
        if level >= config.tone_floor_dbfs:
            best = 0.0
            best_re = best_im = 0.0
            for b, goertzel in enumerate(self._filters):
                re, im = goertzel.term(x)
                purity = (re * re + im * im) * self._purity_scale / energy
                if purity > best:
                    best, band, best_re, best_im = purity, b, re, im
            if best >= _PURITY_ON:
                run = self._runs[band]
                if run is None:
                    run = self._runs[band] = _Run(band, index)
                run.add(index, best_re, best_im, best, level)
            else:
                band = -1
        for b, run in enumerate(self._runs):
            if run is not None and b != band and index - run.last > _GLITCH_FRAMES:
                self._runs[b] = None
                self._close(run.segment())
        steady = self._steadiness(x, energy, level >= config.tone_floor_dbfs)
        # Something is sounding: speech or another change above the floor, or a
        # steady sound (a tone, a chord, a hum) held for two frames running.
        # Line noise is neither: its spectrum is never the same twice.
        held = steady is True and self._was_steady
        self._was_steady = steady is True
        if level >= config.speech_floor_dbfs and (active or held):
            self._sounding_total += 1
        self._track_nuclei(index, level, active)
        self._slide_window(active, steady if active else None, band >= 0)
        return (
            self._sit_verdict(index)
            or self._ringback_verdict(index, band, active)
            or self._announcement_verdict(index)
            or self._silence_or_deadline(index)
        )

    def _steadiness(self, x: list[int], energy: float, loud: bool) -> bool | None:
        """Is this frame's spectrum what it was 20 ms ago? None when either was quiet."""
        if not loud:
            self._rho.append(None)
            return None
        rho = tuple(sum(map(_MUL, x, x[lag:])) / energy for lag in (1, 2, 3, 4))
        before = self._rho[0]
        self._rho.append(rho)
        if before is None:
            return None
        change: float = max(abs(a - b) for a, b in zip(rho, before, strict=True))
        return change < _STEADY_DISTANCE

    def _track_nuclei(self, index: int, level: float, active: bool) -> None:
        # Syllables: peaks of the smoothed level, each at least 6 dB above the
        # dip before it, counted only while the line is active.
        self._levels.append(max(level, -70.0))
        smooth = sum(self._levels) / len(self._levels)
        if self._rising:
            self._valley = min(self._valley, smooth) if index else smooth
            if active and smooth >= self._valley + _NUCLEUS_RISE_DB:
                self._rising = False
                self._peak = smooth
                self._nuclei.append(index)
                self._nuclei_total += 1
        else:
            self._peak = max(self._peak, smooth)
            if smooth <= self._peak - _NUCLEUS_FALL_DB:
                self._rising = True
                self._valley = smooth
        while self._nuclei and self._nuclei[0] <= index - _SPEECH_WINDOW_FRAMES:
            self._nuclei.popleft()

    def _slide_window(self, active: bool, steady: bool | None, tonal: bool) -> None:
        flags = active | (steady is not None) << 1 | bool(steady) << 2 | tonal << 3
        self._window.append(flags)
        self._count(flags, 1)
        if len(self._window) > _SPEECH_WINDOW_FRAMES:
            self._count(self._window.popleft(), -1)

    def _count(self, flags: int, sign: int) -> None:
        self._win_active += sign * (flags & 1)
        self._win_known += sign * (flags >> 1 & 1)
        self._win_steady += sign * (flags >> 2 & 1)
        self._win_tonal += sign * (flags >> 3 & 1)

    # -- segments ------------------------------------------------------

    def _close(self, segment: _Segment) -> None:
        self._longest_tone = max(self._longest_tone, segment.frames)
        if segment.frames >= _MIN_SEGMENT_FRAMES:
            self._segments.append(segment)  # shorter ones are blips, not part of a sequence
        if segment.band == _RING:
            # A burst cut off by the start of the audio still fits if what was
            # heard is as long as a burst; a shorter tail waits for the next burst.
            low, high = _RING_ON_FRAMES
            fits = segment.frames <= high and (segment.cut or segment.frames >= low)
            self._ring_last = segment if fits else None
            self._ring_quiet = self._ring_loud = 0

    def _ringback_verdict(self, index: int, band: int, active: bool) -> Verdict | None:
        last = self._ring_last
        run = self._runs[_RING]
        if run is not None and run.start == index and last is not None:
            # A new burst: the off time since the last one is the other half of the cadence.
            off = run.start - last.end - 1
            low, high = _RING_OFF_FRAMES
            quiet_share = self._ring_quiet / max(1, off)
            self._ring_off = (
                off if low <= off <= high and quiet_share >= _RING_OFF_QUIET_SHARE else None
            )
            self._ring_last = None
        if run is not None and self._ring_off is not None and run.on >= _RING_CONFIRM_FRAMES:
            return self._ringback(index, run.segment(), self._ring_off)
        if run is None:
            self._ring_off = None
        if last is None or run is not None:
            return None
        if band < 0 and not active:
            self._ring_quiet += 1
        else:
            self._ring_loud += 1
        if self._ring_loud > _GLITCH_FRAMES + 2:
            self._ring_last = None  # speech or another tone right after: not a ring
        elif last.frames >= _RING_ON_FRAMES[0] and self._ring_quiet >= _RING_QUIET_FRAMES:
            return self._ringback(index, last, None)
        return None

    def _ringback(self, index: int, burst: _Segment, off: int | None) -> Verdict:
        on_s = burst.frames / FRAMES_PER_SECOND
        features = {
            "tone_hz": round(burst.frequency_hz, 1),
            "purity": round(burst.purity, 3),
            "level_dbfs": round(burst.level_dbfs, 1),
        }
        if off is None:
            features["on_s"] = on_s
            region = "North America" if on_s >= 1.5 else "China/Europe"
            cadence = f"{on_s:.2f} s on ({region})"
            confidence = 0.8 + 0.15 * burst.purity - (0.05 if burst.cut else 0.0)
        else:
            features["off_s"] = off / FRAMES_PER_SECOND
            cadence = f"{off / FRAMES_PER_SECOND:.2f} s off between bursts"
            confidence = 0.75 + 0.15 * burst.purity
        return Verdict(
            kind=ScreenClass.RINGBACK,
            confidence=_clamp(confidence),
            decided_after_s=(index + 1) / FRAMES_PER_SECOND,
            features=features,
            detail=f"ringback {burst.frequency_hz:.0f} Hz, {cadence}",
        )

    def _sit_verdict(self, index: int) -> Verdict | None:
        third = self._runs[_SIT3]
        if third is None or third.on != _SIT_CONFIRM_FRAMES or len(self._segments) < 2:
            return None
        first, second = self._segments[-2], self._segments[-1]
        if (first.band, second.band) != (_SIT1, _SIT2):
            return None
        low, high = _SIT_SEGMENT_FRAMES
        if not (low <= second.frames <= high and first.frames <= high):
            return None
        # A first segment cut off by the start of the audio has no known length.
        unknown_length = first.cut and first.frames < low
        if first.frames < low and not unknown_length:
            return None
        gaps = (second.start - first.end - 1, third.start - second.end - 1)
        if not all(0 <= gap <= _SIT_MAX_GAP_FRAMES for gap in gaps):
            return None
        segments = (first, second, third.segment())
        freqs = tuple(segment.frequency_hz for segment in segments)
        durations = (first.frames * 10.0, second.frames * 10.0)
        costs = sorted(
            (_sit_cost(template, freqs, durations, unknown_length), position)
            for position, template in enumerate(SIT_TEMPLATES)
        )
        (best_cost, best), (runner_cost, _) = costs[0], costs[1]
        template = SIT_TEMPLATES[best]
        purity = sum(segment.purity for segment in segments) / 3
        features = {
            "f1_hz": round(freqs[0], 1),
            "f2_hz": round(freqs[1], 1),
            "f3_hz": round(freqs[2], 1),
            "d1_ms": durations[0],
            "d2_ms": durations[1],
            "gap12_ms": gaps[0] * 10.0,
            "gap23_ms": gaps[1] * 10.0,
            "purity": round(purity, 3),
            "template_cost": round(best_cost, 2),
            "runner_up_cost": round(runner_cost, 2),
        }
        cut = " (first segment cut off)" if unknown_length else ""
        return Verdict(
            kind=ScreenClass.SIT,
            confidence=_clamp(0.7 + 0.3 * purity - (0.1 if unknown_length else 0.0)),
            decided_after_s=(index + 1) / FRAMES_PER_SECOND,
            features=features,
            sit=template.kind,
            detail=(
                f"SIT {template.name}: {freqs[0]:.1f}/{freqs[1]:.1f}/{freqs[2]:.1f} Hz, "
                f"{durations[0]:.0f}/{durations[1]:.0f} ms{cut}"
            ),
        )

    def _announcement_verdict(self, index: int) -> Verdict | None:
        active = self._win_active
        nuclei = len(self._nuclei)
        if active < _SPEECH_MIN_ACTIVE or nuclei < _SPEECH_MIN_NUCLEI or not self._win_known:
            return None
        steady = self._win_steady / self._win_known
        tonal = self._win_tonal / active
        if steady > _SPEECH_MAX_STEADY_SHARE or tonal > _SPEECH_MAX_TONAL_SHARE:
            return None
        window_s = len(self._window) / FRAMES_PER_SECOND
        confidence = 0.55 + 0.05 * min(nuclei - _SPEECH_MIN_NUCLEI, 4)
        confidence += 0.25 * (1.0 - steady / _SPEECH_MAX_STEADY_SHARE)
        return Verdict(
            kind=ScreenClass.ANNOUNCEMENT,
            confidence=_clamp(confidence),
            decided_after_s=(index + 1) / FRAMES_PER_SECOND,
            features={
                "active_s": active / FRAMES_PER_SECOND,
                "window_s": window_s,
                "syllables": float(nuclei),
                "steady_share": round(steady, 3),
                "tonal_share": round(tonal, 3),
            },
            detail=f"speech: {nuclei} syllables in {window_s:.1f} s, {steady:.0%} steady frames",
        )

    def _silence_or_deadline(self, index: int) -> Verdict | None:
        frames = index + 1
        open_tone = max((run.last - run.start + 1 for run in self._runs if run), default=0)
        longest = max(self._longest_tone, open_tone)
        features = {
            "sounding_share": round(self._sounding_total / frames, 3),
            "longest_tone_s": longest / FRAMES_PER_SECOND,
            "syllables": float(self._nuclei_total),
            "holes_s": round(self._holes_s, 3),
        }
        if frames >= self._silence and longest <= _SILENCE_MAX_TONE_FRAMES:
            share = self._sounding_total / frames
            if share <= _SILENCE_MAX_SOUNDING_SHARE:
                return Verdict(
                    kind=ScreenClass.SILENCE,
                    confidence=_clamp(0.9 - 5.0 * share),
                    decided_after_s=frames / FRAMES_PER_SECOND,
                    features=features,
                    detail="no tone and no speech",
                )
        if frames >= self._deadline:
            return Verdict(
                kind=ScreenClass.UNKNOWN,
                confidence=0.0,
                decided_after_s=frames / FRAMES_PER_SECOND,
                features=features,
                detail="deadline reached without a confident class",
            )
        return None


def _sit_cost(
    template: SitTemplate,
    frequencies: tuple[float, ...],
    durations: tuple[float, float],
    first_length_unknown: bool,
) -> float:
    cost = sum(
        ((measured - nominal) / _SIT_FREQ_SIGMA_HZ) ** 2
        for measured, nominal in zip(frequencies, template.frequencies_hz, strict=True)
    )
    for position, (measured, nominal) in enumerate(
        zip(durations, template.durations_ms, strict=True)
    ):
        if position == 0 and first_length_unknown:
            continue  # its length is unknown
        cost += ((measured - nominal) / _SIT_DURATION_SIGMA_MS) ** 2
    return cost
