"""The API's message catalogue: both languages for every key, and choosing one."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from dialer.api.dispositions import label as result_label
from dialer.api.messages import LOCALES, locale_of, negotiate, register, text
from dialer.api.users import Role, User
from dialer.config import DEFAULT_DISPOSITIONS


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("zh-TW", "zh-CN"),
        ("fr-FR,en;q=0.5,zh;q=0.8", "zh-CN"),  # French is unknown; zh ranks above en
        ("en;q=0.2,zh-CN;q=0.1", "en"),
        ("de, fr", "zh-CN"),  # nothing known: the floors read Chinese first
        ("en;q=0, zh;q=x", "zh-CN"),  # refused and malformed qualities do not count
    ],
)
def test_accept_language_picks_one_of_the_two_locales(header: str | None, locale: str) -> None:
    assert negotiate(header) == locale


def test_a_key_needs_both_languages_and_keeps_its_texts() -> None:
    with pytest.raises(ValueError, match=r"message 'test\.half' has no text for en"):
        register({"test.half": {"zh-CN": "只有中文"}})
    register({"test.greeting": {"en": "Hello {name}", "zh-CN": "你好，{name}"}})
    register({"test.greeting": {"en": "Hello {name}", "zh-CN": "你好，{name}"}})  # same: fine
    with pytest.raises(ValueError, match="already registered with other texts"):
        register({"test.greeting": {"en": "Hi {name}", "zh-CN": "你好，{name}"}})
    assert text("test.greeting", "en", name="Li") == "Hello Li"
    assert text("test.greeting", "zh-CN", name="李") == "你好，李"
    assert text("test.greeting", "fr", name="Li") == "你好，Li"  # unknown locale: zh-CN


def test_a_missing_key_or_parameter_still_gives_a_text() -> None:
    assert text("test.never-registered", "en") == "test.never-registered"
    register({"test.param": {"en": "{count} calls", "zh-CN": "{count} 通"}})
    assert text("test.param", "en") == "{count} calls"  # not a 500 instead of a 4xx


def _request(accept_language: str | None) -> Request:
    headers = [(b"accept-language", accept_language.encode())] if accept_language else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_the_signed_in_users_locale_wins_over_the_header() -> None:
    request = _request("zh-CN")
    assert locale_of(request) == "zh-CN"
    request.state.user = User(1, "li", "Li", Role.AGENT, "en", "a1", None)
    assert locale_of(request) == "en"


def test_every_shipped_result_has_its_text_in_each_language() -> None:
    for disposition in DEFAULT_DISPOSITIONS:
        texts = {locale: result_label(disposition, locale) for locale in LOCALES}
        assert texts["en"] == disposition.label, disposition
        assert texts["zh-CN"] != disposition.label, disposition  # translated, not the fallback
