"""CDR export: Excel-ready CSV, JSON lines, number masking, constant memory."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdr.export import COLUMNS, export_csv, export_jsonl, format_instant, mask_number
from cdr.record import AnsweredBy, CallRecord, Outcome, RecordingRef

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

Export = Callable[..., Awaitable[int]]

T0 = int(datetime(2024, 6, 3, 1, 2, 3, 456_000, tzinfo=UTC).timestamp() * 1000)

ANSWERED = CallRecord(
    call_id="c-1",
    campaign="春季活动",
    lead_id="L1",
    agent="zhang.wei",
    mode="progressive",
    number="+8613800138001",
    trunk="pbx",
    caller_id="+862100000000",
    created_at_ms=T0,
    ringing_at_ms=T0 + 300,
    answered_at_ms=T0 + 4_000,
    bridged_at_ms=T0 + 4_020,
    ended_at_ms=T0 + 64_020,
    ring_ms=3_700,
    talk_ms=60_000,
    billable_ms=60_020,
    held_ms=0,
    outcome=Outcome.ANSWERED,
    sip_status=200,
    hangup_by="customer",
    end_reason='customer said "bye", then hung up',
    answered_by=AnsweredBy.HUMAN,
    wrap_up_ms=5_979,
    disposition="sale",
    effective=True,
    effective_rule="default@1",
    recording=RecordingRef(
        path="/var/recordings/2024-06-03/c-1.wav",
        sha256="ab" * 32,
        duration_ms=60_001,
        size_bytes=1_920_076,
        agent_speech_ms=20_000,
        customer_speech_ms=30_000,
    ),
)
BUSY = CallRecord(
    call_id="c-2",
    number="+8613900000002",
    created_at_ms=T0 + 1,
    ended_at_ms=T0 + 2_001,
    outcome=Outcome.BUSY,
    sip_status=486,
    q850_cause=17,
    disposition='=HYPERLINK("http://evil","x")',
)


async def stream(records: Iterable[CallRecord]) -> AsyncIterator[CallRecord]:
    for record in records:
        yield record


async def csv_bytes(records: Iterable[CallRecord], *, mask: bool = False) -> bytes:
    out = io.BytesIO()
    await export_csv(stream(records), out, mask_numbers=mask, progress=None)
    return out.getvalue()


async def test_csv_has_a_bom_crlf_lines_and_a_header() -> None:
    data = await csv_bytes([ANSWERED, BUSY])
    assert data.startswith(b"\xef\xbb\xbfcall_id,campaign,")
    lines = data.split(b"\r\n")
    assert lines[-1] == b""  # the last row ends with CRLF too
    assert b"\n" not in b"".join(lines)  # no bare LF anywhere: every line end is CRLF
    assert len(lines) == 4


async def test_csv_parses_back_as_excel_reads_it() -> None:
    data = await csv_bytes([ANSWERED, BUSY])
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), dialect="excel"))
    assert [row["call_id"] for row in rows] == ["c-1", "c-2"]
    first, second = rows
    assert list(first) == list(COLUMNS)
    assert first["campaign"] == "春季活动"
    assert first["number"] == "+8613800138001"
    assert first["created_at"] == "2024-06-03T01:02:03.456Z"
    assert first["ended_at"] == "2024-06-03T01:03:07.476Z"
    assert first["talk_s"] == "60.000"
    assert first["wrap_up_s"] == "5.979"
    assert first["recording_s"] == "60.001"
    assert first["end_reason"] == 'customer said "bye", then hung up'
    assert first["effective"] == "true"
    assert first["outcome"] == "answered" and first["answered_by"] == "human"
    assert first["recording_sha256"] == "ab" * 32
    assert second["answered_at"] == "" and second["recording_path"] == ""
    assert second["q850_cause"] == "17"
    # Excel would run this as a formula: it is neutralised with an apostrophe.
    assert second["disposition"] == '\'=HYPERLINK("http://evil","x")'


async def test_masked_export_hides_the_middle_of_every_customer_number() -> None:
    data = await csv_bytes([ANSWERED, BUSY], mask=True)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert [row["number"] for row in rows] == ["+86138****8001", "+86139****0002"]
    assert b"13800138001" not in data and b"13900000002" not in data


async def test_jsonl_has_the_same_columns_typed_and_no_bom() -> None:
    out = io.BytesIO()
    count = await export_jsonl(stream([ANSWERED, BUSY]), out, mask_numbers=True, progress=None)
    assert count == 2
    data = out.getvalue()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert "春季活动".encode() in data  # not \u escapes
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""
    first, second = (json.loads(line) for line in lines[:-1])
    assert list(first) == list(COLUMNS)
    assert first["number"] == "+86138****8001"
    assert first["talk_s"] == 60.0 and first["recording_s"] == 60.001
    assert first["created_at"] == "2024-06-03T01:02:03.456Z"
    assert first["effective"] is True and first["sip_status"] == 200
    assert second["answered_at"] is None and second["wrap_up_s"] is None
    assert second["disposition"] == '=HYPERLINK("http://evil","x")'  # JSON is not a sheet


async def test_progress_is_reported_as_rows_go_and_at_the_end() -> None:
    seen: list[int] = []
    records = [
        CallRecord(call_id=f"c{n}", created_at_ms=T0, outcome=Outcome.BUSY) for n in range(2500)
    ]
    count = await export_csv(
        stream(records), io.BytesIO(), mask_numbers=False, progress=seen.append
    )
    assert count == 2500
    assert seen == [1000, 2000, 2500]


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+8613800138001", "+86138****8001"),  # Chinese mobile: 138****8001 after +86
        ("+861088886666", "+8610****6666"),  # Beijing landline
        ("+12125551234", "+121****1234"),
        ("13800138001", "138****8001"),  # national form
        ("138 0013 8001", "138 **** 8001"),  # a manual dial as typed
        ("+861380013800199", "+86138******0199"),
        ("12345678", "****5678"),
        ("12345", "***45"),
        ("1", "*"),
        ("", ""),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


@given(st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_masking_hides_at_least_four_digits_or_more_than_half(digits: str) -> None:
    masked = mask_number("+" + digits)
    assert len(masked) == len(digits) + 1
    hidden = masked.count("*")
    assert hidden >= 4 or hidden * 2 >= len(digits)
    assert len(digits) - hidden <= 9  # at most the first five and the last four are shown
    # What is shown is the number's own digits in place.
    assert all(m in ("*", d) for m, d in zip(masked[1:], digits, strict=True))


def test_instants_are_utc_with_milliseconds() -> None:
    assert format_instant(0) == "1970-01-01T00:00:00.000Z"
    assert format_instant(T0 + 44) == "2024-06-03T01:02:03.500Z"
    assert format_instant(None) is None


class _Digest(io.BytesIO):
    """A sink that keeps only a digest and a length: the export's output is not held."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()
        self.length = 0

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.length += len(chunk)
        return len(chunk)


def generated(count: int) -> AsyncIterable[CallRecord]:
    async def records() -> AsyncIterator[CallRecord]:
        for n in range(count):
            yield CallRecord(
                call_id=f"call-{n:08d}",
                agent=f"agent-{n % 100}",
                campaign="c1",
                number=f"+86138{n:08d}",
                created_at_ms=T0 + n * 1000,
                answered_at_ms=T0 + n * 1000 + 4000,
                bridged_at_ms=T0 + n * 1000 + 4020,
                ended_at_ms=T0 + n * 1000 + 90_000,
                talk_ms=85_980,
                outcome=Outcome.ANSWERED,
                end_reason="customer hung up",
            )

    return records()


@pytest.mark.parametrize("export", [export_csv, export_jsonl])
async def test_memory_does_not_grow_with_the_number_of_records(export: Export) -> None:
    # sys.getallocatedblocks is exact and cheap (tracemalloc would make this
    # run five times slower); every row holds dozens of small objects, so
    # keeping rows, records or unflushed chunks would add tens of thousands
    # of blocks between the first and the last of the 50 samples.
    seen: list[int] = []
    sink = _Digest()
    count = await export(
        generated(50_000),
        sink,
        mask_numbers=True,
        progress=lambda _: seen.append(sys.getallocatedblocks()),
    )
    assert count == 50_000 and len(seen) == 50
    assert sink.length > 10_000_000  # ~250 bytes a row went through the sink...
    assert max(seen) - min(seen) < 2_000  # ...and nothing of them stayed behind


async def test_the_memory_measure_sees_records_that_are_kept() -> None:
    # The control for the test above: a consumer that keeps what it reads is caught.
    kept: list[CallRecord] = []

    async def keeping() -> AsyncIterator[CallRecord]:
        async for record in generated(5_000):
            kept.append(record)
            yield record

    seen: list[int] = []
    await export_csv(
        keeping(),
        _Digest(),
        mask_numbers=True,
        progress=lambda _: seen.append(sys.getallocatedblocks()),
    )
    assert max(seen) - min(seen) > 2_000 * 2
