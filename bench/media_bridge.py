"""Bridged, recorded calls under load: SIPp plays both legs, we relay and record.

    uv run python bench/media_bridge.py [--calls 20,50,...] [--repeat 3] [--loops uvloop,asyncio]

For each event loop and number N of concurrent calls, a fresh service process
pinned to CPU 0 places N customer legs to one SIPp and N agent legs to
another (both pinned to CPU 1), bridges and records every call, and measures
during a steady window once all N are bridged:

- CPU of the service process (the relay thread and the recorder thread) as
  a share of one core, and per call;
- RTP packets relayed per second;
- loss: packets the sequence numbers say were sent to us but never arrived
  (socket overflow when the loop falls behind), plus any received and not
  relayed;
- added latency: dumpcap on loopback sees each packet arrive at our port and
  leave from the other leg's port; the difference, matched by leg and
  payload (the played files are noise, so every payload is unique per leg).

Each (loop, N) runs ``--repeat`` times; the table shows medians, and the
largest N with no loss in any repeat while under one core. Results go to
bench/media_results.md (and .json next to it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from peers.sipp import Sipp  # noqa: E402

from dialer.app import running_service  # noqa: E402
from dialer.calls.manager import Dial  # noqa: E402
from dialer.config import Config, MediaConfig, SipConfig  # noqa: E402
from dialer.events import CallBridged, Event, RecordingClosed  # noqa: E402
from dialer.loop import run  # noqa: E402

LOOPBACK = "127.0.0.1"
RTP_MIN, RTP_MAX = 20000, 29999  # below the kernel's ephemeral range, where SIPp's ports are
PLACE_RATE = 25.0  # new calls per second while ramping up
RESULTS = ROOT / "bench" / "media_results.md"
MEDIANS = (
    "cpu_core_share",
    "cpu_ms_per_call_second",
    "relayed_per_s",
    "loss_ratio",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_samples",
)


# --- one trial, in its own process ------------------------------------------


@dataclass
class Snapshot:
    cpu: float
    wall: float
    relayed: int
    received: int
    expected: int
    lost: int


def snapshot(service: Any) -> Snapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    relayed = received = expected = lost = 0
    for bridge in service.relay.bridges.values():
        relayed += bridge.relayed
        for stream in bridge.streams.values():
            received += stream.received
            expected += stream.stats.expected
            lost += max(stream.stats.lost, 0)
    return Snapshot(
        usage.ru_utime + usage.ru_stime, time.monotonic(), relayed, received, expected, lost
    )


def noise(path: Path, seed: int, seconds: float) -> Path:
    rng = random.Random(seed)
    # μ-law codes away from silence, so no payload repeats and none is all-quiet.
    path.write_bytes(bytes(rng.randrange(0x10, 0x70) for _ in range(int(seconds * 8000))))
    return path


def pin(pid: int, cpu: int) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(pid, {cpu % (os.cpu_count() or 1)})


async def trial(calls: int, window: float, workdir: Path) -> dict[str, Any]:
    pin(0, 0)
    config = Config(
        sip=SipConfig(bind_host=LOOPBACK, udp_port=0, tcp_port=0),
        media=MediaConfig(
            rtp_port_min=RTP_MIN,
            rtp_port_max=RTP_MAX,
            recordings_dir=str(workdir / "recordings"),
            media_timeout_s=60.0,
        ),
    )
    hold = calls / PLACE_RATE + window + 15
    customer_audio = noise(workdir / "customer.ul", 1, hold)
    agent_audio = noise(workdir / "agent.ul", 2, hold)
    customers = Sipp("uas_answer.xml", rtp_file=customer_audio, calls=calls, timeout=hold + 60)
    agents = Sipp("uas_answer.xml", rtp_file=agent_audio, calls=calls, timeout=hold + 60)
    bridged: set[str] = set()
    closed: list[RecordingClosed] = []
    all_bridged, all_closed = asyncio.Event(), asyncio.Event()

    def seen(event: Event) -> None:
        if isinstance(event, CallBridged):
            bridged.add(event.call_id)
            if len(bridged) == calls:
                all_bridged.set()
        elif isinstance(event, RecordingClosed):
            closed.append(event)
            if len(closed) == calls:
                all_closed.set()

    async with customers, agents, running_service(config) as service:
        for peer in (customers, agents):
            assert peer.pid is not None
            pin(peer.pid, 1)
        service.subscribe(seen)
        ids = []
        for n in range(calls):
            ids.append(
                await service.calls.bridge_call(
                    customer=Dial(f"sip:c{n}@{customers.address}", (LOOPBACK, customers.port)),
                    agent=Dial(f"sip:a{n}@{agents.address}", (LOOPBACK, agents.port)),
                )
            )
            await asyncio.sleep(1 / PLACE_RATE)
        await asyncio.wait_for(all_bridged.wait(), 60)
        pcap = workdir / "window.pcap"
        dumpcap = await asyncio.create_subprocess_exec(
            *("dumpcap", "-q", "-i", "lo", "-f", f"udp portrange {RTP_MIN}-{RTP_MAX}"),
            *("-P", "-w", str(pcap)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pin(dumpcap.pid, 1)
        await asyncio.sleep(1.5)  # settle, and let dumpcap attach its filter
        pairs = port_pairs(service)
        first = snapshot(service)
        await asyncio.sleep(window)
        last = snapshot(service)
        dumpcap.terminate()
        await asyncio.wait_for(dumpcap.wait(), 10)
        for call_id in ids:
            service.calls.hangup(call_id)
        await asyncio.wait_for(all_closed.wait(), 60)
    latencies = await asyncio.to_thread(relay_latencies, pcap, pairs, first.wall, last.wall)
    elapsed = last.wall - first.wall
    cpu_share = (last.cpu - first.cpu) / elapsed
    received = last.received - first.received
    relayed = last.relayed - first.relayed
    lost = (last.lost - first.lost) + max(received - relayed, 0)
    expected = last.expected - first.expected
    latencies.sort()
    return {
        "calls": calls,
        "cpu_core_share": cpu_share,
        "cpu_ms_per_call_second": 1000 * cpu_share / calls,
        "relayed_per_s": relayed / elapsed,
        "lost": lost,
        "loss_ratio": lost / expected if expected else 0.0,
        "latency_samples": len(latencies),
        "latency_p50_ms": 1000 * percentile(latencies, 0.50),
        "latency_p99_ms": 1000 * percentile(latencies, 0.99),
        "recordings": len(closed),
    }


def port_pairs(service: Any) -> dict[int, int]:
    """Our ingress port -> the port the same packet leaves from (the other leg's)."""
    pairs: dict[int, int] = {}
    # A benchmark may look inside the relay: which leg's port pairs with which.
    for sides in service.relay._sides.values():
        legs = list(sides.values())
        if len(legs) == 2:
            a, b = (leg.port for leg in legs)
            pairs[a], pairs[b] = b, a
    return pairs


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def relay_latencies(pcap: Path, pairs: dict[int, int], start: float, end: float) -> list[float]:
    """Seconds between a packet reaching our port and its copy leaving the other leg's."""
    arrivals: dict[tuple[int, bytes], float] = {}
    departures: list[tuple[int, bytes, float]] = []
    for when, source, destination, payload in read_pcap(pcap):
        if destination in pairs and source not in pairs:
            arrivals[(destination, payload[12:])] = when
        elif source in pairs:
            departures.append((pairs[source], payload[12:], when))
    latencies = []
    for ingress, body, when in departures:
        arrived = arrivals.get((ingress, body))
        if arrived is not None:
            latencies.append(when - arrived)
    del start, end
    return latencies


def read_pcap(path: Path) -> list[tuple[float, int, int, bytes]]:
    """(time, UDP source port, destination port, UDP payload) of each IPv4 UDP frame."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        raise ValueError(f"{path}: not a little-endian pcap file (magic {magic:#x})")
    scale = 1e-6 if magic == 0xA1B2C3D4 else 1e-9
    link = {1: 14, 113: 16, 276: 20}.get(linktype)
    if link is None:
        raise ValueError(f"{path}: link type {linktype} not handled")
    out = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = frame[link:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        header = (ip[0] & 0x0F) * 4
        source, destination, length = struct.unpack_from("!HHH", ip, header)
        out.append(
            (seconds + fraction * scale, source, destination, ip[header + 8 : header + length])
        )
    return out


# --- the driver --------------------------------------------------------------


def run_trial(loop: str, calls: int, window: float) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--trial", "--loop", loop, "--calls", str(calls),
            "--window", str(window)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"calls": calls, "error": (done.stderr or done.stdout)[-1500:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(row[key] for row in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="20,50,100,150,200,250,300")
    parser.add_argument("--loops", default="uvloop,asyncio")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--from-json", type=Path, help="rewrite the table from a results .json")
    parser.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
            result = run(trial(int(args.calls), args.window, Path(tmp)), args.loop)
        result["loop"] = args.loop
        print(json.dumps(result))
        return 0
    if args.from_json is not None:
        write_results(json.loads(args.from_json.read_text()), args)
        return 0
    counts = [int(n) for n in args.calls.split(",")]
    table: dict[str, list[dict[str, Any]]] = {}
    for loop in args.loops.split(","):
        table[loop] = []
        lossy_in_a_row = 0
        for calls in counts:
            rows = [run_trial(loop, calls, args.window) for _ in range(args.repeat)]
            good = [r for r in rows if "error" not in r]
            if not good:
                print(f"{loop} N={calls}: failed: {rows[0]['error']}", file=sys.stderr)
                break
            summary = {
                "calls": calls,
                "runs": len(good),
                "failed_runs": len(rows) - len(good),
                "max_lost": max(r["lost"] for r in good),
                **{key: median_of(good, key) for key in MEDIANS},
            }
            table[loop].append(summary)
            print(json.dumps({"loop": loop, **summary}), flush=True)
            lossy_in_a_row = 0 if keeps_up(summary) else lossy_in_a_row + 1
            if lossy_in_a_row >= 2 or summary["cpu_core_share"] > 1.0:
                break
    write_results(table, args)
    return 0


def keeps_up(row: dict[str, Any]) -> bool:
    offered = 100 * row["calls"]
    return bool(
        row["max_lost"] == 0
        and row["relayed_per_s"] >= 0.99 * offered
        and row["latency_p99_ms"] < 50
        and row["cpu_core_share"] < 1.0
    )


def write_results(table: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    lines = [
        "# Media bridge benchmark",
        "",
        f"`uv run python bench/media_bridge.py --calls {args.calls} --repeat {args.repeat}`"
        f" — {args.window:g} s steady window per run, medians of {args.repeat} runs.",
        "The service is pinned to one core, SIPp (both legs) and dumpcap to the other;",
        "every call is bridged and recorded (two-channel WAV). Shared machine: read ratios.",
        "",
        "| loop | calls | CPU (share of one core) | CPU ms per call-second | relayed packets/s "
        "| lost (worst run) | latency p50 ms | latency p99 ms | keeps up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    best: dict[str, int] = {}
    for loop, rows in table.items():
        for row in rows:
            lines.append(
                f"| {loop} | {row['calls']} | {row['cpu_core_share']:.2f} "
                f"| {row['cpu_ms_per_call_second']:.2f} | {row['relayed_per_s']:.0f} "
                f"| {row['max_lost']} | {row['latency_p50_ms']:.2f} | {row['latency_p99_ms']:.2f} "
                f"| {'yes' if keeps_up(row) else 'no'} |"
            )
            if keeps_up(row):
                best[loop] = max(best.get(loop, 0), row["calls"])
    lines += [
        "",
        "*Keeps up*: no packet lost in any run, at least 99 % of the offered packets",
        "(2 × 50 per call per second) relayed within the window, p99 added latency",
        "under 50 ms, below one core. Largest N that keeps up:",
        "",
    ]
    lines += [f"- {loop}: **{n}** calls" for loop, n in best.items()]
    if len(best) == 2 and table.get("uvloop") and table.get("asyncio"):
        # Compare where both keep up: past that, CPU per call only shows saturation.
        shared = {r["calls"] for r in table["uvloop"] if keeps_up(r)} & {
            r["calls"] for r in table["asyncio"] if keeps_up(r)
        }
        if shared:
            n = max(shared)
            u = next(r for r in table["uvloop"] if r["calls"] == n)
            a = next(r for r in table["asyncio"] if r["calls"] == n)
            lines.append(
                f"- CPU per call, asyncio / uvloop at N={n}: "
                f"{a['cpu_ms_per_call_second'] / u['cpu_ms_per_call_second']:.2f}x"
            )
    RESULTS.write_text("\n".join(lines) + "\n")
    RESULTS.with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    raise SystemExit(main())
