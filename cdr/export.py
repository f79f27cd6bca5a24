"""CDR export to CSV (for Excel) and JSON lines (for programs), streaming.

Both read an async iterable of ``CallRecord`` and write each row as it comes,
so a month of a floor's calls is exported in constant memory. Both use the
same columns: instants as ISO-8601 UTC with milliseconds
(``2024-06-03T01:02:03.456Z``), durations in seconds with three decimals.

CSV is written the way Excel opens it without an import wizard: UTF-8 with a
byte-order mark (otherwise Chinese names turn to mojibake), CRLF line ends,
a header row, RFC 4180 quoting. A text cell that Excel would run as a formula
(starting with ``=``, ``@``, a tab or CR, or ``+``/``-`` followed by anything
but digits) gets a leading apostrophe (the OWASP advice on CSV injection);
phone numbers, masked or not, stay as they are.

``mask_numbers`` hides the middle of the customer's number
(``+8613800138001`` → ``+86138****8001``) for roles that must not see it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterable, Callable
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from .record import CallRecord

__all__ = [
    "COLUMNS",
    "export_csv",
    "export_jsonl",
    "format_instant",
    "format_seconds",
    "mask_number",
]

Progress = Callable[[int], None]

PROGRESS_EVERY = 1000  # rows between progress calls
_FLUSH_BYTES = 64 * 1024  # rows are gathered into writes of about this size
_EPOCH = datetime(1970, 1, 1)  # naive on purpose: see format_instant
_NUMBERS_ONLY = re.compile(r"[+-][0-9*]*")
_FORMULA_START = ("=", "@", "\t", "\r", "+", "-")

COLUMNS = (
    "call_id",
    "campaign",
    "lead_id",
    "agent",
    "direction",
    "mode",
    "number",
    "trunk",
    "caller_id",
    "attempt_of",
    "created_at",
    "ringing_at",
    "answered_at",
    "bridged_at",
    "ended_at",
    "ring_s",
    "talk_s",
    "billable_s",
    "held_s",
    "wrap_up_s",
    "outcome",
    "sip_status",
    "q850_cause",
    "hangup_by",
    "end_reason",
    "answered_by",
    "abandoned",
    "media_timeout_leg",
    "disposition",
    "disposition_note",
    "callback_at",
    "effective",
    "effective_rule",
    "recording_path",
    "recording_sha256",
    "recording_s",
    "recording_error",
)


def mask_number(e164: str) -> str:
    """The number with its middle digits replaced by ``*``; other characters kept.

    Up to the first five digits (country code and operator prefix) and the
    last four stay visible, at least four digits are hidden; a short number
    keeps at most half of its digits. Works on raw manual dials too.
    """
    plain = e164[1:] if e164.startswith("+") else e164
    digits = len(plain) if plain.isdigit() else sum(c.isdigit() for c in e164)
    tail = 4 if digits >= 8 else digits // 2
    hidden = min(digits - tail, max(4, digits - 5 - tail))
    head = digits - tail - hidden
    if plain.isdigit():  # the usual case, E.164 or national: slice instead of walking
        sign = e164[: len(e164) - len(plain)]
        return f"{sign}{plain[:head]}{'*' * hidden}{plain[head + hidden :]}"
    out = []
    seen = 0
    for c in e164:
        if c.isdigit():
            out.append("*" if head <= seen < head + hidden else c)
            seen += 1
        else:
            out.append(c)
    return "".join(out)


def format_instant(ms: int | None) -> str | None:
    """UTC milliseconds as ISO-8601 with milliseconds and ``Z``; None stays None."""
    if ms is None:
        return None
    # Naive UTC arithmetic: isoformat then has no offset to strip.
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def format_seconds(ms: int | None) -> str | None:
    """Milliseconds as seconds with three decimals, exactly (no float rounding)."""
    if ms is None:
        return None
    sign = "-" if ms < 0 else ""
    whole, part = divmod(abs(ms), 1000)
    return f"{sign}{whole}.{part:03d}"


def _fields(record: CallRecord, mask_numbers: bool) -> dict[str, Any]:
    recording = record.recording
    return {
        "call_id": record.call_id,
        "campaign": record.campaign,
        "lead_id": record.lead_id,
        "agent": record.agent,
        "direction": record.direction,
        "mode": record.mode,
        "number": mask_number(record.number) if mask_numbers else record.number,
        "trunk": record.trunk,
        "caller_id": record.caller_id,
        "attempt_of": record.attempt_of,
        "created_at": format_instant(record.created_at_ms),
        "ringing_at": format_instant(record.ringing_at_ms),
        "answered_at": format_instant(record.answered_at_ms),
        "bridged_at": format_instant(record.bridged_at_ms),
        "ended_at": format_instant(record.ended_at_ms),
        "ring_s": format_seconds(record.ring_ms),
        "talk_s": format_seconds(record.talk_ms),
        "billable_s": format_seconds(record.billable_ms),
        "held_s": format_seconds(record.held_ms),
        "wrap_up_s": format_seconds(record.wrap_up_ms),
        "outcome": record.outcome.value,
        "sip_status": record.sip_status,
        "q850_cause": record.q850_cause,
        "hangup_by": record.hangup_by,
        "end_reason": record.end_reason,
        "answered_by": record.answered_by.value,
        "abandoned": record.abandoned,
        "media_timeout_leg": record.media_timeout_leg,
        "disposition": record.disposition,
        "disposition_note": record.disposition_note,
        "callback_at": format_instant(record.callback_at_ms),
        "effective": record.effective,
        "effective_rule": record.effective_rule,
        "recording_path": recording.path if recording else None,
        "recording_sha256": recording.sha256 if recording else None,
        "recording_s": format_seconds(recording.duration_ms) if recording else None,
        "recording_error": record.recording_error,
    }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if (
        value.__class__ is str
        and value.startswith(_FORMULA_START)
        and not _NUMBERS_ONLY.fullmatch(value)
    ):
        return "'" + value
    return value  # csv.writer turns numbers into text itself


_DURATIONS = frozenset(column for column in COLUMNS if column.endswith("_s"))


def _json_document(fields: dict[str, Any]) -> dict[str, Any]:
    # Durations are numbers in JSON; "12.345" parses to the same float 12.345.
    for column in _DURATIONS:
        value = fields[column]
        if value is not None:
            fields[column] = float(value)
    return fields


class _Chunked:
    """Gathers encoded rows and writes them in chunks, calling progress as it goes."""

    def __init__(self, out: BinaryIO, progress: Progress | None) -> None:
        self._out = out
        self._progress = progress
        self._parts: list[bytes] = []
        self._size = 0
        self.rows = 0

    def row(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        self.rows += 1
        if self._size >= _FLUSH_BYTES:
            self.flush()
        if self._progress is not None and self.rows % PROGRESS_EVERY == 0:
            self._progress(self.rows)

    def flush(self) -> None:
        if self._parts:
            self._out.write(b"".join(self._parts))
            self._parts.clear()
            self._size = 0

    def finish(self) -> int:
        self.flush()
        if self._progress is not None and self.rows % PROGRESS_EVERY != 0:
            self._progress(self.rows)
        return self.rows


async def export_csv(
    records: AsyncIterable[CallRecord],
    out: BinaryIO,
    *,
    mask_numbers: bool,
    progress: Progress | None = None,
) -> int:
    """Write the records as Excel-ready CSV to ``out``; returns the number of rows."""
    line = io.StringIO()
    writer = csv.writer(line, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    out.write(("\ufeff" + line.getvalue()).encode("utf-8"))
    chunks = _Chunked(out, progress)
    async for record in records:
        line.seek(0)
        line.truncate()
        fields = _fields(record, mask_numbers)
        writer.writerow([_csv_cell(fields[column]) for column in COLUMNS])
        chunks.row(line.getvalue().encode("utf-8"))
    return chunks.finish()


async def export_jsonl(
    records: AsyncIterable[CallRecord],
    out: BinaryIO,
    *,
    mask_numbers: bool,
    progress: Progress | None = None,
) -> int:
    """Write the records as JSON lines (UTF-8, no BOM) to ``out``; returns the number of rows."""
    chunks = _Chunked(out, progress)
    async for record in records:
        document = _json_document(_fields(record, mask_numbers))
        chunks.row((json.dumps(document, ensure_ascii=False) + "\n").encode("utf-8"))
    return chunks.finish()
