"""Recordings over the real API: range requests, checksum refusal, audit, peaks."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_support import Api, api_config, serving_api

from cdr.audit import AuditAction
from cdr.record import CallRecord, Outcome, RecordingRef
from dialer.api.context import ApiContext
from dialer.api.recordings import ByteRange, RangeError, parse_range
from dialer.media.wav import build_header

USERS = {"qa": ("qa", None), "boss": ("supervisor", None)}


@pytest.mark.parametrize(
    ("header", "served"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),  # a suffix longer than the file: all of it
        ("bytes=990-5000", ByteRange(990, 999)),  # the end is clipped
        ("bytes=999-999", ByteRange(999, 999)),
        (" bytes=5-6 ", ByteRange(5, 6)),
    ],
)
def test_ranges_served(header: str, served: ByteRange) -> None:
    assert parse_range(header, 1000) == served


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("bytes=1000-", "past the end"),
        ("bytes=50-10", "before its start"),
        ("bytes=-0", "0 bytes"),
        ("bytes=-", "a start or a suffix"),
        ("bytes=0-1,5-6", "not a single bytes range"),
        ("items=0-1", "not a single bytes range"),
        ("bytes=a-b", "not a single bytes range"),
    ],
)
def test_ranges_refused(header: str, problem: str) -> None:
    with pytest.raises(RangeError, match=problem):
        parse_range(header, 1000)


def test_empty_file_has_no_range() -> None:
    with pytest.raises(RangeError, match="empty"):
        parse_range("bytes=0-", 0)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(api_config(tmp_path), USERS) as api:
        yield api


async def recorded_call(ctx: ApiContext, call_id: str = "r1") -> bytes:
    """A closed call whose CDR links a real two-channel WAV; the file's bytes."""
    left = [struct.pack("<hh", 16384, 0)] * 400  # agent speaks first
    right = [struct.pack("<hh", 0, -8192)] * 400  # then the customer
    audio = b"".join(left + right)
    data = build_header(2, 8000, 16, len(audio)) + audio
    path = Path(ctx.floor.config.media.recordings_dir) / f"{call_id}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ref = RecordingRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_ms=100,
        size_bytes=len(data),
        agent_speech_ms=50,
        customer_speech_ms=50,
    )
    record = CallRecord(
        call_id=call_id,
        agent="a1",
        number="+8613812345678",
        created_at_ms=1_780_000_000_000,
        ended_at_ms=1_780_000_060_000,
        outcome=Outcome.ANSWERED,
        recording=ref,
    )
    assert await ctx.cdrs.close(record, 1_780_000_061_000)
    return data


async def test_whole_file_then_seeking(api: Api) -> None:
    data = await recorded_call(api.ctx)
    whole = await api.client.get("/api/v1/recordings/r1", headers=api.auth("qa"))
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-length"] == str(len(data))
    assert whole.content == data
    headers = {**api.auth("qa"), "Range": "bytes=44-1043"}
    part = await api.client.get("/api/v1/recordings/r1", headers=headers)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 44-1043/{len(data)}"
    assert part.content == data[44:1044]
    tail = await api.client.get(
        "/api/v1/recordings/r1", headers={**api.auth("qa"), "Range": "bytes=-10"}
    )
    assert (tail.status_code, tail.content) == (206, data[-10:])
    played = await api.ctx.audit.entries(action=AuditAction.PLAY, call_id="r1")
    assert [(e.who, e.ok) for e in played] == [("qa", True)] * 3


async def test_unsatisfiable_range_is_416(api: Api) -> None:
    data = await recorded_call(api.ctx)
    for asked in (f"bytes={len(data)}-", "bytes=0-1,4-5", "pages=1"):
        response = await api.client.get(
            "/api/v1/recordings/r1", headers={**api.auth("qa"), "Range": asked}
        )
        assert response.status_code == 416, asked
        assert response.headers["content-range"] == f"bytes */{len(data)}"
        error = response.json()["error"]
        assert error["code"] == "range_not_satisfiable"
        assert str(len(data)) in error["message"]
        assert error["details"]
    refused = await api.ctx.audit.entries(action=AuditAction.PLAY, call_id="r1")
    assert [entry.ok for entry in refused] == [False] * 3  # nothing was played


async def test_changed_file_is_refused_before_any_byte(api: Api) -> None:
    data = await recorded_call(api.ctx)
    path = Path(api.ctx.floor.config.media.recordings_dir) / "r1.wav"
    path.write_bytes(data[:-2] + b"\x00\x01")  # one sample swapped
    response = await api.client.get("/api/v1/recordings/r1", headers=api.auth("boss"))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "checksum_mismatch"
    assert "r1" in error["message"]
    [entry] = await api.ctx.audit.entries(action=AuditAction.PLAY, call_id="r1")
    assert not entry.ok
    assert "sha-256" in entry.detail


async def test_missing_recordings_are_404(api: Api) -> None:
    await recorded_call(api.ctx)
    unknown = await api.client.get("/api/v1/recordings/nope", headers=api.auth("qa"))
    assert unknown.status_code == 404
    (Path(api.ctx.floor.config.media.recordings_dir) / "r1.wav").unlink()
    gone = await api.client.get("/api/v1/recordings/r1", headers=api.auth("qa"))
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "There is no recording to play for call r1."
    peaks = await api.client.get("/api/v1/recordings/r1/peaks", headers=api.auth("qa"))
    assert peaks.status_code == 404


async def test_peaks_show_both_channels(api: Api) -> None:
    await recorded_call(api.ctx)
    response = await api.client.get(
        "/api/v1/recordings/r1/peaks", params={"points": "2"}, headers=api.auth("qa")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "duration_ms": 100,
        "sample_rate": 8000,
        "channels": {"agent": [0.5, 0.0], "customer": [0.0, 0.25]},
    }
    too_many = await api.client.get(
        "/api/v1/recordings/r1/peaks", params={"points": "0"}, headers=api.auth("qa")
    )
    assert too_many.status_code == 422
