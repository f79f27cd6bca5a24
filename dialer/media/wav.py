"""RIFF/WAVE PCM headers: build, parse, and correct after a crash.

A WAVE file is a RIFF chunk (``"RIFF" size "WAVE"``) holding sub-chunks, each
``id size payload`` with the payload padded to an even length. PCM needs a
``fmt `` chunk (format tag, channels, rate, byte rate, block align, bits) and
a ``data`` chunk; other chunks (``LIST``, ``fact``, ...) may come between.

Our recordings are written streaming: the sizes in the header are only right
once the file is closed. A crash leaves sizes that are stale (or zero) while
the audio is on disk, so ``corrected_sizes`` works out the sizes from the
file's length, assuming, as for every file we write, that ``data`` is the
last chunk. Pure functions on bytes; the caller does the I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from dialer.media.errors import MediaError

PCM_HEADER_SIZE = 44  # RIFF header + 24-byte fmt chunk + data chunk header
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

_RIFF = struct.Struct("<4sI4s")
_CHUNK = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")
_U32_MAX = 0xFFFFFFFF
_SUPPORTED_BITS = (8, 16, 24, 32)


class WavError(MediaError, ValueError):
    """A WAVE header is malformed, unsupported, or asked for with bad values."""


@dataclass(frozen=True, slots=True)
class WavHeader:
    """What a header declares; ``data_size`` and ``riff_size`` may be stale."""

    channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int  # bytes per frame (one sample of every channel)
    data_offset: int  # where the first audio byte is
    data_size: int  # as declared by the data chunk
    riff_size: int  # as declared by the RIFF chunk (file length - 8 when right)

    @property
    def byte_rate(self) -> int:
        return self.sample_rate * self.block_align

    def agrees_with(self, file_length: int) -> bool:
        """True if the declared sizes describe a file of ``file_length`` bytes.

        Chunks after ``data`` are allowed (other tools write them), so data
        need only fit; but the RIFF size must cover the file exactly and data
        must be whole frames.
        """
        data_end = self.data_offset + self.data_size + (self.data_size & 1)
        return (
            self.riff_size + 8 == file_length
            and data_end <= file_length
            and self.data_size % self.block_align == 0
        )


@dataclass(frozen=True, slots=True)
class WavSizes:
    """The sizes a header should carry for the audio actually on disk."""

    riff_size: int
    data_size: int  # whole frames only
    file_length: int  # what the file must be cut (or padded) to


def build_header(channels: int, sample_rate: int, bits_per_sample: int, data_bytes: int) -> bytes:
    """The canonical 44-byte PCM header for ``data_bytes`` bytes of audio."""
    if not 1 <= channels <= 0xFFFF:
        raise WavError(f"channels must be 1..65535, not {channels}")
    if not 1 <= sample_rate <= _U32_MAX:
        raise WavError(f"sample rate must be 1..{_U32_MAX}, not {sample_rate}")
    if bits_per_sample not in _SUPPORTED_BITS:
        raise WavError(f"bits per sample must be one of {_SUPPORTED_BITS}, not {bits_per_sample}")
    block_align = channels * bits_per_sample // 8
    if block_align > 0xFFFF:
        raise WavError(f"a frame of {block_align} bytes does not fit the block align field")
    pad = data_bytes & 1
    riff_size = PCM_HEADER_SIZE - 8 + data_bytes + pad
    if data_bytes < 0 or riff_size > _U32_MAX:
        raise WavError(f"data size {data_bytes} does not fit a RIFF file")
    return b"".join(
        (
            _RIFF.pack(b"RIFF", riff_size, b"WAVE"),
            _CHUNK.pack(b"fmt ", _FMT.size),
            _FMT.pack(
                WAVE_FORMAT_PCM,
                channels,
                sample_rate,
                sample_rate * block_align,
                block_align,
                bits_per_sample,
            ),
            _CHUNK.pack(b"data", data_bytes),
        )
    )


def parse_header(data: bytes) -> WavHeader:
    """Parse the start of a WAVE file, up to and including the data chunk header.

    ``data`` need not hold the whole file, only the chunks before the audio
    (44 bytes for our own files).
    """
    if len(data) < _RIFF.size:
        raise WavError(f"truncated: {len(data)} bytes, a RIFF header needs {_RIFF.size}")
    riff_id, riff_size, form = _RIFF.unpack_from(data)
    if riff_id != b"RIFF":
        kind = "big-endian RIFX" if riff_id == b"RIFX" else "a RIFF"
        raise WavError(f"not {kind} file: starts with {riff_id!r}")
    if form != b"WAVE":
        raise WavError(f"RIFF form is {form!r}, not b'WAVE'")
    fmt: tuple[int, int, int, int, int, int] | None = None
    offset = _RIFF.size
    while True:
        if offset + _CHUNK.size > len(data):
            where = "no data chunk" if fmt else "no fmt chunk"
            raise WavError(f"{where} in the first {len(data)} bytes")
        chunk_id, size = _CHUNK.unpack_from(data, offset)
        body = offset + _CHUNK.size
        if chunk_id == b"data":
            if fmt is None:
                raise WavError(f"data chunk at offset {offset} comes before any fmt chunk")
            break
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data, body, size)
        offset = body + size + (size & 1)
    _tag, channels, rate, _byte_rate, block_align, bits = fmt
    return WavHeader(
        channels=channels,
        sample_rate=rate,
        bits_per_sample=bits,
        block_align=block_align,
        data_offset=body,
        data_size=size,
        riff_size=riff_size,
    )


def _parse_fmt(data: bytes, body: int, size: int) -> tuple[int, int, int, int, int, int]:
    if size < _FMT.size:
        raise WavError(f"fmt chunk is {size} bytes, PCM needs at least {_FMT.size}")
    if body + _FMT.size > len(data):
        raise WavError(f"fmt chunk at offset {body - _CHUNK.size} is cut off")
    fields: tuple[int, int, int, int, int, int] = _FMT.unpack_from(data, body)
    tag, channels, rate, _byte_rate, block_align, bits = fields
    if tag == WAVE_FORMAT_EXTENSIBLE:
        # WAVEFORMATEXTENSIBLE: cbSize, valid bits, channel mask, then the
        # sub-format GUID whose first two bytes are the real format tag.
        sub = body + _FMT.size + 8
        if size < _FMT.size + 24 or sub + 2 > len(data):
            raise WavError("extensible fmt chunk is too short to name its sub-format")
        tag = int.from_bytes(data[sub : sub + 2], "little")
    if tag != WAVE_FORMAT_PCM:
        raise WavError(f"format tag 0x{tag:04x} is not PCM")
    if channels == 0:
        raise WavError("fmt chunk declares 0 channels")
    if rate == 0:
        raise WavError("fmt chunk declares a sample rate of 0")
    if bits == 0:
        raise WavError("fmt chunk declares 0 bits per sample")
    expected_align = channels * ((bits + 7) // 8)
    if block_align != expected_align:
        raise WavError(
            f"block align {block_align} does not match {channels} channel(s) of {bits} bits"
            f" (expected {expected_align})"
        )
    return fields


def corrected_sizes(header: WavHeader, file_length: int) -> WavSizes:
    """The sizes for a file of ``file_length`` bytes whose data chunk runs to the end.

    A trailing partial frame (the crash cut a write short) is dropped.
    """
    if file_length < header.data_offset:
        raise WavError(
            f"file is {file_length} bytes, shorter than its header ({header.data_offset} bytes)"
        )
    available = file_length - header.data_offset
    data_size = available - available % header.block_align
    pad = data_size & 1
    riff_size = header.data_offset - 8 + data_size + pad
    if data_size > _U32_MAX or riff_size > _U32_MAX:
        raise WavError(f"{file_length} bytes of file do not fit a RIFF header's sizes")
    return WavSizes(
        riff_size=riff_size, data_size=data_size, file_length=header.data_offset + data_size + pad
    )


def read_prompt(path: Path) -> bytes:
    """The audio of a prompt file: 8 kHz mono 16-bit PCM WAV, as s16le samples.

    Prompts are played as they are (no resampling on the call path), so any
    other format is refused with what it is.
    """
    data = path.read_bytes()
    header = parse_header(data)
    wanted = (1, 8000, 16)
    got = (header.channels, header.sample_rate, header.bits_per_sample)
    if got != wanted:
        raise WavError(
            f"{path}: a prompt must be 8 kHz mono 16-bit PCM, got {got[1]} Hz, "
            f"{got[0]} channel(s), {got[2]} bits"
        )
    audio = data[header.data_offset : header.data_offset + header.data_size]
    return audio[: len(audio) - len(audio) % 2]
