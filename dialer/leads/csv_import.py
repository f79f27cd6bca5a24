"""Import a lead list exported from Excel, WPS or a CRM as CSV/TSV bytes.

``import_leads`` is pure: it never touches the campaign's tables, it returns
an ``ImportReport`` saying what would be imported and why each rejected row
was rejected. The service commits from the report and keeps "nothing
half-imported" this way:

- a file with any ``file_errors`` (undecodable, no header, duplicate or
  missing columns, broken quoting, over a limit) is refused whole, and the
  report carries no leads so nothing can be written by mistake;
- otherwise the user sees the row report; if it is clean (``accepted_all``)
  the leads are committed in one transaction, and if not, only on the user's
  explicit acceptance of the rejected rows, still in one transaction.

Row numbers are 1-based physical line numbers in the file (the header is
row 1), so they match what a spreadsheet or an editor shows, even when a
quoted cell spans lines.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialer.leads.phone import CHINA, InvalidNumber, NumberingPlan, normalise

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_ROWS = 100_000

# Fields that ``Lead`` has attributes for; every other canonical field named in
# ``known_columns`` lands in ``Lead.extra`` under its canonical name.
CORE_FIELDS = ("phone", "name", "timezone", "priority")

DEFAULT_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "phone": "phone",
        "mobile": "phone",
        "telephone": "phone",
        "电话": "phone",
        "手机": "phone",
        "手机号": "phone",
        "手机号码": "phone",
        "号码": "phone",
        "电话号码": "phone",
        "联系电话": "phone",
        "name": "name",
        "姓名": "name",
        "客户姓名": "name",
        "客户名称": "name",
        "timezone": "timezone",
        "time zone": "timezone",
        "时区": "timezone",
        "priority": "priority",
        "优先级": "priority",
        "company": "company",
        "公司": "company",
        "公司名称": "company",
        "单位": "company",
        "note": "note",
        "notes": "note",
        "备注": "note",
        "level": "level",
        "客户级别": "level",
        "客户等级": "level",
        "email": "email",
        "邮箱": "email",
        "city": "city",
        "城市": "city",
    }
)

_DELIMITERS = (",", "\t", ";")  # tie-break order: comma is the CSV default
_WHOLE_NUMBER = re.compile(r"\d+(?:\.0+)?")  # "3.0" is Excel's float artefact


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row (or, in ``file_errors``, the reason a file is refused).

    ``row`` 0 means the file as a whole (encoding, size); 1 is the header.
    ``column`` is the header as written in the file, None for the whole row.
    """

    row: int
    column: str | None
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "file"
        if self.column is not None:
            where += f", column {self.column!r}"
        if self.value:
            where += f", value {self.value!r}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Lead:
    row: int
    phone: str  # E.164
    raw_phone: str
    name: str | None
    timezone: str | None  # IANA name; None means "derive from the number"
    priority: int  # higher is dialled first; 0 when the column is absent or blank
    extra: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ImportReport:
    encoding: str | None
    delimiter: str | None
    total_rows: int  # data rows read, blank rows not counted
    leads: tuple[Lead, ...]
    errors: tuple[RowError, ...]
    duplicates: tuple[RowError, ...]
    do_not_call: tuple[RowError, ...]
    warnings: tuple[str, ...]
    file_errors: tuple[RowError, ...] = ()

    @property
    def importable(self) -> bool:
        """No file-level error: the leads may be committed (with user consent if not ok)."""
        return not self.file_errors

    @property
    def ok(self) -> bool:
        """Importable and no row was invalid (duplicates and DNC are expected filtering)."""
        return self.importable and not self.errors

    @property
    def accepted_all(self) -> bool:
        """Every data row became a lead: safe to commit without asking anyone."""
        return self.ok and len(self.leads) == self.total_rows

    @property
    def invalid_rows(self) -> int:
        """Rows rejected by validation; a row can carry several ``errors``."""
        return len({error.row for error in self.errors})

    def summary(self) -> str:
        if self.file_errors:
            more = len(self.file_errors) - 1
            tail = f" (and {more} more file error{'s' * (more != 1)})" if more else ""
            return f"file refused, nothing imported: {self.file_errors[0]}{tail}"
        delimiter = {",": "comma", "\t": "tab", ";": "semicolon"}.get(self.delimiter or ",")
        return (
            f"{self.total_rows} rows ({self.encoding}, {delimiter}-separated):"
            f" {len(self.leads)} to import, {self.invalid_rows} invalid,"
            f" {len(self.duplicates)} duplicates, {len(self.do_not_call)} do-not-call,"
            f" {len(self.warnings)} warnings"
        )


def import_leads(
    data: bytes,
    *,
    plan: NumberingPlan = CHINA,
    dnc: frozenset[str] = frozenset(),
    existing: frozenset[str] = frozenset(),
    required: tuple[str, ...] = ("phone",),
    known_columns: Mapping[str, str] = DEFAULT_COLUMNS,
    strict: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ImportReport:
    """Parse and validate a lead file; ``dnc`` and ``existing`` hold E.164 numbers.

    ``known_columns`` maps header names (compared trimmed and case-folded) to
    canonical fields. ``required`` names canonical fields that must have a
    column and a non-blank value in every row; the phone column is always
    required. ``strict`` turns unknown columns from a warning into a refusal.
    """
    aliases = {alias.strip().casefold(): field for alias, field in known_columns.items()}
    fields = set(aliases.values())
    for field in ("phone", *required):
        if field not in fields:
            raise ValueError(f"required field {field!r} is not a value of known_columns")

    for number in dnc | existing:
        if not (number.startswith("+") and number[1:].isascii() and number[1:].isdigit()):
            raise ValueError(f"dnc and existing must hold E.164 numbers, got {number!r}")

    if len(data) > max_bytes:
        return _refused(None, None, RowError(0, None, "", _size_reason(len(data), max_bytes)))
    decoded = _decode(data)
    if isinstance(decoded, RowError):
        return _refused(None, None, decoded)
    text, encoding = decoded
    if not text.strip():
        empty = RowError(0, None, "", "file is empty; expected a header row")
        return _refused(encoding, None, empty)
    delimiter = _sniff_delimiter(text)
    records = _records(text, delimiter)
    try:
        return _Import(
            plan=plan,
            dnc=dnc,
            existing=existing,
            required=required,
            aliases=aliases,
            strict=strict,
            max_rows=max_rows,
        ).run(encoding, delimiter, records)
    except _RefusedError as refusal:
        return _refused(encoding, delimiter, *refusal.errors)


def _size_reason(size: int, limit: int) -> str:
    return f"file is {size:,} bytes; the limit is {limit:,} bytes (split the list)"


def _refused(encoding: str | None, delimiter: str | None, *errors: RowError) -> ImportReport:
    return ImportReport(encoding, delimiter, 0, (), (), (), (), (), tuple(errors))


def _decode(data: bytes) -> tuple[str, str] | RowError:
    # Order matters: a BOM is proof, strict UTF-8 almost never matches other
    # encodings by accident, and GB18030 (the superset of GBK/GB2312 that
    # Excel on Chinese Windows writes) is the last resort.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        name = "utf-16-le" if data.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"
        try:
            text = data[2:].decode(name)
        except UnicodeDecodeError as exc:
            return RowError(0, None, "", f"invalid {name} at byte {exc.start + 2}: {exc.reason}")
        return _no_nul(text, name)
    if data.startswith(codecs.BOM_UTF8):
        try:
            return _no_nul(data[3:].decode("utf-8"), "utf-8-sig")
        except UnicodeDecodeError as exc:
            reason = f"has a UTF-8 byte-order mark but invalid UTF-8 at byte {exc.start + 3}"
            return RowError(0, None, "", reason)
    try:
        return _no_nul(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return _no_nul(data.decode("gb18030"), "gb18030")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        reason = f"not UTF-8, UTF-16 (with BOM) or GB18030: byte 0x{bad} at offset {exc.start}"
        return RowError(0, None, "", reason)


def _no_nul(text: str, encoding: str) -> tuple[str, str] | RowError:
    # NULs in "valid UTF-8" are the signature of UTF-16 saved without a BOM.
    if "\x00" in text:
        reason = f"decoded as {encoding} but contains NUL characters (UTF-16 without a BOM?)"
        return RowError(0, None, "", reason)
    return text, encoding


def _sniff_delimiter(text: str) -> str:
    # Only the header line is consulted: column names practically never
    # contain a delimiter, while data cells (notes, addresses) often do, which
    # is where csv.Sniffer goes wrong.
    header = text.lstrip("\r\n").splitlines()[0]
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])  # max() keeps the first on ties
    return best if counts[best] else ","


class _RefusedError(Exception):
    def __init__(self, *errors: RowError) -> None:
        super().__init__(errors)
        self.errors = errors


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line of the record, fields); blank lines dropped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = (
                "unclosed quote: the quoted cell starting here runs to the end of the file"
                if "unexpected end of data" in str(exc)
                else f"broken quoting ({exc})"
            )
            raise _RefusedError(RowError(start, None, "", reason)) from None
        if any(cell.strip() for cell in fields):
            yield start, fields
        start = reader.line_num + 1


@dataclass(frozen=True, slots=True)
class _Column:
    index: int
    header: str  # as written, trimmed
    field: str | None  # canonical field, None if unknown


class _Import:
    """One import run; exists only to keep ``import_leads`` readable."""

    def __init__(
        self,
        *,
        plan: NumberingPlan,
        dnc: frozenset[str],
        existing: frozenset[str],
        required: tuple[str, ...],
        aliases: Mapping[str, str],
        strict: bool,
        max_rows: int,
    ) -> None:
        self.plan = plan
        self.dnc = dnc
        self.existing = existing
        self.required = frozenset(("phone", *required))
        self.aliases = aliases
        self.strict = strict
        self.max_rows = max_rows
        self.leads: list[Lead] = []
        self.errors: list[RowError] = []
        self.duplicates: list[RowError] = []
        self.do_not_call: list[RowError] = []
        self.warnings: list[str] = []
        self.first_seen: dict[str, int] = {}  # E.164 -> row that claimed it
        self.delimiter = ","

    def run(
        self, encoding: str, delimiter: str, records: Iterator[tuple[int, list[str]]]
    ) -> ImportReport:
        self.delimiter = delimiter
        header = next(records, None)
        if header is None:  # e.g. ",,\n,,": text, but every cell blank
            raise _RefusedError(RowError(0, None, "", "every row is blank; expected a header row"))
        header_row, header_cells = header
        if header_row != 1:
            raise _RefusedError(RowError(1, None, "", "blank; the header must be on row 1"))
        columns = self._columns(header_cells)
        total = 0
        for row, cells in records:
            total += 1
            if total > self.max_rows:
                reason = f"more than {self.max_rows:,} data rows (the limit); split the list"
                raise _RefusedError(RowError(row, None, "", reason))
            self._row(row, cells, columns)
        if total == 0:
            self.warnings.append("the file has a header row but no data rows")
        return ImportReport(
            encoding,
            delimiter,
            total,
            tuple(self.leads),
            tuple(self.errors),
            tuple(self.duplicates),
            tuple(self.do_not_call),
            tuple(self.warnings),
        )

    def _columns(self, cells: list[str]) -> tuple[_Column, ...]:
        columns: list[_Column] = []
        problems: list[RowError] = []
        by_field: dict[str, _Column] = {}
        by_header: dict[str, _Column] = {}
        for index, cell in enumerate(cells):
            header = cell.strip()
            number = index + 1
            if not header:
                # Excel exports the whole used range, so stray formatting far to
                # the right yields unnamed empty columns; they carry nothing.
                self.warnings.append(f"column {number} has no header; its cells are ignored")
                columns.append(_Column(index, "", None))
                continue
            field = self.aliases.get(header.casefold())
            column = _Column(index, header, field)
            key = header.casefold()
            if key in by_header:
                first = by_header[key]
                problems.append(
                    RowError(1, header, header, f"duplicate column (also column {first.index + 1})")
                )
            elif field is not None and field in by_field:
                first = by_field[field]
                reason = (
                    f"column {number} and column {first.index + 1} ({first.header!r})"
                    f" both mean {field!r}"
                )
                problems.append(RowError(1, header, header, reason))
            elif field is None and self.strict:
                problems.append(RowError(1, header, header, "unknown column (strict mode)"))
            elif field is None:
                self.warnings.append(
                    f"column {number} {header!r} is not a known field; kept in each lead's extra"
                )
            by_header.setdefault(key, column)
            if field is not None:
                by_field.setdefault(field, column)
            columns.append(column)
        for field in sorted(self.required - by_field.keys()):
            names = ", ".join(sorted(a for a, f in self.aliases.items() if f == field))
            problems.append(
                RowError(1, None, "", f"missing required column {field!r} (accepted: {names})")
            )
        if problems:
            raise _RefusedError(*problems)
        return tuple(columns)

    def _row(self, row: int, cells: list[str], columns: tuple[_Column, ...]) -> None:
        if len(cells) != len(columns):
            value = self.delimiter.join(cells)
            reason = f"expected {len(columns)} fields, found {len(cells)}"
            self.errors.append(RowError(row, None, value, reason))
            return
        problems: list[RowError] = []
        phone: str | None = None
        raw_phone = name = timezone = phone_header = ""
        priority = 0
        extra: dict[str, str] = {}
        for column, cell in zip(columns, cells, strict=True):
            value = cell.strip()
            if column.field is None:
                if column.header:
                    extra[column.header] = value
                continue
            if column.field not in CORE_FIELDS:
                # Same shape as unknown columns: every lead has every key.
                extra[column.field] = value
            if not value:
                if column.field in self.required:
                    problems.append(RowError(row, column.header, "", f"{column.field} is empty"))
                continue
            if column.field == "phone":
                raw_phone, phone_header = value, column.header
                try:
                    phone = normalise(value, self.plan)
                except InvalidNumber as exc:
                    problems.append(RowError(row, column.header, value, exc.reason))
            elif column.field == "name":
                name = value
            elif column.field == "timezone":
                timezone = value
                if not _is_zone(value):
                    reason = "not an IANA time zone (e.g. 'Asia/Shanghai')"
                    problems.append(RowError(row, column.header, value, reason))
            elif column.field == "priority":
                parsed = _priority(value)
                if parsed is None:
                    reason = "priority must be a whole number, 0 or more"
                    problems.append(RowError(row, column.header, value, reason))
                else:
                    priority = parsed

        if phone is not None:
            # The first row with a number claims it even if that row is
            # otherwise invalid, so fixing the row later does not change
            # which row is reported as the duplicate.
            self.first_seen.setdefault(phone, row)
        if problems:
            self.errors.extend(problems)
            return
        assert phone is not None  # blank phone is a problem: the column is required
        if self._filtered(row, phone_header, raw_phone, phone):
            return
        self.leads.append(
            Lead(
                row,
                phone,
                raw_phone,
                name or None,
                timezone or None,
                priority,
                MappingProxyType(extra),
            )
        )

    def _filtered(self, row: int, header: str, raw: str, phone: str) -> bool:
        """Report a valid number that must not be dialled from this list."""
        first = self.first_seen[phone]
        if phone in self.dnc:
            self.do_not_call.append(
                RowError(row, header, raw, f"{phone} is on the do-not-call list")
            )
        elif phone in self.existing:
            self.duplicates.append(
                RowError(row, header, raw, f"{phone} is already in the campaign")
            )
        elif first != row:
            self.duplicates.append(RowError(row, header, raw, f"{phone} duplicates row {first}"))
        else:
            return False
        return True


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _priority(value: str) -> int | None:
    text = unicodedata.normalize("NFKC", value)
    if not _WHOLE_NUMBER.fullmatch(text):
        return None
    digits = text.split(".")[0]
    # Nine digits keeps int() far from its str-conversion limit and any DB column.
    return int(digits) if len(digits) <= 9 else None
