from __future__ import annotations

import pytest

from dialer.config import VENDORS
from dialer.sip.autoanswer import auto_answer_headers, vendors
from dialer.sip.errors import LocalProtocolError


def test_every_configurable_vendor_has_a_profile() -> None:
    assert set(VENDORS) == set(vendors())


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_profile_asks_for_an_immediate_answer(vendor: str) -> None:
    headers = auto_answer_headers(vendor)
    assert headers
    assert any("answer-after=0" in v or "Auto Answer" in v or "autoanswer" in v for _, v in headers)


def test_unknown_vendor_is_a_local_error_naming_it() -> None:
    with pytest.raises(LocalProtocolError, match="no auto-answer profile for vendor 'nokia'"):
        auto_answer_headers("nokia")
