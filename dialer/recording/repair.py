"""Start-up repair of recordings left behind by a crash.

The writer rewrites a recording's header sizes once per second of audio and
for good at close; a process that dies mid-call leaves a file whose audio is
on disk but whose header under-counts it (or counts a trailing partial
frame). Repair trusts the file length: it cuts the partial frame, rewrites
the RIFF and data sizes, and re-measures the recording so that it can be
linked to its call like a normally closed one.

Files that are not WAVE at all, or not our format, are reported and left
untouched: they may be someone's evidence, so repair never deletes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from dialer.media.vad import SpeechMeter, SpeechStats
from dialer.media.wav import WavError, WavHeader, corrected_sizes, parse_header

RECORDING_CHANNELS = 2
RECORDING_BITS = 16

_HEAD_BYTES = 64 * 1024  # room for LIST or other chunks before data
_READ_BYTES = 256 * 1024
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class RepairedRecording:
    call_id: str  # the file's stem: recordings are named after their call
    path: Path
    sha256: str  # of the repaired file, hex
    duration_ms: int
    size_bytes: int
    speech: SpeechStats


@dataclass(frozen=True, slots=True)
class UnrepairableRecording:
    call_id: str
    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class RepairReport:
    repaired: tuple[RepairedRecording, ...]
    unrepairable: tuple[UnrepairableRecording, ...]


def describe_os_error(exc: OSError, action: str, path: Path) -> str:
    """'No space left on device (ENOSPC) writing /x.wav': cause, code, what, where."""
    if exc.errno is None:
        return f"{exc} {action} {path}"
    code = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return f"{os.strerror(exc.errno)} ({code}) {action} {path}"


def repair_directory(directory: Path) -> RepairReport:
    """Repair every ``*.wav`` under ``directory`` whose header disagrees with its length.

    Consistent files are left alone and not reported. Symbolic links are not
    followed: a recording is a regular file the writer created.
    """
    repaired: list[RepairedRecording] = []
    unrepairable: list[UnrepairableRecording] = []
    for path in sorted(directory.rglob("*.wav")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            result = repair_file(path)
        except WavError as exc:
            unrepairable.append(UnrepairableRecording(path.stem, path, f"{path}: {exc}"))
        except OSError as exc:
            reason = describe_os_error(exc, "repairing", path)
            unrepairable.append(UnrepairableRecording(path.stem, path, reason))
        else:
            if result is not None:
                repaired.append(result)
    return RepairReport(tuple(repaired), tuple(unrepairable))


def repair_file(path: Path) -> RepairedRecording | None:
    """Fix one recording's header in place; None if it was already consistent.

    Raises ``WavError`` for a file that is not a recording we can repair and
    ``OSError`` when the file cannot be read or written.
    """
    with path.open("r+b") as file:
        head = file.read(_HEAD_BYTES)
        length = os.fstat(file.fileno()).st_size
        header = parse_header(head)
        if header.agrees_with(length):
            return None
        _check_format(header)
        sizes = corrected_sizes(header, length)
        data_end = header.data_offset + sizes.data_size
        file.truncate(data_end)
        if sizes.file_length > data_end:
            file.seek(data_end)
            file.write(b"\0")  # the RIFF pad byte after odd-sized data
        file.seek(4)
        file.write(_U32.pack(sizes.riff_size))
        file.seek(header.data_offset - 4)
        file.write(_U32.pack(sizes.data_size))
        file.flush()
        os.fsync(file.fileno())
    digest, size, speech = measure(path, header.data_offset, sizes.data_size, header.sample_rate)
    frames = sizes.data_size // header.block_align
    return RepairedRecording(
        call_id=path.stem,
        path=path,
        sha256=digest,
        duration_ms=frames * 1000 // header.sample_rate,
        size_bytes=size,
        speech=speech,
    )


def measure_file(path: Path) -> RepairedRecording:
    """Checksum, duration and speech of a consistent recording (one a crash left whole)."""
    with path.open("rb") as file:
        header = parse_header(file.read(_HEAD_BYTES))
    _check_format(header)
    digest, size, speech = measure(path, header.data_offset, header.data_size, header.sample_rate)
    frames = header.data_size // header.block_align
    return RepairedRecording(
        call_id=path.stem,
        path=path,
        sha256=digest,
        duration_ms=frames * 1000 // header.sample_rate,
        size_bytes=size,
        speech=speech,
    )


def _check_format(header: WavHeader) -> None:
    if header.channels != RECORDING_CHANNELS or header.bits_per_sample != RECORDING_BITS:
        raise WavError(
            f"not a dialer recording: {header.channels} channel(s) of {header.bits_per_sample}"
            f" bits, recordings are {RECORDING_CHANNELS} channels of {RECORDING_BITS} bits"
        )


def measure(
    path: Path, data_offset: int, data_size: int, sample_rate: int
) -> tuple[str, int, SpeechStats]:
    """sha256 (hex) and size of the whole file, and the speech in its data chunk."""
    hasher = hashlib.sha256()
    meter = SpeechMeter(sample_rate)
    data_end = data_offset + data_size
    position = 0
    with path.open("rb") as file:
        while chunk := file.read(_READ_BYTES):
            hasher.update(chunk)
            start = min(max(data_offset - position, 0), len(chunk))
            stop = min(max(data_end - position, 0), len(chunk))
            if stop > start:
                meter.feed(chunk[start:stop])
            position += len(chunk)
    return hasher.hexdigest(), position, meter.stats()
