"""Waveform peaks of two-channel recordings, read from real WAVE files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from dialer.api.peaks import peaks_of, read_peaks
from dialer.media.wav import WavError, build_header


def stereo(frames: list[tuple[int, int]], *, declared: int | None = None) -> bytes:
    audio = b"".join(struct.pack("<hh", left, right) for left, right in frames)
    size = len(audio) if declared is None else declared
    return build_header(2, 8000, 16, size) + audio


def test_agent_left_customer_right() -> None:
    # Two spans of 4 frames: agent loud in the first, customer loud in the second.
    frames = [(16384, 0)] * 4 + [(0, -32768)] * 4
    peaks = peaks_of(stereo(frames), 2)
    assert peaks.sample_rate == 8000
    assert peaks.duration_ms == 1  # 8 frames at 8 kHz
    assert peaks.agent == (0.5, 0.0)
    assert peaks.customer == (0.0, 1.0)


def test_spans_cover_every_frame() -> None:
    # 10 frames in 3 spans: 3, 3, 4 frames; the last frame alone is loud.
    frames = [(0, 0)] * 9 + [(8192, 4096)]
    peaks = peaks_of(stereo(frames), 3)
    assert peaks.agent == (0.0, 0.0, 0.25)
    assert peaks.customer == (0.0, 0.0, 0.125)


def test_fewer_frames_than_points() -> None:
    peaks = peaks_of(stereo([(100, 200), (300, 400)]), 800)
    assert len(peaks.agent) == len(peaks.customer) == 2


def test_silence_and_empty() -> None:
    assert peaks_of(stereo([(0, 0)] * 80), 4).agent == (0.0,) * 4
    empty = peaks_of(stereo([]), 4)
    assert empty.agent == empty.customer == ()
    assert empty.duration_ms == 0


def test_stale_header_reads_the_audio_on_disk(tmp_path: Path) -> None:
    # A crash left a zero data size and a trailing half frame.
    data = stereo([(0, 0), (32767, 0), (0, 16384)], declared=0) + b"\x01\x00"
    path = tmp_path / "call.wav"
    path.write_bytes(data)
    peaks = read_peaks(path, 3)
    assert peaks.agent == (0.0, 32767 / 32768, 0.0)
    assert peaks.customer == (0.0, 0.0, 0.5)
    assert peaks.duration_ms == 0  # 3 frames: under a millisecond


def test_one_hour_shaped_file_reads_in_spans(tmp_path: Path) -> None:
    frames = 8000 * 30  # 30 s, enough to need several reads per span
    audio = struct.pack("<hh", 1000, -2000) * frames
    path = tmp_path / "long.wav"
    path.write_bytes(build_header(2, 8000, 16, len(audio)) + audio)
    peaks = read_peaks(path, 800)
    assert peaks.duration_ms == 30_000
    assert set(peaks.agent) == {1000 / 32768}
    assert set(peaks.customer) == {2000 / 32768}
    assert len(peaks.agent) == 800


def test_refuses_mono_and_bad_points() -> None:
    mono = build_header(1, 8000, 16, 4) + b"\x00" * 4
    with pytest.raises(WavError, match="two-channel 16-bit"):
        peaks_of(mono, 10)
    with pytest.raises(ValueError, match="points must be"):
        peaks_of(stereo([(0, 0)]), 0)
    with pytest.raises(WavError, match="not a RIFF"):
        peaks_of(b"OggS" + b"\x00" * 40, 10)
