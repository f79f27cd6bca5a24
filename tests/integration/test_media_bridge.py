"""A bridged, recorded call between a SIPp customer and a baresip agent.

The customer plays a 1000 Hz tone, the agent a 440 Hz one. The recording must
hold the agent on the left and the customer on the right, last as long as the
call, and tshark's view of the wire must agree with the talk time we report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from array import array
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audio import power_at, read_stereo, tone, write_ulaw, write_wav
from peers import Baresip, Sipp
from peers.ports import LOOPBACK
from peers.tshark import sip_capture, sip_frames
from support import AGENT_HZ, CUSTOMER_HZ, Seen, registered_baresip, service_config

from dialer.app import running_service
from dialer.calls.manager import Dial
from dialer.events import (
    CallBridged,
    CallEnded,
    CallProgress,
    HangupBy,
    MediaTimeout,
    RecordingClosed,
    RecordingFailed,
)

pytestmark = pytest.mark.integration


async def test_bridged_call_records_agent_left_customer_right_and_agrees_with_the_wire(
    tmp_path: Path,
    sipp_factory: Callable[..., Sipp],
    baresip_factory: Callable[..., Baresip],
) -> None:
    customer_audio = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 10))
    agent_audio = write_wav(tmp_path / "agent.wav", tone(AGENT_HZ, 10))
    seen = Seen()
    async with running_service(service_config(tmp_path / "recordings")) as service:
        service.subscribe(seen)
        host, port = service.sip_address
        phone, desk_phone = await registered_baresip(service, baresip_factory, agent_audio)
        # The customer answers and hangs up after 3 s of talk.
        sipp = sipp_factory("uas_answer_hangup.xml", rtp_file=customer_audio, duration_ms=3000)
        await sipp.start()
        capture = sip_capture(tmp_path, port)
        await capture.start(probe_to=(host, port))
        async with capture:
            call_id = await service.calls.bridge_call(
                customer=Dial(f"sip:13800138000@{sipp.address}", (LOOPBACK, sipp.port)),
                agent=desk_phone,
            )
            legs = {call_id, f"{call_id}-agent"}
            bridged = await seen.first(CallBridged, {call_id}, within=20)
            ended = await seen.first(CallEnded, legs, within=20)
            closed = await seen.first(RecordingClosed, {call_id}, within=20)
        result = await sipp.wait(20)
        await phone.stop()
    assert result.ok, result.describe()
    assert ended.call_id == call_id  # the customer hung up first

    # What tshark saw: the later of the two answers, and the first BYE.
    frames = sip_frames(capture.frames)
    answers = {
        f.call_id: f.time
        for f in reversed(frames)
        if f.status == 200 and f.cseq_method == "INVITE" and f.call_id in legs
    }
    assert set(answers) == legs, frames
    bye = min(f.time for f in frames if f.method == "BYE" and f.call_id in legs)
    wire_talk = bye - max(answers.values())
    reported_talk = ended.mono - bridged.mono
    assert abs(wire_talk - reported_talk) < 0.020, (wire_talk, reported_talk)
    assert 2.8 < reported_talk < 4.0

    # The recording: agent left, customer right, as long as the call.
    path = Path(closed.path)
    assert path.parent.parent == tmp_path / "recordings"
    assert path.name == f"{call_id}.wav"
    content = await asyncio.to_thread(path.read_bytes)
    assert hashlib.sha256(content).hexdigest() == closed.sha256
    left, right, rate = await asyncio.to_thread(read_stereo, path)
    assert rate == 8000
    assert abs(len(left) / rate - reported_talk) < 0.25, (len(left) / rate, reported_talk)
    assert abs(closed.duration_ms / 1000 - len(left) / rate) < 0.001
    middle = slice(len(left) // 4, 3 * len(left) // 4)
    assert power_at(left[middle], AGENT_HZ) > 20 * power_at(left[middle], CUSTOMER_HZ)
    assert power_at(right[middle], CUSTOMER_HZ) > 20 * power_at(right[middle], AGENT_HZ)
    # Both tones are 'speech' to an energy detector; both talked most of the call.
    assert closed.customer_speech_ms > 0.6 * closed.duration_ms
    assert closed.agent_speech_ms > 0.6 * closed.duration_ms


async def test_a_silent_customer_is_a_dead_line_and_the_call_is_ended(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    # The customer answers, says half a second of tone, then nothing: its BYE was lost.
    customer_audio = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 0.5))
    agent_audio = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 20))
    config = service_config(tmp_path / "recordings")
    config = dataclasses.replace(
        config, media=dataclasses.replace(config.media, media_timeout_s=2.0)
    )
    seen = Seen()
    customer = sipp_factory("uas_answer.xml", rtp_file=customer_audio)
    agent = sipp_factory("uas_answer.xml", rtp_file=agent_audio)
    await customer.start()
    await agent.start()
    async with running_service(config) as service:
        service.subscribe(seen)
        call_id = await service.calls.bridge_call(
            customer=Dial(f"sip:13800138000@{customer.address}", (LOOPBACK, customer.port)),
            agent=Dial(f"sip:agent@{agent.address}", (LOOPBACK, agent.port)),
        )
        legs = {call_id, f"{call_id}-agent"}
        bridged = await seen.first(CallBridged, {call_id}, within=10)
        timeout = await seen.first(MediaTimeout, {call_id}, within=10)
        closed = await seen.first(RecordingClosed, {call_id}, within=10)
        ends = [await seen.first(CallEnded, {leg}, within=10) for leg in sorted(legs)]
    assert timeout.leg == "customer"
    # Silence began at most 0.5 s into the bridge (the tone may have ended before
    # the agent answered); the line is dead 2 s later, give or take the 100 ms tick.
    assert 2.0 <= timeout.silent_s < 2.25
    assert 2.0 <= timeout.mono - bridged.mono < 2.7
    assert all(end.hangup_by is HangupBy.LOCAL for end in ends)
    assert (await customer.wait(10)).ok
    assert (await agent.wait(10)).ok
    assert closed.duration_ms > 2000


async def test_early_media_is_captured_and_recorded_before_the_bridge(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    # 183 with 1.5 s of an announcement-like tone, then the customer answers.
    customer_audio = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 20))
    agent_audio = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 20))
    config = service_config(tmp_path / "recordings")
    config = dataclasses.replace(
        config, media=dataclasses.replace(config.media, record_early_media=True)
    )
    seen = Seen()
    customer = sipp_factory(
        "uas_early_media.xml", rtp_file=customer_audio, keys={"final": "200"}, duration_ms=1500
    )
    agent = sipp_factory("uas_answer.xml", rtp_file=agent_audio)
    await customer.start()
    await agent.start()
    async with running_service(config) as service:
        service.subscribe(seen)
        call_id = await service.calls.bridge_call(
            customer=Dial(f"sip:13800138000@{customer.address}", (LOOPBACK, customer.port)),
            agent=Dial(f"sip:agent@{agent.address}", (LOOPBACK, agent.port)),
            record_early_media=True,
        )
        progress = await seen.first(CallProgress, {call_id}, within=10)
        bridged = await seen.first(CallBridged, {call_id}, within=10)
        bridge = service.relay.bridges[call_id]
        early = bridge.take_early_audio()
        start = bridge.recording_start
        await asyncio.sleep(1.0)
        service.calls.hangup(call_id)
        closed = await seen.first(RecordingClosed, {call_id}, within=10)
    assert progress.early_media
    assert start is not None and start < bridged.mono
    # The early audio kept for call-progress analysis is the customer's tone.
    assert 1.0 < len(early) / 2 / 8000 < 2.0
    early_samples = array("h")
    early_samples.frombytes(early)
    assert power_at(early_samples, CUSTOMER_HZ) > 20 * power_at(early_samples, AGENT_HZ)
    left, right, rate = await asyncio.to_thread(read_stereo, Path(closed.path))
    before = slice(0, int((bridged.mono - start) * rate) - 800)  # up to 0.1 s before the bridge
    # Before the bridge: the customer's line on the right, nothing from the agent.
    assert power_at(right[before], CUSTOMER_HZ) > 0.01
    assert not any(left[before])
    after = slice(int((bridged.mono - start) * rate) + 800, len(left))
    assert power_at(left[after], AGENT_HZ) > 20 * power_at(left[after], CUSTOMER_HZ)
    assert (await customer.wait(10)).ok
    assert (await agent.wait(10)).ok


async def test_a_full_disk_stops_the_recording_not_the_call(
    tmp_path: Path, sipp_factory: Callable[..., Sipp]
) -> None:
    recordings = tmp_path / "recordings"
    call_id = "full-disk-call"
    # The recording's file is /dev/full: every write fails with ENOSPC, for real.
    today = datetime.now(UTC).date()
    for day in (today, today + timedelta(days=1)):
        folder = recordings / day.isoformat()
        folder.mkdir(parents=True)
        (folder / f"{call_id}.wav").symlink_to("/dev/full")
    customer_audio = write_ulaw(tmp_path / "customer.ul", tone(CUSTOMER_HZ, 20))
    agent_audio = write_ulaw(tmp_path / "agent.ul", tone(AGENT_HZ, 20))
    seen = Seen()
    customer = sipp_factory("uas_answer.xml", rtp_file=customer_audio)
    agent = sipp_factory("uas_answer.xml", rtp_file=agent_audio)
    await customer.start()
    await agent.start()
    async with running_service(service_config(recordings)) as service:
        service.subscribe(seen)
        await service.calls.bridge_call(
            customer=Dial(f"sip:13800138000@{customer.address}", (LOOPBACK, customer.port)),
            agent=Dial(f"sip:agent@{agent.address}", (LOOPBACK, agent.port)),
            call_id=call_id,
        )
        await seen.first(CallBridged, {call_id}, within=10)
        failed = await seen.first(RecordingFailed, {call_id}, within=10)
        bridge = service.relay.bridges[call_id]
        relayed_at_failure = bridge.relayed
        await asyncio.sleep(1.0)
        # Still bridged a second later, and still relaying both ways.
        assert service.relay.bridges.get(call_id) is bridge
        assert bridge.relayed > relayed_at_failure + 50
        assert not any(isinstance(e, CallEnded) for e in seen.events)
        service.calls.hangup(call_id)
        await seen.first(CallEnded, {call_id}, within=10)
    assert "ENOSPC" in failed.reason
    assert failed.path.endswith(f"{call_id}.wav")
    assert not any(isinstance(e, RecordingClosed) for e in seen.events)
    assert (await customer.wait(10)).ok
    assert (await agent.wait(10)).ok
