"""What the API says to people, in their language: one catalogue of keyed messages.

Every module of the API registers its own keys at import (``register``), each
with a text per locale (``LOCALES``) and ``str.format`` parameters. An error or
a label is looked up by key in the reader's locale (``text``): the signed-in
user's, or before sign-in the request's ``Accept-Language`` (``locale_of``),
zh-CN when nothing better is known, since the floors read Chinese first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import HTTPConnection

log = logging.getLogger(__name__)

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"

_CATALOGUE: dict[str, dict[str, str]] = {}


def register(catalogue: Mapping[str, Mapping[str, str]]) -> None:
    """Add keys; every key needs every locale, and a key may not change its texts."""
    problems: list[str] = []
    for key, texts in catalogue.items():
        missing = [locale for locale in LOCALES if not texts.get(locale)]
        if missing:
            problems.append(f"message {key!r} has no text for {', '.join(missing)}")
            continue
        known = _CATALOGUE.get(key)
        if known is not None and known != dict(texts):
            problems.append(f"message {key!r} is already registered with other texts")
    if problems:
        raise ValueError("; ".join(problems))
    for key, texts in catalogue.items():
        _CATALOGUE[key] = {locale: texts[locale] for locale in LOCALES}


def known(key: str) -> bool:
    return key in _CATALOGUE


def text_or(key: str, fallback: str, locale: str) -> str:
    """The catalogue's text for ``key`` if it has one (a shipped code), else ``fallback``
    (the label a floor configured for a code of its own)."""
    return text(key, locale) if key in _CATALOGUE else fallback


def text(key: str, locale: str, **params: object) -> str:
    """The message ``key`` in ``locale`` (zh-CN for an unknown locale), formatted."""
    texts = _CATALOGUE.get(key)
    if texts is None:
        log.error("message key %r is not registered", key)
        return key  # a missing text must not turn a 4xx into a 500
    template = texts.get(locale) or texts[DEFAULT_LOCALE]
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        log.exception("message %r could not be formatted with %r", key, sorted(params))
        return template


def negotiate(accept_language: str | None) -> str:
    """The best of ``LOCALES`` for an ``Accept-Language`` header (RFC 9110 §12.5.4)."""
    if not accept_language:
        return DEFAULT_LOCALE
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        locale = _locale_for(tag.strip().lower())
        if locale is not None and quality > 0:
            ranked.append((-quality, position, locale))
    return min(ranked)[2] if ranked else DEFAULT_LOCALE


def _locale_for(tag: str) -> str | None:
    if tag == "zh" or tag.startswith("zh-"):
        return "zh-CN"  # zh-TW readers get simplified Chinese rather than English
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def locale_of(request: HTTPConnection) -> str:
    """The reader's locale: the signed-in user's, else what the request asks for."""
    user = getattr(request.state, "user", None)
    locale = getattr(user, "locale", None)
    if isinstance(locale, str) and locale in LOCALES:
        return locale
    return negotiate(request.headers.get("accept-language"))
