"""The live hub's fan-out: who gets which event, and a slow reader's bounded queue."""

from __future__ import annotations

import json
from datetime import date

from dialer.api.desk import DeskTracker
from dialer.api.live import QUEUE_LIMIT, LiveHub, frame
from dialer.api.users import Role, User
from dialer.events import AgentStateChanged, CallAssigned, Direction, Event
from quota.progress import QuotaProgress

AGENT_A1 = User(1, "a1", "A1", Role.AGENT, "en", "a1", "t1")
AGENT_A2 = User(2, "a2", "A2", Role.AGENT, "zh-CN", "a2", "t1")
SUPERVISOR = User(3, "boss", "Boss", Role.SUPERVISOR, "en", None, "t1")
QA = User(4, "qa", "QA", Role.QA, "en", None, None)


def assigned(call_id: str, agent: str) -> Event:
    return CallAssigned(
        call_id=call_id,
        at_ms=1000,
        mono=1.0,
        campaign="c1",
        lead_id=None,
        agent=agent,
        mode="manual",
        direction=Direction.OUTBOUND,
        number="+8613800000001",
    )


def progress(agent: str, done: float) -> QuotaProgress:
    return QuotaProgress(
        agent=agent,
        team="t1",
        day=date(2026, 12, 3),
        counts={"effective_calls": done},
        targets={"effective_calls": 10.0},
    )


def test_agents_get_only_their_own_desk_and_calls_watchers_get_all_calls() -> None:
    hub = LiveHub(DeskTracker([]))
    a1, a2, boss, qa = (hub.subscribe(u) for u in (AGENT_A1, AGENT_A2, SUPERVISOR, QA))
    hub.on_event(assigned("call-1", "a1"))
    call = ("call", json.dumps({"call_id": "call-1", "kind": "call_assigned"}))
    assert (list(a1.queue), a1.desk_changed) == ([call], True)
    assert (list(a2.queue), a2.desk_changed) == ([], False)
    assert (list(boss.queue), boss.desk_changed) == ([call], False)
    assert list(qa.queue) == []  # QA reviews recordings; it does not watch the floor
    hub.on_event(
        AgentStateChanged(at_ms=2000, mono=2.0, agent="a2", previous="ready", state="paused")
    )
    assert a2.desk_changed and a2.wake.is_set()
    assert len(boss.queue) == 1  # a state change is a desk event, not a call event
    # The wallboard is the watchers': marked to be rendered, never queued per change.
    assert boss.floor_changed and not (a1.floor_changed or a2.floor_changed or qa.floor_changed)


def test_quota_progress_goes_to_its_agent_and_watchers_in_their_language() -> None:
    hub = LiveHub(DeskTracker([]))
    a1, a2, boss = (hub.subscribe(u) for u in (AGENT_A1, AGENT_A2, SUPERVISOR))
    hub.on_quota(progress("a2", 4))
    assert list(a1.queue) == []
    [(name, data)] = list(a2.queue)
    body = json.loads(data)
    assert name == "quota"
    assert body["items"] == [
        {
            "metric": "effective_calls",
            "label": "有效通话",
            "target": 10.0,
            "done": 4.0,
            "shortfall": 6.0,
            "percent": 40.0,
        }
    ]
    assert json.loads(boss.queue[0][1])["items"][0]["label"] == "Effective calls"


def test_a_team_lead_gets_the_calls_and_quotas_of_the_team_only() -> None:
    lead = User(5, "lead", "Lead", Role.SUPERVISOR, "en", None, "t1")
    teams = {"lead": frozenset({"a1"})}
    hub = LiveHub(DeskTracker([]), team_of=lambda user: teams.get(user.username))
    team_lead, manager = hub.subscribe(lead), hub.subscribe(SUPERVISOR)
    assert (team_lead.team, manager.team) == (frozenset({"a1"}), None)
    hub.on_event(assigned("call-1", "a1"))
    hub.on_event(assigned("call-3", "a3"))  # another team's agent
    hub.on_quota(progress("a1", 1))
    hub.on_quota(progress("a3", 2))
    kinds = [(name, json.loads(data).get("call_id") or json.loads(data)["agent_id"])
             for name, data in team_lead.queue]  # fmt: skip
    assert kinds == [("call", "call-1"), ("quota", "a1")]
    assert len(manager.queue) == 4  # a supervisor without a team watches the floor
    assert team_lead.floor_changed  # the team's wallboard is rendered scoped, on its own


def test_a_slow_reader_loses_the_oldest_entries_and_they_are_counted() -> None:
    hub = LiveHub(DeskTracker([]))
    slow = hub.subscribe(SUPERVISOR)
    for n in range(QUEUE_LIMIT + 5):
        hub.on_quota(progress("a1", n))
    assert len(slow.queue) == QUEUE_LIMIT
    assert slow.dropped == 5
    assert json.loads(slow.queue[0][1])["items"][0]["done"] == 5.0  # 0..4 went first
    hub.unsubscribe(slow)
    assert hub.dropped == 5 and hub.subscriptions == set()
    hub.on_quota(progress("a1", 99))  # nobody listens: nothing is kept
    assert len(slow.queue) == QUEUE_LIMIT


def test_closing_the_hub_ends_every_stream_and_refuses_new_ones() -> None:
    hub = LiveHub(DeskTracker([]))
    open_one = hub.subscribe(AGENT_A1)
    hub.close()
    assert open_one.closed and open_one.wake.is_set()
    late = hub.subscribe(AGENT_A2)
    assert late.closed and late not in hub.subscriptions


def test_frames_are_server_sent_events() -> None:
    assert frame("desk", '{"state":"ready"}') == 'event: desk\ndata: {"state":"ready"}\n\n'
