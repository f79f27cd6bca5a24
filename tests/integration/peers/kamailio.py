"""Kamailio as a PBX/proxy stand-in: digest registrar plus a record-routing proxy.

The config is generated per instance so each test gets its own ports, users and
static trunk destination. Passwords live in the generated script (checked with
the auth module's ``pv_*_authenticate``) so no database is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.lifecycle import Lifecycle
from peers.ports import LOOPBACK, free_udp_tcp_port
from peers.process import ChildProcess

_MODULE_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/aarch64-linux-gnu/kamailio/modules"),
    Path("/usr/lib/kamailio/modules"),
    Path("/usr/local/lib64/kamailio/modules"),
)

# Values are pasted into the routing script: keep them to characters that need
# no escaping there, so a test cannot accidentally produce a broken config.
_SAFE = re.compile(r"[A-Za-z0-9_.+-]+")

_MODULES = (
    "tm",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "textops",
    "siputils",
    "xlog",
    "sanity",
    "usrloc",
    "registrar",
    "auth",
)


def _module_dir() -> Path:
    for candidate in _MODULE_DIRS:
        if (candidate / "tm.so").exists():
            return candidate
    raise PeerMissingError(
        "Kamailio modules not found in " + ", ".join(str(d) for d in _MODULE_DIRS)
    )


def _safe(what: str, value: str) -> str:
    if not _SAFE.fullmatch(value):
        raise PeerError(f"{what} {value!r} must match {_SAFE.pattern}")
    return value


def render_config(
    *,
    port: int,
    modules: Path,
    users: Mapping[str, str],
    realm: str,
    static_destination: str | None,
    challenge_invite: bool,
) -> str:
    """The kamailio.cfg text for one instance."""
    _safe("realm", realm)
    password_lookup = "\n".join(
        f'    if ($au == "{_safe("user", user)}") {{ $var(pw) = "{_safe("password", pw)}"; }}'
        for user, pw in users.items()
    )
    if static_destination is None:
        trunk = '        sl_send_reply("404", "Not Found");\n        exit;'
    else:
        host, _, dport = static_destination.partition(":")
        _safe("static destination", host)
        _safe("static destination port", dport or "5060")
        trunk = f'        $du = "sip:{static_destination}";\n        route(RELAY);'
    invite_auth = "        route(PROXY_AUTH);\n" if challenge_invite else ""
    loads = "\n".join(f'loadmodule "{name}.so"' for name in _MODULES)
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
log_facility=LOG_LOCAL0
children=2
tcp_children=2
auto_aliases=no
listen=udp:{LOOPBACK}:{port}
listen=tcp:{LOOPBACK}:{port}
alias="{LOOPBACK}:{port}"
dns=no
rev_dns=no
use_dns_cache=off

mpath="{modules}/"
{loads}

modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("rr", "append_fromtag", 1)
modparam("auth", "secret", "{secrets.token_hex(16)}")
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 60000)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        xlog("L_WARN", "malformed request from $si:$sp\\n");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            route(RELAY);
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                route(RELAY);
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    t_check_trans();
    remove_hf("Route");
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("REGISTER")) {{
        route(REGISTRAR);
    }}
    if (is_method("INVITE")) {{
{invite_auth}        record_route();
        if (lookup("location")) {{
            route(RELAY);
        }}
{trunk}
    }}
    sl_send_reply("405", "Method Not Allowed");
    exit;
}}

route[PASSWORD] {{
    $var(pw) = "";
{password_lookup}
}}

route[REGISTRAR] {{
    route(PASSWORD);
    if ($var(pw) == "" || !pv_www_authenticate("{realm}", "$var(pw)", "0")) {{
        www_challenge("{realm}", "0");
        exit;
    }}
    if ($au != $tU) {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{
        sl_reply_error();
    }}
    exit;
}}

route[PROXY_AUTH] {{
    route(PASSWORD);
    if ($var(pw) == "" || !pv_proxy_authenticate("{realm}", "$var(pw)", "0")) {{
        proxy_challenge("{realm}", "0");
        exit;
    }}
    consume_credentials();
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""


class Kamailio(Lifecycle):
    """One Kamailio process with its own generated config in a temp dir.

    ``users`` maps user names to passwords for both REGISTER (401) and, when
    ``challenge_invite`` is set, INVITE (407). An INVITE whose Request-URI user
    is registered goes to that contact; any other goes to ``static_destination``
    (``host:port``, a trunk-style customer such as a SIPp UAS) or gets 404.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str],
        static_destination: str | None = None,
        realm: str = "127.0.0.1",
        challenge_invite: bool = True,
        port: int | None = None,
        binary: str = "kamailio",
    ) -> None:
        path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin")
        if path is None:
            raise PeerMissingError(
                f"{binary} is not installed; run scripts/install-peers.sh (package kamailio)"
            )
        self.binary = path
        self.users = dict(users)
        self.static_destination = static_destination
        self.realm = realm
        self.challenge_invite = challenge_invite
        self.port = port if port is not None else free_udp_tcp_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._child: ChildProcess | None = None

    @property
    def address(self) -> str:
        """``host:port`` to point SIP clients at."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def log(self) -> str:
        """Everything Kamailio logged so far (stderr and stdout)."""
        return self._child.output if self._child is not None else ""

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Write the config, check it, start Kamailio and wait until it answers OPTIONS."""
        if self._child is not None:
            raise PeerError("Kamailio already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="kamailio-")
        workdir = Path(self._tmp.name)
        cfg = workdir / "kamailio.cfg"
        cfg.write_text(
            render_config(
                port=self.port,
                modules=_module_dir(),
                users=self.users,
                realm=self.realm,
                static_destination=self.static_destination,
                challenge_invite=self.challenge_invite,
            )
        )
        runtime = workdir / "run"
        runtime.mkdir()
        check = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            "-f",
            str(cfg),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=workdir,
        )
        out, _ = await check.communicate()
        if check.returncode != 0:
            raise PeerError(f"kamailio rejected its config:\n{out.decode(errors='replace')}")
        self._child = await ChildProcess.spawn(
            [
                self.binary,
                "-f",
                str(cfg),
                "-DD",
                "-E",
                "-P",
                str(workdir / "kamailio.pid"),
                "-Y",
                str(runtime),
                "-w",
                str(workdir),
                "-m",
                "64",
                "-M",
                "8",
            ],
            cwd=workdir,
            name="kamailio",
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        assert self._child is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._child.returncode is not None:
                raise PeerError(
                    f"kamailio exited with {self._child.returncode} during start:\n{self.log}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PeerTimeoutError(
                    f"kamailio on {self.address} did not answer OPTIONS within {timeout}s:\n"
                    f"{self.log}"
                )
            if await sip_options_ping(LOOPBACK, self.port, timeout=min(0.5, remaining)):
                return

    async def stop(self) -> None:
        """Stop the process this helper started (by pid) and remove its temp dir."""
        if self._child is not None:
            await self._child.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class _OptionsProbe(asyncio.DatagramProtocol):
    def __init__(self, answered: asyncio.Future[int]) -> None:
        self.answered = answered

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        first = data.split(b"\r\n", 1)[0]
        parts = first.split(b" ", 2)
        is_response = len(parts) >= 2 and parts[0] == b"SIP/2.0" and parts[1].isdigit()
        if is_response and not self.answered.done():
            self.answered.set_result(int(parts[1]))


async def sip_options_ping(host: str, port: int, *, timeout: float) -> bool:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
    """True if an OPTIONS to ``sip:host:port`` gets a 200 within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[int] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _OptionsProbe(answered), local_addr=(LOOPBACK, 0)
    )
    try:
        local_port = transport.get_extra_info("sockname")[1]
        tag = secrets.token_hex(4)
        request = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{LOOPBACK}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{LOOPBACK}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        transport.sendto(request, (host, port))
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(answered, timeout) == 200
        return False
    finally:
        transport.close()
