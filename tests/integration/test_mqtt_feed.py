"""The MQTT feed against a real mosquitto on loopback, with aiomqtt as the other side too.

1. Events of several interleaved calls arrive in order per call; retained
   agent state, quota progress and campaign stats greet a late subscriber.
2. A broker restart in the middle of a stream loses nothing inside the
   outbox bound, and the agent state is published again after it; beyond the
   bound the oldest are dropped and counted.
3. Bad commands (credentials, malformed, oversized, another agent's session)
   are answered on the reply topic with a reason and never reach the
   handler; a valid one reaches it and its reply comes back.
4. Broker authentication (a wrong password: not connected, retrying, no
   crash) and TLS.

A missing mosquitto fails these tests in CI (CI=true) and skips them, with
the reason, elsewhere.
"""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from mqtt_support import WAIT, WALL_PASSWORD, WALL_USER, Received, subscriber
from peers.errors import PeerMissingError
from peers.mosquitto import Mosquitto
from support import peer_missing

from dialer.events import (
    AgentStateChanged,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallCleared,
    CallEnded,
    CallEvent,
    CallOutcome,
    CallStarted,
    ClearedBy,
    Direction,
    DispositionSet,
    HangupBy,
    PhoneRegistered,
)
from metrics.mqtt.commands import Command, CommandName, Reply
from metrics.mqtt.feed import MqttFeed, backoff_delay
from quota.progress import QuotaProgress

pytestmark = pytest.mark.integration

PREFIX = "dialer/test-node"
FEED_USER, FEED_PASSWORD = "dialer", "feed-pw"
USERS = {FEED_USER: FEED_PASSWORD, WALL_USER: WALL_PASSWORD}
SECRETS = {"a1": "tok-a1", "a2": "tok-a2"}
FAST_BACKOFF = (0.05, 0.2)


def mosquitto(**options: Any) -> Mosquitto:
    try:
        return Mosquitto(**options)
    except PeerMissingError as exc:
        peer_missing(str(exc))


@pytest.fixture
async def broker() -> AsyncIterator[Mosquitto]:
    broker = mosquitto(users=USERS)
    async with broker:
        yield broker


def feed_for(broker: Mosquitto, **options: Any) -> MqttFeed:
    settings: dict[str, Any] = {
        "prefix": PREFIX,
        "username": FEED_USER,
        "password": FEED_PASSWORD,
        "secrets": SECRETS,
        "backoff_s": FAST_BACKOFF,
    }
    settings.update(options)
    return MqttFeed(broker.host, broker.port, **settings)


# -- the other side: an aiomqtt subscriber ------------------------------------


# -- events -------------------------------------------------------------------


def call_events(call_id: str, agent: str, start_ms: int) -> list[CallEvent]:
    """One answered, bridged, dispositioned call, in the order the dialer publishes it."""
    at = [start_ms + k * 1_000 for k in range(7)]
    return [
        CallAssigned(
            at_ms=at[0],
            mono=0.0,
            call_id=call_id,
            campaign="spring",
            lead_id="l-1",
            agent=agent,
            mode="predictive",
            direction=Direction.OUTBOUND,
            number="+4930123456",
        ),
        CallStarted(at_ms=at[1], mono=1.0, call_id=call_id, target="sip:+4930123456@trunk"),
        CallAnswered(at_ms=at[2], mono=2.0, call_id=call_id, status=200),
        CallBridged(at_ms=at[3], mono=3.0, call_id=call_id, agent_leg=f"leg-{agent}"),
        CallEnded(
            at_ms=at[4],
            mono=4.0,
            call_id=call_id,
            outcome=CallOutcome.ANSWERED,
            status=200,
            q850_cause=16,
            hangup_by=HangupBy.REMOTE,
        ),
        CallCleared(at_ms=at[5], mono=5.0, call_id=call_id, by=ClearedBy.CUSTOMER),
        DispositionSet(at_ms=at[6], mono=6.0, call_id=call_id, agent=agent, code="sale"),
    ]


def interleaved(calls: list[list[CallEvent]], seed: int) -> list[CallEvent]:
    """The calls' events mixed at random, each call's own order kept."""
    queues = [list(call) for call in calls]
    rng = random.Random(seed)
    mixed: list[CallEvent] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        mixed.append(queue.pop(0))
    return mixed


def numbered(call_id: str, count: int, first: int = 0) -> list[CallEvent]:
    """``count`` events of one call, told apart by their instant ``first``, ``first + 1``..."""
    return [
        CallAnswered(at_ms=n, mono=float(n), call_id=call_id, status=200)
        for n in range(first, first + count)
    ]


def state(agent: str, new: str, previous: str, at_ms: int) -> AgentStateChanged:
    return AgentStateChanged(at_ms=at_ms, mono=0.0, agent=agent, previous=previous, state=new)


def per_call(messages: list[Received]) -> dict[str, list[str]]:
    calls: dict[str, list[str]] = {}
    for message in messages:
        calls.setdefault(message.topic.split("/")[-2], []).append(message.payload.decode())
    return calls


# -- 1. the stream and the retained state ---------------------------------------


async def test_events_of_several_calls_arrive_in_order_per_call(broker: Mosquitto) -> None:
    calls = [call_events(f"c{n}", f"a{n}", n * 1_000_000) for n in range(1, 4)]
    stream = interleaved(calls, seed=8)
    async with (
        subscriber(broker, f"{PREFIX}/calls/+/events") as inbox,
        feed_for(broker) as feed,
    ):
        await feed.wait_until(lambda f: f.connected, WAIT)
        assert all(feed.publish_event(event) for event in stream)
        # Not part of the topic tree: refused, not silently sent somewhere.
        phone = PhoneRegistered(at_ms=1, mono=0.0, extension="201", contact="x", expires=60)
        assert not feed.publish_event(phone)
        got = await inbox.wait_for(f"{PREFIX}/calls/+/events", len(stream))
    assert per_call(got) == {
        f"c{n}": [event.to_json() for event in calls[n - 1]] for n in range(1, 4)
    }
    assert [m.payload.decode() for m in got] == [event.to_json() for event in stream]
    assert all(m.body["schema"] == 1 and not m.retain for m in got)
    assert feed.published == len(stream)
    assert feed.dropped == 0


async def test_a_late_subscriber_finds_the_latest_retained_state(broker: Mosquitto) -> None:
    quota = QuotaProgress(
        agent="a1",
        team="t1",
        day=date(2026, 5, 4),
        counts={"effective_calls": 7.0},
        targets={"effective_calls": 10.0},
    )
    async with feed_for(broker) as feed:
        await feed.wait_until(lambda f: f.connected, WAIT)
        feed.publish_event(state("a1", "ready", "signed_in", 1))
        feed.publish_event(state("a1", "paused", "ready", 2))  # latest wins
        feed.publish_event(state("a2", "ready", "signed_in", 3))
        feed.publish_quota(quota)
        feed.publish_campaign("spring", {"dial_level": 1.8, "abandon_rate": 0.021})
        await feed.wait_until(lambda f: not f.outbox, WAIT)
        # a1's first state was replaced before it left: only the latest went out.
        assert feed.published == 4

    async with subscriber(
        broker,
        f"{PREFIX}/agents/+/state",
        f"{PREFIX}/agents/+/quota",
        f"{PREFIX}/campaigns/+/stats",
    ) as inbox:
        states = await inbox.wait_for(f"{PREFIX}/agents/+/state", 2)
        quotas = await inbox.wait_for(f"{PREFIX}/agents/+/quota", 1)
        stats = await inbox.wait_for(f"{PREFIX}/campaigns/+/stats", 1)
    assert {m.topic: m.body["state"] for m in states} == {
        f"{PREFIX}/agents/a1/state": "paused",
        f"{PREFIX}/agents/a2/state": "ready",
    }
    assert all(m.retain for m in [*states, *quotas, *stats])
    assert quotas[0].topic == f"{PREFIX}/agents/a1/quota"
    assert quotas[0].payload.decode() == quota.to_json()
    assert stats[0].topic == f"{PREFIX}/campaigns/spring/stats"
    assert stats[0].body == {
        "schema": 1,
        "kind": "campaign_stats",
        "campaign": "spring",
        "stats": {"dial_level": 1.8, "abandon_rate": 0.021},
    }


# -- 2. the broker goes away ------------------------------------------------------


async def test_a_broker_restart_mid_stream_loses_nothing_and_state_comes_back(
    broker: Mosquitto,
) -> None:
    calls = f"{PREFIX}/calls/+/events"
    states = f"{PREFIX}/agents/+/state"
    a1_ready = state("a1", "ready", "signed_in", 1)
    before = numbered("c1", 10)
    during = interleaved([numbered("c1", 100, first=10), numbered("c2", 100)], seed=3)

    # A wallboard that is away for the whole run, with a persistent session: the
    # broker queues what it is sent and saves the queue when it stops. (One that
    # is connected at the stop may get its last messages twice, as QoS 1 allows.)
    async with subscriber(broker, calls, states, identifier="wall-1", clean=False):
        pass
    async with feed_for(broker, outbox_limit=1_000) as feed:
        await feed.wait_until(lambda f: f.connected, WAIT)
        async with subscriber(broker, calls, states) as live:
            feed.publish_event(a1_ready)
            for event in before:
                feed.publish_event(event)
            first = await live.wait_for(calls, len(before))
            await live.wait_for(states, 1)
            await feed.wait_until(lambda f: not f.outbox, WAIT)

        await broker.stop()
        await feed.wait_until(lambda f: not f.connected, WAIT)
        for event in during:
            assert feed.publish_event(event)
        assert len(feed.outbox) == len(during)
        await broker.start()
        await feed.wait_until(lambda f: f.connected and not f.outbox, WAIT)
        assert feed.reconnects == 1
        assert feed.dropped == 0

    async with subscriber(broker, identifier="wall-1", clean=False) as wall:
        queued = await wall.wait_for(calls, len(before) + len(during))
        state_copies = await wall.wait_for(states, 2)
    async with subscriber(broker, f"{PREFIX}/agents/a1/state") as late:
        retained = await late.wait_for(f"{PREFIX}/agents/a1/state", 1)

    assert [m.payload.decode() for m in first] == [e.to_json() for e in before]
    assert [m.payload.decode() for m in queued] == [e.to_json() for e in [*before, *during]]
    assert len(wall.on(calls)) == len(before) + len(during)  # nothing twice either
    # Sent before the stop, and again by the feed once it was back: the republished state.
    assert [m.payload.decode() for m in state_copies] == [a1_ready.to_json()] * 2
    assert [(m.payload.decode(), m.retain) for m in retained] == [(a1_ready.to_json(), True)]


async def test_beyond_the_outbox_bound_the_oldest_are_dropped_and_counted() -> None:
    broker = mosquitto(users=USERS)
    async with broker:
        # A persistent session first, so that what arrives later waits for the wallboard.
        async with subscriber(broker, f"{PREFIX}/calls/+/events", identifier="w2", clean=False):
            pass
        await broker.stop()
        events = numbered("c9", 50)
        async with feed_for(broker, outbox_limit=20) as feed:
            # The broker is away from the start: the feed keeps trying and keeps the events.
            await feed.wait_until(lambda f: f.connect_failures >= 2, WAIT)
            assert not feed.connected
            for event in events:
                feed.publish_event(event)
            assert (len(feed.outbox), feed.dropped) == (20, 30)
            await broker.start()
            await feed.wait_until(lambda f: f.connected and not f.outbox, WAIT)
            assert feed.reconnects == 0  # the first connection, not a reconnection
        async with subscriber(broker, identifier="w2", clean=False) as inbox:
            got = await inbox.wait_for(f"{PREFIX}/calls/+/events", 20)
    assert [m.payload.decode() for m in got] == [e.to_json() for e in events[30:]]
    assert feed.published == 20


# -- 3. commands --------------------------------------------------------------------


async def test_bad_commands_are_answered_with_a_reason_and_never_reach_the_handler(
    broker: Mosquitto,
) -> None:
    handled: list[Command] = []

    async def handler(command: Command) -> Reply:
        handled.append(command)
        if command.name is CommandName.DIAL:
            raise ValueError("agent a1 is not signed in")
        return Reply({"state": "paused"})

    def command(agent: str, request_id: str, **fields: Any) -> bytes:
        body = {"schema": 1, "id": request_id, "agent": agent, "token": SECRETS[agent]}
        return json.dumps({**body, **fields}).encode()

    def topic(agent: str) -> str:
        return f"{PREFIX}/agents/{agent}/commands"

    sent: list[tuple[str, str | bytes]] = [
        ("a1", json.dumps({**json.loads(command("a1", "r1", command="ready")), "token": "no"})),
        ("a1", "{not json"),
        ("a1", command("a1", "r3", command="pause", reason="x" * 600)),
        ("a2", command("a1", "r4", command="hang_up")),  # a1's token on a2's session
        ("a1", command("a1", "r5", command="pause", reason="lunch")),
        ("a1", command("a1", "r6", command="dial", number="+4930123456")),
    ]
    async with (
        subscriber(broker, f"{PREFIX}/agents/+/replies") as desk,
        feed_for(broker, handler=handler, max_command_bytes=512) as feed,
    ):
        await feed.wait_until(lambda f: f.connected, WAIT)
        for agent, payload in sent:
            await desk.client.publish(topic(agent), payload, qos=1)
        replies = await desk.wait_for(f"{PREFIX}/agents/+/replies", len(sent))

    # Each answer on the replies topic next to the commands topic it came on, in order.
    answers = [(m.topic.split("/")[-2], m.body) for m in replies]
    assert [(agent, body["id"], body.get("code")) for agent, body in answers] == [
        ("a1", "r1", "bad_credentials"),
        ("a1", None, "malformed"),  # its id could not be read
        ("a1", None, "oversized"),  # not even decoded
        ("a2", "r4", "wrong_session"),
        ("a1", "r5", None),
        ("a1", "r6", "refused"),
    ]
    reasons = [body.get("reason") for _, body in answers]
    assert reasons[0] == "token does not match agent 'a1'"
    assert "not JSON" in reasons[1]
    assert "(at most 512)" in reasons[2]
    assert reasons[3] == "a command of agent 'a1' for another agent's session ('a2')"
    assert reasons[5] == "agent a1 is not signed in"
    assert answers[0][1] == {
        "schema": 1,
        "id": "r1",
        "ok": False,
        "code": "bad_credentials",
        "reason": "token does not match agent 'a1'",
    }
    assert answers[4][1] == {
        "schema": 1,
        "id": "r5",
        "command": "pause",
        "ok": True,
        "data": {"state": "paused"},
    }
    assert answers[5][1]["ok"] is False
    assert [(c.request_id, c.name, c.agent) for c in handled] == [
        ("r5", CommandName.PAUSE, "a1"),
        ("r6", CommandName.DIAL, "a1"),
    ]
    assert handled[0].reason == "lunch"
    assert feed.rejected == {
        "bad_credentials": 1,
        "malformed": 1,
        "oversized": 1,
        "wrong_session": 1,
    }
    assert feed.refused == 1


# -- 4. broker authentication and TLS -------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [{"password": "wrong"}, {"username": None, "password": None}],
    ids=["wrong-password", "anonymous"],
)
async def test_refused_broker_credentials_leave_the_feed_retrying_not_crashed(
    broker: Mosquitto, credentials: dict[str, Any]
) -> None:
    async with feed_for(broker, **credentials) as feed:
        feed.publish_event(state("a1", "ready", "signed_in", 1))
        await feed.wait_until(lambda f: f.connect_failures >= 3, WAIT)
        assert not feed.connected
        assert feed.last_error is not None and "authori" in feed.last_error.lower()
        assert len(feed.outbox) == 1  # kept for when the credentials are fixed
    assert feed.published == 0


async def test_the_feed_speaks_tls_to_the_broker() -> None:
    broker = mosquitto(users=USERS, tls=True)
    async with broker:
        trusted = ssl.create_default_context(cafile=str(broker.ca_file))
        async with feed_for(broker, tls=trusted) as feed:
            await feed.wait_until(lambda f: f.connected, WAIT)
            feed.publish_event(state("a1", "ready", "signed_in", 1))
            await feed.wait_until(lambda f: f.published == 1, WAIT)
        # A feed that does not trust the broker's certificate never connects.
        async with feed_for(broker, tls=ssl.create_default_context()) as untrusting:
            await untrusting.wait_until(lambda f: f.connect_failures >= 2, WAIT)
            assert not untrusting.connected
            assert "certificate" in (untrusting.last_error or "").lower()


# -- the back-off schedule -------------------------------------------------------------


def test_the_back_off_doubles_up_to_its_cap_with_jitter_below_the_ceiling() -> None:
    ceilings = [backoff_delay(n, 0.5, 30.0, draw=0.999999) for n in range(1, 10)]
    assert ceilings == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0], rel=1e-5)
    floors = [backoff_delay(n, 0.5, 30.0, draw=0.0) for n in range(1, 10)]
    assert floors == pytest.approx([c / 2 for c in ceilings], rel=1e-5)
    assert backoff_delay(10_000, 0.5, 30.0, draw=0.5) == pytest.approx(22.5)
