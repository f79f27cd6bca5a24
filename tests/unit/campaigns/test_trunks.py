from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.campaigns.trunks import (
    LocalTrunkError,
    NoRoute,
    NoRouteReason,
    Route,
    TrunkHealth,
    TrunkPool,
    TrunkSpec,
    TrunkState,
)
from dialer.campaigns.windows import CampaignError
from dialer.config import TrunkConfig

MOBILE = "+8613800138000"
BEIJING = "+861058001234"
US = "+12025550123"
GSM_MOBILES = r"\+861[3-9]\d{9}"


def spec(name: str = "sip1", /, **fields: object) -> TrunkSpec:
    values: dict[str, object] = {"max_channels": 10, "max_cps": 100.0}
    values.update(fields)
    return TrunkSpec(name, **values)  # type: ignore[arg-type]


def route(result: Route | NoRoute) -> Route:
    assert isinstance(result, Route), str(result)
    return result


def no_route(result: Route | NoRoute) -> NoRoute:
    assert isinstance(result, NoRoute), result
    return result


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"max_channels": 0}, "trunk 'sip1': max_channels must be a positive integer, got 0"),
        ({"max_channels": True}, "trunk 'sip1': max_channels must be a positive integer, got True"),
        ({"max_cps": 0.0}, "trunk 'sip1': max_cps must be a positive number, got 0.0"),
        ({"max_cps": float("inf")}, "trunk 'sip1': max_cps must be a positive number, got inf"),
        (
            {"prefixes_allowed": ("86",)},
            "trunk 'sip1': prefixes_allowed[0] must be an E.164 prefix such as '+86', got '86'",
        ),
        (
            {"prefixes_allowed": ["+86"]},
            "trunk 'sip1': prefixes_allowed must be a tuple, got ['+86']",
        ),
        (
            {"caller_ids": ("+862100000001", "021-0000")},
            "trunk 'sip1': caller_ids[1] must be a number (3-15 digits, optional '+'), "
            "got '021-0000'",
        ),
        ({"dial_prefix": "9,"}, "trunk 'sip1': dial_prefix may only hold 0-9, * and #, got '9,'"),
        ({"priority": 1.5}, "trunk 'sip1': priority must be an integer, got 1.5"),
        ({"strip_digits": -1}, "trunk 'sip1': strip_digits must be an integer >= 0, got -1"),
        (
            {"strip_country_code": "yes"},
            "trunk 'sip1': strip_country_code must be true or false, got 'yes'",
        ),
    ],
)
def test_each_bad_field_is_named_with_its_trunk(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(CampaignError) as caught:
        spec(**fields)
    assert caught.value.problems == (problem,)


def test_bad_regex_and_every_problem_at_once() -> None:
    with pytest.raises(CampaignError) as caught:
        spec("gsm", max_channels=-1, max_cps=-2, number_pattern="+86[")
    assert caught.value.problems[:2] == (
        "trunk 'gsm': max_channels must be a positive integer, got -1",
        "trunk 'gsm': max_cps must be a positive number, got -2",
    )
    assert caught.value.problems[2].startswith("trunk 'gsm': number_pattern '+86[' is not a regex")


def test_trunk_name_is_required() -> None:
    with pytest.raises(CampaignError, match="trunk name must be a non-empty string"):
        spec("")


def test_pool_settings_and_duplicates_are_named() -> None:
    with pytest.raises(CampaignError) as caught:
        TrunkPool([spec("a"), spec("a")], failures_before_down=0, cooldown_s=0)
    assert caught.value.problems == (
        "trunk 'a': duplicate name",
        "failures_before_down must be an integer >= 1, got 0",
        "cooldown_s must be a positive number of seconds, got 0",
    )


def test_spec_from_config() -> None:
    config = TrunkConfig(
        name="carrier", host="198.51.100.7", max_channels=60, max_calls_per_second=8.0,
        caller_id="+862160000000", prefix="0",
    )  # fmt: skip
    built = TrunkSpec.from_config(config, priority=1, strip_country_code=True)
    assert built == TrunkSpec(
        "carrier", 60, 8.0, strip_country_code=True, dial_prefix="0",
        caller_ids=("+862160000000",), priority=1,
    )  # fmt: skip
    assert TrunkSpec.from_config(TrunkConfig(name="x", host="h")).caller_ids == ()


# --- number rules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "number", "dial_string"),
    [
        ({}, MOBILE, MOBILE),  # untouched: E.164 with its '+'
        ({"strip_country_code": True}, MOBILE, "13800138000"),
        ({"strip_country_code": True}, BEIJING, "01058001234"),
        ({"strip_country_code": True}, "+867558800123", "07558800123"),  # Shenzhen
        ({"strip_country_code": True, "dial_prefix": "9"}, MOBILE, "913800138000"),
        ({"dial_prefix": "00"}, MOBILE, "008613800138000"),
        ({"strip_digits": 2}, MOBILE, "13800138000"),
        ({"strip_digits": 2, "dial_prefix": "*31#"}, MOBILE, "*31#13800138000"),
        ({"prefixes_allowed": ("+1", "+44")}, US, US),
    ],
)
def test_dial_string_rewriting(fields: dict[str, object], number: str, dial_string: str) -> None:
    assert spec(**fields).dial_string(number) == dial_string


def test_gsm_gateway_takes_only_chinese_mobiles() -> None:
    gsm = spec("gsm", number_pattern=GSM_MOBILES, strip_country_code=True)
    assert gsm.accepts(MOBILE)
    assert gsm.accepts("+8619912345678")
    assert not gsm.accepts("+8612800138000")  # 12x is not a mobile range
    assert not gsm.accepts(BEIJING)
    assert not gsm.accepts(US)
    with pytest.raises(LocalTrunkError, match=r"trunk 'gsm' does not accept \+861058001234"):
        gsm.dial_string(BEIJING)


def test_prefix_list_and_national_trunk_restrict_numbers() -> None:
    assert not spec(prefixes_allowed=("+86",)).accepts(US)
    assert spec(prefixes_allowed=("+861", "+1")).accepts(US)
    # A trunk that spells numbers nationally cannot reach another country.
    assert not spec(strip_country_code=True).accepts(US)


def test_no_trunk_accepts_the_number() -> None:
    pool = TrunkPool([spec("cn", prefixes_allowed=("+86",))])
    miss = no_route(pool.choose(US, 0.0))
    assert miss == NoRoute(NoRouteReason.NOT_ACCEPTED, US)
    assert str(miss) == "no trunk accepts +12025550123"
    assert not miss.can_wait


@pytest.mark.parametrize("number", ["13800138000", "+0123456", "+86 138", "+1234567890123456"])
def test_a_number_not_in_e164_is_our_bug(number: str) -> None:
    with pytest.raises(LocalTrunkError, match=r"is not an E\.164 number"):
        TrunkPool([spec()]).choose(number, 0.0)


# --- channels ----------------------------------------------------------------


def test_channel_cap_and_release() -> None:
    pool = TrunkPool([spec(max_channels=2)])
    assert route(pool.choose(MOBILE, 0.0)).trunk == "sip1"
    assert route(pool.choose(MOBILE, 0.0)).trunk == "sip1"
    busy = no_route(pool.choose(MOBILE, 0.0))
    assert (busy.reason, busy.retry_at, busy.can_wait) == (NoRouteReason.BUSY, None, True)
    assert str(busy) == "all trunks for +8613800138000 are busy"
    pool.release("sip1")
    assert route(pool.choose(MOBILE, 1.0)).trunk == "sip1"
    assert pool.health()["sip1"].in_use == 2


def test_releasing_more_than_acquired_is_a_local_error() -> None:
    pool = TrunkPool([spec()])
    route(pool.choose(MOBILE, 0.0))
    pool.release("sip1")
    with pytest.raises(LocalTrunkError) as caught:
        pool.release("sip1")
    assert caught.value.problems == (
        "release: trunk 'sip1' has no call in progress (0 channels in use)",
    )
    assert pool.health()["sip1"].in_use == 0


def test_unknown_trunks_are_local_errors() -> None:
    pool = TrunkPool([spec()])
    with pytest.raises(LocalTrunkError, match="release: unknown trunk 'nope'"):
        pool.release("nope")
    with pytest.raises(LocalTrunkError, match="on_result: unknown trunk 'nope'"):
        pool.on_result("nope", 503, 0.0)
    with pytest.raises(LocalTrunkError, match=r"exclude names unknown trunks \['nope'\]"):
        pool.choose(MOBILE, 0.0, exclude=frozenset({"nope"}))


@pytest.mark.parametrize("status", [100, 180, 183, 700, 0])
def test_provisional_or_bogus_status_is_refused(status: int) -> None:
    with pytest.raises(LocalTrunkError, match="on_result: status must be a final SIP status"):
        TrunkPool([spec()]).on_result("sip1", status, 0.0)


def test_least_used_wins_within_a_priority_then_list_order() -> None:
    pool = TrunkPool([spec("small", max_channels=2), spec("big", max_channels=10)])
    picks = [route(pool.choose(MOBILE, 0.0)).trunk for _ in range(6)]
    # small 0/2 = big 0/10 -> listed first; then big 0/10 < small 1/2; big stays
    # below 1/2 until it carries 5 calls.
    assert picks == ["small", "big", "big", "big", "big", "big"]
    assert route(pool.choose(MOBILE, 0.0)).trunk == "small"  # 1/2 vs 5/10: first listed


def test_lower_priority_number_is_preferred_and_spills_over_when_full() -> None:
    pool = TrunkPool([spec("backup", priority=1), spec("primary", priority=0, max_channels=1)])
    assert route(pool.choose(MOBILE, 0.0)).trunk == "primary"
    assert route(pool.choose(MOBILE, 0.0)).trunk == "backup"


# --- calls per second ------------------------------------------------------------


def test_token_bucket_refills_exactly_with_stepped_time() -> None:
    pool = TrunkPool([spec(max_cps=4.0)])
    now = 0.0
    for _ in range(4):  # the burst: one second's worth
        route(pool.choose(MOBILE, now))
    limited = no_route(pool.choose(MOBILE, now))
    assert limited == NoRoute(NoRouteReason.RATE_LIMITED, MOBILE, 0.25)
    assert str(limited) == "trunks for +8613800138000 are rate limited until 0.25"
    now += 0.125
    assert no_route(pool.choose(MOBILE, now)).retry_at == 0.25
    now += 0.125
    route(pool.choose(MOBILE, now))  # exactly on time
    assert no_route(pool.choose(MOBILE, now)).retry_at == 0.5
    now += 100.0  # a long idle spell refills to the burst, not beyond
    for _ in range(4):
        route(pool.choose(MOBILE, now))
    assert no_route(pool.choose(MOBILE, now)).retry_at == now + 0.25


def test_decimal_rates_are_exact() -> None:
    pool = TrunkPool([spec(max_cps=0.2)])  # one call every 5 s, burst of one
    route(pool.choose(MOBILE, 10.0))
    assert no_route(pool.choose(MOBILE, 10.0)).retry_at == 15.0
    assert no_route(pool.choose(MOBILE, 14.999)).retry_at == 15.0
    route(pool.choose(MOBILE, 15.0))


def test_rate_limited_trunk_spills_to_the_next_one() -> None:
    pool = TrunkPool([spec("a", max_cps=1.0), spec("b", max_cps=1.0, priority=5)])
    assert [route(pool.choose(MOBILE, 0.0)).trunk for _ in range(2)] == ["a", "b"]
    assert no_route(pool.choose(MOBILE, 0.5)).retry_at == 1.0


def test_stale_now_refills_nothing() -> None:
    pool = TrunkPool([spec(max_cps=1.0)])
    route(pool.choose(MOBILE, 10.0))
    assert no_route(pool.choose(MOBILE, 9.0)).retry_at == 11.0
    route(pool.choose(MOBILE, 11.0))


# --- caller ids ------------------------------------------------------------------


def test_caller_ids_rotate_per_trunk() -> None:
    ids = ("+862100000001", "+862100000002", "+862100000003")
    pool = TrunkPool([spec("a", caller_ids=ids), spec("b", priority=1)])
    got = [route(pool.choose(MOBILE, 0.0)).caller_id for _ in range(4)]
    assert got == [ids[0], ids[1], ids[2], ids[0]]
    other = route(pool.choose(MOBILE, 0.0, exclude=frozenset({"a"})))
    assert other == Route("b", MOBILE, None)


# --- failover and health -----------------------------------------------------------


def test_503_fails_over_to_the_next_trunk_for_the_same_call() -> None:
    gsm = spec("gsm", number_pattern=GSM_MOBILES, strip_country_code=True, priority=0)
    carrier = spec("carrier", dial_prefix="00", priority=1)
    pool = TrunkPool([gsm, carrier])
    first = route(pool.choose(MOBILE, 0.0))
    assert first == Route("gsm", "13800138000", None)
    assert pool.on_result("gsm", 503, 0.5) is TrunkState.UP  # one failure is not DOWN
    pool.release("gsm")
    retry = route(pool.choose(MOBILE, 0.5, exclude=frozenset({first.trunk})))
    assert retry == Route("carrier", "008613800138000", None)
    assert pool.on_result("carrier", 200, 1.0) is TrunkState.UP
    # A third try excluding both: the attempt is over, the lead is not dead.
    done = no_route(pool.choose(MOBILE, 1.0, exclude=frozenset({"gsm", "carrier"})))
    assert done.reason is NoRouteReason.ALL_TRIED
    assert not done.can_wait
    assert str(done) == "every trunk that accepts +8613800138000 was already tried"
    assert pool.health()["gsm"].failures == 1


def fail(pool: TrunkPool, trunk: str, now: float, status: int | None = 503) -> TrunkState:
    assert (
        route(pool.choose(MOBILE, now, exclude=frozenset(pool.health()) - {trunk})).trunk == trunk
    )
    state = pool.on_result(trunk, status, now)
    pool.release(trunk)
    return state


def test_down_half_open_up_cycle_with_stepped_time() -> None:
    pool = TrunkPool([spec("a"), spec("b", priority=1)], cooldown_s=30.0)
    assert fail(pool, "a", 0.0, 503) is TrunkState.UP
    assert fail(pool, "a", 1.0, None) is TrunkState.UP  # no final response at all
    assert fail(pool, "a", 2.0, 408) is TrunkState.DOWN
    assert pool.health()["a"] == TrunkHealth(TrunkState.DOWN, 0, 10, 3, 32.0)
    assert route(pool.choose(MOBILE, 2.0)).trunk == "b"
    pool.release("b")
    assert route(pool.choose(MOBILE, 31.999)).trunk == "b"
    pool.release("b")
    alone = no_route(pool.choose(MOBILE, 31.999, exclude=frozenset({"b"})))
    assert alone == NoRoute(NoRouteReason.DOWN, MOBILE, 32.0)
    assert str(alone) == "all trunks for +8613800138000 are down or probing until 32.0"
    # Cooldown over: one probe call, the rest go to b until it answers.
    assert pool.health(32.0)["a"].state is TrunkState.HALF_OPEN
    assert route(pool.choose(MOBILE, 32.0)).trunk == "a"
    assert route(pool.choose(MOBILE, 32.0)).trunk == "b"
    probing = no_route(pool.choose(MOBILE, 32.0, exclude=frozenset({"b"})))
    assert probing == NoRoute(NoRouteReason.DOWN, MOBILE, None)
    assert pool.on_result("a", 200, 33.0) is TrunkState.UP
    assert pool.health()["a"] == TrunkHealth(TrunkState.UP, 1, 10, 0, None)
    assert route(pool.choose(MOBILE, 33.0)).trunk == "a"


def test_a_failed_probe_is_down_again_for_a_full_cooldown() -> None:
    pool = TrunkPool([spec("a")], failures_before_down=2, cooldown_s=10.0)
    fail(pool, "a", 0.0, 500)
    assert fail(pool, "a", 0.0, 502) is TrunkState.DOWN
    assert fail(pool, "a", 10.0, 504) is TrunkState.DOWN  # the probe
    assert pool.health()["a"].down_until == 20.0
    assert no_route(pool.choose(MOBILE, 19.5)).retry_at == 20.0
    assert fail(pool, "a", 20.0, 486) is TrunkState.UP  # busy callee: the trunk works


def test_health_without_now_does_not_move_time() -> None:
    pool = TrunkPool([spec("a")], failures_before_down=1, cooldown_s=5.0)
    fail(pool, "a", 0.0)
    assert pool.health()["a"].state is TrunkState.DOWN
    assert pool.health(4.0)["a"].state is TrunkState.DOWN
    assert pool.health(5.0)["a"].state is TrunkState.HALF_OPEN


@pytest.mark.parametrize("status", [486, 404, 480, 487, 603, 200, 302, 401])
def test_callee_answers_reset_the_failure_count(status: int) -> None:
    pool = TrunkPool([spec("a")])
    fail(pool, "a", 0.0)
    fail(pool, "a", 1.0)
    assert fail(pool, "a", 2.0, status) is TrunkState.UP
    assert pool.health()["a"].failures == 0
    fail(pool, "a", 3.0)
    assert fail(pool, "a", 4.0) is TrunkState.UP  # two in a row, not four
    assert pool.health()["a"].failures == 2


def test_late_results_while_down_are_ignored() -> None:
    pool = TrunkPool([spec("a")], failures_before_down=2, cooldown_s=30.0)
    calls = [route(pool.choose(MOBILE, 0.0)) for _ in range(4)]
    assert len(calls) == 4
    pool.on_result("a", 503, 1.0)
    pool.on_result("a", 503, 1.0)
    assert pool.on_result("a", 200, 2.0) is TrunkState.DOWN  # placed before the trip
    assert pool.on_result("a", 503, 3.0) is TrunkState.DOWN
    assert pool.health()["a"] == TrunkHealth(TrunkState.DOWN, 4, 10, 2, 31.0)


def test_mixed_blockers_report_the_most_hopeful_reason_and_earliest_time() -> None:
    pool = TrunkPool(
        [
            spec("full", max_channels=1),
            spec("slow", max_cps=0.5),
            spec("dead"),
        ],
        failures_before_down=1,
        cooldown_s=60.0,
    )
    assert fail(pool, "dead", 0.0) is TrunkState.DOWN  # down until 60
    assert route(pool.choose(MOBILE, 0.0)).trunk == "full"
    assert route(pool.choose(MOBILE, 0.0)).trunk == "slow"  # its one token
    assert no_route(pool.choose(MOBILE, 1.0)) == NoRoute(NoRouteReason.RATE_LIMITED, MOBILE, 2.0)
    # Without the rate-limited one: busy, and the dead trunk's return is the next change.
    busy = no_route(pool.choose(MOBILE, 1.0, exclude=frozenset({"slow"})))
    assert busy == NoRoute(NoRouteReason.BUSY, MOBILE, 60.0)


# --- properties ---------------------------------------------------------------------

STATUSES = st.sampled_from([None, 200, 404, 408, 480, 486, 487, 500, 502, 503, 504, 603])


@dataclass(frozen=True)
class Op:
    kind: str  # "choose", "release", "result"
    trunk: int
    status: int | None
    dt: float


OPS = st.builds(
    Op,
    kind=st.sampled_from(["choose", "choose", "release", "result"]),
    trunk=st.integers(0, 2),
    status=STATUSES,
    dt=st.sampled_from([0.0, 0.0, 0.125, 0.5, 1.0, 7.0, 31.0]),
)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(OPS, max_size=80),
    caps=st.tuples(*[st.integers(1, 4)] * 3),
    rates=st.tuples(*[st.sampled_from([0.5, 1.0, 2.0, 3.0])] * 3),
)
def test_random_sequences_keep_channels_and_rate_within_limits(
    ops: list[Op], caps: tuple[int, int, int], rates: tuple[float, float, float]
) -> None:
    names = ("t0", "t1", "t2")
    specs = [
        spec(n, max_channels=c, max_cps=r, priority=i % 2)
        for i, (n, c, r) in enumerate(zip(names, caps, rates, strict=True))
    ]
    pool = TrunkPool(specs, failures_before_down=2, cooldown_s=30.0)
    held: Counter[str] = Counter()
    starts: dict[str, list[float]] = {n: [] for n in names}
    now = 0.0
    for op in ops:
        now += op.dt
        name = names[op.trunk]
        if op.kind == "choose":
            before = pool.health(now)
            result = pool.choose(MOBILE, now)
            if isinstance(result, Route):
                assert before[result.trunk].state is not TrunkState.DOWN
                held[result.trunk] += 1
                starts[result.trunk].append(now)
            else:
                assert result.reason in (
                    NoRouteReason.BUSY, NoRouteReason.RATE_LIMITED, NoRouteReason.DOWN,
                )  # fmt: skip
                assert result.retry_at is None or result.retry_at > now
        elif op.kind == "release":
            if held[name] == 0:
                with pytest.raises(LocalTrunkError):
                    pool.release(name)
            else:
                pool.release(name)
                held[name] -= 1
        else:
            pool.on_result(name, op.status, now)
        for n, h in pool.health().items():
            assert 0 <= h.in_use <= h.max_channels
            assert h.in_use == held[n]
    # Token bucket: at most burst + rate * d new calls in any span of d seconds.
    for s in specs:
        times = starts[s.name]
        burst = max(1.0, s.max_cps)
        for i, t0 in enumerate(times):
            for j in range(i, len(times)):
                assert j - i + 1 <= burst + s.max_cps * (times[j] - t0) + 1e-9
