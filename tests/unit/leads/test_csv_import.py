"""Lead-file import: encodings, delimiters, broken rows and the exact report."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.leads.csv_import import DEFAULT_COLUMNS, ImportReport, RowError, import_leads
from dialer.leads.phone import CHINA

ZHANG = "+8613800138000"
LI = "+8613912345678"


def messages(errors: tuple[RowError, ...]) -> list[str]:
    return [str(error) for error in errors]


def phones(report: ImportReport) -> list[str]:
    return [lead.phone for lead in report.leads]


# --- encodings ---------------------------------------------------------------


def test_utf8_without_bom() -> None:
    report = import_leads(b"phone,name\n13800138000,Zhang\n", plan=CHINA)
    assert report.encoding == "utf-8"
    assert report.delimiter == ","
    assert report.accepted_all
    (lead,) = report.leads
    assert (lead.row, lead.phone, lead.raw_phone, lead.name) == (2, ZHANG, "13800138000", "Zhang")
    assert (lead.timezone, lead.priority, dict(lead.extra)) == (None, 0, {})


def test_utf8_bom_is_not_part_of_the_first_header() -> None:
    data = "手机号,姓名\r\n13800138000,张三\r\n".encode("utf-8-sig")
    report = import_leads(data, plan=CHINA)
    assert report.encoding == "utf-8-sig"
    assert report.warnings == ()
    assert [(lead.phone, lead.name) for lead in report.leads] == [(ZHANG, "张三")]


def test_gb18030_from_excel_on_chinese_windows() -> None:
    data = "客户姓名,联系电话,公司,备注\n张三,13800138000,华为,回访\n李四,139-1234-5678,腾讯,\n"
    report = import_leads(data.encode("gb18030"), plan=CHINA)
    assert report.encoding == "gb18030"
    assert [(lead.name, lead.phone) for lead in report.leads] == [("张三", ZHANG), ("李四", LI)]
    assert dict(report.leads[0].extra) == {"company": "华为", "note": "回访"}
    assert dict(report.leads[1].extra) == {"company": "腾讯", "note": ""}


def test_utf16_unicode_text_export_with_tabs() -> None:
    data = "姓名\t手机\r\n张三\t13800138000\r\n李四\t13912345678\r\n"
    for codec, name in (("utf-16", "utf-16-le"), ("utf-16-be", "utf-16-be")):
        raw = data.encode("utf-16") if codec == "utf-16" else b"\xfe\xff" + data.encode(codec)
        report = import_leads(raw, plan=CHINA)
        assert (report.encoding, report.delimiter) == (name, "\t")
        assert phones(report) == [ZHANG, LI]


def test_utf16_without_bom_is_refused_with_a_hint() -> None:
    report = import_leads("phone\n13800138000\n".encode("utf-16-le"), plan=CHINA)
    assert not report.importable
    assert messages(report.file_errors) == [
        "file: decoded as utf-8 but contains NUL characters (UTF-16 without a BOM?)"
    ]


def test_undecodable_bytes_are_one_file_level_error() -> None:
    report = import_leads(b"phone\n\xff\xfe\xff13800138000\n", plan=CHINA)
    assert report.encoding is None
    assert messages(report.file_errors) == [
        "file: not UTF-8, UTF-16 (with BOM) or GB18030: byte 0xff at offset 6"
    ]
    assert report.leads == ()
    assert report.summary() == (
        "file refused, nothing imported: file: not UTF-8, UTF-16 (with BOM) or GB18030:"
        " byte 0xff at offset 6"
    )


def test_bom_with_invalid_utf8_is_refused() -> None:
    report = import_leads(b"\xef\xbb\xbfphone\n\xff\n", plan=CHINA)
    assert messages(report.file_errors) == [
        "file: has a UTF-8 byte-order mark but invalid UTF-8 at byte 9"
    ]


# --- delimiters and layout ---------------------------------------------------


def test_semicolon_from_european_excel() -> None:
    report = import_leads(b"name;phone\nZhang;13800138000\n", plan=CHINA)
    assert report.delimiter == ";"
    assert phones(report) == [ZHANG]


def test_delimiters_in_data_cells_do_not_confuse_the_sniffer() -> None:
    report = import_leads(b'phone,note\n13800138000,"a;b;c;d\tx"\n', plan=CHINA)
    assert report.delimiter == ","
    assert dict(report.leads[0].extra) == {"note": "a;b;c;d\tx"}


def test_single_column_file() -> None:
    report = import_leads(b"phone\n13800138000\n13912345678", plan=CHINA)
    assert phones(report) == [ZHANG, LI]


def test_headers_are_trimmed_and_case_insensitive() -> None:
    report = import_leads(b" PHONE , Name ,TimeZone\n13800138000,Zhang,Asia/Shanghai\n", plan=CHINA)
    assert report.warnings == ()
    assert report.leads[0].timezone == "Asia/Shanghai"


def test_old_mac_cr_line_endings_and_blank_rows() -> None:
    report = import_leads(b"phone,name\r13800138000,a\r,\r\r13912345678,b\r", plan=CHINA)
    assert [(lead.row, lead.phone) for lead in report.leads] == [(2, ZHANG), (5, LI)]
    assert report.total_rows == 2


def test_row_numbers_are_physical_lines_across_multiline_cells() -> None:
    data = b'phone,note\n13800138000,"line one\nline two"\n123,x\n'
    report = import_leads(data, plan=CHINA)
    assert report.leads[0].extra["note"] == "line one\nline two"
    assert [error.row for error in report.errors] == [4]


# --- empty and broken files -------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \r\n", b"\xef\xbb\xbf"])
def test_empty_file(data: bytes) -> None:
    report = import_leads(data, plan=CHINA)
    assert messages(report.file_errors) == ["file: file is empty; expected a header row"]
    assert not report.importable and not report.ok and not report.accepted_all


def test_only_blank_cells() -> None:
    report = import_leads(b",,\n ,\t,\n", plan=CHINA)
    assert messages(report.file_errors) == ["file: every row is blank; expected a header row"]


def test_several_file_errors_are_all_reported() -> None:
    report = import_leads(b"name,Name\na,b\n", plan=CHINA)
    assert len(report.file_errors) == 2
    assert report.summary() == (
        "file refused, nothing imported: row 1, column 'Name', value 'Name':"
        " duplicate column (also column 1) (and 1 more file error)"
    )


def test_header_only() -> None:
    report = import_leads(b"phone,name\n", plan=CHINA)
    assert report.importable and report.accepted_all
    assert report.total_rows == 0
    assert report.warnings == ("the file has a header row but no data rows",)


def test_header_must_be_row_one() -> None:
    report = import_leads(b"\nphone\n13800138000\n", plan=CHINA)
    assert messages(report.file_errors) == ["row 1: blank; the header must be on row 1"]


def test_too_many_and_too_few_fields() -> None:
    data = b"phone,name,note\n13800138000,a,b,c\n13912345678,a\n13900000000,a,b\n"
    report = import_leads(data, plan=CHINA)
    assert messages(report.errors) == [
        "row 2, value '13800138000,a,b,c': expected 3 fields, found 4",
        "row 3, value '13912345678,a': expected 3 fields, found 2",
    ]
    assert phones(report) == ["+8613900000000"]
    assert report.importable and not report.ok


def test_unclosed_quote_refuses_the_file() -> None:
    data = b'phone,name\n13800138000,"Zhang\n13912345678,Li\n'
    report = import_leads(data, plan=CHINA)
    assert messages(report.file_errors) == [
        "row 2: unclosed quote: the quoted cell starting here runs to the end of the file"
    ]
    assert report.leads == ()


def test_text_after_a_closing_quote_refuses_the_file() -> None:
    data = b'phone,name\n13800138000,Zhang\n13912345678,"Li"x\n'
    report = import_leads(data, plan=CHINA)
    assert messages(report.file_errors) == ["row 3: broken quoting (',' expected after '\"')"]
    assert report.leads == ()


# --- header problems -------------------------------------------------------


def test_duplicate_header_names() -> None:
    report = import_leads(b"phone,name,Name\n13800138000,a,b\n", plan=CHINA)
    assert messages(report.file_errors) == [
        "row 1, column 'Name', value 'Name': duplicate column (also column 2)"
    ]
    assert report.leads == ()


def test_two_aliases_of_one_field() -> None:
    report = import_leads("电话,手机\n01065529988,13800138000\n".encode(), plan=CHINA)
    assert messages(report.file_errors) == [
        "row 1, column '手机', value '手机': column 2 and column 1 ('电话') both mean 'phone'"
    ]


def test_missing_phone_column_lists_accepted_names() -> None:
    report = import_leads(b"name\nZhang\n", plan=CHINA)
    phone_aliases = sorted(a for a, f in DEFAULT_COLUMNS.items() if f == "phone")
    assert messages(report.file_errors) == [
        f"row 1: missing required column 'phone' (accepted: {', '.join(phone_aliases)})"
    ]


def test_unknown_columns_warn_and_are_kept() -> None:
    report = import_leads("phone,地址,Source\n13800138000,深圳,expo\n".encode(), plan=CHINA)
    assert report.warnings == (
        "column 2 '地址' is not a known field; kept in each lead's extra",
        "column 3 'Source' is not a known field; kept in each lead's extra",
    )
    assert dict(report.leads[0].extra) == {"地址": "深圳", "Source": "expo"}
    assert report.accepted_all


def test_unknown_columns_refused_in_strict_mode() -> None:
    report = import_leads("phone,地址\n13800138000,深圳\n".encode(), plan=CHINA, strict=True)
    assert messages(report.file_errors) == [
        "row 1, column '地址', value '地址': unknown column (strict mode)"
    ]


def test_unnamed_trailing_columns_are_ignored() -> None:
    report = import_leads(b"phone,name,,\n13800138000,a,,\n", plan=CHINA, strict=True)
    assert report.warnings == (
        "column 3 has no header; its cells are ignored",
        "column 4 has no header; its cells are ignored",
    )
    assert dict(report.leads[0].extra) == {}


def test_custom_aliases_and_required_fields() -> None:
    columns = {**DEFAULT_COLUMNS, "区域": "region"}
    data = "phone,姓名,区域\n13800138000,,华南\n13912345678,李四,华北\n".encode()
    report = import_leads(data, plan=CHINA, known_columns=columns, required=("phone", "name"))
    assert messages(report.errors) == ["row 2, column '姓名': name is empty"]
    assert [(lead.name, dict(lead.extra)) for lead in report.leads] == [
        ("李四", {"region": "华北"})
    ]


def test_dnc_and_existing_must_be_e164() -> None:
    with pytest.raises(ValueError, match=r"must hold E.164 numbers, got '13800138000'"):
        import_leads(b"phone\n", plan=CHINA, dnc=frozenset({"13800138000"}))


def test_required_field_must_be_known() -> None:
    with pytest.raises(
        ValueError, match=r"required field 'email2' is not a value of known_columns"
    ):
        import_leads(b"phone\n", plan=CHINA, required=("email2",))


# --- row validation --------------------------------------------------------


def test_invalid_values_are_reported_per_cell() -> None:
    data = (
        b"phone,name,timezone,priority\n"
        b",empty,,\n"
        b"1.38001E+10,sci,,\n"
        b"13800138000,tz,Mars/Olympus,\n"
        b"13912345678,prio,Asia/Shanghai,high\n"
        b"12,all,Asia/Nowhere,-1\n"
    )
    report = import_leads(data, plan=CHINA)
    assert messages(report.errors) == [
        "row 2, column 'phone': phone is empty",
        "row 3, column 'phone', value '1.38001E+10': the cell was formatted as a number"
        " (scientific notation) and digits were lost; format the column as text in Excel"
        " and export again",
        "row 4, column 'timezone', value 'Mars/Olympus': not an IANA time zone"
        " (e.g. 'Asia/Shanghai')",
        "row 5, column 'priority', value 'high': priority must be a whole number, 0 or more",
        "row 6, column 'phone', value '12': too short (2 digits; a mobile has 11,"
        " a landline needs '0' and its area code)",
        "row 6, column 'timezone', value 'Asia/Nowhere': not an IANA time zone"
        " (e.g. 'Asia/Shanghai')",
        "row 6, column 'priority', value '-1': priority must be a whole number, 0 or more",
    ]
    assert report.leads == ()
    assert report.invalid_rows == 5
    assert report.summary() == (
        "5 rows (utf-8, comma-separated): 0 to import, 5 invalid, 0 duplicates,"
        " 0 do-not-call, 0 warnings"
    )


def test_excel_artefacts_and_full_width_digits_in_cells() -> None:
    data = "phone,priority\n13800138000.0,3.0\n１３９１２３４５６７８,５\n".encode()
    report = import_leads(data, plan=CHINA)
    assert [(lead.phone, lead.priority) for lead in report.leads] == [(ZHANG, 3), (LI, 5)]
    assert report.leads[1].raw_phone == "１３９１２３４５６７８"


def test_path_like_timezone_is_rejected_not_read() -> None:
    report = import_leads(b"phone,timezone\n13800138000,../../etc/passwd\n", plan=CHINA)
    assert [error.reason for error in report.errors] == [
        "not an IANA time zone (e.g. 'Asia/Shanghai')"
    ]


def test_extra_fields_are_read_only() -> None:
    lead = import_leads(b"phone,note\n13800138000,x\n", plan=CHINA).leads[0]
    with pytest.raises(TypeError):
        lead.extra["note"] = "y"  # type: ignore[index]


# --- duplicates and do-not-call ----------------------------------------------


def test_duplicates_in_file_existing_and_dnc() -> None:
    data = (
        b"phone,name\n"
        b"13800138000,first\n"
        b"+86 138 0013 8000,same number later\n"
        b"13912345678,already in campaign\n"
        b"13700000000,on dnc\n"
        b"13700000000,on dnc again\n"
        b"13600000000,new\n"
    )
    report = import_leads(
        data, plan=CHINA, existing=frozenset({LI}), dnc=frozenset({"+8613700000000"})
    )
    assert [(lead.row, lead.name) for lead in report.leads] == [(2, "first"), (7, "new")]
    assert messages(report.duplicates) == [
        "row 3, column 'phone', value '+86 138 0013 8000': +8613800138000 duplicates row 2",
        "row 4, column 'phone', value '13912345678': +8613912345678 is already in the campaign",
    ]
    assert messages(report.do_not_call) == [
        "row 5, column 'phone', value '13700000000': +8613700000000 is on the do-not-call list",
        "row 6, column 'phone', value '13700000000': +8613700000000 is on the do-not-call list",
    ]
    assert report.ok and not report.accepted_all
    assert report.summary() == (
        "6 rows (utf-8, comma-separated): 2 to import, 0 invalid, 2 duplicates,"
        " 2 do-not-call, 0 warnings"
    )


def test_an_invalid_first_row_still_claims_its_number() -> None:
    data = b"phone,priority\n13800138000,x\n13800138000,1\n"
    report = import_leads(data, plan=CHINA)
    assert [error.row for error in report.errors] == [2]
    assert messages(report.duplicates) == [
        "row 3, column 'phone', value '13800138000': +8613800138000 duplicates row 2"
    ]


# --- limits ------------------------------------------------------------------


def test_file_size_limit() -> None:
    report = import_leads(b"phone\n13800138000\n", plan=CHINA, max_bytes=10)
    assert messages(report.file_errors) == [
        "file: file is 18 bytes; the limit is 10 bytes (split the list)"
    ]


def test_row_limit_refuses_the_whole_file() -> None:
    data = b"phone\n13800138000\n\n13912345678\n13700000000\n"
    assert import_leads(data, plan=CHINA, max_rows=3).accepted_all
    report = import_leads(data, plan=CHINA, max_rows=2)
    assert messages(report.file_errors) == [
        "row 5: more than 2 data rows (the limit); split the list"
    ]
    assert report.leads == ()
    assert report.total_rows == 0


# --- property ----------------------------------------------------------------

mobiles = st.builds(
    lambda second, rest: "+861" + second + rest,
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
)
names = st.text(
    alphabet=st.characters(codec="gb18030", exclude_categories=("Cs", "Cc")), max_size=8
)


@st.composite
def lead_rows(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Rows drawn from a small pool of numbers, so duplicates are common."""
    pool = draw(st.lists(mobiles, min_size=1, max_size=5))
    return draw(st.lists(st.tuples(st.sampled_from(pool), names), max_size=30))


@given(
    rows=lead_rows(),
    codec=st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]),
    delimiter=st.sampled_from([",", "\t", ";"]),
)
def test_written_files_round_trip(rows: list[tuple[str, str]], codec: str, delimiter: str) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["手机号", "姓名"])
    for phone, name in rows:
        writer.writerow([phone[3:], name])
    report = import_leads(buffer.getvalue().encode(codec), plan=CHINA)

    unique = list(dict.fromkeys(phone for phone, _ in rows))
    assert phones(report) == unique
    assert len(report.duplicates) == len(rows) - len(unique)
    assert report.errors == () and report.file_errors == ()
    assert [lead.name or "" for lead in report.leads] == [
        next(name.strip() for p, name in rows if p == phone) for phone in unique
    ]
