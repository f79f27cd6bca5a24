"""A real Prometheus scrapes the service while the demo floor runs.

The series are read back through Prometheus's own query API, so what is
checked is what a Grafana board would see: business figures (dial attempts,
bridges, agents by state, quota progress, talk time) and engine figures (SIP
requests, phones registered, the database up).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from peers.ports import free_tcp_port
from peers.prometheus import Prometheus

from dialer.demo import run_demo

pytestmark = pytest.mark.integration

PHONES = 3


def total(result: list[dict[str, Any]]) -> float:
    return sum(float(series["value"][1]) for series in result)


async def test_prometheus_scrapes_the_demo_floor_and_sees_its_business(tmp_path: Path) -> None:
    port = free_tcp_port()
    async with Prometheus(targets=[f"127.0.0.1:{port}"]) as prom:
        demo = asyncio.create_task(
            run_demo(PHONES, 25.0, tmp_path / "floor", metrics_port=port), name="demo"
        )
        try:
            await prom.wait_until('up{job="dialer"}', lambda r: total(r) == 1, 20)
            await prom.wait_until(
                "sum(dialer_phones)", lambda r: bool(r) and total(r) >= PHONES, 15
            )
            registered = await prom.wait_until(
                'dialer_phones{state="registered"}', lambda r: total(r) == PHONES, 15
            )
            assert len(registered) == 1
            await prom.wait_until("sum(dialer_agents)", lambda r: total(r) == PHONES, 15)
            attempts = await prom.wait_until(
                "sum by (campaign) (dialer_dial_attempts_total)", lambda r: total(r) >= 3, 20
            )
            assert all(s["metric"]["campaign"].startswith("demo-") for s in attempts)
            await prom.wait_until("sum(dialer_calls_bridged_total)", lambda r: total(r) >= 1, 20)
            await prom.wait_until("sum(dialer_talk_seconds_count)", lambda r: total(r) >= 1, 20)
            quota = await prom.wait_until(
                'dialer_quota_count{target="dials"}', lambda r: total(r) >= 1, 20
            )
            assert {s["metric"]["agent"] for s in quota} <= {
                f"agent-{1001 + n}" for n in range(PHONES)
            }
            await prom.wait_until(
                'dialer_sip_requests_total{method="REGISTER"}', lambda r: total(r) >= PHONES, 5
            )
            await prom.wait_until("dialer_database_up", lambda r: total(r) == 1, 5)
            for leg in ("customer", "agent"):  # media reception, from the relay's streams
                await prom.wait_until(
                    f'dialer_rtp_packets_received_total{{leg="{leg}"}}', lambda r: total(r) > 0, 10
                )
            # No call id or number ever becomes a label: every label set is bounded.
            names = await prom.api("label/__name__/values")
            labels = await prom.api("labels")
            assert "call_id" not in labels and "number" not in labels, labels
            assert any(name.startswith("dialer_") for name in names)
        finally:
            summary = await demo
    assert summary.ok, summary.render()
    assert summary.metrics_port == port
