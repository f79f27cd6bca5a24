"""Agent commands over MQTT: each command parsed, each kind of bad message refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from metrics.mqtt.commands import (
    Command,
    CommandName,
    Rejection,
    RejectionCode,
    Reply,
    parse_command,
    refusal_payload,
    rejection_payload,
    reply_payload,
)

SECRETS = {"a1": "s3cret-a1", "a2": "s3cret-a2"}


def payload(**fields: Any) -> bytes:
    body: dict[str, Any] = {"schema": 1, "id": "r-1", "agent": "a1", "token": "s3cret-a1"}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def parse(data: bytes, topic_agent: str = "a1", **options: Any) -> Command | Rejection:
    return parse_command(topic_agent, data, secrets=SECRETS, **options)


def rejected(data: bytes, topic_agent: str = "a1", **options: Any) -> Rejection:
    result = parse(data, topic_agent, **options)
    assert isinstance(result, Rejection), result
    assert result.agent == topic_agent
    return result


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": "sign_in"}, {}),
        ({"command": "ready"}, {}),
        ({"command": "pause", "reason": "lunch"}, {"reason": "lunch"}),
        ({"command": "dial", "number": "+4930123456"}, {"number": "+4930123456"}),
        ({"command": "hang_up"}, {}),
        ({"command": "disposition", "code": "sale"}, {"code": "sale"}),
    ],
)
def test_each_command_is_parsed_with_its_fields(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = parse(payload(**fields))
    assert result == Command(
        request_id="r-1", agent="a1", name=CommandName(fields["command"]), **expected
    )


def test_a_disposition_may_carry_a_zoned_callback_instant() -> None:
    result = parse(
        payload(command="disposition", code="callback", callback_at="2026-05-04T09:30:00+02:00")
    )
    assert isinstance(result, Command)
    assert result.callback_at == datetime(2026, 5, 4, 7, 30, tzinfo=UTC)
    assert result.callback_at.utcoffset() == timedelta(hours=2)
    zulu = parse(payload(command="disposition", code="callback", callback_at="2026-05-04T07:30Z"))
    assert isinstance(zulu, Command) and zulu.callback_at == result.callback_at
    assert zulu.callback_at.tzinfo == UTC


def test_a_disposition_may_carry_the_agents_note_of_up_to_1000_characters() -> None:
    note = "客户要求下周再联系" * 111  # 999 characters, 2997 bytes of UTF-8
    result = parse(payload(command="disposition", code="sale", note=note))
    assert isinstance(result, Command) and result.note == note
    plain = parse(payload(command="disposition", code="sale"))
    assert isinstance(plain, Command) and plain.note == ""
    long = parse(payload(command="disposition", code="sale", note="x" * 1001))
    assert isinstance(long, Rejection) and long.code is RejectionCode.INVALID
    assert long.reason == "note is 1001 characters (at most 1000)"
    wrong = parse(payload(command="pause", reason="break", note="hi"))
    assert isinstance(wrong, Rejection) and "field 'note' is not allowed in pause" in wrong.reason


def test_an_oversized_payload_is_refused_before_it_is_read() -> None:
    data = payload(command="pause", reason="x" * 40)
    rejection = rejected(data, max_bytes=len(data) - 1)
    assert rejection.code is RejectionCode.OVERSIZED
    assert rejection.request_id is None
    assert f"{len(data)} bytes (at most {len(data) - 1})" in rejection.reason
    assert isinstance(parse(data, max_bytes=len(data)), Command)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b"null", "JSON null, not an object"),
        (b"", "not JSON"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_malformed(data: bytes, complaint: str) -> None:
    rejection = rejected(data)
    assert rejection.code is RejectionCode.MALFORMED
    assert complaint in rejection.reason


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"schema": 2}, "schema 2 is not supported (expected 1)"),
        ({"schema": True}, "schema True is not supported"),
        ({"schema": ...}, "schema is missing"),
        ({"agent": ...}, "agent is missing"),
        ({"agent": 7}, "agent must be a string, not int"),
    ],
)
def test_a_bad_envelope_is_invalid_and_keeps_the_request_id(
    fields: dict[str, Any], complaint: str
) -> None:
    rejection = rejected(payload(command="ready", **fields))
    assert rejection.code is RejectionCode.INVALID
    assert complaint in rejection.reason
    assert rejection.request_id == "r-1"


def test_a_missing_or_unusable_id_is_invalid_and_answered_without_one() -> None:
    for bad_id, complaint in ((..., "id is missing"), (12, "id must be a string"), ("", "empty")):
        rejection = rejected(payload(command="ready", id=bad_id))
        assert rejection.code is RejectionCode.INVALID
        assert complaint in rejection.reason
        assert rejection.request_id is None


def test_every_envelope_problem_is_listed() -> None:
    rejection = rejected(payload(command="ready", schema=3, id=..., agent=...))
    assert rejection.reason == (
        "schema 3 is not supported (expected 1); id is missing; agent is missing"
    )


def test_an_unknown_agent_is_refused() -> None:
    rejection = rejected(payload(command="ready", agent="zz", token="x"), topic_agent="zz")
    assert rejection.code is RejectionCode.UNKNOWN_AGENT
    assert "'zz' is not known" in rejection.reason


@pytest.mark.parametrize(
    ("token", "complaint"),
    [
        ("s3cret-a2", "token does not match agent 'a1'"),
        ("s3cret-a1 ", "token does not match"),
        ("", "token does not match"),
        (..., "token is missing"),
        (None, "token is missing"),
        (42, "token must be a string, not int"),
    ],
)
def test_bad_credentials_are_refused(token: object, complaint: str) -> None:
    rejection = rejected(payload(command="ready", token=token))
    assert rejection.code is RejectionCode.BAD_CREDENTIALS
    assert complaint in rejection.reason
    assert rejection.request_id == "r-1"


def test_credentials_are_judged_before_the_command_itself() -> None:
    # A stranger learns nothing about which commands or fields exist.
    rejection = rejected(payload(command="self_destruct", token="guess", extra=1))
    assert rejection.code is RejectionCode.BAD_CREDENTIALS


def test_a_command_for_another_agents_session_is_refused() -> None:
    # a1 is who it says it is, but it published on a2's commands topic.
    rejection = rejected(payload(command="hang_up"), topic_agent="a2")
    assert rejection.code is RejectionCode.WRONG_SESSION
    assert rejection.reason == "a command of agent 'a1' for another agent's session ('a2')"
    assert rejection.request_id == "r-1"


def test_an_unknown_command_is_refused_with_the_known_ones() -> None:
    rejection = rejected(payload(command="transfer"))
    assert rejection.code is RejectionCode.UNKNOWN_COMMAND
    assert "'transfer' is not one of sign_in, ready, pause, dial, hang_up, disposition" in (
        rejection.reason
    )
    assert rejected(payload(command=["ready"])).code is RejectionCode.UNKNOWN_COMMAND
    missing = rejected(payload())
    assert (missing.code, missing.reason) == (RejectionCode.INVALID, "command is missing")


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"command": "pause"}, "reason is missing (required by pause)"),
        ({"command": "pause", "reason": ""}, "reason is empty"),
        ({"command": "pause", "reason": "x" * 65}, "reason is 65 characters (at most 64)"),
        ({"command": "pause", "reason": 3}, "reason must be a string, not int"),
        ({"command": "dial"}, "number is missing (required by dial)"),
        ({"command": "dial", "number": "call mum"}, "'call mum' is not a phone number"),
        ({"command": "disposition"}, "code is missing (required by disposition)"),
        (
            {"command": "disposition", "code": "cb", "callback_at": "2026-05-04T09:30:00"},
            "has no time zone",
        ),
        (
            {"command": "disposition", "code": "cb", "callback_at": "tomorrow"},
            "'tomorrow' is not an ISO-8601 date and time",
        ),
        ({"command": "ready", "reason": "x"}, "field 'reason' is not allowed in ready"),
        ({"command": "dial", "number": "123", "campaign": "c"}, "field 'campaign' is not allowed"),
    ],
)
def test_missing_extra_or_bad_fields_are_invalid(fields: dict[str, Any], complaint: str) -> None:
    rejection = rejected(payload(**fields))
    assert rejection.code is RejectionCode.INVALID
    assert complaint in rejection.reason
    assert rejection.request_id == "r-1"


def test_every_field_problem_is_listed() -> None:
    rejection = rejected(payload(command="disposition", callback_at="later", memo="n", note=1))
    assert rejection.reason == (
        "field 'memo' is not allowed in disposition; code is missing (required by disposition); "
        "callback_at 'later' is not an ISO-8601 date and time; note must be a string, not int"
    )


def test_replies_are_json_with_the_schema_and_the_request_id() -> None:
    command = parse(payload(command="pause", reason="lunch"))
    assert isinstance(command, Command)
    assert json.loads(reply_payload(command, Reply({"state": "paused"}))) == {
        "schema": 1,
        "id": "r-1",
        "command": "pause",
        "ok": True,
        "data": {"state": "paused"},
    }
    assert json.loads(refusal_payload(command, "refused", "not signed in")) == {
        "schema": 1,
        "id": "r-1",
        "command": "pause",
        "ok": False,
        "code": "refused",
        "reason": "not signed in",
    }
    rejection = rejected(payload(command="ready", token="nope"))
    assert json.loads(rejection_payload(rejection)) == {
        "schema": 1,
        "id": "r-1",
        "ok": False,
        "code": "bad_credentials",
        "reason": "token does not match agent 'a1'",
    }
