"""The demo floor: the service on embedded defaults plus simulated phones.

Everything goes over real SIP on loopback with the production code on both
sides: each simulated desk phone is its own SIP endpoint on its own UDP port
that registers with digest credentials to the service's registrar. (Calls,
recordings, CDRs and quotas join the demo as their issues land.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from dialer.app import running_service, wall_clock
from dialer.config import Config, PhoneConfig, SipConfig
from dialer.events import Event, PhoneRegistered, PhoneUnregistered
from dialer.sip.endpoint import SipEndpoint
from dialer.sip.registration import RegistrationClient, RegistrationState, RegistrationTarget
from dialer.transport.udp import UdpAdapter, open_udp


@dataclass
class DemoSummary:
    phones: int
    duration: float
    registered_at_service: int = 0
    phones_registered: int = 0
    register_requests: int = 0
    challenges: int = 0
    auth_failures: int = 0
    malformed: int = 0
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.phones_registered == self.phones == self.registered_at_service

    def render(self) -> str:
        kinds: dict[str, int] = {}
        for event in self.events:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
        lines = [
            "demo floor summary",
            f"  duration               {self.duration:.1f} s",
            f"  simulated phones       {self.phones}",
            f"  registered (phones)    {self.phones_registered}",
            f"  registered (registrar) {self.registered_at_service}",
            f"  REGISTER requests      {self.register_requests}",
            f"  digest challenges      {self.challenges}",
            f"  auth failures          {self.auth_failures}",
            f"  malformed messages     {self.malformed}",
            "  events                 "
            + (", ".join(f"{k}={v}" for k, v in sorted(kinds.items())) or "none"),
            f"  result                 {'ok' if self.ok else 'MISMATCH'}",
        ]
        return "\n".join(lines)


async def run_demo(phones: int, duration: float, data_dir: Path) -> DemoSummary:
    if phones < 1:
        raise ValueError("--phones must be at least 1")
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    extensions = [str(1001 + i) for i in range(phones)]
    passwords = {ext: secrets.token_urlsafe(12) for ext in extensions}
    config = Config(
        sip=SipConfig(udp_port=0, tcp_port=0),
        phones=tuple(PhoneConfig(ext, pw, vendor="generic") for ext, pw in passwords.items()),
    )
    config = dataclasses.replace(
        config,
        service=dataclasses.replace(config.service, data_dir=data_dir),
        media=dataclasses.replace(config.media, recordings_dir=str(data_dir / "recordings")),
    )
    summary = DemoSummary(phones=phones, duration=duration)
    loop = asyncio.get_running_loop()
    async with running_service(config) as service:
        seen: list[Event] = []
        service.subscribe(seen.append)
        service_address = service.sip_address
        rng = random.Random(secrets.randbits(64))
        sims: list[tuple[RegistrationClient, SipEndpoint, UdpAdapter]] = []
        for ext in extensions:
            endpoint = SipEndpoint(("127.0.0.1", 0), clock=wall_clock())
            adapter = await open_udp(endpoint, "127.0.0.1", 0)
            host, port = adapter.local_address
            endpoint.local = (host, port)
            realm = config.sip.realm
            target = RegistrationTarget(
                registrar_uri=f"sip:{realm}",
                aor=f"sip:{ext}@{realm}",
                contact=f"sip:{ext}@{host}:{port}",
                via_host=host,
                via_port=port,
                username=ext,
                password=passwords[ext],
                expires=300,
            )
            client = RegistrationClient(target, rng)
            endpoint.add_registration(client, service_address, loop.time())
            adapter.flush()
            sims.append((client, endpoint, adapter))
        await asyncio.sleep(duration)
        summary.phones_registered = sum(
            1 for c, _, _ in sims if c.state is RegistrationState.REGISTERED
        )
        registrar = service.endpoint.registrar
        assert registrar is not None
        summary.registered_at_service = len(registrar.registered_extensions(loop.time()))
        summary.register_requests = service.endpoint.counters.requests_by_method.get("REGISTER", 0)
        summary.challenges = registrar.counters.challenged
        summary.auth_failures = registrar.counters.auth_failures
        summary.malformed = service.endpoint.counters.malformed
        for _, endpoint, adapter in sims:
            endpoint.stop_registrations(loop.time())
            adapter.flush()
        await asyncio.sleep(0.2)  # let the un-REGISTERs reach the registrar
        summary.events.extend(e for e in seen if isinstance(e, PhoneRegistered | PhoneUnregistered))
        for _, _, adapter in sims:
            adapter.close()
    return summary
