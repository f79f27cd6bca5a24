"""G.711 µ-law and A-law companding (ITU-T G.711), table driven.

PCM is signed 16-bit little-endian, the layout of our recordings. G.711 codes
14-bit (µ-law) or 13-bit (A-law) samples; we scale to 16 bits by the usual
left shift, so µ-law's full scale decodes to ±32124 and A-law's to ±32256.

Negative inputs are quantised by their one's complement (``~x``), as the
ITU-T G.191 reference coder does: it makes the quantiser symmetric around
-0.5, which is where the zero of two's complement samples really lies.

Each direction is one table lookup per sample so that a 160-sample frame
(20 ms at 8 kHz) costs microseconds: decoding is two ``bytes.translate``
calls interleaved by slice assignment, encoding indexes a 65536-entry table
with the raw 16-bit sample (~8 µs a frame), transcoding is a single ``bytes.translate``.
"""

from __future__ import annotations

import sys
from array import array

from dialer.media.errors import LocalMediaError

_BIG_ENDIAN = sys.byteorder == "big"

# Silence as each law codes it: µ-law's positive zero, A-law's +8.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _ulaw_expand(code: int) -> int:
    # G.711 transmits µ-law inverted: the complement gives sign/segment/step.
    inverted = ~code & 0xFF
    segment = (inverted >> 4) & 0x07
    step = inverted & 0x0F
    magnitude = (((step << 3) + 0x84) << segment) - 0x84
    return -magnitude if inverted & 0x80 else magnitude


def _ulaw_compress(sample: int) -> int:
    negative = sample < 0
    # 16 -> 14 bits, then the bias of 33 puts every segment on a power of two.
    biased = ((~sample if negative else sample) >> 2) + 33
    biased = min(biased, 0x1FFF)
    segment = biased.bit_length() - 6
    step = (biased >> (segment + 1)) & 0x0F
    code = (segment << 4) | step
    return (0x7F if negative else 0xFF) ^ code


def _alaw_expand(code: int) -> int:
    # A-law toggles the even bits (0x55) to keep the line busy on silence.
    toggled = code ^ 0x55
    segment = (toggled >> 4) & 0x07
    step = toggled & 0x0F
    if segment:
        step |= 0x10  # above segment 0 the level has an implied leading one
    magnitude = ((step << 4) + 8) << max(segment - 1, 0)
    return magnitude if toggled & 0x80 else -magnitude


def _alaw_compress(sample: int) -> int:
    negative = sample < 0
    level = (~sample if negative else sample) >> 4  # 16 bits -> 11-bit magnitude
    if level < 16:
        code = level  # segment 0 is linear, like segment 1
    else:
        segment = level.bit_length() - 4
        code = (segment << 4) | ((level >> (segment - 1)) & 0x0F)
    return (code if negative else code | 0x80) ^ 0x55


def _signed16(index: int) -> int:
    return index - 0x10000 if index & 0x8000 else index


_ULAW_TO_LINEAR = [_ulaw_expand(code) for code in range(256)]
_ALAW_TO_LINEAR = [_alaw_expand(code) for code in range(256)]

# Decode tables split into the low and high byte of the little-endian sample.
_ULAW_LOW = bytes(value & 0xFF for value in _ULAW_TO_LINEAR)
_ULAW_HIGH = bytes((value >> 8) & 0xFF for value in _ULAW_TO_LINEAR)
_ALAW_LOW = bytes(value & 0xFF for value in _ALAW_TO_LINEAR)
_ALAW_HIGH = bytes((value >> 8) & 0xFF for value in _ALAW_TO_LINEAR)

# µ-law only looks at the top 14 bits and A-law at the top 12, so the 65536-entry
# tables are built from 16384 and 4096 computed codes.
_ULAW_14 = bytes(_ulaw_compress(_signed16(index << 2)) for index in range(16384))
_ALAW_12 = bytes(_alaw_compress(_signed16(index << 4)) for index in range(4096))
# Lists, never mutated: ``list.__getitem__`` is a METH_O fast-path method,
# ~1.5x quicker through ``map`` than the slot wrappers of bytes or tuple.
_LINEAR_TO_ULAW = [_ULAW_14[index >> 2] for index in range(65536)]
_LINEAR_TO_ALAW = [_ALAW_12[index >> 4] for index in range(65536)]

# µ-law's "negative zero" 0x7F quantises -4..-1, yet decodes to 0; -1 stands
# for it so that transcoding keeps its sign (A-law 0x55 covers -16..-1).
_ULAW_REPRESENTATIVE = [-1 if code == 0x7F else value for code, value in enumerate(_ULAW_TO_LINEAR)]
_ULAW_TO_ALAW = bytes(_LINEAR_TO_ALAW[value & 0xFFFF] for value in _ULAW_REPRESENTATIVE)
_ALAW_TO_ULAW = bytes(_LINEAR_TO_ULAW[value & 0xFFFF] for value in _ALAW_TO_LINEAR)


def _decode(data: bytes, low: bytes, high: bytes) -> bytes:
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(low)
    out[1::2] = data.translate(high)
    return bytes(out)


def _encode(pcm: bytes, table: list[int]) -> bytes:
    if len(pcm) % 2:
        raise LocalMediaError(f"16-bit PCM must have an even length, got {len(pcm)} octets")
    if _BIG_ENDIAN:
        samples = array("H", pcm)
        samples.byteswap()
        return bytes(map(table.__getitem__, samples))
    return bytes(map(table.__getitem__, memoryview(pcm).cast("H")))


def ulaw_decode(data: bytes) -> bytes:
    """µ-law octets -> signed 16-bit little-endian PCM."""
    return _decode(data, _ULAW_LOW, _ULAW_HIGH)


def ulaw_encode(pcm: bytes) -> bytes:
    """Signed 16-bit little-endian PCM -> µ-law octets."""
    return _encode(pcm, _LINEAR_TO_ULAW)


def alaw_decode(data: bytes) -> bytes:
    """A-law octets -> signed 16-bit little-endian PCM."""
    return _decode(data, _ALAW_LOW, _ALAW_HIGH)


def alaw_encode(pcm: bytes) -> bytes:
    """Signed 16-bit little-endian PCM -> A-law octets."""
    return _encode(pcm, _LINEAR_TO_ALAW)


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode each µ-law code to the A-law code whose interval holds its level."""
    return data.translate(_ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes) -> bytes:
    """Transcode each A-law code to the µ-law code whose interval holds its level."""
    return data.translate(_ALAW_TO_ULAW)
