from __future__ import annotations

import io
import struct
import wave

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.media.errors import MediaError
from dialer.media.wav import (
    PCM_HEADER_SIZE,
    WavError,
    WavHeader,
    build_header,
    corrected_sizes,
    parse_header,
)

# A 2-channel 8 kHz 16-bit header for 1000 bytes of audio, written out by hand.
GOLDEN_STEREO_1000 = (
    b"RIFF"
    + struct.pack("<I", 36 + 1000)
    + b"WAVE"
    + b"fmt "
    + struct.pack("<IHHIIHH", 16, 1, 2, 8000, 32000, 4, 16)
    + b"data"
    + struct.pack("<I", 1000)
)


def stdlib_wav(channels: int, rate: int, width: int, frames: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def fmt_body(tag: int = 1, channels: int = 2, rate: int = 8000, bits: int = 16) -> bytes:
    align = channels * ((bits + 7) // 8)
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def riff(*chunks: bytes, size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def test_build_header_golden_bytes() -> None:
    assert build_header(2, 8000, 16, 1000) == GOLDEN_STEREO_1000
    assert len(GOLDEN_STEREO_1000) == PCM_HEADER_SIZE


def test_build_header_matches_what_stdlib_wave_writes() -> None:
    frames = bytes(range(256)) * 10
    assert stdlib_wav(2, 8000, 2, frames) == build_header(2, 8000, 16, len(frames)) + frames
    assert stdlib_wav(1, 16000, 1, frames) == build_header(1, 16000, 8, len(frames)) + frames


@given(
    channels=st.integers(1, 8),
    rate=st.sampled_from([8000, 16000, 44100, 48000]),
    bits=st.sampled_from([8, 16, 24, 32]),
    frames=st.integers(0, 100_000),
)
def test_parse_reads_back_what_build_wrote(
    channels: int, rate: int, bits: int, frames: int
) -> None:
    align = channels * bits // 8
    data_bytes = frames * align
    header = parse_header(build_header(channels, rate, bits, data_bytes))
    assert header == WavHeader(
        channels=channels,
        sample_rate=rate,
        bits_per_sample=bits,
        block_align=align,
        data_offset=PCM_HEADER_SIZE,
        data_size=data_bytes,
        riff_size=36 + data_bytes + (data_bytes & 1),
    )
    assert header.byte_rate == rate * align
    file_length = PCM_HEADER_SIZE + data_bytes + (data_bytes & 1)
    assert header.agrees_with(file_length)


def test_parse_skips_chunks_before_data_with_padding() -> None:
    data = b"\x01\x00\x02\x00" * 3
    listing = chunk(b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00")  # odd size: one pad byte
    raw = riff(chunk(b"fmt ", fmt_body()), listing, chunk(b"fact", b"\0" * 4), chunk(b"data", data))
    header = parse_header(raw)
    assert header.data_offset == len(raw) - len(data)
    assert header.data_size == len(data)
    assert raw[header.data_offset :] == data
    assert header.agrees_with(len(raw))


def test_parse_accepts_extensible_pcm() -> None:
    extension = struct.pack("<HHI", 22, 16, 0x3) + struct.pack("<H", 1) + bytes(14)
    raw = riff(chunk(b"fmt ", fmt_body(tag=0xFFFE) + extension), chunk(b"data", b""))
    assert parse_header(raw).channels == 2


def test_parse_needs_only_the_chunks_before_audio() -> None:
    # A crashed recording: the header claims nothing, the audio follows.
    header = parse_header(build_header(2, 8000, 16, 0))
    assert (header.data_offset, header.data_size, header.riff_size) == (44, 0, 36)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "truncated: 0 bytes, a RIFF header needs 12"),
        (b"RIFF\0\0", "truncated: 6 bytes, a RIFF header needs 12"),
        (b"OggS" + bytes(40), "not a RIFF file: starts with b'OggS'"),
        (b"RIFX" + bytes(4) + b"WAVE", "not big-endian RIFX file: starts with b'RIFX'"),
        (b"RIFF" + bytes(4) + b"AVI " + bytes(32), "RIFF form is b'AVI ', not b'WAVE'"),
        (riff(chunk(b"data", b"")), "data chunk at offset 12 comes before any fmt chunk"),
        (riff(chunk(b"LIST", b"1234")), "no fmt chunk in the first 24 bytes"),
        (riff(chunk(b"fmt ", fmt_body())), "no data chunk in the first 36 bytes"),
        (riff(chunk(b"fmt ", fmt_body()[:14])), "fmt chunk is 14 bytes, PCM needs at least 16"),
        (riff(chunk(b"fmt ", fmt_body(tag=3))), "format tag 0x0003 is not PCM"),
        (riff(chunk(b"fmt ", fmt_body(channels=0))), "fmt chunk declares 0 channels"),
        (riff(chunk(b"fmt ", fmt_body(rate=0))), "fmt chunk declares a sample rate of 0"),
        (
            riff(chunk(b"fmt ", fmt_body(tag=0xFFFE))),
            "extensible fmt chunk is too short to name its sub-format",
        ),
    ],
)
def test_parse_errors_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(WavError) as caught:
        parse_header(raw)
    assert str(caught.value) == message


def test_parse_rejects_inconsistent_block_align() -> None:
    body = struct.pack("<HHIIHH", 1, 2, 8000, 32000, 2, 16)
    with pytest.raises(WavError, match=r"block align 2 does not match 2 channel\(s\) of 16 bits"):
        parse_header(riff(chunk(b"fmt ", body), chunk(b"data", b"")))


def test_parse_rejects_cut_off_fmt_chunk() -> None:
    raw = riff(chunk(b"fmt ", fmt_body()))[:30]
    with pytest.raises(WavError, match="fmt chunk at offset 12 is cut off"):
        parse_header(raw)


def test_wav_error_is_a_value_error_and_a_media_error() -> None:
    with pytest.raises(ValueError):
        parse_header(b"nope")
    assert issubclass(WavError, MediaError)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 8000, 16, 0), "channels must be 1..65535, not 0"),
        ((2, 0, 16, 0), "sample rate must be 1..4294967295, not 0"),
        ((2, 8000, 12, 0), r"bits per sample must be one of \(8, 16, 24, 32\), not 12"),
        ((2, 8000, 16, -4), "data size -4 does not fit a RIFF file"),
        ((2, 8000, 16, 2**32), "data size 4294967296 does not fit a RIFF file"),
    ],
)
def test_build_header_rejects_bad_values(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(WavError, match=message):
        build_header(*args)


def test_corrected_sizes_drop_a_trailing_partial_frame() -> None:
    header = parse_header(build_header(2, 8000, 16, 0))
    sizes = corrected_sizes(header, PCM_HEADER_SIZE + 4 * 250 + 3)
    assert (sizes.data_size, sizes.riff_size, sizes.file_length) == (1000, 1036, 1044)
    assert not header.agrees_with(PCM_HEADER_SIZE + 1003)


def test_corrected_sizes_keep_chunks_before_data() -> None:
    raw = riff(chunk(b"fmt ", fmt_body()), chunk(b"LIST", b"abcd"), chunk(b"data", b""))
    header = parse_header(raw)
    sizes = corrected_sizes(header, len(raw) + 400)
    assert sizes.data_size == 400
    assert sizes.riff_size == len(raw) + 400 - 8
    assert sizes.file_length == len(raw) + 400


def test_corrected_sizes_pad_odd_data() -> None:
    header = parse_header(build_header(1, 8000, 8, 0))
    sizes = corrected_sizes(header, PCM_HEADER_SIZE + 7)
    assert (sizes.data_size, sizes.riff_size, sizes.file_length) == (7, 44, 52)


def test_corrected_sizes_refuse_a_file_shorter_than_its_header() -> None:
    header = parse_header(build_header(2, 8000, 16, 0))
    with pytest.raises(WavError, match=r"file is 40 bytes, shorter than its header \(44 bytes\)"):
        corrected_sizes(header, 40)


@given(declared=st.integers(0, 10_000), actual=st.integers(0, 10_000))
def test_corrected_sizes_agree_with_the_file_they_describe(declared: int, actual: int) -> None:
    stale = parse_header(build_header(2, 8000, 16, declared * 4))
    sizes = corrected_sizes(stale, PCM_HEADER_SIZE + actual)
    fixed = parse_header(build_header(2, 8000, 16, sizes.data_size))
    assert fixed.agrees_with(sizes.file_length)
    assert sizes.data_size % 4 == 0
    assert 0 <= actual - sizes.data_size < 4
    assert stale.agrees_with(PCM_HEADER_SIZE + actual) == (declared * 4 == actual)


def test_agrees_with_allows_chunks_after_data() -> None:
    raw = riff(chunk(b"fmt ", fmt_body()), chunk(b"data", b"\0" * 8), chunk(b"LIST", b"abcd"))
    assert parse_header(raw).agrees_with(len(raw))
    assert not parse_header(raw).agrees_with(len(raw) + 4)
