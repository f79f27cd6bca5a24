"""Commands from agent hardware and desktops: parsed, validated and authorised, purely.

A command arrives on ``<prefix>/agents/<agent>/commands`` as one JSON object::

    {"schema": 1, "id": "r-17", "agent": "a1", "token": "<a1's secret>",
     "command": "pause", "reason": "lunch"}

``parse_command`` turns the bytes into a ``Command`` or a ``Rejection``;
nothing here acts on either. The checks run from the cheapest to the most
specific, so a stranger learns no more than that they are not trusted:

1. size (``oversized``) — before anything is decoded;
2. JSON object (``malformed``);
3. envelope: ``schema`` 1, ``id``, ``agent`` (``invalid``, every problem listed);
4. the agent is known (``unknown_agent``) and its token matches
   (``bad_credentials``, compared in constant time);
5. the topic's agent is the payload's agent (``wrong_session``): an agent
   cannot drive another agent's session, even with its own valid token;
6. a known command (``unknown_command``) with exactly its fields, each valid
   (``invalid``, every problem listed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from dialer.events import DISPOSITION_NOTE_MAX
from metrics.mqtt.topics import segment_problems

COMMAND_SCHEMA = 1
MAX_COMMAND_BYTES = 8192  # a disposition note of 1000 Chinese characters is 3000 bytes
MAX_ID = 128
MAX_TEXT = 64
# E.164 is at most 15 digits; a few more leave room for national prefixes.
_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_ENVELOPE = ("schema", "id", "agent", "token", "command")


class CommandName(StrEnum):
    SIGN_IN = "sign_in"
    READY = "ready"
    PAUSE = "pause"
    DIAL = "dial"
    HANG_UP = "hang_up"
    DISPOSITION = "disposition"


class RejectionCode(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNKNOWN_COMMAND = "unknown_command"
    UNKNOWN_AGENT = "unknown_agent"
    BAD_CREDENTIALS = "bad_credentials"
    WRONG_SESSION = "wrong_session"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """An authenticated, valid command of ``agent`` (the one whose session it came on)."""

    request_id: str
    agent: str
    name: CommandName
    reason: str | None = None  # pause
    number: str | None = None  # dial
    code: str | None = None  # disposition
    callback_at: datetime | None = None  # disposition, always zone-aware
    note: str = ""  # disposition, the agent's free text


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a message on ``agent``'s commands topic is refused; ``request_id`` if it was read."""

    code: RejectionCode
    reason: str
    agent: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers to a command; ``data`` goes out as the reply's ``data``."""

    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def _text(value: object, what: str, limit: int = MAX_TEXT) -> str | None:
    """A problem with ``value`` as a non-empty bounded string, or None if it is one."""
    if not isinstance(value, str):
        return f"{what} must be a string, not {_kind(value)}"
    if not value.strip():
        return f"{what} is empty"
    if len(value) > limit:
        return f"{what} is {len(value)} characters (at most {limit})"
    return None


def _number(value: object) -> str | None:
    problem = _text(value, "number", 32)
    if problem is None and not _NUMBER.fullmatch(str(value)):
        problem = f"number {value!r} is not a phone number (digits, optionally a leading '+')"
    return problem


def _callback_at(value: object) -> str | None:
    if not isinstance(value, str):
        return f"callback_at must be an ISO-8601 string, not {_kind(value)}"
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return f"callback_at {value!r} is not an ISO-8601 date and time"
    if instant.tzinfo is None or instant.utcoffset() is None:
        return f"callback_at {value!r} has no time zone (add Z or an offset such as +02:00)"
    return None


def _note(value: object) -> str | None:
    if not isinstance(value, str):
        return f"note must be a string, not {_kind(value)}"
    if len(value) > DISPOSITION_NOTE_MAX:
        return f"note is {len(value)} characters (at most {DISPOSITION_NOTE_MAX})"
    return None


_Check = Callable[[object], "str | None"]

# Per command: required fields and optional fields, each with its check.
_FIELDS: Mapping[CommandName, tuple[Mapping[str, _Check], Mapping[str, _Check]]] = {
    CommandName.SIGN_IN: ({}, {}),
    CommandName.READY: ({}, {}),
    CommandName.PAUSE: ({"reason": lambda v: _text(v, "reason")}, {}),
    CommandName.DIAL: ({"number": _number}, {}),
    CommandName.HANG_UP: ({}, {}),
    CommandName.DISPOSITION: (
        {"code": lambda v: _text(v, "code")},
        {"callback_at": _callback_at, "note": _note},
    ),
}


def _same_secret(token: str, secret: str) -> bool:
    # Digests first: compare_digest is constant-time only for equal lengths, and
    # the length of an agent's secret is itself worth keeping.
    given = hashlib.sha256(token.encode("utf-8")).digest()
    known = hashlib.sha256(secret.encode("utf-8")).digest()
    return hmac.compare_digest(given, known)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def parse_command(
    topic_agent: str,
    payload: bytes,
    *,
    secrets: Mapping[str, str],
    max_bytes: int = MAX_COMMAND_BYTES,
) -> Command | Rejection:
    """Judge one message that arrived on ``topic_agent``'s commands topic."""

    def reject(code: RejectionCode, reason: str, request_id: str | None = None) -> Rejection:
        return Rejection(code=code, reason=reason, agent=topic_agent, request_id=request_id)

    if len(payload) > max_bytes:
        return reject(
            RejectionCode.OVERSIZED, f"payload is {len(payload)} bytes (at most {max_bytes})"
        )
    try:
        body = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return reject(RejectionCode.MALFORMED, f"payload is not UTF-8: {exc.reason}")
    except json.JSONDecodeError as exc:
        return reject(RejectionCode.MALFORMED, f"payload is not JSON: {exc}")
    if not isinstance(body, dict):
        return reject(RejectionCode.MALFORMED, f"payload is a JSON {_kind(body)}, not an object")

    raw_id = body.get("id")
    request_id = raw_id if isinstance(raw_id, str) and _text(raw_id, "id", MAX_ID) is None else None
    problems: list[str] = []
    schema = body.get("schema")
    if "schema" not in body:
        problems.append("schema is missing")
    elif isinstance(schema, bool) or schema != COMMAND_SCHEMA:
        problems.append(f"schema {schema!r} is not supported (expected {COMMAND_SCHEMA})")
    if "id" not in body:
        problems.append("id is missing")
    elif request_id is None:
        problems.append(_text(raw_id, "id", MAX_ID) or "id is not usable")
    agent = body.get("agent")
    if "agent" not in body:
        problems.append("agent is missing")
    elif not isinstance(agent, str):
        problems.append(f"agent must be a string, not {_kind(agent)}")
    if problems or not isinstance(agent, str) or request_id is None:
        return reject(RejectionCode.INVALID, "; ".join(problems), request_id)

    secret = secrets.get(agent)
    if secret is None:
        return reject(RejectionCode.UNKNOWN_AGENT, f"agent {agent!r} is not known", request_id)
    token = body.get("token")
    if not isinstance(token, str):
        reason = f"token must be a string, not {_kind(token)}"
        if token is None:
            reason = "token is missing"
        return reject(RejectionCode.BAD_CREDENTIALS, reason, request_id)
    if not _same_secret(token, secret):
        return reject(
            RejectionCode.BAD_CREDENTIALS, f"token does not match agent {agent!r}", request_id
        )
    if agent != topic_agent or segment_problems("agent", topic_agent):
        return reject(
            RejectionCode.WRONG_SESSION,
            f"a command of agent {agent!r} for another agent's session ({topic_agent!r})",
            request_id,
        )

    raw_name = body.get("command")
    if "command" not in body:
        return reject(RejectionCode.INVALID, "command is missing", request_id)
    try:
        name = CommandName(raw_name) if isinstance(raw_name, str) else None
    except ValueError:
        name = None
    if name is None:
        known = ", ".join(c.value for c in CommandName)
        return reject(
            RejectionCode.UNKNOWN_COMMAND,
            f"command {raw_name!r} is not one of {known}",
            request_id,
        )

    required, optional = _FIELDS[name]
    for key in sorted(set(body) - set(_ENVELOPE) - set(required) - set(optional)):
        problems.append(f"field {key!r} is not allowed in {name.value}")
    for key, check in required.items():
        if key not in body:
            problems.append(f"{key} is missing (required by {name.value})")
        elif (problem := check(body[key])) is not None:
            problems.append(problem)
    for key, check in optional.items():
        if key in body and (problem := check(body[key])) is not None:
            problems.append(problem)
    if problems:
        return reject(RejectionCode.INVALID, "; ".join(problems), request_id)

    callback = body.get("callback_at")
    return Command(
        request_id=request_id,
        agent=agent,
        name=name,
        reason=body.get("reason"),
        number=body.get("number"),
        code=body.get("code"),
        callback_at=datetime.fromisoformat(callback) if isinstance(callback, str) else None,
        note=body.get("note", ""),
    )


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def rejection_payload(rejection: Rejection) -> bytes:
    """``{"schema":1,"id":..,"ok":false,"code":..,"reason":..}`` (``id`` null if unread)."""
    return _dumps(
        {
            "schema": COMMAND_SCHEMA,
            "id": rejection.request_id,
            "ok": False,
            "code": rejection.code.value,
            "reason": rejection.reason,
        }
    )


def reply_payload(command: Command, reply: Reply) -> bytes:
    """``{"schema":1,"id":..,"command":..,"ok":true,"data":{..}}``."""
    return _dumps(
        {
            "schema": COMMAND_SCHEMA,
            "id": command.request_id,
            "command": command.name.value,
            "ok": True,
            "data": dict(reply.data),
        }
    )


def refusal_payload(command: Command, code: str, reason: str) -> bytes:
    """A valid command the service could not carry out (``refused``) or failed on (``error``)."""
    return _dumps(
        {
            "schema": COMMAND_SCHEMA,
            "id": command.request_id,
            "command": command.name.value,
            "ok": False,
            "code": code,
            "reason": reason,
        }
    )
