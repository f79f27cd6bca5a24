"""The harness against real peers, before our service exists.

If these fail, the integration tier's verdicts about our service mean nothing.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from peers.baresip import Baresip, NetstringDecoder, NetstringError, encode_netstring
from peers.errors import PeerMissingError
from peers.kamailio import Kamailio
from peers.ports import free_port_pair, free_tcp_port, free_udp_port
from peers.sipp import Sipp, parse_stat_csv, render_scenario

pytestmark = pytest.mark.integration

ALICE = ("alice", "alice-secret")
CAROL = ("carol", "carol-secret")

SippFactory = Callable[..., Sipp]
KamailioFactory = Callable[..., Kamailio]
BaresipFactory = Callable[..., Baresip]


def test_free_ports_are_bindable_and_rtp_pair_is_even() -> None:
    import socket

    rtp = free_port_pair()
    assert rtp % 2 == 0
    for port, kind in ((free_udp_port(), socket.SOCK_DGRAM), (free_tcp_port(), socket.SOCK_STREAM)):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))
    for port in (rtp, rtp + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_netstring_decoder_accepts_any_chunking() -> None:
    stream = encode_netstring(b'{"event":true}') + encode_netstring(b"") + encode_netstring(b"a,b")
    assert stream == b'14:{"event":true},0:,3:a,b,'
    decoder = NetstringDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    assert got == [b'{"event":true}', b"", b"a,b"]


def test_netstring_decoder_rejects_a_missing_comma() -> None:
    with pytest.raises(NetstringError, match="netstring of length 2 not followed by ','"):
        NetstringDecoder().feed(b"2:ab;")


def test_scenario_placeholders_must_all_be_given() -> None:
    assert render_scenario("SIP/2.0 {{status}} X", {"status": "486"}) == "SIP/2.0 486 X"
    with pytest.raises(Exception, match=r"scenario needs keys \['final', 'reason'\]"):
        render_scenario("{{final}} {{reason}} {{status}}", {"status": "1"})


def test_missing_sipp_is_an_error_not_a_skip() -> None:
    with pytest.raises(PeerMissingError, match="sipp-not-here is not installed; run scripts/"):
        Sipp("uac_options.xml", "127.0.0.1:9", binary="sipp-not-here")


def test_stat_csv_last_row_wins() -> None:
    text = "StartTime;SuccessfulCall(C);FailedCall(C)\nx;0;0\nx;3;1\n"
    assert parse_stat_csv(text) == (3, 1)


async def test_sipp_register_digest_against_kamailio(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory
) -> None:
    user, password = ALICE
    kamailio = kamailio_factory(users=dict([ALICE]))
    await kamailio.start()

    good = sipp_factory(
        "uac_register.xml",
        kamailio.address,
        service=user,
        auth_user=user,
        auth_password=password,
        timeout=10,
    )
    await good.start()
    result = await good.wait()
    assert result.ok, result.describe()
    assert (result.successful, result.failed) == (1, 0)

    wrong = sipp_factory(
        "uac_register.xml",
        kamailio.address,
        service=user,
        auth_user=user,
        auth_password="not-" + password,
        timeout=10,
    )
    await wrong.start()
    result = await wrong.wait()
    assert (result.returncode, result.successful, result.failed) == (1, 0, 1), result.describe()
    assert "401 Unauthorized" in result.errors

    refused = sipp_factory(
        "uac_register_bad.xml",
        kamailio.address,
        service=user,
        auth_user=user,
        auth_password="not-" + password,
        timeout=10,
    )
    await refused.start()
    result = await refused.wait()
    assert result.ok, result.describe()


async def test_sipp_options_answered_by_kamailio(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory
) -> None:
    kamailio = kamailio_factory(users=dict([ALICE]))
    await kamailio.start()
    probe = sipp_factory("uac_options.xml", kamailio.address, timeout=10)
    await probe.start()
    result = await probe.wait()
    assert result.ok, result.describe()


async def test_sipp_call_with_proxy_auth_through_kamailio_to_sipp_customer(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory
) -> None:
    customer = sipp_factory("uas_answer.xml", timeout=30)
    kamailio = kamailio_factory(users=dict([ALICE]), static_destination=customer.address)
    await kamailio.start()
    await customer.start()
    user, password = ALICE
    caller = sipp_factory(
        "uac_auth.xml",
        kamailio.address,
        service="4930123456",
        auth_user=user,
        auth_password=password,
        duration_ms=500,
        timeout=20,
    )
    await caller.start()
    called = await caller.wait()
    assert called.ok, called.describe()
    answered = await customer.wait()
    assert answered.ok, answered.describe()


async def test_sipp_customer_rejects_with_status_from_key(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory
) -> None:
    customer = sipp_factory("uas_reject.xml", keys={"status": "603", "cause": "21"}, timeout=30)
    kamailio = kamailio_factory(users=dict([ALICE]), static_destination=customer.address)
    await kamailio.start()
    await customer.start()
    user, password = ALICE
    caller = sipp_factory(
        "uac_auth.xml",
        kamailio.address,
        service="4930123456",
        auth_user=user,
        auth_password=password,
        timeout=20,
    )
    await caller.start()
    called = await caller.wait()
    assert (called.returncode, called.failed) == (1, 1), called.describe()
    assert "SIP/2.0 603 Decline" in called.errors
    assert "Reason: Q.850;cause=21" in called.errors
    rejected = await customer.wait()
    assert rejected.ok, rejected.describe()


async def test_sipp_customer_hangs_up_itself(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory
) -> None:
    customer = sipp_factory("uas_answer_hangup.xml", duration_ms=300, timeout=30)
    kamailio = kamailio_factory(users=dict([ALICE]), static_destination=customer.address)
    await kamailio.start()
    await customer.start()
    user, password = ALICE
    # The caller talks far longer than the customer, so the BYE comes from the customer.
    caller = sipp_factory(
        "uac_auth.xml",
        kamailio.address,
        service="4930123456",
        auth_user=user,
        auth_password=password,
        duration_ms=10_000,
        timeout=20,
    )
    await caller.start()
    hung_up = await customer.wait()
    assert hung_up.ok, hung_up.describe()
    await caller.stop()


async def test_sipp_customer_early_media_then_answer(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory
) -> None:
    customer = sipp_factory(
        "uas_early_media.xml", keys={"final": "200"}, duration_ms=300, timeout=30
    )
    kamailio = kamailio_factory(users=dict([ALICE]), static_destination=customer.address)
    await kamailio.start()
    await customer.start()
    user, password = ALICE
    caller = sipp_factory(
        "uac_auth.xml",
        kamailio.address,
        service="4930123456",
        auth_user=user,
        auth_password=password,
        duration_ms=300,
        timeout=20,
    )
    await caller.start()
    called = await caller.wait()
    assert called.ok, called.describe()
    answered = await customer.wait()
    assert answered.ok, answered.describe()


async def test_baresip_registers_and_auto_answers_a_call_through_kamailio(
    kamailio_factory: KamailioFactory,
    baresip_factory: BaresipFactory,
    sipp_factory: SippFactory,
    tone_wav: Path,
) -> None:
    kamailio = kamailio_factory(users=dict([ALICE, CAROL]))
    await kamailio.start()
    user, password = CAROL
    phone = baresip_factory(
        user=user, password=password, registrar=kamailio.address, audio_file=tone_wav, record=True
    )
    await phone.start()
    registered = await phone.wait_event("REGISTER_OK", timeout=10)
    assert registered.account == f"sip:{user}@{kamailio.address}"
    assert registered.param == "200 OK"

    caller_user, caller_password = ALICE
    caller = sipp_factory(
        "uac_auth.xml",
        kamailio.address,
        service=user,
        auth_user=caller_user,
        auth_password=caller_password,
        duration_ms=1500,
        timeout=20,
    )
    await caller.start()
    established = await phone.wait_event("CALL_ESTABLISHED", timeout=10)
    assert established.peer_uri.startswith("sip:sipp@127.0.0.1:")
    called = await caller.wait()
    assert called.ok, called.describe()
    await phone.wait_event("CALL_CLOSED", timeout=10)

    sent = sorted(phone.recordings.glob("dump-*-enc.wav"))
    assert len(sent) == 1, list(phone.recordings.iterdir())
    with wave.open(str(sent[0])) as recording:
        assert recording.getframerate() == 8000
        # The phone played (and sndfile captured) at least a second of the tone.
        assert recording.getnframes() >= 8000
    await phone.stop()
