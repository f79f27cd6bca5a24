"""Customer numbers as each role may see them: whole for supervisors and admins, masked else.

Customer data is confidential (least privilege): agents and QA work with
calls, not with the people behind them, so the API hides the middle of every
customer number it shows them. The rule is the floor's usual one for mobile
numbers: keep the first three and the last four digits
(``13812345678`` -> ``138****5678``); a number too short for that (seven
digits or fewer: extensions, short codes) keeps only its last two digits.
An E.164 number of the floor's own country (``+86``) is masked on its national
part, so it reads the way agents know it (``+86138****5678``); any other
``+`` number is masked on all its digits. Characters that are not digits
(``-``, spaces) stay where they are, so nothing about the layout leaks more
than the digits shown.

The agent's own current call is not masked, but that number is shown by the
desk, not here: every view built from stored calls goes through
``number_for``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FULL_NUMBER_ROLES", "MASK", "mask_number", "number_for", "sees_full_numbers"]

MASK: Final = "*"
HOME_PREFIX: Final = "+86"  # the floor's country: its numbers are masked on the national part
FULL_NUMBER_ROLES: Final = frozenset({"supervisor", "admin"})
_HEAD, _TAIL = 3, 4
_SHORT_TAIL = 2


def _kept(digits: int) -> tuple[int, int]:
    """How many digits stay visible at the start and at the end of ``digits`` digits."""
    if digits > _HEAD + _TAIL:
        return _HEAD, _TAIL
    # Short numbers: the last two, but never every digit.
    return 0, min(_SHORT_TAIL, max(0, digits - 1))


def _mask_digits(text: str) -> str:
    digits = sum(c.isdigit() for c in text)
    head, tail = _kept(digits)
    out: list[str] = []
    seen = 0
    for c in text:
        if c.isdigit():
            out.append(c if seen < head or seen >= digits - tail else MASK)
            seen += 1
        else:
            out.append(c)
    return "".join(out)


def mask_number(number: str) -> str:
    """``number`` with its middle digits replaced by ``*`` (see the module's rule)."""
    if number.startswith(HOME_PREFIX) and len(number) > len(HOME_PREFIX):
        return HOME_PREFIX + _mask_digits(number[len(HOME_PREFIX) :])
    if number.startswith("+"):
        return "+" + _mask_digits(number[1:])
    return _mask_digits(number)


def sees_full_numbers(role: str) -> bool:
    """Whether ``role`` (an ``auth.Role``, a ``StrEnum``) sees stored numbers whole."""
    return role in FULL_NUMBER_ROLES


def number_for(number: str, role: str) -> str:
    """The stored customer number as ``role`` may see it."""
    return number if sees_full_numbers(role) else mask_number(number)
