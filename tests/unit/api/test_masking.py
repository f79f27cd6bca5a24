"""Masking of customer numbers: the contract's examples, short numbers, roles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.api.masking import mask_number, number_for, sees_full_numbers


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13812345678", "138****5678"),  # the contract's example
        ("+8613812345678", "+86138****5678"),  # the floor's country: national part
        ("02187654321", "021****4321"),
        ("+14155550123", "+141****0123"),  # another country: all its digits
        ("12345678", "123*5678"),  # eight digits: the shortest with the full rule
        ("1234567", "*****67"),  # seven: too short, last two only
        ("110", "*10"),
        ("10", "*0"),  # never every digit
        ("7", "*"),
        ("", ""),
        ("138-1234-5678", "138-****-5678"),  # separators stay where they are
    ],
)
def test_masks_the_middle(number: str, masked: str) -> None:
    assert mask_number(number) == masked


@given(st.text(alphabet="0123456789", min_size=8, max_size=20))
def test_long_numbers_keep_three_and_four(number: str) -> None:
    masked = mask_number(number)
    assert len(masked) == len(number)
    assert masked[:3] == number[:3]
    assert masked[-4:] == number[-4:]
    assert set(masked[3:-4]) == {"*"}


@given(st.text(alphabet="0123456789+- ", max_size=24))
def test_never_shows_a_whole_number(number: str) -> None:
    digits = sum(c.isdigit() for c in number)
    masked = mask_number(number)
    assert len(masked) == len(number)
    if digits:
        assert "*" in masked


@pytest.mark.parametrize(
    ("role", "full"),
    [("agent", False), ("qa", False), ("supervisor", True), ("admin", True)],
)
def test_roles(role: str, full: bool) -> None:
    assert sees_full_numbers(role) is full
    assert number_for("13812345678", role) == ("13812345678" if full else "138****5678")
