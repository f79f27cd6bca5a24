"""Normalise phone numbers as typed by people and exported by Excel to E.164.

Deliberately not a port of libphonenumber: a floor dials one country, so a
``NumberingPlan`` describes that country's national significant numbers (NSN,
the digits after the country code) with two regular expressions, and anything
given with another country code passes through after a length check (E.164,
ITU-T E.164 §6: at most 15 digits including the country code).

Accepted decorations: spaces (including the ideographic space), ``-``, ``.``,
``/``, parentheses, one leading ``+``, the international prefix (``00``), the
country code with or without ``+``/``00`` on a mobile, the trunk prefix
(``0``) before an area code, and full-width characters (``１３８…``, what
Chinese IMEs put into spreadsheets). Excel artefacts: a numeric cell exported
as ``13800138000.0`` is repaired; scientific notation (``1.38001E+10``) is
rejected because the digits beyond the mantissa are gone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# E.164 §6.1: a full international number is at most 15 digits. The lower bound
# is ours: shorter "+CC" strings are in practice truncated cells, not numbers.
E164_MAX_DIGITS = 15
FOREIGN_MIN_DIGITS = 8

_SEPARATORS = frozenset(" \t-./()")
_EXCEL_FLOAT = re.compile(r"(\d+)\.0+")
_EXCEL_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")


class InvalidNumber(ValueError):  # noqa: N818 - the name callers and the brief use
    """A number that cannot be dialled; ``value`` is the input, ``reason`` why."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"{value!r}: {reason}")
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NumberingPlan:
    """One country's dialling rules, as far as a lead list needs them.

    ``mobile`` and ``landline`` are full-match regular expressions over the
    NSN (no trunk prefix). Landlines are only accepted with the trunk prefix
    or the country code: without either, a landline is indistinguishable from
    a local number whose area code (or whose leading 0, eaten by Excel) is
    missing, and guessing means dialling strangers.
    """

    country_code: str
    national_prefix: str
    international_prefix: str
    mobile: str
    landline: str
    mobile_length: int
    landline_lengths: tuple[int, int]

    def __post_init__(self) -> None:
        for name in ("country_code", "national_prefix", "international_prefix"):
            value = getattr(self, name)
            if not value.isascii() or not value.isdigit():
                raise ValueError(f"NumberingPlan.{name} must be ASCII digits, got {value!r}")
        for name in ("mobile", "landline"):
            try:
                re.compile(getattr(self, name))
            except re.error as exc:
                raise ValueError(f"NumberingPlan.{name} is not a valid regex: {exc}") from None

    def is_mobile(self, nsn: str) -> bool:
        return re.fullmatch(self.mobile, nsn) is not None

    def is_landline(self, nsn: str) -> bool:
        return re.fullmatch(self.landline, nsn) is not None


CHINA = NumberingPlan(
    country_code="86",
    national_prefix="0",
    international_prefix="00",
    # Mobiles: 11 digits, 13x–19x (MIIT allocations; 14x is data, 16x/19x newer).
    mobile=r"1[3-9]\d{9}",
    # Landlines: area code without the 0 — two digits for Beijing (10) and the
    # 2x cities (Shanghai 21, Guangzhou 20, ...), three digits elsewhere
    # (755 Shenzhen, 571 Hangzhou) — then a 7–8 digit subscriber number, which
    # never starts with 0 or 1 (those are trunk and service prefixes).
    landline=r"(?:10|2\d|[3-9]\d\d)[2-9]\d{6,7}",
    mobile_length=11,
    landline_lengths=(9, 11),
)


def normalise(raw: str, plan: NumberingPlan = CHINA) -> str:
    """Return ``raw`` as E.164 (``+8613800138000``) or raise ``InvalidNumber``."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise InvalidNumber(raw, "empty")
    float_cell = _EXCEL_FLOAT.fullmatch(text)
    if float_cell:
        text = float_cell.group(1)
    elif _EXCEL_SCIENTIFIC.fullmatch(text):
        raise InvalidNumber(
            raw,
            "the cell was formatted as a number (scientific notation) and digits were lost;"
            " format the column as text in Excel and export again",
        )
    has_plus, digits = _strip_decoration(raw, text)

    if has_plus:
        return _international(raw, digits, plan)
    if digits.startswith(plan.international_prefix):
        return _international(raw, digits[len(plan.international_prefix) :], plan)
    return _national(raw, digits, plan)


def _strip_decoration(raw: str, text: str) -> tuple[bool, str]:
    has_plus = False
    digits: list[str] = []
    for char in text:
        if char.isascii() and char.isdigit():
            digits.append(char)
        elif char == "+" and not digits and not has_plus:
            has_plus = True
        elif char == "+":
            raise InvalidNumber(raw, "'+' is only allowed before the country code")
        elif char.isalpha():
            raise InvalidNumber(raw, "letters in number")
        elif char not in _SEPARATORS:
            raise InvalidNumber(raw, f"unexpected character {char!r}")
    if not digits:
        raise InvalidNumber(raw, "no digits")
    return has_plus, "".join(digits)


def _international(raw: str, digits: str, plan: NumberingPlan) -> str:
    if digits.startswith(plan.country_code):
        nsn = digits[len(plan.country_code) :]
        # "+86 (0)10 ..." — the trunk prefix written after the country code is
        # a common habit on business cards; it is never dialled internationally.
        if nsn.startswith(plan.national_prefix):
            nsn = nsn[len(plan.national_prefix) :]
        return _domestic(raw, nsn, plan, allow_landline=True)
    if digits.startswith("0"):
        raise InvalidNumber(raw, "a country code cannot start with 0")
    if len(digits) < FOREIGN_MIN_DIGITS:
        raise InvalidNumber(
            raw, f"too short ({len(digits)} digits; an international number has at least 8)"
        )
    if len(digits) > E164_MAX_DIGITS:
        raise InvalidNumber(raw, f"too long ({len(digits)} digits; E.164 allows at most 15)")
    return "+" + digits


def _national(raw: str, digits: str, plan: NumberingPlan) -> str:
    # After the trunk prefix a mobile is accepted too: "0138..." is how
    # mobiles used to be dialled long-distance and old lists still carry it.
    if digits.startswith(plan.national_prefix):
        return _domestic(raw, digits[len(plan.national_prefix) :], plan, allow_landline=True)
    # "8613800138000": the country code without + or 00, as CRMs export it.
    # Only taken as such when the rest is a mobile, since mobiles are the only
    # NSNs that cannot also be read as a (too long) local number.
    with_cc = digits[len(plan.country_code) :]
    if digits.startswith(plan.country_code) and plan.is_mobile(with_cc):
        return "+" + plan.country_code + with_cc
    return _domestic(raw, digits, plan, allow_landline=False)


def _domestic(raw: str, nsn: str, plan: NumberingPlan, *, allow_landline: bool) -> str:
    if plan.is_mobile(nsn) or (allow_landline and plan.is_landline(nsn)):
        return "+" + plan.country_code + nsn
    if not allow_landline and plan.is_landline(nsn):
        raise InvalidNumber(
            raw,
            f"landline without the trunk prefix {plan.national_prefix!r}"
            " (Excel drops leading zeros from number cells)",
        )
    if not allow_landline:
        if len(nsn) < plan.mobile_length:
            raise InvalidNumber(
                raw,
                f"too short ({len(nsn)} digits; a mobile has {plan.mobile_length},"
                f" a landline needs {plan.national_prefix!r} and its area code)",
            )
        if len(nsn) > plan.mobile_length:
            raise InvalidNumber(
                raw, f"too long ({len(nsn)} digits; a mobile has {plan.mobile_length})"
            )
        raise InvalidNumber(raw, "not a mobile or landline pattern")
    shortest = min(plan.mobile_length, plan.landline_lengths[0])
    longest = max(plan.mobile_length, plan.landline_lengths[1])
    if len(nsn) < shortest:
        raise InvalidNumber(
            raw, f"too short ({len(nsn)} digits after the prefixes; at least {shortest})"
        )
    if len(nsn) > longest:
        raise InvalidNumber(
            raw, f"too long ({len(nsn)} digits after the prefixes; at most {longest})"
        )
    raise InvalidNumber(raw, "not a mobile or landline pattern")
