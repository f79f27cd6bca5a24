"""One background thread writing every recording of the process.

The event loop must never wait on a disk, so the public methods only put a
command on a ``queue.SimpleQueue``; a single worker thread owns every open
file (a thread per call would be hundreds of threads doing the same thing).
Results come back through ``notify``, called from the worker thread: the
application wraps it with ``loop.call_soon_threadsafe``.

The public methods are meant to be called from one thread (the event loop).

Durability: the header's sizes are rewritten every ``header_interval_s`` of
audio, after the audio itself is flushed, so a process crash leaves a file
whose header under-counts by at most that much; ``repair`` fixes the rest at
start-up. At close the final header is written and the file and its
directory are fsynced before the result is announced.

One recording's I/O error (a full disk, EIO, a permission) fails that
recording only: it is closed as well as possible, ``RecordingFailure`` is
announced, later commands for its call id are ignored, and the worker goes
on serving the others.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import SimpleQueue
from types import TracebackType
from typing import BinaryIO

from dialer.media.vad import SpeechMeter, SpeechStats
from dialer.media.wav import PCM_HEADER_SIZE, WavError, build_header
from dialer.recording.repair import describe_os_error, repair_file

CHANNELS = 2
SAMPLE_RATE = 8000
BITS_PER_SAMPLE = 16
FRAME_BYTES = CHANNELS * BITS_PER_SAMPLE // 8
BYTES_PER_SECOND = SAMPLE_RATE * FRAME_BYTES

MAX_CALL_ID_LENGTH = 200
_SAFE_CALL_ID = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9._@-]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FILE_BUFFER = 64 * 1024  # two seconds of audio between write syscalls
_FILE_MODE = 0o640  # customers' voices: not world-readable
_DIR_MODE = 0o750

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordingResult:
    call_id: str
    path: Path
    sha256: str  # of the final file, hex
    duration_ms: int
    size_bytes: int
    speech: SpeechStats


@dataclass(frozen=True, slots=True)
class RecordingFailure:
    call_id: str
    path: Path
    reason: str  # e.g. "No space left on device (ENOSPC) writing /rec/2024-05-01/c1.wav"


Notify = Callable[[RecordingResult | RecordingFailure], None]


@dataclass(frozen=True, slots=True)
class _Open:
    call_id: str
    path: Path


@dataclass(frozen=True, slots=True)
class _Write:
    call_id: str
    frames: bytes


@dataclass(frozen=True, slots=True)
class _Close:
    call_id: str


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Command = _Open | _Write | _Close | _Stop


class _Recording:
    """Worker-side state of one open file."""

    __slots__ = ("call_id", "data_bytes", "file", "meter", "path", "since_header")

    def __init__(self, call_id: str, path: Path, file: BinaryIO) -> None:
        self.call_id = call_id
        self.path = path
        self.file = file
        self.data_bytes = 0
        self.since_header = 0
        self.meter = SpeechMeter(SAMPLE_RATE)


def check_call_id(call_id: str) -> None:
    """Raise ValueError unless ``call_id`` is safe as a file name on any system."""
    if not call_id:
        raise ValueError("call id is empty: it names the recording file")
    if len(call_id) > MAX_CALL_ID_LENGTH:
        raise ValueError(
            f"call id is {len(call_id)} characters, at most {MAX_CALL_ID_LENGTH} make a file name"
        )
    if call_id.startswith("."):
        raise ValueError(f"call id {call_id!r} starts with a dot: it would be a hidden file")
    if not _SAFE_CALL_ID.fullmatch(call_id):
        raise ValueError(
            f"call id {call_id!r} is not a safe file name: only letters, digits and ._@- allowed"
        )


class RecordingWriter:
    """Writes recordings in a background thread; every public method only enqueues."""

    def __init__(self, directory: Path, notify: Notify, *, header_interval_s: float = 1.0) -> None:
        if header_interval_s <= 0:
            raise ValueError(f"header_interval_s must be positive, not {header_interval_s}")
        self._directory = directory
        self._notify = notify
        self._header_interval_bytes = max(
            FRAME_BYTES, round(header_interval_s * BYTES_PER_SECOND) // FRAME_BYTES * FRAME_BYTES
        )
        self._queue: SimpleQueue[_Command] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._started = False
        self._stopping = False
        self._active: set[str] = set()  # caller side: opened and not yet closed
        # Worker side only.
        self._open: dict[str, _Recording] = {}
        self._failed: set[str] = set()
        # Written by the worker, read by anyone (plain ints: a stale read is harmless).
        self._bytes_written = 0
        self._closed = 0
        self._failures = 0
        self._ignored = 0

    # -- caller side ---------------------------------------------------------

    def path_for(self, call_id: str, started_at_ms: int) -> Path:
        """Where the recording of ``call_id`` goes: ``directory/YYYY-MM-DD/<call_id>.wav`` (UTC)."""
        check_call_id(call_id)
        day = (_EPOCH + timedelta(milliseconds=started_at_ms)).strftime("%Y-%m-%d")
        return self._directory / day / f"{call_id}.wav"

    def open(self, call_id: str, started_at_ms: int) -> Path:
        if self._stopping:
            raise RuntimeError("RecordingWriter is stopped: it cannot open a recording")
        path = self.path_for(call_id, started_at_ms)
        if call_id in self._active:
            raise ValueError(f"recording of call {call_id!r} is already open")
        self._active.add(call_id)
        self._queue.put(_Open(call_id, path))
        return path

    def write(self, call_id: str, frames: bytes) -> None:
        """Append interleaved s16le stereo (agent left, customer right) to a recording.

        After ``stop`` there is nothing left to write to: the frames are dropped.
        """
        if not self._stopping:
            self._queue.put(_Write(call_id, bytes(frames)))

    def close(self, call_id: str) -> None:
        self._active.discard(call_id)
        if not self._stopping:  # stop closes every open recording itself
            self._queue.put(_Close(call_id))

    def start(self) -> None:
        if self._started:
            raise RuntimeError("RecordingWriter is already started")
        self._started = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish every queued command, close open recordings normally, join the worker.

        Raises TimeoutError if the worker is still busy after ``timeout`` seconds.
        """
        if not self._stopping:
            self._stopping = True
            self._queue.put(_Stop())
        if not self._started:
            self.start()  # commands queued before start are still written
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(
                f"recording writer still busy after {timeout} s with {self.backlog} commands queued"
            )

    def __enter__(self) -> RecordingWriter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def backlog(self) -> int:
        """Commands waiting for the worker (approximate while it runs)."""
        return self._queue.qsize()

    @property
    def bytes_written(self) -> int:
        """Audio bytes handed to the files (headers not counted)."""
        return self._bytes_written

    @property
    def recordings_closed(self) -> int:
        return self._closed

    @property
    def recordings_failed(self) -> int:
        return self._failures

    @property
    def ignored_commands(self) -> int:
        """Writes and closes for a call id that is not open (never opened, or failed)."""
        return self._ignored

    # -- worker side ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if isinstance(command, _Stop):
                break
            try:
                self._handle(command)
            except Exception:  # a bug must not end every other recording
                log.exception("recording writer failed on %r", type(command).__name__)
                call_id = command.call_id
                recording = self._open.get(call_id)
                if recording is not None:
                    self._fail(recording, "internal error handling a command for", None)
        for recording in list(self._open.values()):
            self._finish(recording)

    def _handle(self, command: _Open | _Write | _Close) -> None:
        match command:
            case _Write(call_id, frames):
                recording = self._open.get(call_id)
                if recording is None:
                    self._ignored += 1
                else:
                    self._append(recording, frames)
            case _Open(call_id, path):
                self._create(call_id, path)
            case _Close(call_id):
                recording = self._open.get(call_id)
                if recording is None:
                    self._ignored += 1
                    self._failed.discard(call_id)
                else:
                    self._finish(recording)

    def _create(self, call_id: str, path: Path) -> None:
        if call_id in self._open:  # the caller side refuses this; never truncate a live file
            log.error("recording of call %r opened twice; the second open is ignored", call_id)
            return
        self._failed.discard(call_id)
        file: BinaryIO | None = None
        try:
            path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            file = _create_file(path)
            file.write(build_header(CHANNELS, SAMPLE_RATE, BITS_PER_SAMPLE, 0))
            file.flush()
        except OSError as exc:
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()
            self._report_failure(call_id, path, describe_os_error(exc, "creating", path))
            return
        self._open[call_id] = _Recording(call_id, path, file)

    def _append(self, recording: _Recording, frames: bytes) -> None:
        try:
            recording.file.write(frames)
            recording.data_bytes += len(frames)
            recording.since_header += len(frames)
            if recording.since_header >= self._header_interval_bytes:
                recording.since_header = 0
                recording.file.flush()
                _rewrite_header(recording.file, _whole_frames(recording.data_bytes))
        except OSError as exc:
            self._fail(recording, "writing", exc)
            return
        self._bytes_written += len(frames)
        recording.meter.feed(frames)

    def _finish(self, recording: _Recording) -> None:
        data_bytes = _whole_frames(recording.data_bytes)
        try:
            file = recording.file
            file.flush()
            if data_bytes != recording.data_bytes:
                file.truncate(PCM_HEADER_SIZE + data_bytes)  # a chunk ended mid-frame
            _rewrite_header(file, data_bytes)
            os.fsync(file.fileno())
            file.close()
            _fsync_directory(recording.path.parent)
            with recording.path.open("rb") as written:
                digest = hashlib.file_digest(written, "sha256").hexdigest()
                size = os.fstat(written.fileno()).st_size
        except OSError as exc:
            self._fail(recording, "closing", exc)
            return
        del self._open[recording.call_id]
        self._closed += 1
        self._announce(
            RecordingResult(
                call_id=recording.call_id,
                path=recording.path,
                sha256=digest,
                duration_ms=data_bytes // FRAME_BYTES * 1000 // SAMPLE_RATE,
                size_bytes=size,
                speech=recording.meter.stats(),
            )
        )

    def _fail(self, recording: _Recording, action: str, exc: OSError | None) -> None:
        path = recording.path
        reason = f"{action} {path}" if exc is None else describe_os_error(exc, action, path)
        with contextlib.suppress(OSError):
            recording.file.close()  # flushing again may fail too; the descriptor is released
        # Leave a valid file for what did reach the disk, as start-up repair would.
        with contextlib.suppress(OSError, WavError):
            if stat.S_ISREG(os.stat(path, follow_symlinks=False).st_mode):
                repair_file(path)
        del self._open[recording.call_id]
        self._report_failure(recording.call_id, path, reason)

    def _report_failure(self, call_id: str, path: Path, reason: str) -> None:
        self._failed.add(call_id)
        self._failures += 1
        log.warning("recording of call %r failed: %s", call_id, reason)
        self._announce(RecordingFailure(call_id, path, reason))

    def _announce(self, event: RecordingResult | RecordingFailure) -> None:
        try:
            self._notify(event)
        except Exception:
            log.exception("recording notify callback failed for call %r", event.call_id)


def _create_file(path: Path) -> BinaryIO:
    # Not O_EXCL: the path may be a device or a link an operator put there
    # (tests use /dev/full). What must never happen is truncating someone's
    # recording, so an existing non-empty regular file is refused.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size > 0:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        return open(fd, "wb", buffering=_FILE_BUFFER, closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _rewrite_header(file: BinaryIO, data_bytes: int) -> None:
    header = build_header(CHANNELS, SAMPLE_RATE, BITS_PER_SAMPLE, data_bytes)
    # pwrite leaves the append position alone; the caller flushed first.
    written = os.pwrite(file.fileno(), header, 0)
    if written != len(header):
        raise OSError(errno.EIO, f"short header write ({written} of {len(header)} bytes)")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _whole_frames(data_bytes: int) -> int:
    return data_bytes - data_bytes % FRAME_BYTES
