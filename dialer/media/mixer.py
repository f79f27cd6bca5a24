"""Time alignment of the two sides of a call into one stereo recording timeline.

The recording is a single timeline of sample positions: position 0 is the
instant ``start`` and position ``p`` lies ``p / sample_rate`` seconds later.
Each channel (agent left, customer right) is placed on it independently, so a
gap on one side is silence on that side and never a shift of the other.

Placement of a packet. A channel keeps an anchor ``(ssrc, timestamp,
position)``; a packet of that SSRC belongs at
``anchor.position + ts_diff(rtp_timestamp, anchor.timestamp)``. Timestamps are
the sender's own sampling clock (RFC 3550 §5.1), so this is exact to the
sample whatever the network did to arrival times: loss leaves a hole of the
right size, reordering lands each packet where it was sampled. Arrival time
(``round((arrival - start) * sample_rate)``) only chooses anchors: on the
first packet, on an SSRC change (a new random timestamp base, §5.1), and when
the timestamp says something arrival time contradicts (a sender that kept its
timestamp across a hold, or jumped it). A new anchor never lies before what
the channel already holds, so a new stream never overwrites the old one.

Limits, by design: alignment between the channels is as good as the arrival
of each stream's anchor packet (one-way delay and jitter of that packet);
sender clock skew is not corrected; a packet later than the reorder window
is dropped, except a stale-looking packet confirmed by the next one as a
backward timestamp jump (which costs that one packet); two sources
overlapping on one channel keep whichever arrived first.

The timeline advances with ``take(now)`` whether packets come or not: the
recording is aligned to the call, so a silent period is written as silence,
not skipped. Positions stay open for ``reorder_window`` seconds so that late
packets can still fill them; what arrives after its position was returned is
dropped and counted.

Sans-IO: no clock is read here; ``arrival`` and ``now`` come from the caller,
on the same monotonic scale as ``start``.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from enum import IntEnum

from dialer.media.errors import LocalMediaError
from dialer.media.rtp import ts_diff

_SAMPLE = 2  # octets of one s16le mono sample
_PLACED = 1  # mask value of a position that holds a received sample


class Channel(IntEnum):
    """Which side of the stereo recording a stream is written to."""

    AGENT = 0  # left: first sample of each interleaved frame
    CUSTOMER = 1  # right


@dataclass(frozen=True, slots=True)
class _Anchor:
    """RTP ``timestamp`` of source ``ssrc`` sits at timeline ``position``."""

    ssrc: int
    timestamp: int
    position: int

    def place(self, timestamp: int) -> int:
        return self.position + ts_diff(timestamp, self.timestamp)


class _Track:
    """One channel: its anchors and the samples not yet returned."""

    __slots__ = ("anchor", "end", "lead", "mask", "pcm", "pending", "previous")

    def __init__(self) -> None:
        self.anchor: _Anchor | None = None
        # The stream before the last SSRC change, for its stragglers.
        self.previous: _Anchor | None = None
        # A stale packet that may be the first of a backward timestamp jump.
        self.pending: _Anchor | None = None
        # Furthest position + 1 ever written on this channel.
        self.end = 0
        # How early (in positions) the packet that last extended the channel
        # arrived for where its timestamp put it: the stream's usual lead.
        self.lead = 0
        # Both buffers start at the mixer's returned position (samples_out).
        self.pcm = bytearray()
        self.mask = bytearray()

    def pop(self, frames: int) -> bytes:
        """The next ``frames`` samples as s16le, silence where nothing came."""
        size = frames * _SAMPLE
        chunk = bytes(self.pcm[:size])
        del self.pcm[:size]
        del self.mask[:frames]
        if len(chunk) < size:
            chunk += bytes(size - len(chunk))
        return chunk


class RecordingMixer:
    """Places decoded RTP audio of both channels on one stereo timeline.

    ``add`` takes one packet's 16-bit little-endian mono PCM; ``take`` returns
    interleaved s16le stereo frames (agent, customer) for the positions that
    are now final. Counters: ``late_dropped`` packets lost some or all of
    their samples because those positions were already returned;
    ``overlaps_dropped`` packets found some of their positions already filled
    on their channel (duplicates, or two sources overlapping: the first to
    arrive wins); ``resyncs`` anchors taken other than a channel's first (SSRC
    changes and timing resyncs).
    """

    def __init__(
        self,
        start: float,
        *,
        sample_rate: int = 8000,
        reorder_window: float = 0.2,
        resync_threshold: float = 0.12,
    ) -> None:
        if sample_rate <= 0:
            raise LocalMediaError(f"sample rate must be positive, got {sample_rate}")
        if reorder_window < 0:
            raise LocalMediaError(f"reorder window must not be negative, got {reorder_window}")
        if resync_threshold <= 0:
            raise LocalMediaError(f"resync threshold must be positive, got {resync_threshold}")
        self._start = start
        self._rate = sample_rate
        self._window = reorder_window
        self._ahead = round(resync_threshold * sample_rate)
        # A packet arriving late, but within the reorder window, is still
        # placed exactly by its timestamp; only lateness beyond it (a sender
        # that kept its timestamp across a hold) is worth a new anchor.
        self._behind = max(self._ahead, round(reorder_window * sample_rate))
        self._tracks = (_Track(), _Track())
        self._out = 0
        self._late_dropped = 0
        self._overlaps_dropped = 0
        self._resyncs = 0

    @property
    def samples_out(self) -> int:
        """Stereo frames returned so far (by ``take`` and ``finish``)."""
        return self._out

    @property
    def late_dropped(self) -> int:
        return self._late_dropped

    @property
    def overlaps_dropped(self) -> int:
        return self._overlaps_dropped

    @property
    def resyncs(self) -> int:
        return self._resyncs

    def add(
        self, channel: Channel, ssrc: int, rtp_timestamp: int, pcm: bytes, arrival: float
    ) -> None:
        """Place one packet's decoded audio (s16le mono) on ``channel``."""
        if len(pcm) % _SAMPLE:
            raise LocalMediaError(f"16-bit PCM must have an even length, got {len(pcm)} octets")
        frames = len(pcm) // _SAMPLE
        if not frames:
            return
        track = self._tracks[channel]
        heard = round((arrival - self._start) * self._rate)
        position = self._position(track, ssrc, rtp_timestamp, heard, frames)
        self._write(track, position, pcm)

    def take(self, now: float) -> bytes:
        """Stereo frames for every position older than ``now - reorder_window``.

        Contiguous with the previous call; positions nothing arrived for are
        silence. Empty if time has not moved past the last returned position.
        """
        return self._emit(round((now - self._start - self._window) * self._rate))

    def finish(self) -> bytes:
        """Everything left, up to the furthest position either channel reached."""
        return self._emit(max(track.end for track in self._tracks))

    def _position(self, track: _Track, ssrc: int, timestamp: int, heard: int, frames: int) -> int:
        anchor = track.anchor
        if anchor is None:
            return self._anchor(track, ssrc, timestamp, heard, heard, first=True)
        if ssrc != anchor.ssrc:
            previous = track.previous
            if previous is None or ssrc != previous.ssrc:
                track.previous = anchor
                return self._anchor(track, ssrc, timestamp, max(heard, track.end), heard)
            # The stream the last SSRC change replaced: a straggler of it, or
            # that source back. Its own anchor still places it exactly, so
            # swap back rather than anchor anew (two sources interleaving
            # during a transfer each stay on their own timeline).
            track.anchor, track.previous = previous, anchor
            track.pending = None
            track.lead = previous.place(timestamp) - heard
            anchor = previous
        position = anchor.place(timestamp)
        drift = position - heard
        if drift - track.lead > self._ahead and max(heard, track.end) < position:
            # Far earlier than the stream usually arrives for its timestamp:
            # the sender jumped its timestamp forward, and the hole that would
            # leave is not real. Measured against the usual lead, not zero, so
            # that a stream anchored by a late first packet (it then always
            # looks early) keeps its holes where packets were lost.
            return self._anchor(track, ssrc, timestamp, max(heard, track.end), heard)
        if drift < -self._behind:
            if position >= track.end:
                # New audio, far later than its timestamp says: the sender
                # stopped (hold) without advancing its timestamp.
                return self._anchor(track, ssrc, timestamp, heard, heard)
            # Older than what the channel has and very late: a straggler, or
            # the first packet after a backward jump. Only the next packet can
            # tell; a straggler is dropped as late either way.
            pending = track.pending
            track.pending = _Anchor(ssrc, timestamp, heard)
            if pending is not None and _consistent(pending, timestamp, heard, self._ahead):
                return self._anchor(track, ssrc, timestamp, max(heard, track.end), heard)
            return position
        track.pending = None
        if position + frames > track.end:
            track.lead = drift
        return position

    def _anchor(
        self,
        track: _Track,
        ssrc: int,
        timestamp: int,
        position: int,
        heard: int,
        *,
        first: bool = False,
    ) -> int:
        track.anchor = _Anchor(ssrc, timestamp, position)
        track.pending = None
        track.lead = position - heard
        if not first:
            self._resyncs += 1
        return position

    def _write(self, track: _Track, position: int, pcm: bytes) -> None:
        frames = len(pcm) // _SAMPLE
        floor = self._out
        if position < floor:
            # Before anything was returned this is audio from before the
            # recording began (clipped); after, it came too late.
            if floor > 0:
                self._late_dropped += 1
            skip = floor - position
            if skip >= frames:
                return
            pcm = pcm[skip * _SAMPLE :]
            position = floor
            frames -= skip
        offset = position - self._out
        stop = offset + frames
        missing = stop - len(track.mask)
        if missing > 0:
            track.mask.extend(bytes(missing))
            track.pcm.extend(bytes(missing * _SAMPLE))
        if track.mask.find(_PLACED, offset, stop) < 0:
            track.pcm[offset * _SAMPLE : stop * _SAMPLE] = pcm
            track.mask[offset:stop] = b"\x01" * frames
        else:
            self._overlaps_dropped += 1
            self._fill_holes(track, offset, stop, pcm)
        track.end = max(track.end, position + frames)

    @staticmethod
    def _fill_holes(track: _Track, offset: int, stop: int, pcm: bytes) -> None:
        # The first copy of a position wins; runs, not samples, are visited.
        mask = track.mask
        hole = mask.find(0, offset, stop)
        while hole >= 0:
            filled = mask.find(_PLACED, hole, stop)
            if filled < 0:
                filled = stop
            src = (hole - offset) * _SAMPLE
            track.pcm[hole * _SAMPLE : filled * _SAMPLE] = pcm[
                src : src + (filled - hole) * _SAMPLE
            ]
            mask[hole:filled] = b"\x01" * (filled - hole)
            hole = mask.find(0, filled, stop)

    def _emit(self, upto: int) -> bytes:
        frames = upto - self._out
        if frames <= 0:
            return b""
        left = array("h", self._tracks[Channel.AGENT].pop(frames))
        right = array("h", self._tracks[Channel.CUSTOMER].pop(frames))
        # Shuffling whole 16-bit units keeps their octet order, so this is
        # correct on either host byte order without swapping.
        stereo = array("h", bytes(2 * frames * _SAMPLE))
        stereo[0::2] = left
        stereo[1::2] = right
        self._out = upto
        return stereo.tobytes()


def _consistent(pending: _Anchor, timestamp: int, heard: int, tolerance: int) -> bool:
    """Does a packet follow ``pending`` in both timestamp and arrival time?"""
    step = ts_diff(timestamp, pending.timestamp)
    return step > 0 and abs(step - (heard - pending.position)) <= tolerance
