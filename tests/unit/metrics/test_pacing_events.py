"""PacingDecided out to the boards: the dial-level gauge, and the retained MQTT pacing topic.

The feed is exercised through its outbox, which is exactly what it hands the
broker (no broker is needed to see what would be sent, and none is faked);
one test, in the integration tier like the other feed tests, has a real
mosquitto carry it to a subscriber that connects afterwards.
"""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from dialer.events import PacingDecided
from metrics.errors import MetricsError
from metrics.mqtt.feed import MqttFeed
from metrics.registry import FloorMetrics

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PREFIX = "dialer/node-1"


def decision(
    campaign: str = "spring", dial_level: float = 1.75, at_ms: int = T0_MS
) -> PacingDecided:
    return PacingDecided(
        at_ms=at_ms,
        mono=12.5,
        campaign=campaign,
        launch=2,
        mode="predictive",
        limit="dial_level",
        dial_level=dial_level,
        ready=1,
        working=4,
        ringing=5,
        waiting=0,
        answer_rate=0.31,
        expected_free=1.4,
        expected_answers=1.55,
        risk=0.02,
        occupancy=0.91,
        abandon_rate_today=0.012,
        abandon_rate_30d=0.018,
    )


def floor_metrics() -> tuple[CollectorRegistry, FloorMetrics]:
    registry = CollectorRegistry()
    metrics = FloorMetrics(registry, now_ms=lambda: T0_MS, tz=ZoneInfo("Asia/Shanghai"))
    return registry, metrics


def dial_level(registry: CollectorRegistry, campaign: str) -> float | None:
    return registry.get_sample_value("dialer_dial_level", {"campaign": campaign})


def feed() -> MqttFeed:
    # Never entered: nothing connects, publish_event only fills the outbox.
    return MqttFeed("127.0.0.1", 1883, prefix=PREFIX, secrets={})


# -- Prometheus ------------------------------------------------------------------


def test_a_pacing_decision_sets_its_campaigns_dial_level() -> None:
    registry, metrics = floor_metrics()
    assert dial_level(registry, "spring") is None
    metrics.observe(decision("spring", 1.75))
    metrics.observe(decision("autumn", 2.5))
    assert dial_level(registry, "spring") == 1.75
    assert dial_level(registry, "autumn") == 2.5
    metrics.observe(decision("spring", 0.0))  # nobody working: nothing in flight per agent
    assert dial_level(registry, "spring") == 0.0
    assert dial_level(registry, "autumn") == 2.5


def test_a_decision_with_an_impossible_dial_level_is_refused_and_the_gauge_kept() -> None:
    registry, metrics = floor_metrics()
    metrics.observe(decision("spring", 1.2))
    with pytest.raises(MetricsError, match="dial level of campaign 'spring'"):
        metrics.observe(decision("spring", -1.0))
    assert dial_level(registry, "spring") == 1.2


# -- MQTT ----------------------------------------------------------------------


def test_a_pacing_decision_is_published_retained_on_the_campaigns_pacing_topic() -> None:
    mqtt = feed()
    event = decision("spring")
    assert mqtt.publish_event(event) is True
    [pending] = mqtt.outbox.waiting()
    message = pending.message
    assert message.topic == f"{PREFIX}/campaigns/spring/pacing"
    assert message.retain is True
    body = json.loads(message.payload)
    assert body == json.loads(event.to_json())
    assert (body["schema"], body["kind"], body["campaign"]) == (1, "pacing_decided", "spring")
    assert (body["dial_level"], body["launch"], body["abandon_rate_30d"]) == (1.75, 2, 0.018)
    assert mqtt.outbox.state[message.topic] == message  # resent on every reconnect


def test_only_each_campaigns_latest_decision_waits_for_the_broker() -> None:
    mqtt = feed()
    for n, campaign in enumerate(["spring", "autumn", "spring"]):
        assert mqtt.publish_event(decision(campaign, dial_level=1.0 + n, at_ms=T0_MS + n))
    waiting = {p.message.topic: json.loads(p.message.payload) for p in mqtt.outbox.waiting()}
    assert set(waiting) == {
        f"{PREFIX}/campaigns/spring/pacing",
        f"{PREFIX}/campaigns/autumn/pacing",
    }
    assert waiting[f"{PREFIX}/campaigns/spring/pacing"]["dial_level"] == 3.0
    assert waiting[f"{PREFIX}/campaigns/autumn/pacing"]["dial_level"] == 2.0
    assert mqtt.dropped == 0


@pytest.mark.parametrize("campaign", ["spring/2026", "spring+", "#", ""])
def test_a_campaign_id_that_is_no_topic_segment_is_counted_not_published(campaign: str) -> None:
    mqtt = feed()
    assert mqtt.publish_event(decision(campaign)) is False
    assert mqtt.unpublishable == 1
    assert len(mqtt.outbox) == 0


@pytest.mark.integration
async def test_a_board_that_connects_later_gets_the_latest_pacing_from_the_broker() -> None:
    from mqtt_support import subscriber
    from peers.errors import PeerMissingError
    from peers.mosquitto import Mosquitto
    from support import peer_missing

    try:
        broker = Mosquitto()
    except PeerMissingError as exc:
        peer_missing(str(exc))
    topic = f"{PREFIX}/campaigns/spring/pacing"
    async with broker:
        async with MqttFeed(broker.host, broker.port, prefix=PREFIX, secrets={}) as mqtt:
            await mqtt.wait_until(lambda f: f.connected, 10.0)
            mqtt.publish_event(decision("spring", 1.5, at_ms=T0_MS))
            mqtt.publish_event(decision("spring", 2.25, at_ms=T0_MS + 1000))
            await mqtt.wait_until(lambda f: len(f.outbox) == 0, 10.0)
        async with subscriber(broker, topic, username=None, password=None) as inbox:
            [message] = await inbox.wait_for(topic, 1)
    assert message.retain
    assert message.body["dial_level"] == 2.25
