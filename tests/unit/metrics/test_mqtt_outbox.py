"""The bounded outbox: order, the bound on the stream, and state that is never lost.

The property test drives an outbox through random puts, sends, PUBACKs,
lost connections and reconnects, and after every step checks the promises
directly (bound, conservation, oldest dropped first, order kept) and against
a plain list model of what should be waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.mqtt.outbox import Outbox, Outgoing, Pending


def stream(n: int) -> Outgoing:
    return Outgoing("p/calls/c/events", str(n).encode())


def state(topic: str, n: int) -> Outgoing:
    return Outgoing(f"p/agents/{topic}/state", str(n).encode(), retain=True)


def drain(outbox: Outbox) -> list[Outgoing]:
    sent = []
    while (pending := outbox.peek()) is not None:
        assert outbox.sent(pending)
        sent.append(pending.message)
    return sent


def test_messages_leave_in_the_order_they_were_put() -> None:
    outbox = Outbox(10)
    messages = [stream(1), state("a1", 2), stream(3), state("a2", 4), stream(5)]
    for message in messages:
        outbox.put(message)
    assert len(outbox) == 5
    assert drain(outbox) == messages
    assert len(outbox) == 0


def test_a_full_stream_drops_its_oldest_and_counts_it() -> None:
    outbox = Outbox(3)
    for n in range(1, 6):
        outbox.put(stream(n))
    assert outbox.dropped == 2
    assert drain(outbox) == [stream(3), stream(4), stream(5)]


def test_state_is_not_bounded_and_never_dropped() -> None:
    outbox = Outbox(1)
    for n in range(5):
        outbox.put(state(f"a{n}", n))
        outbox.put(stream(n))
    assert outbox.dropped == 4
    assert drain(outbox) == [*(state(f"a{n}", n) for n in range(5)), stream(4)]


def test_newer_state_replaces_waiting_state_and_takes_its_turn_then() -> None:
    outbox = Outbox(10)
    outbox.put(state("a1", 1))
    outbox.put(stream(2))
    outbox.put(state("a1", 3))
    assert drain(outbox) == [stream(2), state("a1", 3)]


def test_state_replaced_while_on_the_wire_is_sent_again_in_its_newer_form() -> None:
    outbox = Outbox(10)
    outbox.put(state("a1", 1))
    on_the_wire = outbox.peek()
    assert on_the_wire is not None
    outbox.put(state("a1", 2))
    assert not outbox.sent(on_the_wire)
    assert drain(outbox) == [state("a1", 2)]


def test_a_message_unacknowledged_when_the_connection_drops_goes_out_again() -> None:
    outbox = Outbox(10)
    outbox.put(stream(1))
    outbox.put(stream(2))
    lost = outbox.peek()  # published, then the broker vanished before its PUBACK
    assert lost is not None and lost.message == stream(1)
    assert drain(outbox) == [stream(1), stream(2)]


def test_every_reconnect_queues_the_latest_state_again() -> None:
    outbox = Outbox(10)
    outbox.put(state("a1", 1))
    outbox.put(state("a1", 2))
    outbox.put(state("a2", 3))
    assert drain(outbox) == [state("a1", 2), state("a2", 3)]
    assert outbox.resend_state() == 2
    assert outbox.resend_state() == 0  # already waiting: not twice
    assert drain(outbox) == [state("a1", 2), state("a2", 3)]
    assert dict(outbox.state) == {
        state("a1", 0).topic: state("a1", 2),
        state("a2", 0).topic: state("a2", 3),
    }


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_the_limit_must_be_a_positive_integer(limit: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        Outbox(limit)  # type: ignore[arg-type]


# -- property: random runs against the promises and a list model ---------------

TOPICS = ("a1", "a2", "a3")
OPS = st.one_of(
    st.just(("stream", "")),
    st.tuples(st.just("state"), st.sampled_from(TOPICS)),
    st.just(("take", "")),
    st.just(("ack", "")),
    st.just(("lose", "")),
)


@dataclass
class Run:
    limit: int
    outbox: Outbox = field(init=False)
    # The model: what should be waiting, oldest first, as (number, topic or None).
    model: list[tuple[int, str | None]] = field(default_factory=list)
    latest: dict[str, int] = field(default_factory=dict)  # topic -> number of the latest put
    stream_puts: list[int] = field(default_factory=list)
    delivered_stream: list[int] = field(default_factory=list)
    delivered_state: dict[str, list[int]] = field(default_factory=dict)
    in_flight: Pending | None = None
    counter: int = 0

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.limit)

    def step(self, op: str, topic: str) -> None:
        if op == "stream":
            self.counter += 1
            self.outbox.put(stream(self.counter))
            self.stream_puts.append(self.counter)
            self.model.append((self.counter, None))
            streamed = [entry for entry in self.model if entry[1] is None]
            if len(streamed) > self.limit:
                self.model.remove(streamed[0])
        elif op == "state":
            self.counter += 1
            self.outbox.put(state(topic, self.counter))
            self.latest[topic] = self.counter
            self.model = [entry for entry in self.model if entry[1] != topic]
            self.model.append((self.counter, topic))
        elif op == "take" and self.in_flight is None:
            self.in_flight = self.outbox.peek()
            head = self.model[0] if self.model else None
            assert (self.in_flight is None) == (head is None)
            if self.in_flight is not None:
                assert int(self.in_flight.message.payload) == head[0]  # type: ignore[index]
        elif op == "ack" and self.in_flight is not None:
            self.ack(self.in_flight)
            self.in_flight = None
        elif op == "lose":
            self.in_flight = None
            self.outbox.resend_state()
            for known in self.latest:  # first-seen order, like the outbox's state map
                if all(entry[1] != known for entry in self.model):
                    self.model.append((self.latest[known], known))

    def ack(self, pending: Pending) -> None:
        number = int(pending.message.payload)
        topic = pending.message.topic.split("/")[2] if pending.message.retain else None
        expected = bool(self.model) and self.model[0] == (number, topic)
        assert self.outbox.sent(pending) == expected
        if expected:
            self.model.pop(0)
            if topic is None:
                self.delivered_stream.append(number)
            else:
                self.delivered_state.setdefault(topic, []).append(number)

    def check(self) -> None:
        outbox = self.outbox
        waiting = [int(p.message.payload) for p in outbox.waiting()]
        assert waiting == [number for number, _ in self.model]
        assert outbox.stream_waiting <= self.limit
        waiting_stream = [int(p.message.payload) for p in outbox.waiting() if not p.message.retain]
        # Every stream message is exactly one of: delivered, waiting, dropped.
        assert len(self.stream_puts) == (
            len(self.delivered_stream) + len(waiting_stream) + outbox.dropped
        )
        assert sorted(self.delivered_stream) == self.delivered_stream
        assert len(set(self.delivered_stream)) == len(self.delivered_stream)
        dropped = set(self.stream_puts) - set(self.delivered_stream) - set(waiting_stream)
        assert len(dropped) == outbox.dropped
        if dropped and waiting_stream:
            assert max(dropped) < min(waiting_stream), "only the oldest are dropped"
        for topic, number in self.latest.items():
            assert int(outbox.state[state(topic, 0).topic].payload) == number
            is_waiting = any(entry == (number, topic) for entry in self.model)
            was_sent = self.delivered_state.get(topic, [])[-1:] == [number]
            assert is_waiting or was_sent, f"latest state of {topic} lost"


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(min_value=1, max_value=5), ops=st.lists(OPS, max_size=80))
def test_random_runs_keep_every_promise(limit: int, ops: list[tuple[str, str]]) -> None:
    run = Run(limit)
    for op, topic in ops:
        run.step(op, topic)
        run.check()
    # The broker comes back for good: what is left goes out, and state ends up current.
    run.step("lose", "")
    while (pending := run.outbox.peek()) is not None:
        run.ack(pending)
    run.check()
    assert len(run.outbox) == 0
    for topic, number in run.latest.items():
        assert run.delivered_state[topic][-1] == number
