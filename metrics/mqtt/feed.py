"""The MQTT feed: the event stream out to the broker, agents' commands in (aiomqtt).

``publish_event``/``publish_quota``/``publish_campaign`` never wait: they
put a message in the ``Outbox`` and return. ``async with feed:`` runs the
part that talks to the broker:

* ``mqtt-connection`` connects (username/password and TLS if given),
  subscribes to every agent's commands topic, queues the latest retained
  state again (the broker may have restarted empty), then sends the outbox
  in order, one QoS 1 message at a time: the next leaves only after the
  broker acknowledged the previous one, so order holds and a lost connection
  loses nothing that is still in the outbox. When the broker goes away it
  reconnects after a jittered exponential back-off.
* ``mqtt-commands`` carries out valid commands one after the other, apart
  from the connection: a broker hiccup never cancels a command half-done,
  and its reply waits in the outbox like everything else.

Commands are judged by ``metrics.mqtt.commands``; a rejected one is answered
on its sender's reply topic and counted in ``rejected`` by code, and never
reaches the handler. The feed's session is clean: commands sent while it is
away are not kept by the broker, since a "dial" acted on minutes late is
worse than one refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, Self

import aiomqtt

from dialer.events import AgentStateChanged, CallEvent, Event, PacingDecided
from metrics.errors import MetricsError
from metrics.mqtt.commands import (
    COMMAND_SCHEMA,
    MAX_COMMAND_BYTES,
    Command,
    Rejection,
    Reply,
    parse_command,
    refusal_payload,
    rejection_payload,
    reply_payload,
)
from metrics.mqtt.outbox import Outbox, Outgoing
from metrics.mqtt.topics import TopicError, TopicTree, segment_problems

log = logging.getLogger(__name__)

CommandHandler = Callable[[Command], Awaitable[Reply]]
QOS = 1
# Enough to ride out a burst of button presses; beyond it the sender is told "busy".
COMMAND_QUEUE = 256
# Doubling stops here: 2**60 times any sane initial delay is far past any cap.
_MAX_DOUBLINGS = 60


class FeedError(MetricsError):
    """The feed was configured or used wrongly; the message names every problem."""


class SupportsToJson(Protocol):
    def to_json(self) -> str: ...


def backoff_delay(failures: int, initial: float, cap: float, draw: float) -> float:
    """Seconds to wait after ``failures`` (>= 1) failed attempts in a row.

    The ceiling doubles from ``initial`` up to ``cap``; ``draw`` in [0, 1)
    places the delay between half the ceiling and the ceiling, so nodes that
    lost the same broker do not all come back in the same instant.
    """
    ceiling = min(cap, initial * 2.0 ** min(max(failures, 1) - 1, _MAX_DOUBLINGS))
    return ceiling / 2 + ceiling / 2 * draw


def _config_problems(
    *,
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    backoff_s: tuple[float, float],
    secrets: Mapping[str, str],
    timeouts: Mapping[str, float],
) -> list[str]:
    problems: list[str] = []
    if not isinstance(host, str) or not host:
        problems.append("host is empty")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"port {port!r} is not a TCP port (1-65535)")
    if password is not None and username is None:
        problems.append("a password is given without a username")
    initial, cap = backoff_s
    if not initial > 0 or not cap >= initial:
        problems.append(f"backoff_s {backoff_s!r} must be (initial > 0, cap >= initial)")
    for name, value in timeouts.items():
        if not value > 0:
            problems.append(f"{name} must be positive, not {value!r}")
    for agent, secret in secrets.items():
        problems += segment_problems(f"agent {agent!r} in secrets", agent)
        if not isinstance(secret, str) or not secret:
            problems.append(f"agent {agent!r} has an empty secret")
    return problems


class MqttFeed:
    """``async with MqttFeed(...) as feed: feed.publish_event(event)``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        outbox_limit: int = 10_000,
        handler: CommandHandler | None = None,
        secrets: Mapping[str, str],
        backoff_s: tuple[float, float] = (0.5, 30.0),
        client_id: str | None = None,
        max_command_bytes: int = MAX_COMMAND_BYTES,
        timeout_s: float = 10.0,
        keepalive_s: int = 30,
        drain_s: float = 2.0,
    ) -> None:
        problems = _config_problems(
            host=host,
            port=port,
            username=username,
            password=password,
            backoff_s=backoff_s,
            secrets=secrets,
            timeouts={"timeout_s": timeout_s, "keepalive_s": keepalive_s, "drain_s": drain_s},
        )
        try:
            self.topics = TopicTree(prefix)
        except TopicError as exc:
            problems += [f"prefix: {problem}" for problem in exc.problems]
        try:
            self.outbox = Outbox(outbox_limit)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise FeedError("bad MQTT feed configuration", problems)
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self._tls = tls
        self._handler = handler
        self._secrets = dict(secrets)
        self._backoff = backoff_s
        self._client_id = client_id
        self._max_command_bytes = max_command_bytes
        self._timeout = timeout_s
        self._keepalive = keepalive_s
        self._drain = drain_s
        self._random = random.Random()

        self.published = 0  # messages the broker acknowledged
        self.rejected: Counter[str] = Counter()  # refused commands, by rejection code
        self.refused = 0  # valid commands the handler refused (ValueError)
        self.handler_errors = 0  # valid commands the handler failed on (a bug)
        self.unpublishable = 0  # events whose ids cannot be topic segments
        self.connected = False
        self.reconnects = 0  # connections made after the first one
        self.connect_failures = 0  # attempts that did not get a connection
        self.last_error: str | None = None

        self._ever_connected = False
        self._wakeup = asyncio.Event()  # the outbox got something
        self._changed = asyncio.Event()  # any of the above moved; replaced on each change
        self._commands: asyncio.Queue[tuple[str, Command]] = asyncio.Queue(COMMAND_QUEUE)
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Stream messages pushed out of the outbox by its bound before the broker took them."""
        return self.outbox.dropped

    # -- publishing (never waits) ------------------------------------------

    def publish_event(self, event: Event) -> bool:
        """Queue ``event`` for its topic; False if it has none or cannot be published.

        Never raises: an event whose agent or call id is not a valid topic
        segment is counted in ``unpublishable`` and logged.
        """
        try:
            if isinstance(event, AgentStateChanged):
                message = Outgoing(self.topics.agent_state(event.agent), _utf8(event), True)
            elif isinstance(event, CallEvent):
                message = Outgoing(self.topics.call_events(event.call_id), _utf8(event), False)
            elif isinstance(event, PacingDecided):
                # Retained: a board that connects sees the campaign's latest pacing at once.
                message = Outgoing(self.topics.campaign_pacing(event.campaign), _utf8(event), True)
            else:
                return False
        except (MetricsError, TypeError, ValueError) as exc:
            self.unpublishable += 1
            log.warning("MQTT feed: cannot publish %s: %s", type(event).__name__, exc)
            return False
        self._put(message)
        return True

    def publish_quota(self, progress: SupportsToJson) -> None:
        """Queue an agent's latest quota progress (retained); its JSON names the agent."""
        body = _json_object("quota progress", progress.to_json())
        agent = body.get("agent")
        if not isinstance(agent, str):
            raise FeedError("quota progress", [f"its JSON has no agent string (got {agent!r})"])
        self._put(Outgoing(self.topics.agent_quota(agent), _encode(body), True))

    def publish_campaign(self, campaign: str, stats: Mapping[str, Any]) -> None:
        """Queue a campaign's latest stats (retained) as ``{"schema":1,...,"stats":{...}}``."""
        topic = self.topics.campaign_stats(campaign)
        body = {
            "schema": COMMAND_SCHEMA,
            "kind": "campaign_stats",
            "campaign": campaign,
            "stats": dict(stats),
        }
        try:
            payload = _encode(body)
        except (TypeError, ValueError) as exc:
            raise FeedError(f"stats of campaign {campaign!r}", [str(exc)]) from None
        self._put(Outgoing(topic, payload, True))

    def _put(self, message: Outgoing) -> None:
        self.outbox.put(message)
        self._wakeup.set()
        self._notify()

    # -- observing ----------------------------------------------------------

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_until(self, predicate: Callable[[MqttFeed], bool], timeout: float) -> None:  # noqa: ASYNC109 (a deadline the caller chooses is the point)
        """Return once ``predicate(feed)`` holds; TimeoutError describing the feed if not."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"MQTT feed: not so within {timeout}s; {self!r}") from None

    def __repr__(self) -> str:
        return (
            f"MqttFeed({self.host}:{self.port}, connected={self.connected}, "
            f"waiting={len(self.outbox)}, published={self.published}, dropped={self.dropped}, "
            f"reconnects={self.reconnects}, failures={self.connect_failures}, "
            f"rejected={dict(self.rejected)}, last_error={self.last_error!r})"
        )

    # -- running --------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise FeedError("MQTT feed", ["already running"])
        self._task = asyncio.create_task(self._run(), name="mqtt-feed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self.connected and len(self.outbox):
            # A clean stop sends what is waiting if the broker is there to take it.
            with contextlib.suppress(TimeoutError):
                await self.wait_until(_drained_or_gone, self._drain)
        task.cancel()
        # asyncio.wait, not `await task`: our own cancellation must still propagate.
        await asyncio.wait({task})
        self.connected = False
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._stay_connected(), name="mqtt-connection")
            if self._handler is not None:
                group.create_task(self._serve_commands(self._handler), name="mqtt-commands")

    async def _stay_connected(self) -> None:
        failures = 0
        while True:
            reached = await self._connection()
            failures = 1 if reached else failures + 1
            delay = backoff_delay(failures, *self._backoff, self._random.random())
            log.debug("MQTT feed: next attempt in %.2fs", delay)
            # A back-off wait, not a poll: nothing can make the broker come back sooner.
            await asyncio.sleep(delay)

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            tls_context=self._tls,
            identifier=self._client_id,
            clean_session=True,
            timeout=self._timeout,
            keepalive=self._keepalive,
        )

    async def _connection(self) -> bool:
        """One connection, from attempt to loss; whether it was established."""
        reached = False
        try:
            async with self._client() as client:
                reached = True
                try:
                    await self._serve(client)
                finally:
                    self.connected = False
                    self._notify()
        except aiomqtt.MqttError as exc:
            self._on_failed(reached, str(exc) or type(exc).__name__)
        except Exception as exc:
            # A bug must not end the feed for good: log it with its traceback, retry.
            log.exception("MQTT feed: connection to %s:%d failed", self.host, self.port)
            self._on_failed(reached, f"{type(exc).__name__}: {exc}")
        return reached

    def _on_connected(self) -> None:
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.connected = True
        self.last_error = None
        log.info("MQTT feed: connected to %s:%d", self.host, self.port)
        self._notify()

    def _on_failed(self, reached: bool, reason: str) -> None:
        if not reached:
            self.connect_failures += 1
        # Logged once per outage, not once per attempt.
        if reached or self.last_error is None:
            log.warning("MQTT feed: broker %s:%d: %s", self.host, self.port, reason)
        self.last_error = reason
        self._notify()

    async def _serve(self, client: aiomqtt.Client) -> None:
        if self._handler is not None:
            await client.subscribe(self.topics.commands_filter, qos=QOS)
        # Connected means ready: commands sent from now on are heard.
        self._on_connected()
        self.outbox.resend_state()
        self._wakeup.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._send(client), name="mqtt-send")
                group.create_task(self._receive(client), name="mqtt-receive")
        except* aiomqtt.MqttError as lost:
            raise lost.exceptions[0] from None

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            pending = self.outbox.peek()
            if pending is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            message = pending.message
            await client.publish(
                message.topic,
                message.payload,
                qos=QOS,
                retain=message.retain,
                timeout=self._timeout,
            )
            self.outbox.sent(pending)
            self.published += 1
            self._notify()

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Take commands off the wire; also how a lost connection is noticed (it raises)."""
        async for message in client.messages:
            topic = str(message.topic)
            agent = self.topics.command_agent(topic)
            reply_topic = self.topics.reply_topic_for(topic)
            if agent is None or reply_topic is None:
                continue
            raw = message.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode()
            result = parse_command(
                agent, payload, secrets=self._secrets, max_bytes=self._max_command_bytes
            )
            if isinstance(result, Rejection):
                self.rejected[result.code.value] += 1
                log.info("MQTT command on %s rejected (%s): %s", topic, result.code, result.reason)
                self._put(Outgoing(reply_topic, rejection_payload(result)))
                continue
            try:
                self._commands.put_nowait((reply_topic, result))
            except asyncio.QueueFull:
                self.refused += 1
                busy = refusal_payload(result, "busy", "too many commands waiting; try again")
                self._put(Outgoing(reply_topic, busy))

    async def _serve_commands(self, handler: CommandHandler) -> None:
        while True:
            reply_topic, command = await self._commands.get()
            try:
                reply = await handler(command)
                payload = reply_payload(command, reply)
            except ValueError as exc:
                self.refused += 1
                payload = refusal_payload(command, "refused", str(exc))
            except Exception:
                self.handler_errors += 1
                log.exception("MQTT command %s of %s failed", command.name, command.agent)
                payload = refusal_payload(command, "error", "the service failed to carry it out")
            self._put(Outgoing(reply_topic, payload))


def _drained_or_gone(feed: MqttFeed) -> bool:
    return not feed.outbox or not feed.connected


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _utf8(event: Event) -> bytes:
    return event.to_json().encode("utf-8")


def _json_object(what: str, text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedError(what, [f"to_json() is not JSON: {exc}"]) from None
    if not isinstance(body, dict):
        raise FeedError(what, ["to_json() is not a JSON object"])
    if "schema" not in body:
        raise FeedError(what, ["to_json() has no schema version"])
    return body
