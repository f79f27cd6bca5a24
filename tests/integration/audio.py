"""Audio made for, and checked in, the media tests: tones in, tone power out."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

from dialer.media.g711 import ulaw_encode

RATE = 8000


def tone(frequency: float, seconds: float, amplitude: float = 0.5) -> bytes:
    """A sine as 16-bit little-endian mono PCM at 8 kHz."""
    count = round(seconds * RATE)
    peak = amplitude * 32767
    samples = array(
        "h", (round(peak * math.sin(2 * math.pi * frequency * n / RATE)) for n in range(count))
    )
    return samples.tobytes()


def write_ulaw(path: Path, pcm: bytes) -> Path:
    """Raw μ-law, as SIPp's rtp_stream plays it."""
    path.write_bytes(ulaw_encode(pcm))
    return path


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return path


def read_stereo(path: Path) -> tuple[array[int], array[int], int]:
    """(left, right, sample rate) of a 16-bit two-channel WAV."""
    with wave.open(str(path), "rb") as recording:
        assert recording.getnchannels() == 2, recording.getnchannels()
        assert recording.getsampwidth() == 2, recording.getsampwidth()
        rate = recording.getframerate()
        frames = recording.readframes(recording.getnframes())
    samples = array("h")
    samples.frombytes(frames)
    return samples[0::2], samples[1::2], rate


def power_at(samples: array[int], frequency: float, rate: int = RATE) -> float:
    """Goertzel: the signal's power at one frequency, normalised by length."""
    if not samples:
        return 0.0
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return power / len(samples) ** 2
