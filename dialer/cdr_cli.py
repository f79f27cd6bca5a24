"""``dialer cdr|recordings|qa ...``: CDR exports and reports, the recordings index, QA samples.

The console edge of the ``cdr`` package. Each command opens the configured
database, migrates it to head (as ``import-leads`` does), reads the clock once
and hands that instant to the cdr code, which never reads it itself. Local
days are the floor's (``service.timezone``); what is stored stays UTC.

Exit codes: 0 done, 1 done but something needs attention (a recording that
fails its checksum, files and rows that disagree, a purge or index that failed
for some calls), 2 bad input, with a message on stderr that names it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Literal, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select

from cdr.audit import AuditAction, AuditLog
from cdr.export import export_csv, export_jsonl
from cdr.qa import sample
from cdr.record import CallRecord, Outcome
from cdr.recordings import (
    ChecksumMismatch,
    PurgeReport,
    RecordingError,
    RecordingIndex,
    RecordingMissing,
    RecordingNotIndexedError,
)
from cdr.reports import GroupBy, Period, ReportRow, period_bounds, render_csv, render_json, report
from cdr.review_tables import WHO_LENGTH, RecordingRow, RecordingStatus
from cdr.store import CdrStore, QueryError
from cdr.tables import CdrRow, CdrStatus
from dialer.config import Config
from dialer.loop import run
from dialer.store.database import Database

__all__ = [
    "PROGRESS_THRESHOLD",
    "ExportProgress",
    "ExportRequest",
    "UsageError",
    "default_seed",
    "default_user",
    "export_cdrs",
    "local_range",
    "parse_day",
    "qa_sample",
    "recordings_check",
    "recordings_hold",
    "recordings_index",
    "recordings_purge",
    "recordings_release",
    "recordings_verify",
    "render_table",
    "report_cdrs",
    "run_command",
    "table",
]

PROGRESS_THRESHOLD = 1000  # an export of fewer rows is over before a bar would help
BAR_WIDTH = 10
INDEX_BATCH = 500  # CDR ids read per query while indexing
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class UsageError(Exception):
    """Bad input on the command line: exit 2 with this message."""


# -- arguments ----------------------------------------------------------------------


def parse_day(text: str, flag: str) -> date:
    """A YYYY-MM-DD day; anything else (including ISO's other spellings) is refused."""
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise UsageError(f"{flag} {text}: not a valid date ({exc})") from None
    raise UsageError(f"{flag} {text!r}: not a date, expected YYYY-MM-DD")


def local_range(first: date, last: date, tz: str) -> tuple[int, int]:
    """UTC milliseconds [start of ``first``, end of ``last``) in zone ``tz``, both inclusive."""
    if last < first:
        raise UsageError(
            f"the range {first.isoformat()}..{last.isoformat()} is empty: --to is before --from"
        )
    return period_bounds(first, "day", tz)[0], period_bounds(last, "day", tz)[1]


def default_user() -> str:
    """Who runs the command, for the audit log when no --user is given."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return f"uid-{os.getuid()}"


def _who(user: str | None) -> str:
    who = default_user() if user is None else user
    if not who.strip():
        raise UsageError("--user must name who acts (it goes to the audit log)")
    if len(who) > WHO_LENGTH:
        raise UsageError(f"--user is {len(who)} characters long, at most {WHO_LENGTH} fit")
    return who


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _binary(stream: TextIO) -> BinaryIO:
    stream.flush()  # text already written goes out before the bytes
    return stream.buffer


@asynccontextmanager
async def _database(config: Config) -> AsyncIterator[Database]:
    async with Database(config.database.url) as database:
        await database.upgrade()
        yield database


# -- cdr export ---------------------------------------------------------------------


def _grouped(n: int) -> str:
    return f"{n:,}".replace(",", " ")


class ExportProgress:
    """The export's progress on stderr: a bar redrawn in place on a terminal,
    else one line per tenth of the rows (a log file keeps ten lines, not thousands)."""

    def __init__(self, total: int, stream: TextIO, *, tty: bool) -> None:
        self.total = total
        self._stream = stream
        self._tty = tty
        self._tenths = 0  # tenths already reported (non-TTY)
        self._drawn = False

    def line(self, rows: int) -> str:
        filled = min(BAR_WIDTH, rows * BAR_WIDTH // self.total) if self.total else BAR_WIDTH
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"[{bar}] {_grouped(rows)}/{_grouped(self.total)} CDRs"

    def __call__(self, rows: int) -> None:
        if self._tty:
            self._stream.write("\r" + self.line(rows))
            self._stream.flush()
            self._drawn = True
            return
        tenths = min(10, rows * 10 // self.total) if self.total else 10
        if tenths > self._tenths:
            self._tenths = tenths
            self._stream.write(self.line(rows) + "\n")

    def done(self) -> None:
        if self._tty and self._drawn:
            self._stream.write("\n")  # the prompt goes below the bar, not over it


@dataclass(frozen=True, slots=True)
class ExportRequest:
    first: date
    last: date
    agent: str | None = None
    campaign: str | None = None
    format: Literal["csv", "jsonl"] = "csv"
    out: Path | None = None  # None: stdout
    mask_numbers: bool = False
    who: str = "cli"

    def describe(self, tz: str) -> str:
        masked = ", numbers masked" if self.mask_numbers else ""
        return (
            f"CDRs {self.first.isoformat()}..{self.last.isoformat()} ({tz}), "
            f"agent={self.agent or 'any'}, campaign={self.campaign or 'any'}, "
            f"{self.format}{masked}, to {self.out or 'stdout'}"
        )


def _part_path(out: Path) -> Path:
    # Written beside the target and renamed at the end: a failed export never
    # leaves a truncated file under the name of a finished one.
    return out.with_name(f".{out.name}.part")


async def export_cdrs(
    config: Config, request: ExportRequest, *, now_ms: int, stdout: TextIO, stderr: TextIO
) -> int:
    """Stream the range's CDRs to --out or stdout, with progress, and audit the export."""
    tz = config.service.timezone
    start_ms, end_ms = local_range(request.first, request.last, tz)
    if request.out is not None and request.out.is_dir():
        raise UsageError(f"--out {request.out}: is a directory, not a file")
    async with _database(config) as database:
        audit = AuditLog(database.sessionmaker)
        store = CdrStore(database.sessionmaker, node=config.service.node_name)
        what = request.describe(tz)

        async def refuse(problem: str) -> UsageError:
            # Refusals are audited too: the log answers who tried to export what.
            detail = f"refused: {problem}; {what}"
            await audit.write(request.who, AuditAction.EXPORT, None, detail, False, now_ms)
            return UsageError(problem)

        agent, campaign = request.agent, request.campaign
        try:
            total = await store.count(start_ms, end_ms, agent=agent, campaign=campaign)
        except QueryError as exc:
            raise await refuse(str(exc)) from None
        progress = None
        if total >= PROGRESS_THRESHOLD:
            progress = ExportProgress(total, stderr, tty=stderr.isatty())
        writer = export_csv if request.format == "csv" else export_jsonl
        records = store.search(start_ms, end_ms, agent=agent, campaign=campaign)
        if request.out is None:
            rows = await writer(
                records, _binary(stdout), mask_numbers=request.mask_numbers, progress=progress
            )
            _binary(stdout).flush()
        else:
            part = _part_path(request.out)
            try:
                file = part.open("wb")
            except OSError as exc:
                raise await refuse(f"--out {request.out}: cannot write: {exc.strerror}") from None
            try:
                with file:
                    rows = await writer(
                        records, file, mask_numbers=request.mask_numbers, progress=progress
                    )
                part.replace(request.out)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        if progress is not None:
            progress.done()
        await audit.write(
            request.who, AuditAction.EXPORT, None, f"{what}: {rows} rows", True, now_ms
        )
    summary = f"exported {rows} CDRs ({request.first}..{request.last}, {tz})"
    if request.out is None:
        print(summary, file=stderr)  # stdout carries the data
    else:
        print(f"{summary} to {request.out}", file=stdout)
    return 0


# -- cdr report ---------------------------------------------------------------------


def _clock(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _percent(share: float) -> str:
    return f"{100 * share:.1f}"


def _total(rows: Sequence[ReportRow]) -> ReportRow:
    dials = sum(row.dials for row in rows)
    connects = sum(row.connects for row in rows)
    bridged = sum(row.bridged for row in rows)
    talk = sum(row.talk_ms_total for row in rows)
    live = sum(row.live_answers for row in rows)
    abandoned = sum(row.abandoned for row in rows)
    dispositions: dict[str, int] = {}
    for row in rows:
        for code, n in row.dispositions.items():
            dispositions[code] = dispositions.get(code, 0) + n
    return ReportRow(
        group="total",
        dials=dials,
        connects=connects,
        connect_rate=connects / dials if dials else 0.0,
        effective=sum(row.effective for row in rows),
        bridged=bridged,
        talk_ms_total=talk,
        talk_ms_average=round(talk / bridged) if bridged else 0,
        live_answers=live,
        abandoned=abandoned,
        abandon_rate=abandoned / live if live else 0.0,
        dispositions=dict(sorted(dispositions.items())),
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Lines of columns padded to their widest cell, under a rule; ``align`` has one
    letter per column: ``l`` for text, ``r`` for numbers."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *map(line, rows)]


_REPORT_HEADERS = (
    "dials",
    "connects",
    "connect %",
    "effective",
    "bridged",
    "talk",
    "avg talk",
    "live",
    "abandoned",
    "abandon %",
    "dispositions",
)


def render_table(rows: Sequence[ReportRow], by: GroupBy, title: str) -> str:
    """The report as an aligned text table with a total row, for a person at a terminal."""
    if not rows:
        return f"{title}\nno CDRs in this period"

    def cells(row: ReportRow, label: str) -> list[str]:
        return [
            label,
            str(row.dials),
            str(row.connects),
            _percent(row.connect_rate),
            str(row.effective),
            str(row.bridged),
            _clock(row.talk_ms_total),
            _clock(row.talk_ms_average),
            str(row.live_answers),
            str(row.abandoned),
            _percent(row.abandon_rate),
            " ".join(f"{code}={n}" for code, n in row.dispositions.items()) or "-",
        ]

    body = [cells(row, row.group if row.group is not None else f"(no {by})") for row in rows]
    body.append(cells(_total(rows), "total"))
    lines = table([by, *_REPORT_HEADERS], body, "l" + "r" * (len(_REPORT_HEADERS) - 1) + "l")
    lines.insert(len(lines) - 1, lines[1])  # a rule above the total as well
    return "\n".join([title, *lines])


async def report_cdrs(
    config: Config,
    day: date,
    *,
    period: Period,
    by: GroupBy,
    fmt: Literal["table", "csv", "json"],
    stdout: TextIO,
) -> int:
    tz = config.service.timezone
    start_ms, end_ms = period_bounds(day, period, tz)
    team_of = {a.id: a.team for a in config.agents if a.team} if by == "team" else None
    async with _database(config) as database:
        store = CdrStore(database.sessionmaker, node=config.service.node_name)
        rows = await report(store.search(start_ms, end_ms), by=by, team_of=team_of)
    if fmt == "csv":
        _binary(stdout).write(render_csv(rows))
    elif fmt == "json":
        _binary(stdout).write(render_json(rows) + b"\n")
    else:
        zone = ZoneInfo(tz)
        first = datetime.fromtimestamp(start_ms / 1000, zone).date()
        last = datetime.fromtimestamp(end_ms / 1000, zone).date() - timedelta(days=1)
        span = first.isoformat() if first == last else f"{first}..{last}"
        title = f"CDRs by {by}, {period} {span} ({tz})"
        print(render_table(rows, by, title), file=stdout)
    _binary(stdout).flush()
    return 0


# -- recordings ---------------------------------------------------------------------


def _section(heading: str, items: Sequence[str]) -> list[str]:
    return [f"{heading} ({len(items)}):", *(f"  {item}" for item in items)]


async def recordings_check(config: Config, *, stdout: TextIO, stderr: TextIO) -> int:
    """Files under recordings_dir without rows, and rows whose files are gone: exit 1 if any."""
    directory = Path(config.media.recordings_dir)
    async with _database(config) as database:
        try:
            found = await RecordingIndex(database.sessionmaker).check(directory)
        except RecordingError as exc:
            raise UsageError(f"media.recordings_dir: {exc}") from None
    if not found.files_without_rows and not found.rows_without_files:
        print(f"{directory}: every file is indexed and every indexed file is there", file=stdout)
        return 0
    lines = [
        *_section("files without rows", [str(path) for path in found.files_without_rows]),
        *_section("rows without files", list(found.rows_without_files)),
    ]
    print("\n".join(lines), file=stdout)
    return 1


def _purge_lines(found: PurgeReport) -> list[str]:
    return [
        *_section("deleted", list(found.deleted)),
        *_section("kept by a legal hold", list(found.held_skipped)),
        *_section("already gone", list(found.missing)),
        *_section(
            "failed, left for the next purge",
            [f"{failure.call_id}: {failure.reason}" for failure in found.failed],
        ),
    ]


async def _purge_preview(database: Database, now_ms: int) -> list[str]:
    """What ``purge(now_ms)`` would do, read without changing anything."""
    statement = (
        select(RecordingRow.call_id, RecordingRow.path, RecordingRow.legal_hold)
        .where(
            RecordingRow.status == RecordingStatus.PRESENT.value,
            RecordingRow.purge_after_ms <= now_ms,
        )
        .order_by(RecordingRow.call_id)
    )
    async with database.session() as session:
        due = (await session.execute(statement)).all()
    free = [(call_id, path) for call_id, path, held in due if not held]
    there = await asyncio.to_thread(lambda: [Path(path).exists() for _, path in free])
    present = [f"{call_id}  {path}" for (call_id, path), ok in zip(free, there, strict=True) if ok]
    gone = [call_id for (call_id, _), ok in zip(free, there, strict=True) if not ok]
    return [
        "dry run: nothing deleted",
        *_section("would delete", present),
        *_section("kept by a legal hold", [call_id for call_id, _, held in due if held]),
        *_section("already gone", gone),
    ]


async def recordings_purge(config: Config, *, dry_run: bool, now_ms: int, stdout: TextIO) -> int:
    """Delete (or, dry, list) the files past their retention; exit 1 if some could not be."""
    async with _database(config) as database:
        if dry_run:
            print("\n".join(await _purge_preview(database, now_ms)), file=stdout)
            return 0
        found = await RecordingIndex(database.sessionmaker).purge(now_ms)
    print("\n".join(_purge_lines(found)), file=stdout)
    return 1 if found.failed else 0


async def recordings_hold(
    config: Config, call_id: str, reason: str, who: str, *, now_ms: int, stdout: TextIO
) -> int:
    async with _database(config) as database:
        try:
            held = await RecordingIndex(database.sessionmaker).hold(
                call_id, who, reason, now_ms=now_ms
            )
        except RecordingError as exc:
            raise UsageError(str(exc)) from None
    print(f"call {held.call_id}: on legal hold by {held.hold_by}: {held.hold_reason}", file=stdout)
    return 0


async def recordings_release(
    config: Config, call_id: str, who: str, *, now_ms: int, stdout: TextIO
) -> int:
    async with _database(config) as database:
        try:
            released = await RecordingIndex(database.sessionmaker).release(
                call_id, who, now_ms=now_ms
            )
        except RecordingError as exc:
            raise UsageError(str(exc)) from None
    print(f"call {released.call_id}: legal hold released by {who}", file=stdout)
    return 0


async def recordings_verify(
    config: Config, call_id: str, who: str, *, now_ms: int, stdout: TextIO, stderr: TextIO
) -> int:
    """Open the recording as playback does (checksum checked, audited): exit 1 if it fails."""
    async with _database(config) as database:
        try:
            path = await RecordingIndex(database.sessionmaker).open_for_playback(
                call_id, who, now_ms=now_ms
            )
        except RecordingNotIndexedError as exc:
            raise UsageError(str(exc)) from None
        except ChecksumMismatch as exc:
            print(
                f"recording of call {exc.call_id} changed on disk: expected {exc.expected}, "
                f"found {exc.actual} ({exc.path})",
                file=stderr,
            )
            return 1
        except RecordingMissing as exc:
            print(exc, file=stderr)
            return 1
    print(f"{path}: ok", file=stdout)
    return 0


def _retention(config: Config) -> Callable[[str | None], int]:
    by_campaign = {
        c.id: c.recording_retention_days or config.cdr.retention_days for c in config.campaigns
    }
    return lambda campaign: by_campaign.get(campaign or "", config.cdr.retention_days)


async def recordings_index(config: Config, *, now_ms: int, stdout: TextIO, stderr: TextIO) -> int:
    """Index every closed CDR's recording not indexed yet; a call that fails is reported,
    the others are indexed all the same. Running it again indexes nothing new."""
    retention = _retention(config)
    indexed = 0
    problems: list[str] = []
    pending = (
        select(CdrRow.call_id)
        .where(
            CdrRow.status == CdrStatus.CLOSED.value,
            CdrRow.recording_path.is_not(None),
            ~exists().where(RecordingRow.call_id == CdrRow.call_id),
        )
        .order_by(CdrRow.call_id)
        .limit(INDEX_BATCH)
    )
    async with _database(config) as database:
        store = CdrStore(database.sessionmaker, node=config.service.node_name)
        index = RecordingIndex(database.sessionmaker)
        after: str | None = None  # keyset: a call that failed is not read again
        while True:
            page = pending if after is None else pending.where(CdrRow.call_id > after)
            async with database.session() as session:
                call_ids = list(await session.scalars(page))
            if not call_ids:
                break
            after = call_ids[-1]
            for call_id in call_ids:
                record = await store.get(call_id)
                assert record is not None  # just listed; CDR rows are never deleted
                try:
                    await index.index(record, retention(record.campaign), now_ms)
                except RecordingError as exc:
                    problems.append(f"{call_id}: {exc}")
                else:
                    indexed += 1
    print(f"indexed {indexed} recordings", file=stdout)
    if problems:
        print("\n".join(_section("not indexed", problems)), file=stderr)
        return 1
    return 0


# -- qa sample ----------------------------------------------------------------------


def default_seed(day: date) -> int:
    """The seed when none is given: the day itself, so a rerun picks the same calls."""
    return int(day.strftime("%Y%m%d"))


async def qa_sample(config: Config, day: date, seed: int | None, *, stdout: TextIO) -> int:
    tz = config.service.timezone
    start_ms, end_ms = period_bounds(day, "day", tz)
    chosen_seed = default_seed(day) if seed is None else seed
    records: dict[str, CallRecord] = {}
    async with _database(config) as database:
        store = CdrStore(database.sessionmaker, node=config.service.node_name)
        async for record in store.search(start_ms, end_ms, outcome=Outcome.ANSWERED):
            if record.bridged_at_ms is not None and record.agent is not None:
                records[record.call_id] = record
    cdr = config.cdr
    picked = sample(
        records.values(),
        rate=cdr.qa_sample_rate,
        minimum=cdr.qa_sample_minimum,
        seed=chosen_seed,
        tz=ZoneInfo(tz),
    )
    title = (
        f"QA sample {day.isoformat()} ({tz}), seed {chosen_seed}: {len(picked)} of "
        f"{len(records)} answered calls ({_percent(cdr.qa_sample_rate)} % per agent, "
        f"at least {cdr.qa_sample_minimum})"
    )
    if not picked:
        print(title, file=stdout)
        return 0
    rows = [
        [call_id, records[call_id].agent or "", f"{records[call_id].talk_ms / 1000:.1f}"]
        for call_id in picked
    ]
    print("\n".join([title, *table(["call id", "agent", "talk s"], rows, "llr")]), file=stdout)
    return 0


# -- dispatch -----------------------------------------------------------------------


def run_command(config: Config, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Run a parsed ``cdr``, ``recordings`` or ``qa`` command; the exit code."""
    try:
        return run(_command(config, args, stdout, stderr))
    except UsageError as exc:
        print(exc, file=stderr)
        return 2


async def _command(config: Config, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    now_ms = _now_ms()
    command, action = args.command, args.action
    if (command, action) == ("cdr", "export"):
        request = ExportRequest(
            first=parse_day(args.first, "--from"),
            last=parse_day(args.last, "--to"),
            agent=args.agent,
            campaign=args.campaign,
            format=args.format,
            out=args.out,
            mask_numbers=args.mask_numbers,
            who=_who(args.user),
        )
        return await export_cdrs(config, request, now_ms=now_ms, stdout=stdout, stderr=stderr)
    if (command, action) == ("cdr", "report"):
        day = parse_day(args.day, "--day")
        return await report_cdrs(
            config, day, period=args.period, by=args.by, fmt=args.format, stdout=stdout
        )
    if (command, action) == ("recordings", "check"):
        return await recordings_check(config, stdout=stdout, stderr=stderr)
    if (command, action) == ("recordings", "purge"):
        return await recordings_purge(config, dry_run=args.dry_run, now_ms=now_ms, stdout=stdout)
    if (command, action) == ("recordings", "hold"):
        who = _who(args.user)
        return await recordings_hold(
            config, args.call_id, args.reason, who, now_ms=now_ms, stdout=stdout
        )
    if (command, action) == ("recordings", "release"):
        return await recordings_release(
            config, args.call_id, _who(args.user), now_ms=now_ms, stdout=stdout
        )
    if (command, action) == ("recordings", "verify"):
        return await recordings_verify(
            config, args.call_id, _who(args.user), now_ms=now_ms, stdout=stdout, stderr=stderr
        )
    if (command, action) == ("recordings", "index"):
        return await recordings_index(config, now_ms=now_ms, stdout=stdout, stderr=stderr)
    if (command, action) == ("qa", "sample"):
        return await qa_sample(config, parse_day(args.day, "--day"), args.seed, stdout=stdout)
    raise AssertionError((command, action))
