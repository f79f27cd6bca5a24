"""The MQTT topic tree: where each kind of message goes, and which names are refused."""

from __future__ import annotations

import pytest

from metrics.mqtt.topics import MAX_SEGMENT, TopicError, TopicTree, check_segment, default_prefix

TREE = TopicTree("dialer/node-1")


def test_every_topic_of_the_tree_sits_under_the_prefix() -> None:
    assert TREE.agent_state("a1") == "dialer/node-1/agents/a1/state"
    assert TREE.agent_quota("a1") == "dialer/node-1/agents/a1/quota"
    assert TREE.call_events("c-42") == "dialer/node-1/calls/c-42/events"
    assert TREE.campaign_stats("spring") == "dialer/node-1/campaigns/spring/stats"
    assert TREE.agent_commands("a1") == "dialer/node-1/agents/a1/commands"
    assert TREE.agent_replies("a1") == "dialer/node-1/agents/a1/replies"
    assert TREE.commands_filter == "dialer/node-1/agents/+/commands"


def test_the_default_prefix_names_the_node() -> None:
    assert default_prefix("node-7") == "dialer/node-7"
    with pytest.raises(TopicError, match="node"):
        default_prefix("a/b")


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("", "is empty"),
        ("a/b", "contains '/'"),
        ("a+", "contains '+'"),
        ("#", "contains '#'"),
        ("x" * (MAX_SEGMENT + 1), f"{MAX_SEGMENT + 1} characters"),
        ("nul\x00", "NUL"),
    ],
)
def test_a_name_that_is_not_one_segment_is_refused_with_the_reason(
    name: str, complaint: str
) -> None:
    with pytest.raises(TopicError, match="agent") as caught:
        TREE.agent_state(name)
    assert complaint in str(caught.value)


def test_a_segment_of_exactly_the_limit_is_accepted() -> None:
    name = "x" * MAX_SEGMENT
    assert TREE.call_events(name) == f"dialer/node-1/calls/{name}/events"


def test_every_problem_of_a_name_is_listed() -> None:
    with pytest.raises(TopicError) as caught:
        check_segment("campaign", "+/#")
    assert caught.value.problems == (
        "campaign '+/#' contains '/' (a level separator)",
        "campaign '+/#' contains '+' (a wildcard)",
        "campaign '+/#' contains '#' (a wildcard)",
    )


def test_every_bad_level_of_a_prefix_is_listed() -> None:
    with pytest.raises(TopicError) as caught:
        TopicTree("$SYS//a+")
    problems = caught.value.problems
    assert "prefix level 2 is empty" in problems
    assert "prefix level 3 'a+' contains '+' (a wildcard)" in problems
    assert any("reserved for the broker" in p for p in problems)


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(TopicError, match="empty"):
        TopicTree("")


def test_the_agent_of_a_commands_topic_is_read_back() -> None:
    assert TREE.command_agent(TREE.agent_commands("a1")) == "a1"
    # Judged later by the command parser, which answers it: not silently lost here.
    assert TREE.command_agent("dialer/node-1/agents//commands") == ""
    assert TREE.command_agent("dialer/node-1/agents/commands") is None
    assert TREE.command_agent("dialer/node-1/agents/a/b/commands") is None
    assert TREE.command_agent("dialer/node-2/agents/a1/commands") is None
    assert TREE.command_agent(TREE.agent_replies("a1")) is None


def test_a_reply_goes_next_to_the_commands_it_answers() -> None:
    assert TREE.reply_topic_for(TREE.agent_commands("a1")) == TREE.agent_replies("a1")
    assert TREE.reply_topic_for("dialer/node-1/agents//commands") == "dialer/node-1/agents//replies"
    assert TREE.reply_topic_for("elsewhere/a1/commands") is None
