"""Phone normalisation: the forms found in real lead lists, and the exact reasons for refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.leads.phone import CHINA, InvalidNumber, NumberingPlan, normalise

FULL_WIDTH = str.maketrans("0123456789+-() ", "０１２３４５６７８９＋－（）\u3000")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        (" 138 0013 8000 ", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("138.0013.8000", "+8613800138000"),
        ("(138) 0013 8000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("0086 138 0013 8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("013800138000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),
        ("＋８６　１３８－００１３－８０００", "+8613800138000"),
        ("13800138000.0", "+8613800138000"),
        ("19912345678", "+8619912345678"),
        # Landlines: 2-digit area codes (Beijing 10, 2x) and 3-digit ones.
        ("010-6552 9988", "+861065529988"),
        ("(021) 6123 4567", "+862161234567"),
        ("0755-8888 8888", "+8675588888888"),
        ("0571 8765432", "+865718765432"),
        ("+86 10 6552 9988", "+861065529988"),
        ("+86 (0)21 6123 4567", "+862161234567"),
        ("0086 755 8888 8888", "+8675588888888"),
        # Other countries pass through on length alone.
        ("+44 20 7946 0958", "+442079460958"),
        ("001 212 555 0100", "+12125550100"),
        ("+852 9123 4567", "+85291234567"),
    ],
)
def test_accepted_forms(raw: str, expected: str) -> None:
    assert normalise(raw, CHINA) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "'': empty"),
        ("   ", "'   ': empty"),
        ("--", "'--': no digits"),
        ("abc", "'abc': letters in number"),
        ("138001380OO", "'138001380OO': letters in number"),
        ("13800138000 ext 12", "'13800138000 ext 12': letters in number"),
        ("138#0013", "'138#0013': unexpected character '#'"),
        ("138+0013", "'138+0013': '+' is only allowed before the country code"),
        (
            "1380013800",
            "'1380013800': too short (10 digits; a mobile has 11,"
            " a landline needs '0' and its area code)",
        ),
        (
            "88888888",
            "'88888888': too short (8 digits; a mobile has 11,"
            " a landline needs '0' and its area code)",
        ),
        ("138001380001", "'138001380001': too long (12 digits; a mobile has 11)"),
        ("12345678901", "'12345678901': not a mobile or landline pattern"),
        (
            "1065529988",
            "'1065529988': landline without the trunk prefix '0'"
            " (Excel drops leading zeros from number cells)",
        ),
        ("010-1234", "'010-1234': too short (6 digits after the prefixes; at least 9)"),
        (
            "0755-8888 88888",
            "'0755-8888 88888': too long (12 digits after the prefixes; at most 11)",
        ),
        ("010-0123 4567", "'010-0123 4567': not a mobile or landline pattern"),
        ("+86 12345678901", "'+86 12345678901': not a mobile or landline pattern"),
        (
            "+1 555 010",
            "'+1 555 010': too short (7 digits; an international number has at least 8)",
        ),
        (
            "+1234567890123456",
            "'+1234567890123456': too long (16 digits; E.164 allows at most 15)",
        ),
        ("+0 800 123 4567", "'+0 800 123 4567': a country code cannot start with 0"),
        (
            "1.38001E+10",
            "'1.38001E+10': the cell was formatted as a number (scientific notation) and digits"
            " were lost; format the column as text in Excel and export again",
        ),
        (
            "1.3800138E10",
            "'1.3800138E10': the cell was formatted as a number (scientific notation) and digits"
            " were lost; format the column as text in Excel and export again",
        ),
    ],
)
def test_rejections_name_the_value_and_the_reason(raw: str, message: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        normalise(raw, CHINA)
    assert str(caught.value) == message
    assert caught.value.value == raw
    assert isinstance(caught.value, ValueError)


def test_plan_is_validated_at_construction() -> None:
    with pytest.raises(ValueError, match=r"NumberingPlan.country_code must be ASCII digits"):
        NumberingPlan("+86", "0", "00", r"1\d{10}", r"\d{9}", 11, (9, 11))
    with pytest.raises(ValueError, match=r"NumberingPlan.mobile is not a valid regex"):
        NumberingPlan("86", "0", "00", r"1[", r"\d{9}", 11, (9, 11))


def test_another_plan_uses_its_own_prefixes() -> None:
    # A toy plan shaped like the UK's: trunk 0, international 00, mobiles 7xxxxxxxxx.
    uk = NumberingPlan("44", "0", "00", r"7\d{9}", r"[12]\d{8,9}", 10, (9, 10))
    assert normalise("07700 900123", uk) == "+447700900123"
    assert normalise("020 7946 0958", uk) == "+442079460958"
    assert normalise("+86 138 0013 8000", uk) == "+8613800138000"


mobiles = st.builds(
    lambda second, rest: "1" + second + rest,
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
)
prefixes = st.sampled_from(["", "+86", "+86 ", "0086", "0086 ", "86", "+86-", "(+86) ", "0"])
separators = st.sampled_from(["", "", "", " ", "-", ".", "  ", " - "])


@given(
    mobile=mobiles,
    prefix=prefixes,
    seps=st.lists(separators, min_size=11, max_size=11),
    full_width=st.booleans(),
    padding=st.sampled_from(["", " ", "\t", "\u3000"]),
)
def test_any_formatting_of_a_mobile_gives_one_e164(
    mobile: str, prefix: str, seps: list[str], full_width: bool, padding: str
) -> None:
    body = "".join(sep + digit for sep, digit in zip(seps, mobile, strict=True))
    raw = padding + prefix + body + padding
    if full_width:
        raw = raw.translate(FULL_WIDTH)
    assert normalise(raw, CHINA) == "+86" + mobile


@given(mobile=mobiles)
def test_excel_float_artefact_of_a_mobile_is_repaired(mobile: str) -> None:
    assert normalise(mobile + ".0", CHINA) == "+86" + mobile
    assert normalise("86" + mobile + ".00", CHINA) == "+86" + mobile


@given(
    area=st.sampled_from(["10", "20", "21", "22", "28", "311", "571", "755", "898"]),
    subscriber=st.from_regex(r"[2-9][0-9]{6,7}", fullmatch=True),
    international=st.booleans(),
)
def test_landlines_with_area_code_normalise(
    area: str, subscriber: str, international: bool
) -> None:
    raw = f"+86 {area} {subscriber}" if international else f"0{area}-{subscriber}"
    assert normalise(raw, CHINA) == f"+86{area}{subscriber}"


@given(raw=st.text(max_size=30))
def test_arbitrary_text_is_either_e164_or_invalid_number(raw: str) -> None:
    try:
        result = normalise(raw, CHINA)
    except InvalidNumber as exc:
        assert exc.value == raw
    else:
        assert result.startswith("+")
        assert result[1:].isascii() and result[1:].isdigit()
        assert 8 <= len(result) - 1 <= 15
