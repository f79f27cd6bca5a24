"""The pages as files and routes, without a browser: served, linked, translated.

``mount_pages`` on a bare FastAPI app answers every page and every asset the
pages load (module scripts need a JavaScript media type or the browser
refuses them), and the two translation files carry the same keys, with the
same placeholders, for every string the pages show.
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cdr.record import Outcome
from dialer.agents.state import DEFAULT_PAUSE_REASONS, SYSTEM_REASONS
from dialer.api.desk import DeskState
from dialer.api.users import Role
from dialer.web.pages import CONTENT_SECURITY_POLICY, PAGES, STATIC_DIR, mount_pages

LOCALE_FILES = ("en", "zh-CN")
# Keys the scripts build from a code the server sends: prefix -> the codes.
DYNAMIC = {
    "state": set(typing.get_args(DeskState)),
    "pause": {r.code for r in (*DEFAULT_PAUSE_REASONS, *SYSTEM_REASONS)},
    "outcome": {o.value for o in Outcome},
    "role": {r.value for r in Role},
    "locale": set(LOCALE_FILES),
    "live": {"connecting", "open", "reconnecting"},
}
_ATTRIBUTE_KEY = re.compile(r'data-i18n(?:-[a-z-]+)?"?\s*[=:]\s*"([A-Za-z0-9_.-]+)"')
_CALL_KEY = re.compile(r'\bt\("([A-Za-z0-9_.-]+)"')
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')
_IMPORT = re.compile(r'from\s+"\./([^"]+)"')


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    mount_pages(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pages")


def sources() -> list[Path]:
    return sorted([*STATIC_DIR.glob("*.html"), *STATIC_DIR.glob("js/*.js")])


def catalogue(name: str) -> dict[str, str]:
    data = json.loads((STATIC_DIR / "i18n" / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


async def test_root_goes_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/login"


@pytest.mark.parametrize("path", sorted(PAGES))
async def test_each_page_and_what_it_loads_is_served(
    client: httpx.AsyncClient, path: str
) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "<script>" not in page.text and " style=" not in page.text  # the policy allows neither
    assets = _ASSET.findall(page.text)
    assert any(a.endswith(".js") for a in assets), f"{path} loads no script"
    scripts = [a for a in assets if a.endswith(".js")]
    seen: set[str] = set()
    while scripts:  # the page's module script and everything it imports
        script = scripts.pop()
        if script in seen:
            continue
        seen.add(script)
        response = await client.get(script)
        assert response.status_code == 200, script
        assert "javascript" in response.headers["content-type"], script
        folder = script.rsplit("/", 1)[0]
        scripts.extend(f"{folder}/{name}" for name in _IMPORT.findall(response.text))
    for asset in assets:
        assert (await client.get(asset)).status_code == 200, asset


async def test_translations_are_served(client: httpx.AsyncClient) -> None:
    for name in LOCALE_FILES:
        response = await client.get(f"/static/i18n/{name}.json")
        assert response.status_code == 200
        assert response.json() == catalogue(name)


def test_nothing_is_fetched_from_another_site() -> None:
    for source in sources():
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"""(?:src|href|from|import|fetch\()\s*=?\s*["'`]https?:""", text), (
            source.name
        )


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    en, zh = catalogue("en"), catalogue("zh-CN")
    assert sorted(set(en) ^ set(zh)) == []
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
        assert set(_PLACEHOLDER.findall(en[key])) == set(_PLACEHOLDER.findall(zh[key])), key


def test_every_string_the_pages_use_is_translated() -> None:
    used: set[str] = set()
    for source in sources():
        text = source.read_text(encoding="utf-8")
        used.update(_ATTRIBUTE_KEY.findall(text))
        used.update(_CALL_KEY.findall(text))
    for prefix, codes in DYNAMIC.items():
        used.update(f"{prefix}.{code}" for code in codes)
    for name in LOCALE_FILES:
        missing = sorted(used - set(catalogue(name)))
        assert missing == [], f"{name}.json lacks {missing}"


def test_the_qa_outcome_filter_lists_every_outcome() -> None:
    script = (STATIC_DIR / "js" / "qa.js").read_text(encoding="utf-8")
    block = re.search(r"const OUTCOMES = \[(.*?)\];", script, re.S)
    assert block is not None
    listed = re.findall(r'"([a-z_]+)"', block.group(1))
    assert sorted(listed) == sorted(o.value for o in Outcome)
