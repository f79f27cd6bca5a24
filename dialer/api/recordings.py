"""Recordings for QA, supervisors and admins: checksum-verified playback with seeking.

``GET /recordings/{call_id}`` streams the two-channel WAV. The whole file's
SHA-256 is compared with the index before the first byte is sent (a file
changed or swapped on disk is refused with 409), and every playback is
written to the audit log, refused ones too (an agent asking, a missing or
changed file). Seeking is HTTP range requests (RFC 9110 §14): one
``bytes=`` range gives 206 with ``Content-Range``; a range that cannot be
served (past the end, malformed, several ranges) is 416 with
``Content-Range: bytes */<size>``.

A call whose CDR links a recording the index has not seen yet (the index is
filled by ``dialer cdr recordings index``) is indexed on first access, with
the campaign's retention, so QA can play a call as soon as its CDR is closed.

``GET /recordings/{call_id}/peaks`` gives the player its two tracks
(``dialer.api.peaks``): derived data, not the audio, so it is not audited.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.responses import Response

from cdr.audit import AuditAction
from cdr.recordings import (
    ChecksumMismatch,
    Recording,
    RecordingError,
    RecordingMissing,
    RecordingNotIndexedError,
)
from cdr.review_tables import RecordingStatus
from dialer.api.auth import Role, User, current_user
from dialer.api.cdrs import cdr_row
from dialer.api.context import ApiContext, context
from dialer.api.errors import ApiError, error_response, error_responses
from dialer.api.messages import locale_of, register, text
from dialer.api.peaks import MAX_POINTS, read_peaks
from dialer.api.scope import require_in_team, team_agents
from dialer.media.wav import WavError

__all__ = ["ByteRange", "Channels", "PeaksOut", "RangeError", "parse_range", "router"]

register(
    {
        "recording.agents_forbidden": {
            "en": "Agents may not listen to recordings; QA, supervisors and admins may.",
            "zh-CN": "坐席无权收听录音，只有质检、班长和管理员可以收听。",
        },
        "recording.missing": {
            "en": "There is no recording to play for call {call_id}.",
            "zh-CN": "通话 {call_id} 没有可播放的录音。",
        },
        "recording.checksum": {
            "en": "The recording of call {call_id} does not match its checksum: "
            "it was changed on disk and is not played.",
            "zh-CN": "通话 {call_id} 的录音与校验值不符：文件已被改动，不予播放。",
        },
        "recording.unreadable": {
            "en": "The recording of call {call_id} cannot be read as a two-channel WAV file.",
            "zh-CN": "通话 {call_id} 的录音无法作为双声道 WAV 文件读取。",
        },
        "recording.range": {
            "en": "The requested range cannot be served: the recording has {size} bytes "
            "and one range of them may be asked for.",
            "zh-CN": "无法提供所请求的范围：录音共 {size} 字节，每次只能请求其中一个范围。",
        },
    }
)

router = APIRouter(prefix="/api/v1", tags=["recordings"])

CHUNK: Final = 64 * 1024
WAV: Final = "audio/wav"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_LISTENERS: Final = frozenset({Role.QA, Role.SUPERVISOR, Role.ADMIN})


class RangeError(ValueError):
    """A Range header that cannot be served for a file of this size."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as Content-Range writes it

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str, size: int) -> ByteRange:
    """The one byte range a ``Range`` header asks of ``size`` bytes (RFC 9110 §14.1.2).

    ``bytes=0-99``, ``bytes=100-`` (to the end) and ``bytes=-100`` (the last
    100) are served, the end clipped to the file; anything else raises
    RangeError: other units, several ranges, a start past the end, an end
    before its start, an empty suffix or an empty file.
    """
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        raise RangeError(f"not a single bytes range: {header[:80]!r}")
    first, last = found.groups()
    if not first and not last:
        raise RangeError("a range needs a start or a suffix length")
    if size <= 0:
        raise RangeError("the file is empty: no range of it can be served")
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeError("a suffix range of 0 bytes is empty")
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size:
        raise RangeError(f"the range starts at {start}, past the end ({size} bytes)")
    if last and int(last) < start:
        raise RangeError(f"the range ends at {last}, before its start {start}")
    return ByteRange(start, end)


class Channels(BaseModel):
    agent: list[float]
    customer: list[float]


class PeaksOut(BaseModel):
    duration_ms: int
    sample_rate: int
    channels: Channels


Ctx = Annotated[ApiContext, Depends(context)]
CurrentUser = Annotated[User, Depends(current_user)]


def _retention_days(ctx: ApiContext, campaign: str | None) -> int:
    config = ctx.floor.config
    for found in config.campaigns:
        if found.id == campaign and found.recording_retention_days:
            return found.recording_retention_days
    return config.cdr.retention_days


async def _recording(ctx: ApiContext, call_id: str) -> Recording | None:
    """The index entry, indexing the CDR's recording first if the index lacks it."""
    try:
        return await ctx.recordings.get(call_id)
    except RecordingNotIndexedError:
        pass
    record = await ctx.cdrs.get(call_id)
    if record is None or record.recording is None or record.ended_at_ms is None:
        return None
    try:
        days = _retention_days(ctx, record.campaign)
        return await ctx.recordings.index(record, days, ctx.now_ms())
    except RecordingError:
        return None  # playback refuses it below, and audits why


async def _check_team(ctx: ApiContext, user: User, call_id: str, *, audited: bool) -> None:
    """A team lead listens to its team's calls only (403, written to the audit log if asked)."""
    if team_agents(ctx, user) is None:
        return
    row = await cdr_row(ctx, call_id)
    agent = row["agent"] if row is not None else None
    try:
        require_in_team(ctx, user, agent)
    except ApiError:
        if audited:
            await ctx.audit.write(
                user.username,
                AuditAction.PLAY,
                call_id,
                f"refused: the call's agent {agent} is not in team {user.team}",
                False,
                ctx.now_ms(),
            )
        raise


async def _refuse_agent(ctx: ApiContext, user: User, call_id: str) -> None:
    if user.role in _LISTENERS:
        await _check_team(ctx, user, call_id, audited=True)
        return
    await ctx.audit.write(
        user.username,
        AuditAction.PLAY,
        call_id,
        f"refused: role {user.role} may not listen to recordings",
        False,
        ctx.now_ms(),
    )
    raise ApiError(403, "forbidden", "recording.agents_forbidden")


async def _chunks(path: Path, part: ByteRange) -> AsyncIterator[bytes]:
    file: BinaryIO = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(file.seek, part.start)
        left = part.length
        while left > 0:
            chunk = await asyncio.to_thread(file.read, min(CHUNK, left))
            if not chunk:
                return  # the file shrank under us: end the body short, never loop
            left -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(file.close)


def _unsatisfiable(request: Request, size: int, problem: RangeError) -> Response:
    return error_response(
        416,
        "range_not_satisfiable",
        text("recording.range", locale_of(request), size=size),
        [str(problem)],
        headers={"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}"},
    )


_AUDIO: Final[dict[str, Any]] = {WAV: {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/recordings/{call_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": _AUDIO, "description": "the whole recording"},
        206: {"content": _AUDIO, "description": "the range asked for"},
        **error_responses(401, 403, 404, 409, 416),
    },
)
async def play_recording(ctx: Ctx, user: CurrentUser, call_id: str, request: Request) -> Response:
    """The call's two-channel WAV (agent left, customer right), checksum-verified; audited."""
    await _refuse_agent(ctx, user, call_id)
    found = await _recording(ctx, call_id)
    asked = request.headers.get("range")
    part: ByteRange | None = None
    if found is not None and asked is not None:
        # Judged against the indexed size: the checksum below proves the file is that one.
        try:
            part = parse_range(asked, found.size_bytes)
        except RangeError as exc:
            await ctx.audit.write(
                user.username, AuditAction.PLAY, call_id, f"refused: {exc}", False, ctx.now_ms()
            )
            return _unsatisfiable(request, found.size_bytes, exc)
    try:
        path = await ctx.recordings.open_for_playback(call_id, user.username, now_ms=ctx.now_ms())
    except ChecksumMismatch:
        raise ApiError(409, "checksum_mismatch", "recording.checksum", call_id=call_id) from None
    except RecordingMissing as exc:
        raise ApiError(404, "not_found", "recording.missing", [str(exc)], call_id=call_id) from None
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except OSError as exc:
        raise ApiError(404, "not_found", "recording.missing", [str(exc)], call_id=call_id) from None
    if asked is not None and (found is None or size != found.size_bytes):
        try:  # indexed just now, or an index whose size is off: the file decides
            part = parse_range(asked, size)
        except RangeError as exc:
            return _unsatisfiable(request, size, exc)
    headers = {"Accept-Ranges": "bytes"}
    if part is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _chunks(path, ByteRange(0, size - 1)), media_type=WAV, headers=headers
        )
    headers["Content-Range"] = f"bytes {part.start}-{part.end}/{size}"
    headers["Content-Length"] = str(part.length)
    return StreamingResponse(_chunks(path, part), status_code=206, media_type=WAV, headers=headers)


@router.get(
    "/recordings/{call_id}/peaks",
    response_model=PeaksOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def recording_peaks(
    ctx: Ctx,
    user: CurrentUser,
    call_id: str,
    points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 800,
) -> PeaksOut:
    """The loudest sample per span of each channel (0..1): the player's two tracks."""
    if user.role not in _LISTENERS:
        raise ApiError(403, "forbidden", "recording.agents_forbidden")
    await _check_team(ctx, user, call_id, audited=False)  # a summary, not the audio
    found = await _recording(ctx, call_id)
    if found is None or found.status is RecordingStatus.PURGED:
        raise ApiError(404, "not_found", "recording.missing", call_id=call_id)
    try:
        peaks = await asyncio.to_thread(read_peaks, found.path, points)
    except FileNotFoundError as exc:
        raise ApiError(404, "not_found", "recording.missing", [str(exc)], call_id=call_id) from None
    except (OSError, WavError) as exc:
        raise ApiError(
            409, "unreadable_recording", "recording.unreadable", [str(exc)], call_id=call_id
        ) from None
    return PeaksOut(
        duration_ms=peaks.duration_ms,
        sample_rate=peaks.sample_rate,
        channels=Channels(agent=list(peaks.agent), customer=list(peaks.customer)),
    )
