"""Dashboards and alert rules against promtool, and a real Prometheus scraping the service.

1. Every Grafana panel query and every alert expression is valid PromQL
   (``promtool check rules``) and names only metrics ``FloorMetrics``
   exports, plus the two documented outside ones (``up``, node_exporter's
   ``node_filesystem_avail_bytes``).
2. ``promtool test rules`` passes on deploy/prometheus/alerts_test.yml.
3. A real Prometheus scrapes a running ``MetricsServer`` fed with a floor's
   events; its query API returns the expected series, every alert rule
   evaluates without error against them, and every dashboard query runs.

A missing promtool or prometheus fails these tests with the reason; it never
skips them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from peers.prometheus import POLL_INTERVAL, Prometheus, promtool
from prometheus_client import CollectorRegistry

from cdr.record import AnsweredBy, CallRecord, Outcome
from dialer.events import (
    CallAssigned,
    CallBridged,
    CallEnded,
    CallOutcome,
    Direction,
    Event,
    HangupBy,
)
from metrics.registry import FloorMetrics
from metrics.server import MetricsServer
from metrics.sources import EngineSnapshot, RtpFigures, TrunkFigures

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yml"
BOARDS = ("floor-overview", "agent-quota", "trunks-phones", "media-quality", "service-health")
OUTSIDE = frozenset({"up", "node_filesystem_avail_bytes"})  # documented in alerts.yml
GRAFANA_VARIABLES = ("instance", "campaign", "team", "target", "trunk")

# -- PromQL metric names, read from an expression ---------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTORS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# An identifier not glued to a number or a dot and not called as a function.
_IDENTIFIER = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, labels and functions aside)."""
    text = _STRINGS.sub('""', expr)
    text = _SELECTORS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def test_the_name_reader_sees_metrics_only() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(dialer_talk_seconds_bucket{campaign=~"$c",'
        ' le!="1"}[15m]))) / on(instance) group_left(x) up{job="dialer"} > 5e9 and bool'
        " dialer_abandon_cap_ratio offset 5m"
    )
    assert metric_names(expr) == {"dialer_talk_seconds_bucket", "up", "dialer_abandon_cap_ratio"}


# -- what the deploy files ask of Prometheus ---------------------------------


def exported_names() -> frozenset[str]:
    metrics = FloorMetrics(CollectorRegistry(), now_ms=lambda: 0, tz=ZoneInfo("UTC"))
    return metrics.names | OUTSIDE


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


_LABEL_VALUES = re.compile(r"label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)\s*")


def dashboard_queries() -> dict[str, str]:
    """``{"board: panel / ref": expr}`` for every panel target and templating selector."""
    queries: dict[str, str] = {}
    for board in BOARDS:
        document = json.loads((DASHBOARDS / f"{board}.json").read_text())
        for panel in _walk(document.get("panels", [])):
            for target in panel.get("targets", []):
                queries[f"{board}: {panel['title']} / {target['refId']}"] = target["expr"]
        for variable in document.get("templating", {}).get("list", []):
            query = variable["query"]["query"]
            found = _LABEL_VALUES.fullmatch(query)
            assert found is not None, f"{board}: variable {variable['name']}: {query!r}"
            if found["selector"]:
                queries[f"{board}: variable {variable['name']}"] = found["selector"]
    return queries


def test_every_dashboard_is_provisioned_with_the_provisioned_datasource() -> None:
    provisioned = (PROVISIONING / "datasources" / "prometheus.yml").read_text()
    uids = re.findall(r"^\s+uid: (\S+)$", provisioned, re.MULTILINE)
    assert uids == ["dialer-prometheus"]
    assert (
        "path: /var/lib/grafana/dashboards/dialer"
        in (PROVISIONING / "dashboards" / "dialer.yml").read_text()
    )
    assert sorted(path.stem for path in DASHBOARDS.glob("*.json")) == sorted(BOARDS)
    seen_uids = set()
    for board in BOARDS:
        document = json.loads((DASHBOARDS / f"{board}.json").read_text())
        seen_uids.add(document["uid"])
        sources = {
            node["datasource"]["uid"]
            for node in _walk(document)
            if isinstance(node.get("datasource"), dict)
        }
        assert sources == {"dialer-prometheus"}, board
        panels = [p for p in _walk(document["panels"]) if "gridPos" in p and p["type"] != "row"]
        assert panels and all(p.get("targets") for p in panels), f"{board}: a panel has no query"
    assert len(seen_uids) == len(BOARDS)


def test_dashboard_queries_are_valid_promql_on_exported_metrics(tmp_path: Path) -> None:
    queries = dashboard_queries()
    # promtool checks rule files; a rule per query (JSON is YAML) makes it check each one.
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"alert": f"Query{index}", "expr": expr}
                    for index, expr in enumerate(queries.values())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps(rules, indent=2))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, f"promtool check rules:\n{done.stdout}{done.stderr}"
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout

    known = exported_names()
    problems = []
    for where, expr in queries.items():
        names = metric_names(expr)
        if not names:
            problems.append(f"{where}: no metric found in {expr!r}")
        problems += [f"{where}: {name} is not exported" for name in sorted(names - known)]
    assert problems == []


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, f"promtool check rules:\n{checked.stdout}{checked.stderr}"
    tested = promtool("test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert tested.returncode == 0, f"promtool test rules:\n{tested.stdout}{tested.stderr}"
    assert "SUCCESS" in tested.stdout


# -- a real Prometheus scraping the service ------------------------------------


class Floor:
    """A small floor's worth of events, CDRs and snapshots, fed to FloorMetrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.agents = {"ready": 2, "talking": 1, "paused": 1}
        self.engine = EngineSnapshot(
            sip_requests={"INVITE": 3, "BYE": 1},
            sip_responses={"2xx": 3, "4xx": 1},
            sip_transactions_in_flight=1,
            phones={"registered": 3},
            trunks={
                "t1": TrunkFigures(
                    up=True, registration="registered", channels_in_use=1, channels_limit=10
                ),
                "t2": TrunkFigures(up=False, registration="failed", failures=4),
            },
            rtp={
                "customer": RtpFigures(packets_received=500, packets_sent=500, packets_lost=2),
                "agent": RtpFigures(packets_received=500, packets_sent=500),
            },
            cdr_journal_backlog=0,
            database_up=True,
            mqtt_up=True,
        )
        self.metrics = FloorMetrics(
            self.registry,
            now_ms=lambda: int(time.time() * 1000),
            tz=ZoneInfo("Europe/Paris"),
            agents_by_state=lambda: dict(self.agents),
            engine=lambda: self.engine,
        )
        self.metrics.set_abandon_cap("c1", 0.03)
        self.metrics.set_dial_level("c1", 1.5)
        self._calls = 0

    def dial(self, outcome: CallOutcome | None) -> str:
        """One attempt on c1 via t1; ended with ``outcome`` unless None (still ringing)."""
        self._calls += 1
        call_id = f"call-{self._calls}"
        now_ms = int(time.time() * 1000)
        events: list[Event] = [
            CallAssigned(
                call_id=call_id,
                at_ms=now_ms,
                mono=time.monotonic(),
                campaign="c1",
                lead_id=f"L{self._calls}",
                agent="a1",
                mode="predictive",
                direction=Direction.OUTBOUND,
                number="+8613800000001",
                trunk="t1",
            )
        ]
        if outcome is CallOutcome.ANSWERED:
            events.append(
                CallBridged(call_id=call_id, at_ms=now_ms, mono=time.monotonic(), agent_leg="a")
            )
        if outcome is not None:
            events.append(
                CallEnded(
                    call_id=call_id,
                    at_ms=now_ms,
                    mono=time.monotonic(),
                    outcome=outcome,
                    status=None,
                    q850_cause=None,
                    hangup_by=HangupBy.REMOTE,
                )
            )
        for event in events:
            self.metrics.observe(event)
        return call_id

    def cdr(self, call_id: str, *, abandoned: bool) -> None:
        now_ms = int(time.time() * 1000)
        self.metrics.observe_cdr(
            CallRecord(
                call_id=call_id,
                campaign="c1",
                agent=None if abandoned else "a1",
                created_at_ms=now_ms - 90_000,
                ringing_at_ms=now_ms - 89_000,
                answered_at_ms=now_ms - 80_000,
                bridged_at_ms=None if abandoned else now_ms - 79_000,
                ended_at_ms=now_ms,
                ring_ms=9_000,
                talk_ms=0 if abandoned else 79_000,
                outcome=Outcome.ANSWERED,
                answered_by=AnsweredBy.HUMAN,
                abandoned=abandoned,
                wrap_up_ms=None if abandoned else 15_000,
                disposition=None if abandoned else "sale",
                effective=not abandoned,
            )
        )


async def evaluated_rules(prom: Prometheus, timeout: float = 20.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """Every alert rule once each has been evaluated at least once (health no longer unknown)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        groups = (await prom.api("rules"))["groups"]
        rules: list[dict[str, Any]] = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            return rules
        if loop.time() >= deadline:
            pytest.fail(f"rules not all evaluated within {timeout}s: {rules}", pytrace=False)
        await asyncio.sleep(POLL_INTERVAL)


async def test_a_real_prometheus_scrapes_the_service_and_evaluates_the_rules() -> None:
    floor = Floor()
    answered = floor.dial(CallOutcome.ANSWERED)
    dropped = floor.dial(CallOutcome.ANSWERED)
    floor.dial(CallOutcome.BUSY)
    floor.dial(None)
    floor.cdr(answered, abandoned=False)
    floor.cdr(dropped, abandoned=True)

    async with (
        MetricsServer(floor.registry, "127.0.0.1", 0) as server,
        Prometheus(targets=[f"127.0.0.1:{server.port}"], rule_files=[ALERTS]) as prom,
    ):
        await prom.wait_for_value('up{job="dialer"}', 1)
        expected = {
            'dialer_dial_attempts_total{campaign="c1"}': 4,
            'dialer_call_outcomes_total{campaign="c1", outcome="answered"}': 2,
            'dialer_call_outcomes_total{campaign="c1", outcome="busy"}': 1,
            'dialer_calls_in_progress{campaign="c1"}': 1,
            'dialer_calls_bridged_total{campaign="c1"}': 2,
            'dialer_agents{state="ready"}': 2,
            'dialer_abandon_rate_today_ratio{campaign="c1"}': 0.5,
            'dialer_abandon_cap_ratio{campaign="c1"}': 0.03,
            'dialer_dial_level{campaign="c1"}': 1.5,
            'dialer_talk_seconds_count{campaign="c1"}': 1,
            'dialer_effective_calls_total{campaign="c1", agent="a1"}': 1,
            'dialer_trunk_up{trunk="t2"}': 0,
            'dialer_phones{state="registered"}': 3,
            'dialer_rtp_packets_lost_total{leg="customer"}': 2,
        }
        for expr, value in expected.items():
            await prom.wait_for_value(expr, value)

        # The floor moves on: the next scrapes show it.
        floor.dial(CallOutcome.NO_ANSWER)
        floor.agents["ready"] = 0
        await prom.wait_for_value('dialer_dial_attempts_total{campaign="c1"}', 5)
        await prom.wait_for_value('dialer_agents{state="ready"}', 0)

        # Every alert rule evaluates cleanly on the real series, and some are on their way.
        await prom.wait_until(
            'ALERTS{alertname="DialerTrunkDown", trunk="t2"}', lambda result: len(result) == 1
        )
        rules = await evaluated_rules(prom)
        assert {rule["name"]: rule["health"] for rule in rules} == {
            rule["name"]: "ok" for rule in rules
        }, [rule.get("lastError") for rule in rules]
        known = exported_names()
        for rule in rules:
            assert metric_names(rule["query"]) <= known, rule["query"]
        alerts = {
            (
                alert["labels"]["alertname"],
                alert["labels"].get("trunk") or alert["labels"].get("campaign"),
            )
            for alert in (await prom.api("alerts"))["alerts"]
        }
        assert ("DialerTrunkDown", "t2") in alerts
        assert ("DialerAbandonRateOverCap", "c1") in alerts
        assert not any(name == "DialerServiceDown" for name, _ in alerts)

        # Every dashboard query runs on them (Grafana's "All" is ".*").
        failures = []
        for where, expr in dashboard_queries().items():
            concrete = expr
            for variable in GRAFANA_VARIABLES:
                concrete = concrete.replace(f"${variable}", ".*")
            try:
                await prom.query(concrete)
            except Exception as exc:
                failures.append(f"{where}: {exc}")
        assert failures == []
        ready = await prom.query('sum(dialer_agents{instance=~".*", state="talking"})')
        assert float(ready[0]["value"][1]) == 1
