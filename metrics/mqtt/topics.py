"""The MQTT topic tree, under one configurable prefix (``dialer/<node>`` by default).

::

    <prefix>/agents/<agent>/state        retained   latest AgentStateChanged
    <prefix>/agents/<agent>/quota        retained   latest quota progress
    <prefix>/calls/<call_id>/events      QoS 1      every event of the call, in order
    <prefix>/campaigns/<campaign>/stats  retained   latest campaign stats
    <prefix>/agents/<agent>/commands     agent -> service
    <prefix>/agents/<agent>/replies      service -> agent

Every name put into a topic is one segment: a ``/`` would move it elsewhere
in the tree, and ``+`` or ``#`` would turn a subscriber's exact topic into a
wildcard. Segments are checked here, once, so that no other module builds a
topic by string concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrics.errors import MetricsError

MAX_SEGMENT = 64
DEFAULT_ROOT = "dialer"

_AGENTS = "agents"
_COMMANDS = "commands"
_REPLIES = "replies"


class TopicError(MetricsError):
    """A name cannot be used as a topic segment (or a prefix is not a valid topic)."""


def segment_problems(what: str, value: object) -> list[str]:
    """Why ``value`` cannot be one topic segment; empty when it can."""
    if not isinstance(value, str):
        return [f"{what} must be a string, not {type(value).__name__}"]
    if value == "":
        return [f"{what} is empty"]
    problems: list[str] = []
    if len(value) > MAX_SEGMENT:
        problems.append(
            f"{what} {value[:20]!r}... is {len(value)} characters (at most {MAX_SEGMENT})"
        )
    for char, meaning in (("/", "a level separator"), ("+", "a wildcard"), ("#", "a wildcard")):
        if char in value:
            problems.append(f"{what} {value!r} contains {char!r} ({meaning})")
    if "\x00" in value:
        # MQTT 3.1.1 §1.5.3: U+0000 must not appear in a UTF-8 string.
        problems.append(f"{what} {value!r} contains a NUL character")
    return problems


def check_segment(what: str, value: str) -> str:
    """``value`` if it can be one topic segment; TopicError naming every problem if not."""
    problems = segment_problems(what, value)
    if problems:
        raise TopicError(f"bad MQTT topic segment for {what}", problems)
    return value


def default_prefix(node: str) -> str:
    return f"{DEFAULT_ROOT}/{check_segment('node', node)}"


@dataclass(frozen=True, slots=True)
class TopicTree:
    """Every topic the feed publishes or subscribes to, under ``prefix``."""

    prefix: str

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or self.prefix == "":
            raise TopicError("bad MQTT topic prefix", ["the prefix is empty"])
        problems: list[str] = []
        for index, part in enumerate(self.prefix.split("/")):
            problems += segment_problems(f"prefix level {index + 1}", part)
        if self.prefix.startswith("$"):
            # MQTT 3.1.1 §4.7.2: topics starting with $ are the broker's own.
            problems.append(f"prefix {self.prefix!r} starts with '$' (reserved for the broker)")
        if problems:
            raise TopicError(f"bad MQTT topic prefix {self.prefix!r}", problems)

    def agent_state(self, agent: str) -> str:
        return f"{self.prefix}/{_AGENTS}/{check_segment('agent', agent)}/state"

    def agent_quota(self, agent: str) -> str:
        return f"{self.prefix}/{_AGENTS}/{check_segment('agent', agent)}/quota"

    def call_events(self, call_id: str) -> str:
        return f"{self.prefix}/calls/{check_segment('call id', call_id)}/events"

    def campaign_stats(self, campaign: str) -> str:
        return f"{self.prefix}/campaigns/{check_segment('campaign', campaign)}/stats"

    def campaign_pacing(self, campaign: str) -> str:
        return f"{self.prefix}/campaigns/{check_segment('campaign', campaign)}/pacing"

    def agent_commands(self, agent: str) -> str:
        return f"{self.prefix}/{_AGENTS}/{check_segment('agent', agent)}/{_COMMANDS}"

    def agent_replies(self, agent: str) -> str:
        return f"{self.prefix}/{_AGENTS}/{check_segment('agent', agent)}/{_REPLIES}"

    @property
    def commands_filter(self) -> str:
        """The subscription that receives every agent's commands."""
        return f"{self.prefix}/{_AGENTS}/+/{_COMMANDS}"

    def command_agent(self, topic: str) -> str | None:
        """The agent segment of a commands topic, unchecked; None if ``topic`` is not one.

        The segment is returned as the broker delivered it (possibly empty or
        too long): judging it is the command parser's job, which answers it.
        """
        head = f"{self.prefix}/{_AGENTS}/"
        tail = f"/{_COMMANDS}"
        if len(topic) < len(head) + len(tail):
            return None
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        agent = topic[len(head) : len(topic) - len(tail)]
        return None if "/" in agent else agent

    def reply_topic_for(self, command_topic: str) -> str | None:
        """Where the answer to a message on ``command_topic`` goes: its sibling ``replies``.

        Built from the topic the command came on, so that even a command whose
        agent segment is refused (empty, too long) is answered where its sender listens.
        """
        agent = self.command_agent(command_topic)
        if agent is None:
            return None
        return f"{self.prefix}/{_AGENTS}/{agent}/{_REPLIES}"
