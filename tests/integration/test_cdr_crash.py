"""kill -9 with calls in flight, then a restart: one row per call, every recording playable.

The service runs as its own process (``dialer demo``): a real SIGKILL, no
clean-up code of ours runs. The witnesses of what was in flight are
independent of the CDR path's own bookkeeping: the dial attempts the
campaign wrote, and the recording files on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import sys
import time
import wave
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DIALER = Path(sys.executable).with_name("dialer")


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
        return list(connection.execute(sql))


async def _demo(data: Path, duration: float, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(DIALER),
        "demo",
        "--http-port",
        "0",
        "--data-dir",
        str(data),
        "--duration",
        str(duration),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _bridged_in_flight(db: Path) -> int:
    try:
        rows = await asyncio.to_thread(
            _query,
            db,
            "SELECT count(*) FROM cdrs WHERE status = 'open' AND bridged_at_ms IS NOT NULL",
        )
    except sqlite3.OperationalError:  # no file yet, or not migrated yet
        return 0
    count = rows[0][0]
    assert isinstance(count, int)
    return count


def _playable(path: Path) -> tuple[int, int]:
    with wave.open(str(path), "rb") as recording:
        assert (recording.getnchannels(), recording.getframerate()) == (2, 8000), path
        assert recording.getsampwidth() == 2, path
        frames = recording.getnframes()
        assert len(recording.readframes(frames)) == frames * 4, path
    return frames, path.stat().st_size


async def test_kill_9_mid_call_then_restart_leaves_one_row_per_call_and_playable_recordings(
    tmp_path: Path,
) -> None:
    assert DIALER.is_file(), f"the dialer console script is not installed at {DIALER}"
    data = tmp_path / "floor"
    db = data / "dialer.db"
    first = await _demo(data, 120, "--phones", "4", "--talk", "20-40")
    try:
        async with asyncio.timeout(60):
            while await _bridged_in_flight(db) < 3:
                assert first.returncode is None, await first.stdout.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.2)
        await asyncio.sleep(3.0)  # talk is 20-40 s: still in flight, with seconds of audio
    finally:
        killed_ms = time.time_ns() // 1_000_000
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL

    before = await asyncio.to_thread(
        _query, db, "SELECT call_id, status, bridged_at_ms FROM cdrs"
    )
    in_flight = {str(call) for call, status, _ in before if status == "open"}
    # Talking for two seconds or more when killed: its recording must hold audio.
    talking = {
        str(call)
        for call, status, bridged in before
        if status == "open" and isinstance(bridged, int) and killed_ms - bridged >= 2000
    }
    assert talking
    assert len(in_flight) >= 3
    dialed = await asyncio.to_thread(_query, db, "SELECT call_id FROM dial_attempts")
    attempts = {str(call) for (call,) in dialed}
    recorded = {p.stem for p in (data / "recordings").rglob("*.wav")}
    assert in_flight & recorded, "the calls in flight were being recorded"

    second = await _demo(data, 4, "--phones", "1")
    output, _ = await asyncio.wait_for(second.communicate(), timeout=90)
    assert second.returncode == 0, output.decode()

    rows = await asyncio.to_thread(
        _query,
        db,
        "SELECT call_id, status, outcome, recording_path, recording_sha256 FROM cdrs",
    )
    by_call = {str(row[0]): row for row in rows}
    assert len(by_call) == len(rows)  # the primary key says so too; say it anyway
    witnesses = {str(call) for call, _, _ in before} | attempts | recorded
    missing = sorted(witnesses - set(by_call))
    assert not missing, f"calls without a CDR row: {missing}"
    assert {str(row[1]) for row in rows} == {"closed"}
    for call in in_flight:
        assert by_call[call][2] == "interrupted", by_call[call]
    # Every recording plays, and its row names it with the file's true checksum.
    for path in (data / "recordings").rglob("*.wav"):
        frames, _ = await asyncio.to_thread(_playable, path)
        row = by_call[path.stem]
        assert row[3] == str(path), row
        digest = hashlib.sha256(await asyncio.to_thread(path.read_bytes)).hexdigest()
        assert row[4] == digest, (path, row)
        if path.stem in talking:
            assert frames >= 8000, (path, frames)  # a second of audio, at least
