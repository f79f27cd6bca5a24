"""The CDR sink: what the service hands call records to, whatever the database is doing.

``opened``, ``progressed`` and ``finished`` only enqueue (they never block the
caller and never raise); one background task writes the queue in order. While
the database answers, records go straight to the store. When it does not
(refused connections, resets, timeouts, a pool that cannot connect: any
failure that is not the record's own fault), the sink switches to
journalling:

- a finished record is appended to the journal, on disk before the sink
  moves on, so it survives a crash as well as the outage;
- open and progress updates are dropped: the finished record in the journal
  has the final word, and ``close`` needs no open row;
- the task retries with capped, jittered exponential back-off, and when the
  database answers again it replays the journal (idempotent by call id) and
  goes back to writing directly.

A record the store refuses for its shape (it can never be written) is kept
in a second journal next to the first, ``<journal>.rejected``, for a person
to look at: it is not lost, and it cannot wedge the replay of the others.

Finished records are never lost and never written twice: ``close`` only
closes a row once, however often a record is replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy import exc as sa_exc

from .journal import CdrJournal, JournalError, ReplayReport, record_to_json, wall_clock_ms
from .record import CallRecord
from .store import CdrStore, RecordError, record_problems

log = logging.getLogger(__name__)

T = TypeVar("T")


class SinkState(StrEnum):
    CONNECTED = "connected"
    JOURNALLING = "journalling"


class _Kind(StrEnum):
    OPENED = "opened"
    PROGRESSED = "progressed"
    FINISHED = "finished"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class _Work:
    kind: _Kind
    record: CallRecord | None


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is out of reach (rather than refusing the data)."""
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return False
    return isinstance(
        exc,
        OSError  # refused, reset, unreachable; TimeoutError is one too
        | sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DBAPIError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,  # the pool could not hand out a connection in time
    )


def _refused_for_its_shape(exc: BaseException) -> bool:
    return isinstance(exc, RecordError | sa_exc.IntegrityError | sa_exc.DataError)


class _TimedStore:
    """The store as a replay sees it, with every close bounded in time."""

    def __init__(self, store: CdrStore, timeout_s: float) -> None:
        self._store = store
        self._timeout_s = timeout_s

    async def close(self, record: CallRecord, now_ms: int) -> bool:
        async with asyncio.timeout(self._timeout_s):
            return await self._store.close(record, now_ms)


class CdrSink:
    """``async with CdrSink(store, journal) as sink: sink.finished(record)``."""

    def __init__(
        self,
        store: CdrStore,
        journal: CdrJournal,
        *,
        retry_s: float = 1.0,
        max_retry_s: float = 30.0,
        timeout_s: float = 10.0,
        clock: Callable[[], int] = wall_clock_ms,
        rejected: CdrJournal | None = None,
    ) -> None:
        for name, value in (
            ("retry_s", retry_s),
            ("max_retry_s", max_retry_s),
            ("timeout_s", timeout_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if max_retry_s < retry_s:
            raise ValueError(f"max_retry_s ({max_retry_s}) must be >= retry_s ({retry_s})")
        self._store = store
        self._journal = journal
        self._rejected = rejected or CdrJournal(
            journal.path.with_name(journal.path.name + ".rejected")
        )
        self._retry_s = float(retry_s)
        self._max_retry_s = float(max_retry_s)
        self._timeout_s = float(timeout_s)
        self._clock = clock
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._pending = 0  # enqueued and not yet handled
        self._state = SinkState.CONNECTED
        self._backlog = 0
        self._delay = self._retry_s
        self._retry_at = 0.0
        self._unsaved: list[CallRecord] = []  # finished, but the journal's disk failed
        self._dropped = 0
        self._rejected_count = 0
        self._last_replay: ReplayReport | None = None
        self._failed_replays = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- what the service calls ------------------------------------------------------

    def opened(self, record: CallRecord) -> None:
        self._put(_Kind.OPENED, record)

    def progressed(self, record: CallRecord) -> None:
        self._put(_Kind.PROGRESSED, record)

    def finished(self, record: CallRecord) -> None:
        self._put(_Kind.FINISHED, record)

    # -- what operators and tests read -------------------------------------------------

    @property
    def state(self) -> SinkState:
        return self._state

    @property
    def backlog(self) -> int:
        """Finished records waiting in the journal (and any the disk would not take)."""
        return self._backlog + len(self._unsaved)

    @property
    def dropped(self) -> int:
        """Open and progress updates dropped while journalling."""
        return self._dropped

    @property
    def rejected(self) -> int:
        """Finished records the store refused for their shape (kept in the rejected journal)."""
        return self._rejected_count

    @property
    def last_replay(self) -> ReplayReport | None:
        return self._last_replay

    @property
    def failed_replays(self) -> int:
        """Replays tried and failed (the database still away) since the sink started."""
        return self._failed_replays

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Count the journal left by an earlier run and start the writer task."""
        if self._task is not None or self._closed:
            raise RuntimeError("CdrSink can be started once")
        try:
            self._backlog = len((await asyncio.to_thread(self._journal.records)).records)
        except JournalError:
            log.exception(
                "CDR journal %s cannot be read; new records go after it", self._journal.path
            )
            self._backlog = 0
            self._journalling(None)
        if self._backlog:
            # An earlier run left records: replay them before anything else.
            self._state = SinkState.JOURNALLING
            self._retry_at = 0.0
        self._task = asyncio.create_task(self._run(), name="cdr-sink")

    async def drain(self) -> None:
        """Wait until everything enqueued so far is in the store or the journal."""
        self._require_running()
        async with self._changed:
            await self._changed.wait_for(lambda: self._pending == 0)

    async def wait_flushed(self) -> None:
        """Wait until everything is in the store: queue handled, journal replayed."""
        self._require_running()
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    self._pending == 0 and self._state is SinkState.CONNECTED and self.backlog == 0
                )
            )

    async def close(self) -> None:
        """Write what is queued (to the store, or the journal), then stop the task."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(_Work(_Kind.STOP, None))
        await task
        if self._state is SinkState.JOURNALLING:
            await self._recover()  # one last try; what is left stays in the journal

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the writer task ------------------------------------------------------------------

    def _put(self, kind: _Kind, record: CallRecord) -> None:
        try:
            if not self._closed:
                self._pending += 1
                self._queue.put_nowait(_Work(kind, record))
                return
            if kind is _Kind.FINISHED:
                # After close there is no writer and no hot path left to protect.
                self._journal.append_blocking(record)
                self._backlog += 1
                log.warning("CDR %s finished after the sink closed: journalled", record.call_id)
        except Exception:
            log.exception("CDR sink could not take %s %s", kind.value, _describe(record))

    def _require_running(self) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("CdrSink is not running: use 'async with CdrSink(...)'")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._state is SinkState.JOURNALLING and loop.time() >= self._retry_at:
                await self._recover()
                continue
            timeout = None
            if self._state is SinkState.JOURNALLING:
                timeout = max(0.0, self._retry_at - loop.time())
            try:
                work = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                continue
            if work.kind is _Kind.STOP:
                return
            try:
                assert work.record is not None
                await self._handle(work.kind, work.record)
            except Exception:
                log.exception("CDR sink failed on %s %s", work.kind.value, _describe(work.record))
            finally:
                self._pending -= 1
                await self._notify()

    async def _handle(self, kind: _Kind, record: CallRecord) -> None:
        if kind is _Kind.FINISHED:
            await self._finish(record)
            return
        if self._state is SinkState.JOURNALLING:
            self._dropped += 1  # the finished record will say it all
            return
        write = self._store.open if kind is _Kind.OPENED else self._store.update_open
        try:
            await self._timed(write(record, self._clock()))
        except Exception as exc:
            if _refused_for_its_shape(exc):
                log.error("CDR %s %s refused by the store: %s", record.call_id, kind.value, exc)
                return
            self._dropped += 1
            self._journalling(exc)

    async def _finish(self, record: CallRecord) -> None:
        problems = record_problems(record)
        if problems:
            await self._reject(record, "; ".join(problems))
            return
        if self._state is SinkState.CONNECTED:
            try:
                await self._timed(self._store.close(record, self._clock()))
                return
            except Exception as exc:
                if _refused_for_its_shape(exc):
                    await self._reject(record, str(exc))
                    return
                self._journalling(exc)
        await self._append(record)

    async def _append(self, record: CallRecord) -> None:
        try:
            await self._journal.append(record)
            self._backlog += 1
        except OSError:
            # Neither the database nor the disk: keep it in memory, retry with the replay.
            log.exception(
                "CDR journal %s: append failed for %s", self._journal.path, record.call_id
            )
            self._unsaved.append(record)

    async def _reject(self, record: CallRecord, why: str) -> None:
        self._rejected_count += 1
        log.error(
            "CDR %s can never be stored (%s): kept in %s", record.call_id, why, self._rejected.path
        )
        try:
            await self._rejected.append(record)
        except Exception:
            log.exception(
                "CDR %s lost to the rejected journal; it was %s", record.call_id, _describe(record)
            )

    async def _recover(self) -> None:
        """Journal what the disk refused before, then replay the journal into the store."""
        try:
            while self._unsaved:
                await self._journal.append(self._unsaved[0])
                self._unsaved.pop(0)
                self._backlog += 1
            report = await self._journal.replay(
                _TimedStore(self._store, self._timeout_s), now_ms=self._clock()
            )
        except Exception as exc:
            self._failed_replays += 1
            self._back_off()
            if is_unavailable(exc):
                log.info(
                    "CDR database still unavailable (%s); next try in %.1fs",
                    _brief(exc),
                    self._delay,
                )
            else:
                log.exception("CDR journal replay failed; next try in %.1fs", self._delay)
            return
        self._last_replay = report
        self._backlog = 0
        self._state = SinkState.CONNECTED
        self._delay = self._retry_s
        log.info(
            "CDR database back: %d journalled records replayed, %d already closed, %d torn",
            report.replayed,
            report.already_closed,
            report.torn,
        )
        await self._notify()

    def _journalling(self, exc: BaseException | None) -> None:
        if self._state is not SinkState.JOURNALLING:
            log.warning("CDR database unavailable (%s): journalling finished records", _brief(exc))
            self._state = SinkState.JOURNALLING
            self._delay = self._retry_s
            self._retry_at = asyncio.get_running_loop().time() + self._jittered(self._delay)

    def _back_off(self) -> None:
        self._delay = min(self._delay * 2, self._max_retry_s)
        self._retry_at = asyncio.get_running_loop().time() + self._jittered(self._delay)

    @staticmethod
    def _jittered(delay: float) -> float:
        # Nodes that lost the same database must not all come back in step.
        return delay * random.uniform(0.8, 1.0)

    async def _timed(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self._timeout_s):
            return await call

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _brief(exc: BaseException | None) -> str:
    # SQLAlchemy messages carry the statement and every parameter: the first line says enough.
    if exc is None:
        return "journal unreadable"
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _describe(record: CallRecord | None) -> str:
    if record is None:
        return "nothing"
    with contextlib.suppress(Exception):
        return record_to_json(record)
    return repr(record)
