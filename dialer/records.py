"""The service's CDR path: every event through the collector, every record to the sink.

Wired by the composition root next to the call manager. What it adds to the
``cdr`` package is the service's side of crash safety:

- At start, after the sink has replayed what an earlier run left in the
  journal, the rows this node left open (a crash, a kill -9) are closed as
  interrupted with what was known, and every recording the crash left (the
  ones the relay repaired at start-up, and the ones that needed no repair) is
  attached to its call's row; a row is made from the recording if the crash
  came before the open row was written. Rows opened by this run
  are never touched: only rows opened before it started.
- At a clean stop, calls still open are finished as they stand (interrupted).
- A call the builder cannot make sense of is logged with its events and
  counted; it never holds up another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdr.collector import CdrCollector, Failed, Finished, Opened, Output, Progressed
from cdr.effective import DEFAULT_RULE, EffectiveRule
from cdr.journal import CdrJournal
from cdr.record import CallRecord, RecordingRef
from cdr.sink import CdrSink
from cdr.store import CdrStore
from dialer.config import Config
from dialer.events import Event, RecordingClosed
from dialer.media.wav import WavError
from dialer.recording.repair import measure_file
from dialer.store.database import Database

log = logging.getLogger(__name__)

TICK_S = 0.5
RECOVERY_RETRY_S = 2.0
# A crash leaves recordings of the calls it cut: files written shortly before
# this start. Older unlinked files are the recordings check's business.
LEFT_RECORDING_WINDOW_S = 24 * 3600.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rules_for(config: Config) -> Callable[[str | None], EffectiveRule]:
    """The effective rule of a campaign; campaigns not in the file are judged by "default"."""
    rules = {rule.name: rule for rule in config.effective_rules}
    by_campaign = {c.id: rules.get(c.effective_rule, DEFAULT_RULE) for c in config.campaigns}
    default = rules.get(config.cdr.default_effective_rule, DEFAULT_RULE)
    return lambda campaign: by_campaign.get(campaign or "", default)


def journal_path(config: Config) -> Path:
    given = config.cdr.journal_path
    return Path(given) if given else config.service.data_dir / "cdr-journal.jsonl"


@dataclass
class CallRecords:
    collector: CdrCollector
    sink: CdrSink
    store: CdrStore
    started_ms: int
    recordings: Path | None = None
    listeners: list[Callable[[CallRecord], None]] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    finished: int = 0
    recovered: list[str] = field(default_factory=list)  # rows closed as interrupted at start
    _repaired: list[RecordingClosed] = field(default_factory=list)
    accepting: bool = False  # the sink has started: events go through, not to a buffer
    # Set once every listener is attached: recovery's closed records reach them all.
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    _finishing: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: Event) -> None:
        if isinstance(event, RecordingClosed) and event.repaired:
            self._repaired.append(event)  # an earlier run's call: attached by recovery
            return
        self._handle(self.collector.feed(event))

    def tick(self, now_mono: float) -> None:
        self._handle(self.collector.tick(now_mono))

    def _handle(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Opened):
                self.sink.opened(output.record)
            elif isinstance(output, Progressed):
                self.sink.progressed(output.record)
            elif isinstance(output, Finished):
                self.finished += 1
                self._finishing.set()
                self.sink.finished(output.record)
                for listener in self.listeners:
                    try:
                        listener(output.record)
                    except Exception:
                        log.exception("CDR listener failed on call %s", output.record.call_id)
            else:
                self.failed.append(output)
                self._finishing.set()
                log.error(
                    "call %s has no CDR: %s; its events: %s",
                    output.call_id,
                    output.error,
                    [event.to_json() for event in output.events],
                )

    async def wait_finished(self, count: int) -> None:
        """Until ``count`` records have been finished since start."""
        while self.finished < count:
            self._finishing.clear()
            await self._finishing.wait()

    async def wait_idle(self) -> None:
        """Until no call is open in the collector (every record handed to the sink)."""
        while self.collector.open_calls():
            self._finishing.clear()
            await self._finishing.wait()

    async def recover(self) -> None:
        """Close what an earlier run left open and link its repaired recordings; retried.

        The records it closes go to the listeners like any finished call's
        (the quota counters would miss them otherwise: their replay of the
        database may have run before these rows were closed)."""
        await self.listening.wait()
        while True:
            try:
                await asyncio.wait_for(self.sink.wait_flushed(), timeout=30)
                self.recovered = await self.store.close_interrupted(
                    now_ms(), opened_before_ms=self.started_ms
                )
                for event in self._repaired:
                    await self.store.attach_recording(
                        event.call_id, _reference(event), now_ms(), at_ms=event.at_ms
                    )
                self._repaired.clear()
                await self._link_left_recordings()
            except Exception as exc:
                log.warning("CDR recovery waits for the database: %s", exc)
                await asyncio.sleep(RECOVERY_RETRY_S)
                continue
            if self.recovered:
                log.warning("closed %d calls an earlier run left open", len(self.recovered))
            await self._tell_listeners(self.recovered)
            return

    async def _tell_listeners(self, call_ids: list[str]) -> None:
        for call_id in call_ids:
            try:
                record = await self.store.get(call_id)
            except Exception:
                log.exception("recovered call %s could not be read back", call_id)
                continue
            if record is None:
                continue
            for listener in self.listeners:
                try:
                    listener(record)
                except Exception:
                    log.exception("CDR listener failed on recovered call %s", call_id)

    async def _link_left_recordings(self) -> None:
        """Recordings a crash left whole (no repair needed) and unlinked: link them too."""
        if self.recordings is None:
            return
        cutoff = self.started_ms / 1000 - LEFT_RECORDING_WINDOW_S
        files = await asyncio.to_thread(_recent_recordings, self.recordings, cutoff)
        unlinked = await self.store.without_recording([path.stem for path, _ in files])
        for path, modified in files:
            if path.stem not in unlinked:
                continue
            try:
                found = await asyncio.to_thread(measure_file, path)
            except (OSError, WavError) as exc:
                log.error("recording %s left by a crash cannot be read: %s", path, exc)
                continue
            reference = RecordingRef(
                path=str(found.path),
                sha256=found.sha256,
                duration_ms=found.duration_ms,
                size_bytes=found.size_bytes,
                agent_speech_ms=found.speech.agent_speech_ms,
                customer_speech_ms=found.speech.customer_speech_ms,
            )
            await self.store.attach_recording(
                path.stem, reference, now_ms(), at_ms=int(modified * 1000)
            )

    def finish_open_calls(self) -> None:
        """At a clean stop: calls still open are recorded as they stand."""
        for call_id in self.collector.open_calls():
            try:
                self.sink.finished(self.collector.snapshot(call_id))
            except Exception:
                log.exception("call %s could not be recorded at shutdown", call_id)


def _recent_recordings(directory: Path, since_s: float) -> list[tuple[Path, float]]:
    """Recordings under ``directory`` last written at or after ``since_s`` (epoch s)."""
    found = []
    for path in directory.rglob("*.wav"):
        with contextlib.suppress(OSError):
            modified = path.stat().st_mtime
            if modified >= since_s and path.is_file():
                found.append((path, modified))
    return found


def _reference(event: RecordingClosed) -> RecordingRef:
    return RecordingRef(
        path=event.path,
        sha256=event.sha256,
        duration_ms=event.duration_ms,
        size_bytes=event.size_bytes,
        agent_speech_ms=event.agent_speech_ms,
        customer_speech_ms=event.customer_speech_ms,
        repaired=event.repaired,
    )


@contextlib.asynccontextmanager
async def call_records(
    config: Config,
    database: Database,
    subscribe: Callable[[Callable[[Event], None]], None],
) -> AsyncIterator[CallRecords]:
    """CDRs for a running service; ``subscribe`` is ``Service.subscribe``.

    Subscribe before the service's first turn: the relay's repaired
    recordings are published then.
    """
    store = CdrStore(database.sessionmaker, node=config.service.node_name)
    sink = CdrSink(store, CdrJournal(journal_path(config)))
    recordings = Path(config.media.recordings_dir) if config.media.record else None
    records = CallRecords(CdrCollector(rules_for(config)), sink, store, now_ms(), recordings)
    pending: list[Event] = []
    subscribe(lambda event: records.on_event(event) if records.accepting else pending.append(event))
    await sink.start()
    records.accepting = True
    for event in pending:
        records.on_event(event)
    loop = asyncio.get_running_loop()

    async def ticking() -> None:
        while True:
            await asyncio.sleep(TICK_S)
            records.tick(loop.time())

    ticker = asyncio.create_task(ticking(), name="cdr-tick")
    recovery = asyncio.create_task(records.recover(), name="cdr-recovery")
    try:
        yield records
    finally:
        ticker.cancel()
        # A short run still finishes closing what the crash before it left open.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(recovery), timeout=10)
        recovery.cancel()
        records.finish_open_calls()
        records.accepting = False
        await sink.close()
