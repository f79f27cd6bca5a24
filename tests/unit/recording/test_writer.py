from __future__ import annotations

import hashlib
import math
import os
import queue
import resource
import shutil
import sys
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.media.wav import parse_header
from dialer.recording.repair import repair_file
from dialer.recording.writer import (
    RecordingFailure,
    RecordingResult,
    RecordingWriter,
    check_call_id,
)

STARTED_MS = 1_714_608_000_000  # 2024-05-02T00:00:00Z
DAY = "2024-05-02"
WAIT_S = 10.0


class Results:
    """What the writer announced, in order, waited for with a timeout."""

    def __init__(self) -> None:
        self.events: queue.Queue[RecordingResult | RecordingFailure] = queue.Queue()

    def __call__(self, event: RecordingResult | RecordingFailure) -> None:
        self.events.put(event)

    def next(self) -> RecordingResult | RecordingFailure:
        return self.events.get(timeout=WAIT_S)

    def result(self) -> RecordingResult:
        event = self.next()
        assert isinstance(event, RecordingResult), event
        return event

    def failure(self) -> RecordingFailure:
        event = self.next()
        assert isinstance(event, RecordingFailure), event
        return event

    def by_call(self, count: int) -> dict[str, RecordingResult | RecordingFailure]:
        return {event.call_id: event for event in (self.next() for _ in range(count))}


@pytest.fixture
def results() -> Results:
    return Results()


@pytest.fixture
def writer(tmp_path: Path, results: Results) -> Iterator[RecordingWriter]:
    recordings = RecordingWriter(tmp_path / "rec", results)
    recordings.start()
    yield recordings
    recordings.stop()


def audio(frames: int, agent_amplitude: int = 8000, customer_amplitude: int = 0) -> bytes:
    """Stereo s16le: a 440 Hz tone on the agent side, 300 Hz on the customer side."""
    samples = array("h", [0] * (2 * frames))
    for n in range(frames):
        samples[2 * n] = round(agent_amplitude * math.sin(2 * math.pi * 440 * n / 8000))
        samples[2 * n + 1] = round(customer_amplitude * math.sin(2 * math.pi * 300 * n / 8000))
    if sys.byteorder == "big":  # pragma: no cover
        samples.byteswap()
    return samples.tobytes()


def read_wav(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        return params, w.readframes(w.getnframes() + 1)


def chunks(data: bytes, size: int = 640) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_path_is_per_utc_day(tmp_path: Path, results: Results) -> None:
    recordings = RecordingWriter(tmp_path, results)
    assert recordings.path_for("c1", STARTED_MS) == tmp_path / DAY / "c1.wav"
    assert recordings.path_for("c1", STARTED_MS - 1) == tmp_path / "2024-05-01" / "c1.wav"
    assert recordings.path_for("c1", 0) == tmp_path / "1970-01-01" / "c1.wav"


@pytest.mark.parametrize(
    ("call_id", "message"),
    [
        ("", "call id is empty"),
        (".hidden", "starts with a dot"),
        ("..", "starts with a dot"),
        ("../../etc/passwd", "starts with a dot"),
        ("a/b", "not a safe file name"),
        ("a\\b", "not a safe file name"),
        ("a b", "not a safe file name"),
        ("nul\0byte", "not a safe file name"),
        ("caf\u00e9", "not a safe file name"),
        ("x" * 201, "call id is 201 characters, at most 200"),
    ],
)
def test_unsafe_call_ids_are_rejected(
    tmp_path: Path, results: Results, call_id: str, message: str
) -> None:
    recordings = RecordingWriter(tmp_path, results)
    with pytest.raises(ValueError, match=message):
        recordings.open(call_id, STARTED_MS)
    with pytest.raises(ValueError, match=message):
        recordings.path_for(call_id, STARTED_MS)
    assert recordings.backlog == 0


def test_safe_call_ids_pass() -> None:
    for call_id in ("c1", "a-b_c.d@host.example", "x" * 200, "2024.05.02-0001", "-x"):
        check_call_id(call_id)


def test_recording_round_trip(writer: RecordingWriter, results: Results) -> None:
    data = audio(8000 * 3 // 2, customer_amplitude=6000)  # 1.5 s
    path = writer.open("call-1", STARTED_MS)
    for piece in chunks(data, 333):  # chunks need not be whole frames
        writer.write("call-1", piece)
    writer.close("call-1")
    result = results.result()

    assert result.call_id == "call-1"
    assert result.path == path == writer.path_for("call-1", STARTED_MS)
    content = path.read_bytes()
    assert result.sha256 == hashlib.sha256(content).hexdigest()
    assert result.size_bytes == len(content) == 44 + len(data)
    assert result.duration_ms == 1500
    assert read_wav(path) == ((2, 2, 8000), data)
    assert result.speech.duration_ms == 1500
    assert result.speech.agent_speech_ms == 1500
    assert result.speech.customer_speech_ms == 1500
    assert result.speech.overlap_ms == 1500
    assert writer.bytes_written == len(data)
    assert writer.recordings_closed == 1
    assert writer.recordings_failed == 0


def test_two_interleaved_recordings(writer: RecordingWriter, results: Results) -> None:
    agent_talks = audio(4000)
    customer_talks = audio(6400, agent_amplitude=0, customer_amplitude=9000)
    writer.open("a", STARTED_MS)
    writer.open("b", STARTED_MS + 5)
    for piece_a, piece_b in zip(chunks(agent_talks), chunks(customer_talks), strict=False):
        writer.write("a", piece_a)
        writer.write("b", piece_b)
    for piece in list(chunks(customer_talks))[len(agent_talks) // 640 :]:
        writer.write("b", piece)
    writer.close("b")
    writer.close("a")
    done = results.by_call(2)
    first, second = done["a"], done["b"]
    assert isinstance(first, RecordingResult)
    assert isinstance(second, RecordingResult)
    assert read_wav(first.path)[1] == agent_talks
    assert read_wav(second.path)[1] == customer_talks
    assert (first.duration_ms, second.duration_ms) == (500, 800)
    assert (first.speech.agent_speech_ms, first.speech.customer_speech_ms) == (500, 0)
    assert (second.speech.agent_speech_ms, second.speech.customer_speech_ms) == (0, 800)
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()


def test_trailing_partial_frame_is_cut_at_close(writer: RecordingWriter, results: Results) -> None:
    writer.open("odd", STARTED_MS)
    writer.write("odd", audio(80) + b"\x01\x02\x03")
    writer.close("odd")
    result = results.result()
    assert result.size_bytes == 44 + 320
    assert result.duration_ms == 10
    assert read_wav(result.path)[1] == audio(80)


def test_disk_full_fails_only_that_recording(
    tmp_path: Path, writer: RecordingWriter, results: Results
) -> None:
    full = writer.path_for("full", STARTED_MS)
    full.parent.mkdir(parents=True)
    full.symlink_to("/dev/full")
    writer.open("full", STARTED_MS)
    writer.open("fine", STARTED_MS)
    for piece in chunks(audio(4000)):
        writer.write("full", piece)
        writer.write("fine", piece)
    writer.close("full")
    writer.close("fine")
    done = results.by_call(2)

    failure, ok = done["full"], done["fine"]
    assert isinstance(failure, RecordingFailure)
    assert failure.path == full
    assert failure.reason.startswith("No space left on device (ENOSPC) ")
    assert str(full) in failure.reason
    assert isinstance(ok, RecordingResult)
    assert read_wav(ok.path)[1] == audio(4000)
    assert writer.recordings_failed == 1
    assert writer.recordings_closed == 1
    assert writer.ignored_commands == 25 + 1  # the failed call's writes and close


def test_file_growing_past_its_limit_fails_mid_call_and_stays_valid(
    tmp_path: Path, results: Results
) -> None:
    # RLIMIT_FSIZE makes the kernel refuse writes past 100 kB with EFBIG
    # (Python ignores SIGXFSZ): a real write error in the middle of a call.
    recordings = RecordingWriter(tmp_path, results, header_interval_s=0.25)
    recordings.start()
    data = audio(8000 * 4)  # 32 kB a second: the limit falls in the fourth second
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        path = recordings.open("big", STARTED_MS)
        for piece in chunks(data):
            recordings.write("big", piece)
        recordings.close("big")
        failure = results.failure()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    recordings.open("after", STARTED_MS)
    recordings.write("after", data)
    recordings.close("after")
    after = results.result()
    recordings.stop()

    assert failure.call_id == "big"
    assert failure.reason == f"File too large (EFBIG) writing {path}"
    # What reached the disk was left as a valid recording of a prefix of the call.
    params, kept = read_wav(path)
    assert params == (2, 2, 8000)
    assert 0 < len(kept) <= 100_000 - 44
    assert data.startswith(kept)
    assert read_wav(after.path)[1] == data


def test_existing_recording_is_never_overwritten(writer: RecordingWriter, results: Results) -> None:
    path = writer.path_for("again", STARTED_MS)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"an earlier recording")
    writer.open("again", STARTED_MS)
    writer.write("again", audio(160))
    writer.close("again")
    failure = results.failure()
    assert failure.reason == f"File exists (EEXIST) creating {path}"
    assert path.read_bytes() == b"an earlier recording"


def test_unknown_call_ids_are_counted_and_ignored(
    writer: RecordingWriter, results: Results
) -> None:
    writer.write("ghost", audio(160))
    writer.close("ghost")
    writer.open("real", STARTED_MS)
    writer.write("real", audio(160))
    writer.close("real")
    assert results.result().call_id == "real"
    assert writer.ignored_commands == 2
    assert writer.bytes_written == 640


def test_stop_closes_open_recordings(tmp_path: Path, results: Results) -> None:
    recordings = RecordingWriter(tmp_path, results)
    recordings.start()
    path = recordings.open("left-open", STARTED_MS)
    recordings.write("left-open", audio(800))
    recordings.stop()
    result = results.result()
    assert result.path == path
    assert result.duration_ms == 100
    assert read_wav(path)[1] == audio(800)
    assert recordings.backlog == 0
    with pytest.raises(RuntimeError, match="stopped"):
        recordings.open("late", STARTED_MS)
    recordings.write("left-open", audio(80))  # dropped: the recording is closed
    recordings.close("left-open")
    assert recordings.backlog == 0
    assert read_wav(path)[1] == audio(800)
    recordings.stop()  # a second stop is harmless


def test_commands_queued_before_start_are_written_by_stop(tmp_path: Path, results: Results) -> None:
    recordings = RecordingWriter(tmp_path, results)
    recordings.open("early", STARTED_MS)
    recordings.write("early", audio(80))
    recordings.close("early")
    assert recordings.backlog == 3
    recordings.stop()
    assert results.result().duration_ms == 10


def test_double_open_is_refused(writer: RecordingWriter, results: Results) -> None:
    writer.open("dup", STARTED_MS)
    with pytest.raises(ValueError, match="already open"):
        writer.open("dup", STARTED_MS)
    writer.close("dup")
    assert results.result().call_id == "dup"


def test_a_failing_notify_does_not_stop_the_worker(tmp_path: Path) -> None:
    delivered: queue.Queue[RecordingResult | RecordingFailure] = queue.Queue()

    def notify(event: RecordingResult | RecordingFailure) -> None:
        delivered.put(event)
        if event.call_id == "first":
            raise RuntimeError("consumer bug")

    with RecordingWriter(tmp_path, notify) as recordings:
        for call_id in ("first", "second"):
            recordings.open(call_id, STARTED_MS)
            recordings.write(call_id, audio(80))
            recordings.close(call_id)
        assert delivered.get(timeout=WAIT_S).call_id == "first"
        assert delivered.get(timeout=WAIT_S).call_id == "second"


def test_header_is_kept_current_during_the_call(tmp_path: Path, results: Results) -> None:
    recordings = RecordingWriter(tmp_path, results, header_interval_s=0.1)
    recordings.start()
    path = recordings.open("live", STARTED_MS)
    data = audio(8000)
    for piece in chunks(data[:30_000]):  # 0.9375 s: the last rewrite was at 0.9 s
        recordings.write("live", piece)
    # The worker is FIFO: once a later recording is closed, "live" was written.
    recordings.open("marker", STARTED_MS)
    recordings.close("marker")
    assert results.result().call_id == "marker"

    # The file as a crash would leave it: the audio up to the last rewrite,
    # under a header that already counts it; the rest was still buffered.
    crashed = tmp_path / "crashed.wav"
    shutil.copyfile(path, crashed)
    header = parse_header(crashed.read_bytes()[:44])
    assert header.data_size == 28_800
    assert header.agrees_with(os.path.getsize(crashed))
    with wave.open(str(crashed), "rb") as w:
        assert w.readframes(w.getnframes()) == data[:28_800]
    assert repair_file(crashed) is None

    for piece in chunks(data[30_000:]):
        recordings.write("live", piece)
    recordings.stop()
    assert read_wav(path)[1] == data


def test_header_interval_must_be_positive(tmp_path: Path, results: Results) -> None:
    with pytest.raises(ValueError, match="header_interval_s must be positive"):
        RecordingWriter(tmp_path, results, header_interval_s=0)


def test_start_twice_is_an_error(writer: RecordingWriter) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        writer.start()
