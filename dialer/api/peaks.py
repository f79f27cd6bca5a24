"""Waveform peaks of a two-channel recording: what the QA player draws, one track per side.

Recordings are 16-bit PCM, agent on the left channel and customer on the
right (DESIGN.md, Recordings). The player needs a few hundred points per
track, not millions of samples, so the audio is cut into ``points`` equal
spans of frames and each span gives the loudest sample of each channel,
scaled to 0..1 (full scale, 32768, is 1.0). Silence stays 0 because gaps in a
call are recorded as silence, so the two tracks line up in time.

The file is read span by span (an hour of audio is 115 MB), so this is
blocking work: call ``read_peaks`` in a worker thread. A header whose sizes
are stale (a crash before the header was repaired) is read for the audio
actually on disk, whole frames only.
"""

from __future__ import annotations

import io
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from dialer.media.wav import WavError, WavHeader, parse_header

__all__ = ["MAX_POINTS", "Peaks", "peaks_of", "read_peaks"]

MAX_POINTS: Final = 10_000
FULL_SCALE: Final = 32768.0
_HEADER_WINDOW = 64 * 1024  # chunks before the audio (LIST, fact, ...) fit in this


@dataclass(frozen=True, slots=True)
class Peaks:
    duration_ms: int
    sample_rate: int
    agent: tuple[float, ...]  # left channel
    customer: tuple[float, ...]  # right channel


def _checked(header: WavHeader) -> None:
    if header.channels != 2 or header.bits_per_sample != 16:
        raise WavError(
            "peaks need a two-channel 16-bit recording (agent left, customer right), got "
            f"{header.channels} channel(s) of {header.bits_per_sample} bits"
        )


def _loudest(samples: array[int]) -> float:
    if not samples:
        return 0.0
    top, bottom = max(samples), min(samples)
    return max(top, -bottom) / FULL_SCALE


def _peaks(file: BinaryIO, file_length: int, points: int) -> Peaks:
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_POINTS:
        raise ValueError(f"points must be a whole number from 1 to {MAX_POINTS}, got {points!r}")
    header = parse_header(file.read(_HEADER_WINDOW))
    _checked(header)
    on_disk = max(0, file_length - header.data_offset)
    audio = min(header.data_size, on_disk) if header.data_size else on_disk
    frames = audio // header.block_align
    spans = min(points, frames)
    agent: list[float] = []
    customer: list[float] = []
    file.seek(header.data_offset)
    for index in range(spans):
        start, end = index * frames // spans, (index + 1) * frames // spans
        data = file.read((end - start) * header.block_align)
        samples = array("h")
        samples.frombytes(data[: len(data) - len(data) % header.block_align])
        if sys.byteorder == "big":  # WAVE is little-endian
            samples.byteswap()
        agent.append(_loudest(samples[0::2]))
        customer.append(_loudest(samples[1::2]))
    return Peaks(
        duration_ms=frames * 1000 // header.sample_rate,
        sample_rate=header.sample_rate,
        agent=tuple(agent),
        customer=tuple(customer),
    )


def peaks_of(data: bytes, points: int) -> Peaks:
    """The peaks of a whole WAVE file held in memory."""
    return _peaks(io.BytesIO(data), len(data), points)


def read_peaks(path: Path, points: int) -> Peaks:
    """The peaks of the WAVE file at ``path`` (blocking: run it in a thread)."""
    with path.open("rb") as file:
        return _peaks(file, path.stat().st_size, points)
