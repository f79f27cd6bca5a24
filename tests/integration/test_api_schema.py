"""The OpenAPI document is valid, and a property-based run over it finds no server error.

The API is served by the floor itself (uvicorn in the floor's loop, a real
socket), on a tmp SQLite database with a few calls and their recordings.
Schemathesis generates requests for every operation from the published
document, as an admin and as an agent, and checks each response: never a
5xx, and status code, content type and body as the document says. It runs
in a worker thread (its client is blocking) while the loop serves. Examples
per operation are few so the run stays within a couple of minutes on a
shared 2-core machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from api_support import api_config
from hypothesis import HealthCheck, Phase, given, settings
from peers.ports import LOOPBACK
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cdr.record import CallRecord, Outcome, RecordingRef
from dialer.config import Config, HttpConfig
from dialer.floor import Floor, running_floor
from dialer.media.wav import build_header

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# An endless event stream, and signing out the very token the run uses.
SKIPPED = {("GET", "/api/v1/events"), ("DELETE", "/api/v1/session")}


def config(tmp_path: Path) -> Config:
    return api_config(
        tmp_path, http=HttpConfig(bind_host=LOOPBACK, port=0, max_upload_bytes=64 * 1024)
    )


@dataclass
class Served:
    floor: Floor
    base_url: str
    tokens: dict[str, str]


async def add_call(floor: Floor, call_id: str, agent: str, at: int) -> None:
    assert floor.api is not None
    path = Path(floor.config.media.recordings_dir) / f"{call_id}.wav"
    audio = struct.pack("<hh", 2000, -1000) * 1600
    data = build_header(2, 8000, 16, len(audio)) + audio
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    recording = RecordingRef(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        duration_ms=200,
        size_bytes=len(data),
        agent_speech_ms=0,
        customer_speech_ms=0,
    )
    record = CallRecord(
        call_id=call_id,
        campaign="c1",
        agent=agent,
        number="+8613812345678",
        created_at_ms=at,
        answered_at_ms=at + 3_000,
        bridged_at_ms=at + 3_100,
        ended_at_ms=at + 50_000,
        talk_ms=46_900,
        outcome=Outcome.ANSWERED,
        effective=True,
        recording=recording,
    )
    assert await floor.api.cdrs.close(record, at + 51_000)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with running_floor(config(tmp_path), serve_metrics=False) as floor:
        assert floor.api is not None and floor.http_port is not None
        users = floor.api.users
        tokens = {}
        for username, role, agent in (("root", "admin", None), ("agent1", "agent", "a1")):
            user = await users.create_user(
                username=username, password="secret", role=role, locale="en", agent_id=agent
            )
            tokens[username] = await users.issue_token(user.id)
        now = floor.api.now_ms()
        await add_call(floor, "call-1", "a1", now - 3_600_000)
        await add_call(floor, "call-2", "a2", now - 1_800_000)
        yield Served(floor, f"http://{LOOPBACK}:{floor.http_port}", tokens)


async def document(served: Served) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


@dataclass
class Run:
    failures: list[str]
    calls: dict[str, int]  # requests sent per operation
    statuses: set[int]


def fuzz_operation(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    base_url: str,
    headers: dict[str, str],
    run: Run,
) -> None:
    """Generated requests for one operation, each response checked; failures into ``run``."""
    name = f"{operation.method.upper()} {operation.path}"
    run.calls[name] = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        run.calls[name] += 1
        run.statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        check()
    except Exception as exc:
        first = str(exc).strip().splitlines()[:12]
        run.failures.append(f"{name}: " + " | ".join(first))


def fuzz(raw: dict[str, Any], base_url: str, token: str) -> Run:
    """Every operation fuzzed with ``token``; one line per operation that failed a check."""
    schema = schemathesis.openapi.from_dict(raw)
    headers = {"Authorization": f"Bearer {token}"}
    run = Run([], {}, set())
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            run.failures.append(f"an operation cannot be read: {result.err()}")
            continue
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SKIPPED:
            fuzz_operation(operation, base_url, headers, run)
    return run


async def test_openapi_document_is_valid(served: Served) -> None:
    raw = await document(served)
    schema = schemathesis.openapi.from_dict(raw)
    schema.validate()  # the OpenAPI 3 meta-schema; raises naming the first problem
    paths = set(raw["paths"])
    for path in (
        "/api/v1/cdrs",
        "/api/v1/cdrs/export",
        "/api/v1/cdrs/{call_id}",
        "/api/v1/recordings/{call_id}",
        "/api/v1/recordings/{call_id}/peaks",
        "/api/v1/qa/queue",
        "/api/v1/qa/scorecards",
        "/api/v1/qa/scores",
        "/api/v1/quotas/progress",
        "/api/v1/quotas/reports/{day}",
        "/api/v1/quotas/exemptions",
        "/api/v1/campaigns",
        "/api/v1/campaigns/{campaign_id}/stats",
        "/api/v1/campaigns/{campaign_id}/leads",
        "/api/v1/admin/users",
        "/api/v1/admin/phones",
        "/api/v1/admin/trunks",
        "/api/v1/floor",
    ):
        assert path in paths, f"{path} is not in the OpenAPI document"
    # Every error a route documents is the one error shape.
    cdrs = raw["paths"]["/api/v1/cdrs"]["get"]["responses"]
    assert cdrs["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


@pytest.mark.parametrize("who", ["root", "agent1"])
async def test_property_based_run_finds_no_server_error(served: Served, who: str) -> None:
    raw = await document(served)
    run = await asyncio.to_thread(fuzz, raw, served.base_url, served.tokens[who])
    assert not run.failures, "\n".join(run.failures)
    assert len(run.calls) >= 30, sorted(run.calls)  # every router's operations were reached
    assert all(run.calls.values()), [name for name, n in run.calls.items() if not n]
    assert 200 in run.statuses and 422 in run.statuses, run.statuses
    print(f"{who}: {sum(run.calls.values())} requests, statuses {sorted(run.statuses)}")
