"""Administration over the real API: users and tokens, phones and trunks, never a password."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_support import Api, api_config, serving_api

from dialer.config import Config, TrunkConfig

USERS = {"root": ("admin", None), "boss": ("supervisor", None)}


def config(tmp_path: Path) -> Config:
    return api_config(
        tmp_path,
        trunks=(TrunkConfig("gw1", "127.0.0.1", username="u1", password="trunk-secret"),),
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(config(tmp_path), USERS) as api:
        yield api


async def test_create_list_and_token(api: Api) -> None:
    created = await api.client.post(
        "/api/v1/admin/users",
        json={
            "username": "lilei",
            "password": "long-password",
            "name": "李雷",
            "role": "agent",
            "locale": "zh-CN",
            "agent_id": "a1",
        },
        headers=api.auth("root"),
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["username"], user["role"], user["agent_id"], user["team"]) == (
        "lilei",
        "agent",
        "a1",
        "t1",  # the agent's team from the configuration
    )
    assert "password" not in created.text and "long-password" not in created.text
    listed = await api.client.get("/api/v1/admin/users", headers=api.auth("root"))
    assert [u["username"] for u in listed.json()] == ["root", "boss", "lilei"]
    assert "password" not in listed.text
    issued = await api.client.post(
        f"/api/v1/admin/users/{user['id']}/tokens", json={"label": "crm"}, headers=api.auth("root")
    )
    assert issued.status_code == 201
    token = issued.json()["token"]
    me = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "lilei"
    nobody = await api.client.post("/api/v1/admin/users/999/tokens", headers=api.auth("root"))
    assert nobody.status_code == 404


async def test_bad_users_name_every_problem(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/admin/users",
        json={"username": "boss", "password": "pw", "role": "agent"},
        headers=api.auth("root"),
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert "username 'boss' is taken" in details
    assert any("password must be" in line for line in details)
    assert any("needs agent_id" in line for line in details)
    typo = await api.client.post(
        "/api/v1/admin/users",
        json={"username": "x", "password": "secret", "role": "king"},
        headers=api.auth("root"),
    )
    assert typo.status_code == 422
    assert typo.json()["error"]["details"][0].startswith("role")


async def test_phones_and_trunks_without_passwords(api: Api) -> None:
    phones = await api.client.get("/api/v1/admin/phones", headers=api.auth("root"))
    assert [(p["extension"], p["registered"]) for p in phones.json()] == [
        ("1001", False),
        ("1002", False),
    ]
    assert "pw-100" not in phones.text and "password" not in phones.text
    trunks = await api.client.get("/api/v1/admin/trunks", headers=api.auth("root"))
    [trunk] = trunks.json()
    assert (trunk["name"], trunk["username"], trunk["state"], trunk["in_use"]) == (
        "gw1",
        "u1",
        None,
        0,
    )
    assert "trunk-secret" not in trunks.text and "password" not in trunks.text


@pytest.mark.parametrize(
    "url", ["/api/v1/admin/users", "/api/v1/admin/phones", "/api/v1/admin/trunks"]
)
async def test_only_admins(api: Api, url: str) -> None:
    response = await api.client.get(url, headers=api.auth("boss"))
    assert response.status_code == 403
    assert "admin" in response.json()["error"]["message"]
