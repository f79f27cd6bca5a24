"""deploy/kamailio/kamailio.cfg for real: Kamailio's dispatcher in front of two nodes.

The nodes here are two UDP sockets that answer every request with 200 (what
matters is where Kamailio sends things, not what a node does with them).
Shown: the shipped config passes ``kamailio -c``; every REGISTER of one phone
reaches the same node (agents pinned to a node), phones spread over both
nodes, the REGISTER carries a Path back through Kamailio; and when a node
stops answering, its phones' requests go to the other node.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections import defaultdict
from pathlib import Path
from typing import cast

import pytest
from peers.errors import PeerMissingError
from peers.kamailio import sip_options_ping
from peers.ports import LOOPBACK, free_udp_port
from peers.process import ChildProcess

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kamailio"
PHONES = [f"10{n:02d}" for n in range(12)]


class Node(asyncio.DatagramProtocol):
    """A stand-in dialer node: 200 OK to everything, and a log of who asked."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[tuple[str, str, str]] = []  # (method, To user, Path)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        head, _, _ = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        if method.startswith("SIP/"):
            return
        headers = [line for line in lines[1:] if line]
        to = next(h for h in headers if h.lower().startswith("to:"))
        user = re.search(r"sip:([^@;>]+)@", to)
        path = next((h for h in headers if h.lower().startswith("path:")), "")
        self.seen.append((method, user.group(1) if user else "", path))
        keep = ("via:", "from:", "to:", "call-id:", "cseq:")
        reply = ["SIP/2.0 200 OK"]
        reply += [h if not h.lower().startswith("to:") else h + ";tag=node" for h in headers
                  if h.lower().startswith(keep)]  # fmt: skip
        reply += ["Content-Length: 0", "", ""]
        assert self.transport is not None
        self.transport.sendto("\r\n".join(reply).encode(), addr)


class Phone(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait(data.decode(errors="replace"))


def register(user: str, kamailio_port: int, phone_port: int) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex
    return (
        f"REGISTER sip:{LOOPBACK}:{kamailio_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:{phone_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@floor.local>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{user}@floor.local>\r\n"
        f"Call-ID: {uuid.uuid4()}\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{LOOPBACK}:{phone_port}>\r\n"
        "Expires: 300\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def render(workdir: Path, port: int, nodes: list[int]) -> Path:
    listing = workdir / "dispatcher.list"
    listing.write_text(
        "".join(f"1 sip:{LOOPBACK}:{p} 0 10 node=node-{i}\n" for i, p in enumerate(nodes))
    )
    text = (DEPLOY / "kamailio.cfg").read_text()
    text = text.replace('"!LISTEN_ADDR!0.0.0.0!g"', f'"!LISTEN_ADDR!{LOOPBACK}!g"')
    text = text.replace('"!LISTEN_PORT!5060!g"', f'"!LISTEN_PORT!{port}!g"')
    text = text.replace("/etc/kamailio/dispatcher.list", str(listing))
    text = text.replace('"ds_ping_interval", 10', '"ds_ping_interval", 1')
    config = workdir / "kamailio.cfg"
    config.write_text(text)
    return config


async def test_the_dispatcher_pins_phones_to_nodes_and_fails_over(tmp_path: Path) -> None:
    binary = shutil.which("kamailio", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if binary is None:
        raise PeerMissingError("kamailio is not installed; run scripts/install-peers.sh")
    loop = asyncio.get_running_loop()
    nodes = [Node(), Node()]
    ports = []
    for node in nodes:
        await loop.create_datagram_endpoint(lambda n=node: n, local_addr=(LOOPBACK, 0))  # type: ignore[misc]
        assert node.transport is not None
        ports.append(node.transport.get_extra_info("sockname")[1])
    port = free_udp_port()
    config = render(tmp_path, port, ports)
    check = await asyncio.create_subprocess_exec(
        binary, "-c", "-f", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await check.communicate()
    assert check.returncode == 0, out.decode(errors="replace")
    (tmp_path / "run").mkdir()
    kamailio = await ChildProcess.spawn(
        [binary, "-f", str(config), "-DD", "-E", "-P", str(tmp_path / "k.pid"),
         "-Y", str(tmp_path / "run"), "-w", str(tmp_path), "-m", "64", "-M", "8"],
        cwd=tmp_path, name="kamailio",
    )  # fmt: skip
    phone = Phone()
    phone_transport, _ = await loop.create_datagram_endpoint(
        lambda: phone, local_addr=(LOOPBACK, 0)
    )
    phone_port = phone_transport.get_extra_info("sockname")[1]

    async def register_all(rounds: int, within: float) -> None:
        for _ in range(rounds):
            for user in PHONES:
                phone_transport.sendto(register(user, port, phone_port), (LOOPBACK, port))
                answer = await asyncio.wait_for(phone.answers.get(), within)
                assert answer.startswith("SIP/2.0 200"), answer

    try:
        async with asyncio.timeout(20):  # up when it answers (it relays OPTIONS to a node)
            while not await sip_options_ping(LOOPBACK, port, timeout=0.5):
                assert kamailio.returncode is None, kamailio.output
        await register_all(1, 5)
        for node in nodes:
            node.seen.clear()
        await register_all(3, 5)
        where: dict[str, set[int]] = defaultdict(set)
        for index, node in enumerate(nodes):
            for method, user, path in node.seen:
                if method == "REGISTER":
                    where[user].add(index)
                    assert f"{LOOPBACK}:{port}" in path, path  # calls come back this way
        assert set(where) == set(PHONES)
        assert all(len(at) == 1 for at in where.values()), dict(where)  # pinned
        pinned = {user: next(iter(at)) for user, at in where.items()}
        assert set(pinned.values()) == {0, 1}, pinned  # spread over both nodes
        # Node 1 goes away: its phones' REGISTERs end up on node 0.
        assert nodes[1].transport is not None
        nodes[1].transport.close()
        nodes[0].seen.clear()
        try:
            await register_all(1, 12)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{kamailio.output[-3000:]}") from None
        moved = {user for method, user, _ in nodes[0].seen if method == "REGISTER"}
        assert moved == set(PHONES), sorted(set(PHONES) - moved)
    finally:
        phone_transport.close()
        for node in nodes:
            if node.transport is not None:
                node.transport.close()
        await kamailio.stop()
