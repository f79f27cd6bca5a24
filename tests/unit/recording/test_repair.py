from __future__ import annotations

import hashlib
import math
import struct
import sys
import wave
from array import array
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.media.vad import SpeechMeter
from dialer.media.wav import build_header, parse_header
from dialer.recording.repair import (
    RepairedRecording,
    UnrepairableRecording,
    repair_directory,
    repair_file,
)
from dialer.recording.writer import RecordingFailure, RecordingResult, RecordingWriter


def audio(frames: int, customer_amplitude: int = 9000) -> bytes:
    """Stereo s16le: silent agent, a 300 Hz tone from the customer."""
    samples = array("h", [0] * (2 * frames))
    for n in range(frames):
        samples[2 * n + 1] = round(customer_amplitude * math.sin(2 * math.pi * 300 * n / 8000))
    if sys.byteorder == "big":  # pragma: no cover
        samples.byteswap()
    return samples.tobytes()


def crashed(path: Path, data: bytes, declared: int = 0) -> Path:
    """A recording as a crash leaves it: header sizes stale, the audio after them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_header(2, 8000, 16, declared) + data)
    return path


def frames_per_wave(path: Path) -> tuple[int, bytes]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        return w.getnframes(), w.readframes(w.getnframes())


def test_crashed_recording_is_repaired(tmp_path: Path) -> None:
    data = audio(8000)  # one second
    path = crashed(tmp_path / "2024-05-02" / "call-7.wav", data + b"\x01\x02\x03")
    report = repair_directory(tmp_path)

    assert report.unrepairable == ()
    (repaired,) = report.repaired
    content = path.read_bytes()
    meter = SpeechMeter()
    meter.feed(data)
    assert repaired == RepairedRecording(
        call_id="call-7",
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        duration_ms=1000,
        size_bytes=44 + len(data),
        speech=meter.stats(),
    )
    assert repaired.speech.customer_speech_ms == 1000
    assert repaired.speech.agent_speech_ms == 0
    assert frames_per_wave(path) == (8000, data)


def test_consistent_files_are_left_alone(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    good.write_bytes(build_header(2, 8000, 16, 400) + audio(100))
    before = good.stat()
    assert repair_directory(tmp_path).repaired == ()
    after = good.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_repair_is_idempotent(tmp_path: Path) -> None:
    crashed(tmp_path / "c.wav", audio(1234) + b"\x00")
    assert len(repair_directory(tmp_path).repaired) == 1
    assert repair_directory(tmp_path) == repair_directory(tmp_path)
    assert repair_directory(tmp_path).repaired == ()


def test_header_claiming_more_than_the_file_holds(tmp_path: Path) -> None:
    path = crashed(tmp_path / "over.wav", audio(100), declared=10_000)
    repaired = repair_file(path)
    assert repaired is not None
    assert repaired.duration_ms == 12
    assert frames_per_wave(path)[0] == 100


def test_extra_chunks_before_data_are_kept(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 1, 2, 8000, 32000, 4, 16)
    listing = b"INFOICMT\x04\x00\x00\x00test"
    head = (
        b"RIFF\0\0\0\0WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"LIST"
        + struct.pack("<I", len(listing))
        + listing
        + b"data\0\0\0\0"
    )
    path = tmp_path / "list.wav"
    path.write_bytes(head + audio(400))
    repaired = repair_file(path)
    assert repaired is not None
    assert repaired.duration_ms == 50
    assert path.read_bytes()[12 : len(head) - 8] == head[12:-8]
    assert parse_header(path.read_bytes()).data_offset == len(head)
    assert frames_per_wave(path) == (400, audio(400))


def test_what_cannot_be_repaired_is_reported_and_kept(tmp_path: Path) -> None:
    day = tmp_path / "2024-05-02"
    day.mkdir()
    (day / "empty.wav").write_bytes(b"")
    (day / "short.wav").write_bytes(b"RIFF\x24\0\0\0WAVEfmt ")
    (day / "text.wav").write_bytes(b"this is not audio at all, just text")
    mono = day / "mono.wav"
    mono.write_bytes(build_header(1, 8000, 16, 0) + b"\0" * 100)
    (day / "fine.wav").write_bytes(build_header(2, 8000, 16, 0))
    snapshot = {p.name: p.read_bytes() for p in day.iterdir()}

    report = repair_directory(tmp_path)
    assert report.repaired == ()
    assert report.unrepairable == (
        UnrepairableRecording(
            "empty",
            day / "empty.wav",
            f"{day}/empty.wav: truncated: 0 bytes, a RIFF header needs 12",
        ),
        UnrepairableRecording(
            "mono",
            mono,
            f"{mono}: not a dialer recording: 1 channel(s) of 16 bits,"
            " recordings are 2 channels of 16 bits",
        ),
        UnrepairableRecording(
            "short", day / "short.wav", f"{day}/short.wav: no fmt chunk in the first 16 bytes"
        ),
        UnrepairableRecording(
            "text", day / "text.wav", f"{day}/text.wav: not a RIFF file: starts with b'this'"
        ),
    )
    assert {p.name: p.read_bytes() for p in day.iterdir()} == snapshot


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    target = crashed(tmp_path / "outside" / "real.wav", audio(10))
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "link.wav").symlink_to(target)
    (recordings / "full.wav").symlink_to("/dev/full")
    assert repair_directory(recordings) == repair_directory(tmp_path / "nothing-here")
    assert parse_header(target.read_bytes()).data_size == 0


def test_recording_cut_off_by_a_crash_is_repaired(tmp_path: Path) -> None:
    # Record for real, then cut the file as a crash could (mid-frame, after
    # the last header rewrite) and let start-up repair it.
    events: list[RecordingResult | RecordingFailure] = []
    writer = RecordingWriter(tmp_path, events.append, header_interval_s=0.1)
    data = audio(8000 * 2)
    with writer:
        path = writer.open("cut", 1_714_608_000_000)
        writer.write("cut", data)
        writer.close("cut")
    (result,) = events
    assert isinstance(result, RecordingResult)
    with path.open("r+b") as file:
        file.truncate(44 + 50_003)
    (repaired,) = repair_directory(tmp_path).repaired
    assert repaired.path == result.path
    assert repaired.call_id == "cut"
    assert repaired.duration_ms == 50_000 // 4 * 1000 // 8000
    assert frames_per_wave(path) == (12_500, data[:50_000])
    assert repaired.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.integers(0, 3000), tail=st.integers(0, 3), declared=st.integers(0, 5000))
def test_any_crash_state_repairs_to_the_whole_frames(
    tmp_path: Path, frames: int, tail: int, declared: int
) -> None:
    data = audio(frames)
    path = crashed(tmp_path / "any.wav", data + b"\x7f" * tail, declared=declared * 4)
    result = repair_file(path)
    assert (result is None) == (declared == frames and tail == 0)
    assert frames_per_wave(path) == (frames, data)
    assert parse_header(path.read_bytes()).agrees_with(path.stat().st_size)
