"""Real-peer harness for the integration tier: SIPp, baresip and Kamailio on loopback.

Every helper binds to 127.0.0.1 on ports the OS chose, starts its peer as a child
process and stops it by that child's pid only.
"""

from peers.baresip import Baresip, BaresipEvent, NetstringDecoder, encode_netstring
from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.kamailio import Kamailio
from peers.ports import free_port_pair, free_tcp_port, free_udp_port
from peers.sipp import Sipp, SippResult

__all__ = [
    "Baresip",
    "BaresipEvent",
    "Kamailio",
    "NetstringDecoder",
    "PeerError",
    "PeerMissingError",
    "PeerTimeoutError",
    "Sipp",
    "SippResult",
    "encode_netstring",
    "free_port_pair",
    "free_tcp_port",
    "free_udp_port",
]
