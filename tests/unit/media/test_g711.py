from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.media.errors import LocalMediaError
from dialer.media.g711 import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    alaw_to_ulaw,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_alaw,
)

Codec = Callable[[bytes], bytes]
ALL_CODES = bytes(range(256))
EVERY_SAMPLE = array("h", range(-32768, 32768)).tobytes()
if array("h", [1]).tobytes() != b"\x01\x00":  # pragma: no cover - big-endian hosts
    _swapped = array("h", range(-32768, 32768))
    _swapped.byteswap()
    EVERY_SAMPLE = _swapped.tobytes()


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def samples(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


# Worked from G.711's µ-law: the octet is transmitted inverted; ~0x00 = 0xFF
# is negative, segment 7, step 15: ((15 << 3) + 0x84) << 7) - 0x84 = 32124.
@pytest.mark.parametrize(
    ("code", "value"),
    [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8), (0x7E, -8), (0xEF, 132)],
)
def test_ulaw_decode_known_vectors(code: int, value: int) -> None:
    assert samples(ulaw_decode(bytes((code,)))) == [value]


# Worked from G.711's A-law: the even bits are toggled (^0x55) and bit 7 set
# means positive. 0xAA ^ 0x55 = 0xFF: positive, segment 7, step 15:
# ((16 + 15) << 4 | 8) << 6 = 32256. So 0xAA is +32256 and 0x2A (bit 7 clear)
# is -32256; the brief had these two swapped, which contradicts 0xD5 -> +8.
@pytest.mark.parametrize(
    ("code", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0xC5, 264)],
)
def test_alaw_decode_known_vectors(code: int, value: int) -> None:
    assert samples(alaw_decode(bytes((code,)))) == [value]


@pytest.mark.parametrize(
    ("value", "ulaw", "alaw"),
    [
        (0, 0xFF, 0xD5),
        (-1, 0x7F, 0x55),  # negatives quantise by one's complement: -1 is the "-0" level
        (32767, 0x80, 0xAA),
        (-32768, 0x00, 0x2A),  # clipped to full scale
        (3, 0xFF, 0xD5),  # µ-law's zero level spans 16-bit 0..3 (0..0 in 14 bits)
        (4, 0xFE, 0xD5),  # first µ-law decision value: 1 in 14 bits
        (16, 0xFD, 0xD4),  # first A-law decision value: 1 in 12-bit magnitude
    ],
)
def test_encode_known_vectors(value: int, ulaw: int, alaw: int) -> None:
    assert ulaw_encode(pcm(value)) == bytes((ulaw,))
    assert alaw_encode(pcm(value)) == bytes((alaw,))


def test_ulaw_round_trips_every_code_but_the_negative_zero() -> None:
    expected = ALL_CODES.replace(b"\x7f", b"\xff")
    assert ulaw_encode(ulaw_decode(ALL_CODES)) == expected


def test_alaw_round_trips_every_code() -> None:
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


def test_ulaw_decode_is_monotonic() -> None:
    negative = samples(ulaw_decode(bytes(range(0x00, 0x80))))
    positive = samples(ulaw_decode(bytes(range(0xFF, 0x7F, -1))))
    levels = negative + positive  # -32124 ... -0, +0 ... 32124
    assert all(a < b for a, b in pairwise(levels) if (a, b) != (0, 0))
    assert levels[0] == -32124
    assert levels[-1] == 32124


def test_alaw_decode_is_monotonic() -> None:
    # Strip the even-bit toggle to order codes by magnitude.
    negative = samples(alaw_decode(bytes(t ^ 0x55 for t in range(0x7F, -1, -1))))
    positive = samples(alaw_decode(bytes(t ^ 0x55 for t in range(0x80, 0x100))))
    levels = negative + positive
    assert all(a < b for a, b in pairwise(levels))
    assert levels[0] == -32256
    assert levels[-1] == 32256
    assert len(set(levels)) == 256  # A-law has no duplicate zero


@pytest.mark.parametrize(
    ("encode", "decode", "max_error"),
    [
        # µ-law's largest error is the full-scale clip: -32124 - -32768.
        (ulaw_encode, ulaw_decode, 644),
        # A-law's is half its top step (1024 in 16 bits), less the rounding of ~x.
        (alaw_encode, alaw_decode, 512),
    ],
)
def test_quantiser_is_monotonic_and_bounded_over_every_sample(
    encode: Codec, decode: Codec, max_error: int
) -> None:
    quantised = array("h", decode(encode(EVERY_SAMPLE)))
    values = range(-32768, 32768)
    assert all(a <= b for a, b in pairwise(quantised))
    assert max(abs(q - v) for q, v in zip(quantised, values, strict=True)) == max_error


def test_silence() -> None:
    frame = bytes(320)  # 160 samples of 0
    assert ulaw_encode(frame) == bytes((ULAW_SILENCE,)) * 160
    assert alaw_encode(frame) == bytes((ALAW_SILENCE,)) * 160
    assert ulaw_decode(bytes((ULAW_SILENCE,)) * 160) == frame
    # A-law has no zero level: its silence is the smallest positive one.
    assert samples(alaw_decode(bytes((ALAW_SILENCE,)) * 2)) == [8, 8]


def test_lengths_and_empty_input() -> None:
    assert ulaw_decode(b"") == b""
    assert alaw_encode(b"") == b""
    assert len(ulaw_decode(bytes(160))) == 320
    assert len(alaw_encode(bytes(320))) == 160


def test_odd_pcm_is_a_local_error() -> None:
    with pytest.raises(
        LocalMediaError, match=r"^16-bit PCM must have an even length, got 3 octets$"
    ):
        ulaw_encode(b"\x00\x00\x00")
    with pytest.raises(LocalMediaError):
        alaw_encode(b"\x00")


def test_transcoding_known_vectors() -> None:
    # µ-law 0x7F quantises -4..-1: its A-law home is 0x55 (-16..-1), not 0xD5.
    assert ulaw_to_alaw(bytes((0xFF, 0x7F, 0x80, 0x00))) == bytes((0xD5, 0x55, 0xAA, 0x2A))
    # A-law's +8 is between µ-law's 0 and 8 levels; it codes as 8.
    assert alaw_to_ulaw(bytes((0xD5, 0x55, 0xAA, 0x2A))) == bytes((0xFE, 0x7E, 0x80, 0x00))


def test_transcoding_tables_agree_with_decode_then_encode() -> None:
    # Except µ-law's negative zero, which stays negative (see the vectors above).
    expected = bytearray(alaw_encode(ulaw_decode(ALL_CODES)))
    expected[0x7F] = 0x55
    assert ulaw_to_alaw(ALL_CODES) == expected
    assert alaw_to_ulaw(ALL_CODES) == ulaw_encode(alaw_decode(ALL_CODES))


def test_transcoding_keeps_the_sign_and_stays_close() -> None:
    pairs: list[tuple[Codec, Codec, Codec]] = [
        (ulaw_to_alaw, ulaw_decode, alaw_decode),
        (alaw_to_ulaw, alaw_decode, ulaw_decode),
    ]
    for transcode, decode_from, decode_to in pairs:
        before = samples(decode_from(ALL_CODES))
        after = samples(decode_to(transcode(ALL_CODES)))
        for a, b in zip(before, after, strict=True):
            assert (a < 0) == (b < 0) or a == 0
            assert abs(a - b) <= max(16, abs(a) // 16)


@given(st.binary(max_size=400))
def test_ulaw_code_round_trip_property(data: bytes) -> None:
    assert ulaw_encode(ulaw_decode(data)) == data.replace(b"\x7f", b"\xff")


@given(st.binary(max_size=400))
def test_alaw_code_round_trip_property(data: bytes) -> None:
    assert alaw_encode(alaw_decode(data)) == data
