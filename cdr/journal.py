"""The CDR journal: finished records kept on disk while the database cannot take them.

When the database is unreachable, a finished ``CallRecord`` is appended here
as one JSON line, flushed and fsync'd before ``append`` returns, so a record
the service has let go of survives a crash. ``replay(store)`` closes every
journalled record in the store and then empties the file atomically (an empty
file renamed over it). Closing is idempotent by call id, so a crash in the
middle of a replay only means the next replay finds some records already
closed; nothing is written twice and nothing is lost.

A crash while a line is being written leaves a torn last line: it is skipped
and counted (that append never returned, so nobody was told the record was
safe). Any other line that does not parse is damage, not a crash, and is an
error naming every bad line: the file is then left alone for a person to read.

File work is blocking, so the async methods run it in a worker thread
(``asyncio.to_thread``), off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from .record import AnsweredBy, CallRecord, Outcome, RecordingRef

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_VERSION_KEY = "v"


class JournalError(ValueError):
    """A journal line or file that cannot be read back; the message names what is wrong."""


# -- CallRecord <-> JSON -------------------------------------------------------------


def record_to_json(record: CallRecord) -> str:
    """One line of JSON (no newline inside): the record and the schema version."""
    body: dict[str, Any] = {_VERSION_KEY: SCHEMA_VERSION}
    for spec in fields(CallRecord):
        value = getattr(record, spec.name)
        if isinstance(value, RecordingRef):
            value = {part.name: getattr(value, part.name) for part in fields(RecordingRef)}
        elif isinstance(value, StrEnum):
            value = value.value
        body[spec.name] = value
    # ASCII only: any string (even a lone surrogate) survives the file's encoding.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def record_from_json(text: str) -> CallRecord:
    """The record of one journal line; JournalError lists every problem found."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise JournalError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise JournalError(f"a record must be a JSON object, got {type(body).__name__}")
    version = body.pop(_VERSION_KEY, None)
    if version != SCHEMA_VERSION:
        raise JournalError(
            f"unsupported record schema version {version!r} (this code reads {SCHEMA_VERSION})"
        )
    problems: list[str] = []
    values = _fields_of(CallRecord, body, "", problems)
    if problems:
        raise JournalError("bad record: " + "; ".join(problems))
    return CallRecord(**values)


_HINTS: dict[type, dict[str, Any]] = {
    cls: typing.get_type_hints(cls) for cls in (CallRecord, RecordingRef)
}


def _fields_of(
    cls: type[Any], body: Mapping[str, Any], where: str, problems: list[str]
) -> dict[str, Any]:
    specs = {spec.name: spec for spec in fields(cls)}
    unknown = sorted(set(body) - set(specs))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(where + name for name in unknown)}")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in body:
            if spec.default is MISSING and spec.default_factory is MISSING:
                problems.append(f"missing field {where}{name}")
            continue
        values[name] = _value(_HINTS[cls][name], body[name], where + name, problems)
    return values


def _value(hint: Any, raw: Any, where: str, problems: list[str]) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if raw is None:
        if type(None) not in options:
            problems.append(f"{where} must not be null")
        return None
    kind = next(option for option in options if option is not type(None))
    if kind is RecordingRef:
        if not isinstance(raw, dict):
            problems.append(f"{where} must be an object, got {type(raw).__name__}")
            return None
        before = len(problems)
        values = _fields_of(RecordingRef, raw, where + ".", problems)
        return RecordingRef(**values) if len(problems) == before else None
    if kind in (Outcome, AnsweredBy):
        try:
            return kind(raw)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            problems.append(f"{where} must be one of {allowed}, got {raw!r}")
            return None
    # bool is an int in Python, and JSON keeps them apart: so do we.
    if type(raw) is not kind:
        problems.append(f"{where} must be {kind.__name__}, got {type(raw).__name__} {raw!r}")
        return None
    return raw


# -- the file ------------------------------------------------------------------------


class ClosesRecords(Protocol):
    """What a replay needs of the store (``cdr.store.CdrStore`` is one)."""

    async def close(self, record: CallRecord, now_ms: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class JournalRead:
    records: tuple[CallRecord, ...]
    torn: int  # a torn last line skipped (0 or 1)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: int  # closed by this replay
    already_closed: int  # were in the store already (an earlier, interrupted replay)
    torn: int  # torn lines skipped: records whose append never returned


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class CdrJournal:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()  # replay's read-close-truncate is one step for appenders
        self._file_lock = threading.Lock()  # appends and truncation from worker threads
        self._tail_checked = False
        self._torn_dropped = 0  # torn tails removed before an append, reported by replay

    async def append(self, record: CallRecord) -> None:
        """Append ``record``; when this returns, it is on disk (fsync'd)."""
        line = (record_to_json(record) + "\n").encode("ascii")
        async with self._lock:
            await asyncio.to_thread(self._append_line, line)

    def append_blocking(self, record: CallRecord) -> None:
        """``append`` for code that has no event loop to spare (shutdown paths)."""
        self._append_line((record_to_json(record) + "\n").encode("ascii"))

    def records(self) -> JournalRead:
        """Every record in the file, oldest first (blocking: run it off the loop)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return JournalRead((), 0)
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline, as it should
        records: list[CallRecord] = []
        problems: list[str] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_from_json(line.decode("utf-8")))
            except (JournalError, UnicodeDecodeError) as exc:
                problems.append(f"line {number}: {exc}")
        if problems:
            raise JournalError(f"journal {self.path} is damaged: " + "; ".join(problems))
        torn = 0
        if tail.strip():
            record = _complete(tail)
            if record is None:
                torn = 1
                log.warning(
                    "CDR journal %s: skipped a torn last line (%d bytes), written when the"
                    " process died",
                    self.path,
                    len(tail),
                )
            else:
                records.append(record)  # whole, only its newline was not written
        return JournalRead(tuple(records), torn)

    async def replay(self, store: ClosesRecords, *, now_ms: int | None = None) -> ReplayReport:
        """Close every journalled record in ``store``, then empty the file.

        If this raises (the store went away again), the file is as it was and
        the next replay starts over: records already closed count as such.
        """
        async with self._lock:
            read = await asyncio.to_thread(self.records)
            at = wall_clock_ms() if now_ms is None else now_ms
            replayed = already = 0
            for record in read.records:
                if await store.close(record, at):
                    replayed += 1
                else:
                    already += 1
            await asyncio.to_thread(self._empty)
            torn, self._torn_dropped = read.torn + self._torn_dropped, 0
        return ReplayReport(replayed=replayed, already_closed=already, torn=torn)

    # -- blocking helpers (worker threads) ------------------------------------------

    def _append_line(self, line: bytes) -> None:
        with self._file_lock:
            if not self._tail_checked:
                self._repair_tail()
                self._tail_checked = True
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except BaseException:
                    # A half-written line would glue itself to the next one: cut it off.
                    os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def _repair_tail(self) -> None:
        """Make the file end with a newline before the first append of this process."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        with open(self.path, "r+b") as file:
            if _complete(tail) is not None:
                file.seek(0, os.SEEK_END)
                file.write(b"\n")
            else:
                file.truncate(cut)
                self._torn_dropped += 1
                log.warning(
                    "CDR journal %s: removed a torn last line (%d bytes) before appending",
                    self.path,
                    len(tail),
                )
            file.flush()
            os.fsync(file.fileno())

    def _empty(self) -> None:
        with self._file_lock:
            if not self.path.exists() or self.path.stat().st_size == 0:
                return
            # An empty file renamed over the journal: at any instant the journal
            # is either all there or empty, never half truncated.
            spare = self.path.with_name(self.path.name + ".empty")
            with open(spare, "wb") as file:
                os.fsync(file.fileno())
            os.replace(spare, self.path)
            _fsync_dir(self.path.parent)
            self._tail_checked = True


def _complete(tail: bytes) -> CallRecord | None:
    """The record of an unterminated last line if it is whole, else None (torn)."""
    try:
        return record_from_json(tail.decode("utf-8"))
    except (JournalError, UnicodeDecodeError):
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    # The new name (a created or renamed file) is durable only once its directory is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
