"""The recordings index: each call's file, its checksum, its retention and legal hold.

A recording is linked to its call by the call id, from the finished CDR, never
by time. The index keeps the file's SHA-256 (of the whole file, as the writer
computed it at close), so a file changed or swapped on disk is caught before
anyone listens to it. Retention is a policy of at least 30 days: China's
rules for licensed call centres require recordings to be kept that long, so a
shorter policy is refused rather than quietly obeyed.

Purging deletes files past their date unless a legal hold keeps them; the row
stays (status ``purged``) as the record that the recording existed. Every
play, hold, release and purge is written to the audit log, refusals too.

Hashing and file deletion run in worker threads (``asyncio.to_thread``): a
recording of an hour is 115 MB, too much to read on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .audit import AuditAction, AuditLog
from .record import CallRecord
from .review_tables import PATH_LENGTH, RecordingRow, RecordingStatus
from .tables import CALL_ID_LENGTH

__all__ = [
    "MIN_RETENTION_DAYS",
    "CheckReport",
    "ChecksumMismatch",
    "PurgeFailure",
    "PurgeReport",
    "Recording",
    "RecordingConflictError",
    "RecordingError",
    "RecordingIndex",
    "RecordingMissing",
    "RecordingNotIndexedError",
    "RetentionTooShortError",
    "sha256_of",
]

MIN_RETENTION_DAYS = 30  # the legal minimum for licensed call centres in China
DAY_MS = 86_400_000
PURGE_BATCH = 200  # rows locked, deleted and marked per transaction
_HASH_CHUNK = 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class RecordingError(Exception):
    """Base error of the recordings index."""


class RetentionTooShortError(RecordingError, ValueError):
    """A retention policy below the legal minimum."""


class RecordingConflictError(RecordingError, ValueError):
    """A call already indexed with a different file or checksum."""


class RecordingMissing(RecordingError, LookupError):  # noqa: N818 - the brief's name
    """The recording cannot be played: never indexed, purged, or its file is gone."""


class RecordingNotIndexedError(RecordingMissing):
    """No recording is indexed under this call id."""


class ChecksumMismatch(RecordingError):  # noqa: N818 - the brief's name
    """The file on disk is not the file that was recorded."""

    def __init__(self, call_id: str, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"recording of call {call_id!r} at {path} does not match its index: "
            f"sha-256 expected {expected}, actual {actual}"
        )
        self.call_id = call_id
        self.path = path
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Recording:
    call_id: str
    path: Path
    sha256: str
    duration_ms: int
    size_bytes: int
    campaign: str | None
    agent: str | None
    created_at_ms: int
    purge_after_ms: int
    legal_hold: bool
    hold_reason: str | None
    hold_by: str | None
    purged_at_ms: int | None
    status: RecordingStatus


@dataclass(frozen=True, slots=True)
class PurgeFailure:
    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PurgeReport:
    deleted: tuple[str, ...]  # call ids whose files were deleted
    held_skipped: tuple[str, ...]  # past their date, kept by a legal hold
    missing: tuple[str, ...]  # past their date, the file was already gone
    failed: tuple[PurgeFailure, ...] = ()  # could not be deleted: left present, retried later


@dataclass(frozen=True, slots=True)
class CheckReport:
    files_without_rows: tuple[Path, ...]  # on disk, no present or missing row names them
    rows_without_files: tuple[str, ...]  # call ids indexed under the directory, file gone


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a whole file, read in chunks (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _recording(row: RecordingRow) -> Recording:
    return Recording(
        call_id=row.call_id,
        path=Path(row.path),
        sha256=row.sha256,
        duration_ms=row.duration_ms,
        size_bytes=row.size_bytes,
        campaign=row.campaign,
        agent=row.agent,
        created_at_ms=row.created_at_ms,
        purge_after_ms=row.purge_after_ms,
        legal_hold=row.legal_hold,
        hold_reason=row.hold_reason,
        hold_by=row.hold_by,
        purged_at_ms=row.purged_at_ms,
        status=RecordingStatus(row.status),
    )


_GONE = "gone"


def _delete(path: Path) -> str | None:
    """Delete a file: None when done, ``_GONE`` when it was not there, else the OS error."""
    try:
        path.unlink()
    except FileNotFoundError:
        return _GONE
    except OSError as exc:
        return f"{exc.strerror or exc} ({path})"
    return None


def _absolute(path: str | Path) -> Path:
    # Lexical, not resolve(): rows and files are compared as the writer named them.
    return Path(os.path.normpath(os.path.abspath(path)))


def _wav_files(directory: Path) -> set[Path]:
    if not directory.is_dir():
        raise RecordingError(f"recordings directory {directory} does not exist")
    return {_absolute(path) for path in directory.rglob("*.wav") if path.is_file()}


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


VERIFIED_KEPT = 4096  # recordings whose checksum is known good, most recent first

class RecordingIndex:
    """The recordings table and the files it describes; every access audited."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        audit: AuditLog | None = None,
        *,
        base_dir: Path | None = None,
        purge_batch: int = PURGE_BATCH,
    ) -> None:
        """``base_dir``: what a relative recording path is relative to (default: the
        working directory when indexing). Stored paths are always absolute."""
        if isinstance(purge_batch, bool) or not isinstance(purge_batch, int) or purge_batch < 1:
            raise ValueError(f"purge_batch must be a whole number ≥ 1, got {purge_batch!r}")
        self._sessions = sessions
        self._audit = audit if audit is not None else AuditLog(sessions)
        self._base_dir = base_dir
        self._batch_size = purge_batch
        # A player seeks with many range requests: a file whose checksum matched, and whose
        # size, change time and inode are the same since, is not hashed again.
        self._verified: OrderedDict[Path, tuple[str, int, int, int]] = OrderedDict()
        self.hashes = 0  # files hashed for playback, for tests and metrics

    async def index(self, record: CallRecord, retention_days: int, now_ms: int) -> Recording:
        """Index a finished call's recording; indexing the same call again changes nothing.

        Retention counts from the later of the call's end and ``now_ms``, so a
        recording indexed late (after a restart) is never kept less than the
        policy says.
        """
        if isinstance(retention_days, bool) or not isinstance(retention_days, int):
            raise RetentionTooShortError(f"retention_days {retention_days!r} is not a whole number")
        if retention_days < MIN_RETENTION_DAYS:
            raise RetentionTooShortError(
                f"retention of {retention_days} days refused: recordings must be kept at least "
                f"{MIN_RETENTION_DAYS} days (China's rule for licensed call centres)"
            )
        ref = record.recording
        if ref is None:
            raise RecordingError(f"call {record.call_id!r} has no recording to index")
        if record.ended_at_ms is None:
            raise RecordingError(f"call {record.call_id!r} has not ended: index finished calls")
        path = Path(ref.path)
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        stored_path = str(_absolute(path))
        problems = []
        if not 0 < len(record.call_id) <= CALL_ID_LENGTH:
            problems.append(f"the call id is not 1 to {CALL_ID_LENGTH} characters")
        if not ref.path:
            problems.append("the recording path is empty")
        elif len(stored_path) > PATH_LENGTH:
            problems.append(f"the path {stored_path!r} is longer than {PATH_LENGTH} characters")
        if not _SHA256_HEX.fullmatch(ref.sha256.lower()):
            problems.append(f"sha256 {ref.sha256!r} is not 64 hex digits")
        if ref.duration_ms < 0 or ref.size_bytes < 0:
            problems.append(
                f"duration {ref.duration_ms} ms and size {ref.size_bytes} bytes cannot be negative"
            )
        if problems:
            raise RecordingError(
                f"recording of call {record.call_id!r} cannot be indexed: " + "; ".join(problems)
            )
        start = max(record.ended_at_ms, now_ms)
        row = RecordingRow(
            call_id=record.call_id,
            path=stored_path,
            sha256=ref.sha256.lower(),
            duration_ms=ref.duration_ms,
            size_bytes=ref.size_bytes,
            campaign=record.campaign,
            agent=record.agent,
            created_at_ms=record.created_at_ms,
            purge_after_ms=start + retention_days * DAY_MS,
            legal_hold=False,
            hold_reason=None,
            hold_by=None,
            purged_at_ms=None,
            status=RecordingStatus.PRESENT.value,
        )
        existing = await self._get(record.call_id)
        if existing is None:
            try:
                async with self._sessions() as session, session.begin():
                    session.add(row)
                return _recording(row)
            except IntegrityError:
                # Indexed concurrently by someone else: compare with theirs below.
                existing = await self._get(record.call_id)
                if existing is None:
                    raise
        if existing.path != Path(row.path) or existing.sha256 != row.sha256:
            raise RecordingConflictError(
                f"call {record.call_id!r} is already indexed with {existing.path} "
                f"(sha-256 {existing.sha256}), not {row.path} (sha-256 {row.sha256})"
            )
        return existing

    async def get(self, call_id: str) -> Recording:
        found = await self._get(call_id)
        if found is None:
            raise RecordingNotIndexedError(f"no recording is indexed for call {call_id!r}")
        return found

    async def _get(self, call_id: str) -> Recording | None:
        async with self._sessions() as session:
            row = await session.get(RecordingRow, call_id)
            return _recording(row) if row is not None else None

    async def hold(self, call_id: str, who: str, reason: str, *, now_ms: int) -> Recording:
        """Put a legal hold on a recording: purge skips it until it is released."""
        if not who or not reason.strip():
            raise RecordingError("a legal hold needs who places it and a reason")
        async with self._sessions() as session, session.begin():
            row = await session.get(RecordingRow, call_id, with_for_update=True)
            if row is None:
                problem: str | None = "no recording is indexed for this call"
            elif row.status == RecordingStatus.PURGED:
                problem = "the recording was already purged"
            else:
                problem = None
                row.legal_hold = True
                row.hold_reason = reason
                row.hold_by = who
            self._audit.add(
                session,
                who=who,
                action=AuditAction.HOLD,
                call_id=call_id,
                detail=reason if problem is None else f"refused: {problem}",
                ok=problem is None,
                now_ms=now_ms,
            )
        if problem is not None or row is None:
            raise RecordingMissing(f"cannot hold call {call_id!r}: {problem}")
        return _recording(row)

    async def release(self, call_id: str, who: str, *, now_ms: int) -> Recording:
        """Lift a legal hold; the next purge deletes the file if it is past its date."""
        if not who:
            raise RecordingError("releasing a legal hold needs who releases it")
        async with self._sessions() as session, session.begin():
            row = await session.get(RecordingRow, call_id, with_for_update=True)
            if row is None:
                problem: str | None = "no recording is indexed for this call"
                detail = f"refused: {problem}"
            elif not row.legal_hold:
                problem = "the recording is not on hold"
                detail = f"refused: {problem}"
            else:
                problem = None
                detail = f"hold by {row.hold_by}: {row.hold_reason}"
                row.legal_hold = False
                row.hold_reason = None
                row.hold_by = None
            self._audit.add(
                session,
                who=who,
                action=AuditAction.RELEASE,
                call_id=call_id,
                detail=detail,
                ok=problem is None,
                now_ms=now_ms,
            )
        if row is None:
            raise RecordingNotIndexedError(f"cannot release call {call_id!r}: {problem}")
        if problem is not None:
            raise RecordingError(f"cannot release call {call_id!r}: {problem}")
        return _recording(row)

    async def purge(self, now_ms: int, who: str = "retention") -> PurgeReport:
        """Delete the files past their purge date that no legal hold keeps."""
        async with self._sessions() as session:
            held = tuple(
                await session.scalars(
                    select(RecordingRow.call_id)
                    .where(
                        RecordingRow.status == RecordingStatus.PRESENT.value,
                        RecordingRow.purge_after_ms <= now_ms,
                        RecordingRow.legal_hold.is_(True),
                    )
                    .order_by(RecordingRow.call_id)
                )
            )
        deleted: list[str] = []
        missing: list[str] = []
        failed: list[PurgeFailure] = []
        after: str | None = None  # keyset paging: a failed row stays present, seen once
        while True:
            batch = await self._purge_batch(now_ms, who, after)
            if batch is None:
                break
            after, done, gone, errors = batch
            deleted.extend(done)
            missing.extend(gone)
            failed.extend(errors)
        return PurgeReport(
            deleted=tuple(sorted(deleted)),
            held_skipped=held,
            missing=tuple(sorted(missing)),
            failed=tuple(sorted(failed, key=lambda failure: failure.call_id)),
        )

    async def _purge_batch(
        self, now_ms: int, who: str, after: str | None
    ) -> tuple[str, list[str], list[str], list[PurgeFailure]] | None:
        due = select(RecordingRow.call_id).where(
            RecordingRow.status == RecordingStatus.PRESENT.value,
            RecordingRow.purge_after_ms <= now_ms,
            RecordingRow.legal_hold.is_(False),
        )
        if after is not None:
            due = due.where(RecordingRow.call_id > after)
        async with self._sessions() as session, session.begin():
            # The page's order is the database's (its collation), so the last
            # id read is the right key for the next page.
            page = list(
                await session.scalars(due.order_by(RecordingRow.call_id).limit(self._batch_size))
            )
            if not page:
                return None
            # The UPDATE takes the write lock (SQLite) or the row locks
            # (PostgreSQL) before any file is touched, and re-checks the hold
            # in the same statement: a hold placed since the read wins.
            result = await session.execute(
                update(RecordingRow)
                .where(
                    RecordingRow.call_id.in_(page),
                    RecordingRow.status == RecordingStatus.PRESENT.value,
                    RecordingRow.legal_hold.is_(False),
                )
                .values(status=RecordingStatus.PURGED.value, purged_at_ms=now_ms)
                .returning(RecordingRow.call_id, RecordingRow.path)
                .execution_options(synchronize_session=False)
            )
            claimed = sorted((call_id, path) for call_id, path in result)
            # Files go before the commit: a crash in between leaves rows that say
            # present for files that are gone, which the next purge (or check)
            # reports as missing; never a purged row whose file still plays.
            outcomes = await asyncio.to_thread(lambda: [_delete(Path(path)) for _, path in claimed])
            done: list[str] = []
            gone: list[str] = []
            errors: list[PurgeFailure] = []
            for (call_id, _), outcome in zip(claimed, outcomes, strict=True):
                if outcome is None:
                    done.append(call_id)
                    detail, ok = "file deleted: past its retention", True
                    settle = None
                elif outcome == _GONE:
                    gone.append(call_id)
                    detail, ok = "file was already gone", False
                    settle = RecordingStatus.MISSING
                else:
                    errors.append(PurgeFailure(call_id, outcome))
                    detail, ok = f"not deleted: {outcome}", False
                    settle = RecordingStatus.PRESENT
                if settle is not None:
                    await session.execute(
                        update(RecordingRow)
                        .where(RecordingRow.call_id == call_id)
                        .values(status=settle.value, purged_at_ms=None)
                        .execution_options(synchronize_session=False)
                    )
                self._audit.add(
                    session,
                    who=who,
                    action=AuditAction.PURGE,
                    call_id=call_id,
                    detail=detail,
                    ok=ok,
                    now_ms=now_ms,
                )
            return page[-1], done, gone, errors

    async def open_for_playback(self, call_id: str, who: str, *, now_ms: int) -> Path:
        """The file to play, once its checksum matches the index; audited either way."""
        try:
            recording = await self.get(call_id)
            if recording.status == RecordingStatus.PURGED:
                raise RecordingMissing(
                    f"recording of call {call_id!r} was purged (retention) at "
                    f"{recording.purged_at_ms} ms"
                )
            try:
                actual = await self._checksum(recording.path, recording.sha256)
            except FileNotFoundError:
                await self._set_status(call_id, RecordingStatus.MISSING)
                raise RecordingMissing(
                    f"recording of call {call_id!r} is indexed at {recording.path} "
                    "but the file is gone"
                ) from None
            except OSError as exc:
                raise RecordingMissing(
                    f"recording of call {call_id!r} at {recording.path} cannot be read: {exc}"
                ) from exc
            if actual != recording.sha256:
                raise ChecksumMismatch(call_id, recording.path, recording.sha256, actual)
        except RecordingError as exc:
            await self._audit.write(
                who, AuditAction.PLAY, call_id, f"refused: {exc}", False, now_ms
            )
            raise
        if recording.status == RecordingStatus.MISSING:
            # Restored from a backup, checksum and all: it is present again.
            await self._set_status(call_id, RecordingStatus.PRESENT)
        await self._audit.write(who, AuditAction.PLAY, call_id, str(recording.path), True, now_ms)
        return recording.path

    async def _checksum(self, path: Path, expected: str) -> str:
        info = await asyncio.to_thread(path.stat)
        key = (expected, info.st_size, info.st_ctime_ns, info.st_ino)
        if self._verified.get(path) == key:
            self._verified.move_to_end(path)
            return expected
        self.hashes += 1
        actual = await asyncio.to_thread(sha256_of, path)
        if actual == expected:
            self._verified[path] = key
            if len(self._verified) > VERIFIED_KEPT:
                self._verified.popitem(last=False)
        else:
            self._verified.pop(path, None)
        return actual

    async def _set_status(self, call_id: str, status: RecordingStatus) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(RecordingRow)
                .where(
                    RecordingRow.call_id == call_id,
                    RecordingRow.status != RecordingStatus.PURGED.value,
                )
                .values(status=status.value)
                .execution_options(synchronize_session=False)
            )

    async def check(self, recordings_dir: Path) -> CheckReport:
        """Compare the files under a directory with the index; changes nothing.

        A file whose row says purged counts as without a row: it outlived its
        retention and nothing will play it. Rows of files outside the
        directory (another node's disk) are not looked at.
        """
        directory = _absolute(recordings_dir)
        files = await asyncio.to_thread(_wav_files, directory)
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(RecordingRow.call_id, RecordingRow.path).where(
                        RecordingRow.status != RecordingStatus.PURGED.value
                    )
                )
            ).all()
        indexed: set[Path] = set()
        rows_without_files: list[str] = []
        for call_id, raw_path in rows:
            path = _absolute(raw_path)
            if not _inside(path, directory):
                continue
            indexed.add(path)
            if path not in files:
                rows_without_files.append(call_id)
        return CheckReport(
            files_without_rows=tuple(sorted(files - indexed)),
            rows_without_files=tuple(sorted(rows_without_files)),
        )
