"""The recordings index on real SQLite and PostgreSQL, with real WAV files on disk.

Also the 0003 migration: its tables agree with the models and it goes down and
up again.
"""

from __future__ import annotations

import asyncio
import hashlib
import wave
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, inspect, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdr.audit import AuditAction, AuditLog
from cdr.models import CdrBase
from cdr.record import CallRecord, RecordingRef
from cdr.recordings import (
    DAY_MS,
    ChecksumMismatch,
    RecordingConflictError,
    RecordingError,
    RecordingIndex,
    RecordingMissing,
    RecordingNotIndexedError,
    RetentionTooShortError,
)
from cdr.review_tables import RecordingRow, RecordingStatus
from dialer.store.database import MIGRATIONS, Database

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., CallRecord]
T0 = 1_717_383_600_000  # 2024-06-03 03:00 UTC
END = T0 + 64_100  # make_record's ended_at_ms
OURS = {"recordings", "qa_scores", "audit_log"}


def write_wav(path: Path, frames: int = 800, level: int = 1000) -> RecordingRef:
    """A real two-channel 16-bit 8 kHz recording (0.1 s) and its reference."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        sample = level.to_bytes(2, "little", signed=True)
        wav.writeframes(sample * 2 * frames)
    data = path.read_bytes()
    return RecordingRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_ms=frames * 1000 // 8000,
        size_bytes=len(data),
        agent_speech_ms=0,
        customer_speech_ms=0,
    )


def on_disk(ref: RecordingRef | None) -> bool:
    assert ref is not None
    return Path(ref.path).exists()


def remove(ref: RecordingRef | None) -> Path:
    """Delete a recording behind the index's back (an operator, a disk fault)."""
    assert ref is not None
    path = Path(ref.path)
    path.unlink()
    return path


def flip_last_bit(ref: RecordingRef | None) -> str:
    """Change one bit of the audio in place; the new file's sha-256."""
    assert ref is not None
    path = Path(ref.path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    return hashlib.sha256(data).hexdigest()


def undeletable(ref: RecordingRef | None) -> Path:
    """Put a non-empty directory where the file was: unlink fails with EISDIR (even as root)."""
    path = remove(ref)
    path.mkdir()
    (path / "keep").write_bytes(b"x")
    return path


def deletable_again(path: Path) -> None:
    (path / "keep").unlink()
    path.rmdir()
    write_wav(path)


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "recordings"
    directory.mkdir()
    return directory


@pytest.fixture
def recorded(recordings_dir: Path, make_record: Make) -> Callable[..., CallRecord]:
    """``recorded(call_id, **changes)``: a finished call whose WAV is on disk."""

    def make(call_id: str, **changes: Any) -> CallRecord:
        ref = write_wav(recordings_dir / "2024-06-03" / f"{call_id}.wav")
        return make_record(call_id, recording=ref, **changes)

    return make


@pytest.fixture
def index(cdr_sessions: Sessions) -> RecordingIndex:
    return RecordingIndex(cdr_sessions, AuditLog(cdr_sessions))


@pytest.fixture
def audit(cdr_sessions: Sessions) -> AuditLog:
    return AuditLog(cdr_sessions)


# -- indexing --------------------------------------------------------------------


async def test_index_links_the_file_to_the_call_and_is_idempotent(
    index: RecordingIndex, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    assert record.recording is not None
    first = await index.index(record, retention_days=30, now_ms=END + 1_000)
    assert first.path == Path(record.recording.path)
    assert first.sha256 == record.recording.sha256
    assert (first.campaign, first.agent, first.status) == ("spring", "a1", RecordingStatus.PRESENT)
    # Retention counts from the later of the call's end and the indexing.
    assert first.purge_after_ms == END + 1_000 + 30 * DAY_MS
    again = await index.index(record, retention_days=90, now_ms=END + 5_000)
    assert again == first  # the first indexing stands
    assert await index.get("c1") == first


async def test_a_late_index_never_shortens_retention_below_the_call_end(
    index: RecordingIndex, recorded: Callable[..., CallRecord]
) -> None:
    indexed = await index.index(recorded("c1"), retention_days=45, now_ms=T0)  # clock behind
    assert indexed.purge_after_ms == END + 45 * DAY_MS


async def test_a_different_file_for_an_indexed_call_is_a_conflict(
    index: RecordingIndex, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    assert record.recording is not None
    await index.index(record, retention_days=30, now_ms=END)
    other = replace(record, recording=replace(record.recording, sha256="0" * 64))
    with pytest.raises(RecordingConflictError, match=r"'c1' is already indexed .* not "):
        await index.index(other, retention_days=30, now_ms=END)


async def test_retention_below_30_days_is_refused(
    index: RecordingIndex, recorded: Callable[..., CallRecord]
) -> None:
    with pytest.raises(RetentionTooShortError, match=r"29 days refused: .* at least 30 days"):
        await index.index(recorded("c1"), retention_days=29, now_ms=END)
    with pytest.raises(RecordingNotIndexedError):
        await index.get("c1")


async def test_records_that_cannot_be_indexed_are_named(
    index: RecordingIndex, make_record: Make, recorded: Callable[..., CallRecord]
) -> None:
    with pytest.raises(RecordingError, match="'c1' has no recording"):
        await index.index(make_record("c1"), retention_days=30, now_ms=END)
    with pytest.raises(RecordingError, match="'c2' has not ended"):
        await index.index(recorded("c2", ended_at_ms=None), retention_days=30, now_ms=END)
    bad = recorded("c3")
    assert bad.recording is not None
    bad = replace(bad, recording=replace(bad.recording, sha256="xyz", size_bytes=-1))
    with pytest.raises(RecordingError) as caught:
        await index.index(bad, retention_days=30, now_ms=END)
    assert "sha256 'xyz' is not 64 hex digits" in str(caught.value)
    assert "cannot be negative" in str(caught.value)


async def test_a_relative_path_is_stored_against_the_base_directory(
    cdr_sessions: Sessions, recordings_dir: Path, make_record: Make
) -> None:
    ref = write_wav(recordings_dir / "2024-06-03" / "c1.wav")
    relative = replace(ref, path="2024-06-03/c1.wav")
    index = RecordingIndex(cdr_sessions, base_dir=recordings_dir)
    indexed = await index.index(make_record("c1", recording=relative), 30, END)
    assert indexed.path == recordings_dir / "2024-06-03" / "c1.wav"
    assert await index.open_for_playback("c1", "qa.li", now_ms=END) == indexed.path


# -- purge and legal hold -------------------------------------------------------


async def test_purge_deletes_only_expired_unheld_files_and_audits(
    index: RecordingIndex, audit: AuditLog, recorded: Callable[..., CallRecord]
) -> None:
    old, held, young = recorded("c-old"), recorded("c-held"), recorded("c-young")
    await index.index(old, 30, END)
    await index.index(held, 30, END)
    await index.index(young, 60, END)
    await index.hold("c-held", "legal.wang", "complaint 2024-117", now_ms=END + 1)
    now = END + 31 * DAY_MS

    report = await index.purge(now)

    assert report.deleted == ("c-old",)
    assert report.held_skipped == ("c-held",)
    assert report.missing == () and report.failed == ()
    assert not on_disk(old.recording)
    assert on_disk(held.recording) and on_disk(young.recording)
    purged = await index.get("c-old")
    assert (purged.status, purged.purged_at_ms) == (RecordingStatus.PURGED, now)
    assert (await index.get("c-young")).status == RecordingStatus.PRESENT
    entries = await audit.entries(action=AuditAction.PURGE)
    assert [(e.who, e.call_id, e.ok, e.at_ms) for e in entries] == [
        ("retention", "c-old", True, now)
    ]
    # A second run finds nothing more to do.
    assert (await index.purge(now)).deleted == ()
    with pytest.raises(RecordingMissing, match="purged"):
        await index.open_for_playback("c-old", "qa.li", now_ms=now)


async def test_a_legal_hold_survives_purge_until_released(
    index: RecordingIndex, audit: AuditLog, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    await index.index(record, 30, END)
    held = await index.hold("c1", "legal.wang", "court order 17", now_ms=END + 1)
    assert (held.legal_hold, held.hold_by, held.hold_reason) == (
        True,
        "legal.wang",
        "court order 17",
    )
    for years in (1, 5):
        report = await index.purge(END + years * 365 * DAY_MS)
        assert report.held_skipped == ("c1",) and report.deleted == ()
    assert on_disk(record.recording)

    released = await index.release("c1", "legal.wang", now_ms=END + 2)
    assert (released.legal_hold, released.hold_reason) == (False, None)
    assert (await index.purge(END + 31 * DAY_MS)).deleted == ("c1",)
    assert not on_disk(record.recording)
    trail = [(e.action, e.ok, e.detail) for e in await audit.entries(call_id="c1")]
    assert trail == [
        (AuditAction.HOLD, True, "court order 17"),
        (AuditAction.RELEASE, True, "hold by legal.wang: court order 17"),
        (AuditAction.PURGE, True, "file deleted: past its retention"),
    ]


async def test_holds_that_cannot_be_placed_or_released_are_refused_and_audited(
    index: RecordingIndex, audit: AuditLog, recorded: Callable[..., CallRecord]
) -> None:
    with pytest.raises(RecordingMissing, match="no recording is indexed"):
        await index.hold("nope", "legal.wang", "why", now_ms=END)
    await index.index(recorded("c1"), 30, END)
    with pytest.raises(RecordingError, match="not on hold"):
        await index.release("c1", "legal.wang", now_ms=END)
    await index.purge(END + 30 * DAY_MS)
    with pytest.raises(RecordingMissing, match="already purged"):
        await index.hold("c1", "legal.wang", "too late", now_ms=END + 30 * DAY_MS)
    with pytest.raises(RecordingError, match="a reason"):
        await index.hold("c1", "legal.wang", "  ", now_ms=END)
    refused = await audit.entries(ok=False)
    assert [(e.action, e.call_id) for e in refused] == [
        (AuditAction.HOLD, "nope"),
        (AuditAction.RELEASE, "c1"),
        (AuditAction.HOLD, "c1"),
    ]


async def test_purge_reports_files_already_gone_and_files_it_cannot_delete(
    cdr_sessions: Sessions,
    audit: AuditLog,
    recordings_dir: Path,
    recorded: Callable[..., CallRecord],
) -> None:
    index = RecordingIndex(cdr_sessions, purge_batch=2)  # several pages of two
    records = [recorded(f"c{n}") for n in range(5)]
    for record in records:
        await index.index(record, 30, END)
    remove(records[1].recording)  # someone removed it by hand
    stuck = undeletable(records[3].recording)

    report = await index.purge(END + 30 * DAY_MS, who="ops.zhao")

    assert report.deleted == ("c0", "c2", "c4")
    assert report.missing == ("c1",)
    assert [f.call_id for f in report.failed] == ["c3"]
    assert str(stuck) in report.failed[0].reason
    assert (await index.get("c1")).status == RecordingStatus.MISSING
    assert (await index.get("c3")).status == RecordingStatus.PRESENT  # retried next time
    entries = await audit.entries(action=AuditAction.PURGE, who="ops.zhao")
    assert {(e.call_id, e.ok) for e in entries} == {
        ("c0", True),
        ("c1", False),
        ("c2", True),
        ("c3", False),
        ("c4", True),
    }
    deletable_again(stuck)
    assert (await index.purge(END + 30 * DAY_MS)).deleted == ("c3",)


# -- playback --------------------------------------------------------------------


async def test_playback_verifies_the_checksum_and_is_audited(
    index: RecordingIndex, audit: AuditLog, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    assert record.recording is not None
    await index.index(record, 30, END)
    path = await index.open_for_playback("c1", "qa.li", now_ms=END + 10)
    assert path == Path(record.recording.path)
    [entry] = await audit.entries(call_id="c1")
    assert (entry.who, entry.action, entry.ok, entry.at_ms) == (
        "qa.li",
        AuditAction.PLAY,
        True,
        END + 10,
    )


async def test_a_seeking_player_is_not_rehashed_but_a_change_after_a_good_play_is_caught(
    index: RecordingIndex, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    assert record.recording is not None
    await index.index(record, 30, END)
    for n in range(3):  # a player's first request and two seeks
        await index.open_for_playback("c1", "qa.li", now_ms=END + n)
    assert index.hashes == 1
    await asyncio.sleep(0.02)  # file times move in the kernel's clock ticks, a few ms each
    flip_last_bit(record.recording)  # rewritten in place: its change time moves on
    with pytest.raises(ChecksumMismatch):
        await index.open_for_playback("c1", "qa.li", now_ms=END + 10)
    assert index.hashes == 2


async def test_a_file_changed_on_disk_is_a_checksum_mismatch_audited_as_refused(
    index: RecordingIndex, audit: AuditLog, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    assert record.recording is not None
    await index.index(record, 30, END)
    actual = flip_last_bit(record.recording)  # one bit of the customer's audio

    with pytest.raises(ChecksumMismatch) as caught:
        await index.open_for_playback("c1", "qa.li", now_ms=END + 10)

    assert caught.value.call_id == "c1"
    assert caught.value.expected == record.recording.sha256
    assert caught.value.actual == actual
    message = str(caught.value)
    assert "'c1'" in message and record.recording.sha256 in message and actual in message
    [entry] = await audit.entries(call_id="c1", action=AuditAction.PLAY)
    assert not entry.ok and actual in entry.detail


async def test_a_missing_file_or_an_unknown_call_cannot_be_played(
    index: RecordingIndex, audit: AuditLog, recorded: Callable[..., CallRecord]
) -> None:
    record = recorded("c1")
    assert record.recording is not None
    await index.index(record, 30, END)
    remove(record.recording)
    with pytest.raises(RecordingMissing, match="the file is gone"):
        await index.open_for_playback("c1", "qa.li", now_ms=END)
    assert (await index.get("c1")).status == RecordingStatus.MISSING
    with pytest.raises(RecordingNotIndexedError):
        await index.open_for_playback("c9", "qa.li", now_ms=END)
    refused = await audit.entries(action="play", ok=False)
    assert [e.call_id for e in refused] == ["c1", "c9"]

    # The file restored from a backup plays again and the row is present again.
    write_wav(Path(record.recording.path))
    assert await index.open_for_playback("c1", "qa.li", now_ms=END + 1)
    assert (await index.get("c1")).status == RecordingStatus.PRESENT


# -- check -----------------------------------------------------------------------


async def test_check_finds_orphans_both_ways(
    index: RecordingIndex,
    recordings_dir: Path,
    tmp_path: Path,
    recorded: Callable[..., CallRecord],
    make_record: Make,
) -> None:
    kept, lost, purged = recorded("c-kept"), recorded("c-lost"), recorded("c-purged")
    await index.index(kept, 60, END)
    await index.index(lost, 60, END)
    await index.index(purged, 30, END)
    assert lost.recording is not None and purged.recording is not None
    assert (await index.purge(END + 30 * DAY_MS)).deleted == ("c-purged",)
    remove(lost.recording)  # a row whose file is gone
    write_wav(Path(purged.recording.path))  # a purged recording back on disk
    stray = write_wav(recordings_dir / "2024-06-04" / "nobody.wav")  # a file with no row
    (recordings_dir / "notes.txt").write_text("not a recording")
    elsewhere = write_wav(tmp_path / "other-node" / "c-far.wav")
    await index.index(make_record("c-far", recording=elsewhere), 30, END)
    remove(elsewhere)  # gone too, but not under this directory

    report = await index.check(recordings_dir)

    assert report.files_without_rows == (Path(purged.recording.path), Path(stray.path))
    assert report.rows_without_files == ("c-lost",)
    assert (await index.get("c-lost")).status == RecordingStatus.PRESENT  # check only looks
    with pytest.raises(RecordingError, match="does not exist"):
        await index.check(tmp_path / "nowhere")


# -- the database keeps the invariants ------------------------------------------


async def test_the_database_refuses_a_purged_row_on_hold(
    index: RecordingIndex, cdr_sessions: Sessions, recorded: Callable[..., CallRecord]
) -> None:
    await index.index(recorded("c1"), 30, END)
    await index.hold("c1", "legal.wang", "order", now_ms=END)
    with pytest.raises(IntegrityError):
        async with cdr_sessions() as session, session.begin():
            await session.execute(
                update(RecordingRow)
                .where(RecordingRow.call_id == "c1")
                .values(status="purged", purged_at_ms=END)
            )
    with pytest.raises(IntegrityError):
        async with cdr_sessions() as session, session.begin():
            await session.execute(
                update(RecordingRow).where(RecordingRow.call_id == "c1").values(status="lost")
            )
    async with cdr_sessions() as session:
        status = await session.scalar(select(RecordingRow.status))
    assert status == "present"


# -- the migration ---------------------------------------------------------------


def _our_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    differences = []
    for diff in compare_metadata(context, CdrBase.metadata):
        flat = diff if isinstance(diff, tuple) else diff[0]
        names = {getattr(part, "name", None) for part in flat} | {
            getattr(getattr(part, "table", None), "name", None) for part in flat
        }
        names |= {part for part in flat if isinstance(part, str)}
        if names & OURS:
            differences.append(diff)
    return differences


def _checks(connection: Connection) -> dict[tuple[str, str], str]:
    inspector = inspect(connection)
    return {
        (table, str(check["name"])): check["sqltext"]
        for table in OURS
        for check in inspector.get_check_constraints(table)
    }


async def test_head_matches_the_review_models(cdr_database: Database) -> None:
    async with cdr_database.engine.connect() as connection:
        assert await connection.run_sync(_our_differences) == []
        checks = await connection.run_sync(_checks)
    expected = {
        (table.name, str(constraint.name)): str(constraint.sqltext)
        for table in CdrBase.metadata.tables.values()
        if table.name in OURS
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert set(checks) == set(expected)
    if cdr_database.is_sqlite:  # PostgreSQL prints its own normal form of the same SQL
        assert checks == expected


async def test_0003_goes_down_and_up_again(cdr_database: Database) -> None:
    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    await cdr_database.downgrade("0002")
    async with cdr_database.engine.connect() as connection:
        assert not (await connection.run_sync(tables)) & OURS
    await cdr_database.upgrade()
    async with cdr_database.engine.connect() as connection:
        assert await connection.run_sync(tables) >= OURS
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert await connection.run_sync(_our_differences) == []
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert version == [(head,)]  # back at the head, whatever came after 0003
