"""A labelled corpus of early media for call-progress screening, built when needed.

    python tests/corpus/build.py OUTDIR [--seed N]

writes one 8 kHz mono 16-bit WAV per item and ``labels.json`` into OUTDIR;
``build_corpus()`` returns the same items in memory (tests and the benchmark
use that). Nothing here is committed as audio: tones are synthesised, noise
is seeded, and announcements are spoken by espeak-ng and brought to 8 kHz
telephone band by sox, so the corpus is the same on every machine with the
same espeak-ng voice data.

What is in it, and why (each item carries its expected class and outcome):

- ringback of China (450 Hz, 1/4 s), Europe (425 Hz, 1/4 s) and North
  America (440+480 Hz, 2/4 s): level ±4 dB, frequency ±1.5 %, cadence ±5 %,
  starting at a burst or anywhere in the cycle, clean or at 30/20/10 dB SNR;
- SITs: the ITU one (950/1400/1800 Hz, 330 ms) and the eight North-American
  codes (913.8 or 985.2, 1370.6 or 1428.5, then 1776.7 Hz; 274 or 380 ms),
  with timing jitter ±4 % and frequency jitter ±0.5 % (Telcordia allows
  ±0.2 %), clean or at 25/15/10 dB SNR, alone or followed by an
  announcement (the SIT decides);
- silence: digital zero and comfort noise from -75 to -50 dBFS;
- announcements in Chinese and English at two speaking rates, after up to
  1.5 s of silence, clean or at 20/12/9 dB SNR;
- hard negatives that must not be released: melodies of pure tones and
  chords, DTMF digit strings, dial tones, busy and congestion tones, clean
  or at 20/12 dB SNR.

Every item goes through a G.711 round trip (µ-law or A-law), as on the wire.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import wave
from array import array
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dialer.events import CallOutcome
from dialer.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from dialer.media.screening import ScreenClass, SitKind

RATE = 8000
SECONDS = 11.0  # every item outlasts the classifier's 10 s deadline, as early media does
TOOLS = ("espeak-ng", "sox")
_FULL_SCALE = 32768.0
_BIG_ENDIAN = sys.byteorder == "big"

Samples = list[float]


class CorpusError(Exception):
    """The corpus cannot be built here (a tool is missing or failed)."""


@dataclass(frozen=True, slots=True)
class CorpusItem:
    name: str
    label: ScreenClass
    outcome: CallOutcome | None  # what screening should conclude; None: keep ringing
    pcm: bytes  # mono s16le, 8 kHz, after a G.711 round trip
    sit: SitKind | None = None
    tags: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


# -- what the tones are: restated from the specifications, not taken from the classifier ----


@dataclass(frozen=True, slots=True)
class Ringback:
    region: str
    frequencies_hz: tuple[float, ...]
    on_s: float
    off_s: float


RINGBACKS = (
    Ringback("cn", (450.0,), 1.0, 4.0),
    Ringback("eu", (425.0,), 1.0, 4.0),
    Ringback("na", (440.0, 480.0), 2.0, 4.0),
)


@dataclass(frozen=True, slots=True)
class Sit:
    name: str
    kind: SitKind
    outcome: CallOutcome
    segments: tuple[tuple[float, float], ...]  # (Hz, seconds)


_S, _L = 0.274, 0.380
SITS = (
    Sit(
        "itu",
        SitKind.UNSPECIFIED,
        CallOutcome.INVALID_NUMBER,
        ((950.0, 0.33), (1400.0, 0.33), (1800.0, 0.33)),
    ),
    Sit(
        "ic",
        SitKind.INTERCEPT,
        CallOutcome.INVALID_NUMBER,
        ((913.8, _S), (1370.6, _S), (1776.7, _L)),
    ),
    Sit(
        "vc",
        SitKind.VACANT_CODE,
        CallOutcome.INVALID_NUMBER,
        ((985.2, _L), (1370.6, _S), (1776.7, _L)),
    ),
    Sit(
        "io",
        SitKind.INEFFECTIVE_OTHER,
        CallOutcome.INVALID_NUMBER,
        ((913.8, _L), (1428.5, _S), (1776.7, _L)),
    ),
    Sit(
        "ro-intra",
        SitKind.REORDER,
        CallOutcome.TRUNK_FAILURE,
        ((913.8, _S), (1428.5, _L), (1776.7, _L)),
    ),
    Sit(
        "ro-inter",
        SitKind.REORDER,
        CallOutcome.TRUNK_FAILURE,
        ((985.2, _S), (1370.6, _L), (1776.7, _L)),
    ),
    Sit(
        "nc-intra",
        SitKind.NO_CIRCUIT,
        CallOutcome.TRUNK_FAILURE,
        ((985.2, _L), (1428.5, _L), (1776.7, _L)),
    ),
    Sit(
        "nc-inter",
        SitKind.NO_CIRCUIT,
        CallOutcome.TRUNK_FAILURE,
        ((913.8, _L), (1370.6, _L), (1776.7, _L)),
    ),
    Sit(
        "reserved",
        SitKind.UNSPECIFIED,
        CallOutcome.INVALID_NUMBER,
        ((985.2, _S), (1428.5, _S), (1776.7, _L)),
    ),
)

CHINESE = (
    "您拨打的电话已关机",
    "您拨打的号码是空号",
    "您拨打的电话暂时无法接通",
    "对不起，您拨打的用户正忙",
)
ENGLISH = (
    "The subscriber you dialed is powered off.",
    "The number you have dialed is not in service. Please check the number and dial again.",
    "The subscriber you have dialed cannot be reached at the moment. Please try again later.",
    "All circuits are busy now. Please try your call again later.",
)


@dataclass(frozen=True, slots=True)
class Speech:
    voice: str
    speed: int  # words per minute
    text: str


# -- synthesis ---------------------------------------------------------------


def silence(seconds: float) -> Samples:
    return [0.0] * round(seconds * RATE)


def tone(frequencies: Sequence[float], seconds: float, dbfs: float, phase: float = 0.0) -> Samples:
    """A sum of equal sines whose total RMS level is ``dbfs``."""
    count = round(seconds * RATE)
    amplitude = _FULL_SCALE * 10 ** (dbfs / 20) * math.sqrt(2.0 / len(frequencies))
    out = [0.0] * count
    for hz in frequencies:
        step = 2 * math.pi * hz / RATE
        sin = math.sin
        out = [value + amplitude * sin(phase + step * n) for n, value in enumerate(out)]
    return out


def noise(count: int, dbfs: float, rng: random.Random) -> Samples:
    sigma = _FULL_SCALE * 10 ** (dbfs / 20)
    gauss = rng.gauss
    return [gauss(0.0, sigma) for _ in range(count)]


def active_dbfs(samples: Samples) -> float:
    """Level of the 10 ms frames within 30 dB of the loudest: the signal, not its pauses."""
    step = RATE // 100
    powers = [
        sum(v * v for v in samples[start : start + step]) / step
        for start in range(0, len(samples) - step + 1, step)
    ]
    loudest = max(powers, default=0.0)
    if loudest <= 0.0:
        raise CorpusError("cannot measure the level of silence")
    kept = [power for power in powers if power >= loudest / 1000]
    return 10 * math.log10(sum(kept) / len(kept) / _FULL_SCALE**2)


def with_noise(samples: Samples, snr_db: float | None, rng: random.Random) -> Samples:
    if snr_db is None:
        return samples
    floor = noise(len(samples), active_dbfs(samples) - snr_db, rng)
    return [a + b for a, b in zip(samples, floor, strict=True)]


def at_level(samples: Samples, dbfs: float) -> Samples:
    gain = 10 ** ((dbfs - active_dbfs(samples)) / 20)
    return [value * gain for value in samples]


def to_wire(samples: Samples, law: str) -> bytes:
    """Clip to 16 bits and pass through G.711 and back, as the audio arrives from a trunk."""
    clipped = array("h", (max(-32768, min(32767, round(value))) for value in samples))
    if _BIG_ENDIAN:  # pragma: no cover - big-endian hosts
        clipped.byteswap()
    pcm = clipped.tobytes()
    if law == "ulaw":
        return ulaw_decode(ulaw_encode(pcm))
    if law == "alaw":
        return alaw_decode(alaw_encode(pcm))
    raise CorpusError(f"unknown G.711 law {law!r}: expected 'ulaw' or 'alaw'")


def looped(pattern: Samples, seconds: float = SECONDS) -> Samples:
    """``pattern`` over and over (carriers loop tones and announcements), cut to ``seconds``."""
    count = round(seconds * RATE)
    return (pattern * (count // len(pattern) + 1))[:count]


def padded(audio: Samples, seconds: float = SECONDS) -> Samples:
    return audio + silence(max(0.0, seconds - len(audio) / RATE))


def jitter(rng: random.Random, value: float, share: float) -> float:
    return value * (1.0 + rng.uniform(-share, share))


# -- espeak-ng and sox ---------------------------------------------------------


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


# WAV on stdin to raw 8 kHz s16le on stdout, 300-3400 Hz. -R -D: the same random
# numbers and no dither, so that every run gives the same samples.
_SOX_TO_PHONE_BAND = (
    f"sox -R -D -t wav - -t raw -r {RATE} -e signed-integer -b 16 -c 1 -L - sinc 300-3400".split()
)


def speak(speech: Speech) -> Samples:
    """``speech`` spoken by espeak-ng, band-limited to 300-3400 Hz at 8 kHz by sox."""
    spoken = subprocess.run(
        ["espeak-ng", "-v", speech.voice, "-s", str(speech.speed), "--stdout", speech.text],
        capture_output=True,
        check=False,
    )
    if spoken.returncode != 0 or not spoken.stdout:
        raise CorpusError(
            f"espeak-ng failed for {speech}: {spoken.stderr.decode(errors='replace')}"
        )
    converted = subprocess.run(
        _SOX_TO_PHONE_BAND,
        input=spoken.stdout,
        capture_output=True,
        check=False,
    )
    if converted.returncode != 0:
        raise CorpusError(f"sox failed for {speech}: {converted.stderr.decode(errors='replace')}")
    samples = array("h")
    samples.frombytes(converted.stdout[: len(converted.stdout) // 2 * 2])
    if _BIG_ENDIAN:  # pragma: no cover - big-endian hosts
        samples.byteswap()
    return [float(value) for value in _trim(samples)]


def _trim(samples: array[int], threshold: int = 64) -> array[int]:
    """Without the leading and trailing near-silence espeak-ng pads its output with."""
    loud = [index for index, value in enumerate(samples) if abs(value) > threshold]
    if not loud:
        raise CorpusError("espeak-ng produced silence")
    return samples[loud[0] : loud[-1] + 1]


def speak_all(speeches: Iterable[Speech], workers: int = 2) -> dict[Speech, Samples]:
    unique = list(dict.fromkeys(speeches))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(speak, unique), strict=True))


# -- the items -----------------------------------------------------------------


def _ringback_items(rng: random.Random) -> list[CorpusItem]:
    items = []
    for ring in RINGBACKS:
        for snr in (None, 30.0, 20.0, 10.0):
            for law in ("ulaw", "alaw"):
                for start in ("onset", "anywhere"):
                    level = rng.uniform(-26.0, -16.0)
                    freqs = [jitter(rng, hz, 0.015) for hz in ring.frequencies_hz]
                    on, off = jitter(rng, ring.on_s, 0.05), jitter(rng, ring.off_s, 0.05)
                    cycle = tone(freqs, on, level, rng.uniform(0, 6.3)) + silence(off)
                    audio = looped(cycle, SECONDS + ring.on_s + ring.off_s)
                    if start == "anywhere":
                        audio = audio[rng.randrange(len(cycle)) :]
                    audio = with_noise(audio[: round(SECONDS * RATE)], snr, rng)
                    name = f"ringback-{ring.region}-{_snr_tag(snr)}-{law}-{start}"
                    tags = (
                        f"region:{ring.region}",
                        f"snr:{_snr_tag(snr)}",
                        f"law:{law}",
                        f"start:{start}",
                    )
                    items.append(
                        CorpusItem(
                            name, ScreenClass.RINGBACK, None, to_wire(audio, law), None, tags
                        )
                    )
    return items


def _sit_audio(sit: Sit, rng: random.Random) -> Samples:
    level = rng.uniform(-30.0, -22.0)
    audio: Samples = []
    for hz, seconds in sit.segments:
        audio += tone([jitter(rng, hz, 0.005)], jitter(rng, seconds, 0.04), level)
        if sit.name == "itu":
            audio += silence(rng.uniform(0.0, 0.03))  # ITU allows up to 30 ms between segments
    return audio


def _sit_items(
    rng: random.Random, spoken: dict[Speech, Samples], followers: dict[str, Speech]
) -> list[CorpusItem]:
    items = []
    for sit in SITS:
        for snr, law in ((None, "ulaw"), (25.0, "alaw"), (15.0, "ulaw"), (10.0, "alaw")):
            audio = looped(_sit_audio(sit, rng) + silence(1.0))  # the ITU cadence
            audio = with_noise(audio, snr, rng)
            tags = (f"sit:{sit.name}", f"snr:{_snr_tag(snr)}", f"law:{law}", "then:silence")
            name = f"sit-{sit.name}-{_snr_tag(snr)}-{law}"
            items.append(
                CorpusItem(name, ScreenClass.SIT, sit.outcome, to_wire(audio, law), sit.kind, tags)
            )
        for snr, law in ((None, "alaw"), (20.0, "ulaw")):
            speech = followers[sit.name]
            words = at_level(spoken[speech], rng.uniform(-24.0, -18.0))
            pattern = _sit_audio(sit, rng) + silence(rng.uniform(0.05, 0.3)) + words + silence(1.0)
            audio = with_noise(looped(pattern), snr, rng)
            tags = (f"sit:{sit.name}", f"snr:{_snr_tag(snr)}", f"law:{law}", "then:announcement")
            name = f"sit-{sit.name}-announcement-{_snr_tag(snr)}-{law}"
            items.append(
                CorpusItem(name, ScreenClass.SIT, sit.outcome, to_wire(audio, law), sit.kind, tags)
            )
    return items


def _silence_items(rng: random.Random) -> list[CorpusItem]:
    items = []
    for law in ("ulaw", "alaw"):
        items.append(
            CorpusItem(
                f"silence-zero-{law}", ScreenClass.SILENCE, None, to_wire(silence(SECONDS), law)
            )
        )
        for level in (-75.0, -65.0, -60.0, -55.0, -50.0):
            audio = noise(round(SECONDS * RATE), level, rng)
            name = f"silence-comfort{int(-level)}-{law}"
            tags = (f"noise_dbfs:{level:.0f}", f"law:{law}")
            items.append(
                CorpusItem(name, ScreenClass.SILENCE, None, to_wire(audio, law), None, tags)
            )
    return items


def _announcement_speeches() -> list[tuple[str, Speech]]:
    speeches = []
    for number, text in enumerate(CHINESE):
        for speed in (150, 185):
            speeches.append((f"cmn{number}-s{speed}", Speech("cmn", speed, text)))
    for number, text in enumerate(ENGLISH):
        for voice, speed in (("en-us", 160), ("en", 180)):
            speeches.append((f"{voice}{number}-s{speed}", Speech(voice, speed, text)))
    return speeches


def _announcement_items(rng: random.Random, spoken: dict[Speech, Samples]) -> list[CorpusItem]:
    items = []
    for name, speech in _announcement_speeches():
        for snr, law in ((None, "ulaw"), (20.0, "alaw"), (12.0, "ulaw"), (9.0, "alaw")):
            words = at_level(spoken[speech], rng.uniform(-26.0, -16.0))
            lead = silence(rng.uniform(0.0, 1.5))
            audio = (lead + looped(words + silence(1.0)))[: round(SECONDS * RATE)]
            audio = with_noise(audio, snr, rng)
            tags = (f"voice:{speech.voice}", f"snr:{_snr_tag(snr)}", f"law:{law}")
            items.append(
                CorpusItem(
                    f"announcement-{name}-{_snr_tag(snr)}-{law}",
                    ScreenClass.ANNOUNCEMENT,
                    CallOutcome.UNAVAILABLE,
                    to_wire(audio, law),
                    None,
                    tags,
                )
            )
    return items


_SCALE_HZ = (262.0, 294.0, 330.0, 392.0, 440.0, 523.0, 587.0, 659.0, 784.0)
_DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
_DTMF_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)


def _negative_items(rng: random.Random) -> list[CorpusItem]:
    made: list[tuple[str, Samples]] = []
    for number in range(4):
        melody: Samples = []
        while len(melody) < SECONDS * RATE:
            note = [rng.choice(_SCALE_HZ)]
            melody += tone(note, rng.uniform(0.15, 0.5), -20.0) + silence(rng.choice((0.0, 0.03)))
        made.append((f"melody{number}", melody))
    for number in range(2):
        chords: Samples = []
        while len(chords) < SECONDS * RATE:
            root = rng.randrange(len(_SCALE_HZ) - 4)
            chord = [_SCALE_HZ[root], _SCALE_HZ[root + 2], _SCALE_HZ[root + 4]]
            chords += tone(chord, rng.uniform(0.3, 0.8), -20.0)
        made.append((f"chords{number}", chords))
    for number in range(4):
        digits: Samples = silence(0.3)
        for _ in range(12):
            pair = [rng.choice(_DTMF_ROWS), rng.choice(_DTMF_COLUMNS)]
            digits += tone(pair, rng.uniform(0.07, 0.12), -18.0) + silence(rng.uniform(0.06, 0.1))
        made.append((f"dtmf{number}", digits))
    made.append(("dialtone-cn", tone([450.0], SECONDS, -20.0)))
    made.append(("dialtone-na", tone([350.0, 440.0], SECONDS, -20.0)))
    made.append(("busy-cn", looped(tone([450.0], 0.35, -20.0) + silence(0.35))))
    made.append(("busy-na", looped(tone([480.0, 620.0], 0.5, -20.0) + silence(0.5))))
    made.append(("congestion-cn", looped(tone([450.0], 0.7, -20.0) + silence(0.7))))
    made.append(("congestion-eu", looped(tone([425.0], 0.25, -20.0) + silence(0.25))))
    items = []
    for number, (name, audio) in enumerate(made):
        law = ("ulaw", "alaw")[number % 2]
        snr = (None, 20.0, 12.0)[number // 2 % 3]
        wire = to_wire(with_noise(padded(audio), snr, rng), law)
        tags = ("hard_negative", f"snr:{_snr_tag(snr)}", f"law:{law}")
        items.append(CorpusItem(f"negative-{name}", ScreenClass.UNKNOWN, None, wire, None, tags))
    return items


def _snr_tag(snr: float | None) -> str:
    return "clean" if snr is None else f"snr{snr:.0f}"


def _sit_followers() -> dict[str, Speech]:
    """What a carrier would say after each SIT (Chinese after the ITU one)."""
    english = {
        "ic": ENGLISH[1],
        "vc": ENGLISH[1],
        "io": ENGLISH[1],
        "ro-intra": ENGLISH[2],
        "ro-inter": ENGLISH[2],
        "nc-intra": ENGLISH[3],
        "nc-inter": ENGLISH[3],
        "reserved": ENGLISH[2],
    }
    followers = {name: Speech("en-us", 160, text) for name, text in english.items()}
    followers["itu"] = Speech("cmn", 150, CHINESE[1])
    return followers


def build_corpus(seed: int = 5, workers: int = 2) -> list[CorpusItem]:
    """Every item, in a fixed order; the same seed gives the same corpus."""
    missing = missing_tools()
    if missing:
        raise CorpusError(f"cannot build the screening corpus without {', '.join(missing)}")
    followers = _sit_followers()
    speeches = [speech for _, speech in _announcement_speeches()] + list(followers.values())
    spoken = speak_all(speeches, workers)
    rng = random.Random(seed)
    return (
        _ringback_items(rng)
        + _sit_items(rng, spoken, followers)
        + _silence_items(rng)
        + _announcement_items(rng, spoken)
        + _negative_items(rng)
    )


def write_corpus(items: Sequence[CorpusItem], outdir: Path) -> Path:
    """One WAV per item and labels.json describing them; returns the labels file."""
    outdir.mkdir(parents=True, exist_ok=True)
    labels = []
    for item in items:
        path = outdir / f"{item.name}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(item.pcm)
        labels.append(
            {
                "name": item.name,
                "file": path.name,
                "label": item.label.value,
                "sit": item.sit.value if item.sit else None,
                "outcome": item.outcome.value if item.outcome else None,
                "seconds": round(item.seconds, 3),
                "tags": list(item.tags),
            }
        )
    target = outdir / "labels.json"
    target.write_text(json.dumps(labels, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        items = build_corpus(args.seed)
    except CorpusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    labels = write_corpus(items, args.outdir)
    print(f"{len(items)} items -> {labels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
