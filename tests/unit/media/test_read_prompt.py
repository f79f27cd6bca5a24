"""read_prompt: a prompt file's audio, only if it is the 8 kHz mono 16-bit PCM we play as is.

Files are written with the standard library's ``wave`` (or by hand with
``struct`` where ``wave`` cannot write the case), so the reader is checked
against files it did not write itself.
"""

from __future__ import annotations

import random
import struct
import wave
from pathlib import Path

import pytest

from dialer.media.wav import WavError, read_prompt

SHIPPED = Path(__file__).parents[3] / "deploy" / "prompts" / "abandon-zh-CN.wav"
BYTES_PER_SECOND = 8000 * 2  # 8 kHz, 16-bit mono


def samples(n_bytes: int, seed: int = 7) -> bytes:
    """Arbitrary audio: any byte change on the way would show."""
    return random.Random(seed).randbytes(n_bytes)


def write_wav(
    path: Path, audio: bytes, *, rate: int = 8000, channels: int = 1, width: int = 2
) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(audio)
    return path


def riff(*chunks: tuple[bytes, bytes], data_size: int | None = None) -> bytes:
    """A RIFF/WAVE file of the given chunks; ``data_size`` overrides the data chunk's size."""
    body = b""
    for chunk_id, payload in chunks:
        size = data_size if chunk_id == b"data" and data_size is not None else len(payload)
        body += chunk_id + struct.pack("<I", size) + payload + b"\x00" * (len(payload) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def fmt(tag: int = 1, channels: int = 1, rate: int = 8000, bits: int = 16) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def test_8khz_mono_16bit_audio_comes_back_unchanged(tmp_path: Path) -> None:
    audio = samples(BYTES_PER_SECOND)
    assert read_prompt(write_wav(tmp_path / "p.wav", audio)) == audio


def test_chunks_around_the_audio_are_not_audio(tmp_path: Path) -> None:
    audio = samples(3200)
    listing = (b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00")  # odd: padded
    path = tmp_path / "p.wav"
    path.write_bytes(riff((b"fmt ", fmt()), listing, (b"data", audio), listing))
    assert read_prompt(path) == audio


def test_extensible_pcm_is_pcm(tmp_path: Path) -> None:
    # WAVEFORMATEXTENSIBLE: cbSize 22, valid bits, channel mask, sub-format GUID (PCM).
    guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    extension = struct.pack("<HHI", 22, 16, 0x4) + guid
    audio = samples(1600)
    path = tmp_path / "p.wav"
    path.write_bytes(riff((b"fmt ", fmt(tag=0xFFFE) + extension), (b"data", audio)))
    assert read_prompt(path) == audio


def test_a_stale_data_size_reads_the_audio_on_disk_in_whole_samples(tmp_path: Path) -> None:
    # A streaming writer leaves 0xFFFFFFFF; a cut write leaves an odd byte over.
    audio = samples(1601)
    path = tmp_path / "p.wav"
    header = riff((b"fmt ", fmt()), (b"data", b""), data_size=0xFFFFFFFF)
    path.write_bytes(header + audio)  # no pad byte: the writer died mid-sample
    assert read_prompt(path) == audio[:1600]


def test_an_odd_declared_size_drops_the_half_sample(tmp_path: Path) -> None:
    audio = samples(999)
    path = tmp_path / "p.wav"
    path.write_bytes(riff((b"fmt ", fmt()), (b"data", audio)))
    assert read_prompt(path) == audio[:998]


@pytest.mark.parametrize(
    ("rate", "channels", "width", "got"),
    [
        (16000, 1, 2, "16000 Hz, 1 channel(s), 16 bits"),
        (44100, 1, 2, "44100 Hz, 1 channel(s), 16 bits"),
        (8000, 2, 2, "8000 Hz, 2 channel(s), 16 bits"),
        (8000, 1, 1, "8000 Hz, 1 channel(s), 8 bits"),
        (8000, 1, 3, "8000 Hz, 1 channel(s), 24 bits"),
        (8000, 1, 4, "8000 Hz, 1 channel(s), 32 bits"),
    ],
)
def test_another_rate_channel_count_or_width_is_refused_with_what_it_is(
    tmp_path: Path, rate: int, channels: int, width: int, got: str
) -> None:
    path = write_wav(tmp_path / "p.wav", bytes(1200), rate=rate, channels=channels, width=width)
    with pytest.raises(WavError) as info:
        read_prompt(path)
    assert str(info.value) == f"{path}: a prompt must be 8 kHz mono 16-bit PCM, got {got}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "truncated: 0 bytes, a RIFF header needs 12"),
        (
            b"ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00 an mp3",
            "not a RIFF file: starts with b'ID3\\x04'",
        ),
        (b"RIFF\x04\x00\x00\x00AVI ", "RIFF form is b'AVI ', not b'WAVE'"),
        (riff((b"data", bytes(16))), "data chunk at offset 12 comes before any fmt chunk"),
        (riff((b"fmt ", fmt())), "no data chunk in the first 36 bytes"),
        # G.711 mu-law in a WAV: a telephony classic, but not what we play.
        (riff((b"fmt ", fmt(tag=7, bits=8)), (b"data", bytes(8))), "format tag 0x0007 is not PCM"),
    ],
)
def test_what_is_not_a_pcm_wav_is_refused_naming_the_problem(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "p.wav"
    path.write_bytes(content)
    with pytest.raises(WavError) as info:
        read_prompt(path)
    assert str(info.value) == message


def test_a_missing_file_is_an_os_error_not_a_format_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_prompt(tmp_path / "absent.wav")


def test_the_shipped_abandon_message_loads_and_lasts_at_least_half_a_second() -> None:
    audio = read_prompt(SHIPPED)
    assert len(audio) >= BYTES_PER_SECOND // 2
    assert len(audio) % 2 == 0
    with wave.open(str(SHIPPED), "rb") as reference:
        assert audio == reference.readframes(reference.getnframes())
    assert any(audio), "the message is not silence"
