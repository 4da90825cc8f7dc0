"""The libp2p host wrapper: all of a node's networking, with py-libp2p's pitfalls fixed.

Modules:

- ``host``    -- ``P2PHost``, the facade the daemon uses (run, streams, gossip, peers, metrics).
- ``config``  -- ``P2PConfig``: listen/bootstrap addresses, GossipSub tuning, queue bounds, backoff.
- ``streams`` -- direct framed streams (one per peer and protocol) and request/response.
- ``gossip``  -- topic publish/subscribe over GossipSub with counted drops.
- ``peers``   -- pure core: which peers to dial when (backoff with jitter), fault scores, bans.
- ``framing`` -- pure core: u32-length-prefixed frames, size cap checked before the body.
- ``metrics`` -- the counters behind ``P2PHost.metrics()``.
- ``overlay`` -- pure core: the bounded random partial view and idle-connection trimming.
- ``rtt``     -- pure core: smoothed round trips per peer, and timers (and dials) scaled by them.
- ``probing`` -- pings to the kept peers nothing else times; a peer that misses them is redialled.
- ``addresses`` -- peer multiaddrs: parsing ``.../p2p/<node id>``, the dialable part.
- ``reachability`` -- pure core: AutoNAT verdicts, relay slots, hole-punch outcomes, status line.
- ``compat``  -- pure core: peers that identify says speak other versions of our protocols.
- ``traversal`` -- runs py-libp2p's AutoNAT, circuit relay v2 (client and capped relay) and DCUtR.
- ``factory`` -- builds the py-libp2p host, swarm and GossipSub from public constructors.
- ``libp2p_fixes`` -- the few places we reach into py-libp2p 0.8.1 internals, version-pinned.
- ``quick_io`` -- py-libp2p's per-frame bookkeeping cut: locks that do not yield when free,
  read-ahead on TCP, yamux's environment switches read once.
- ``errors``  -- ``P2PError`` and its subclasses.
"""

from daemon.p2p.config import P2PConfig
from daemon.p2p.errors import NotRunning, P2PConfigError, P2PError, RequestFailed
from daemon.p2p.gossip import GossipHandler
from daemon.p2p.addresses import BadAddress, parse_peer_addr
from daemon.p2p.host import P2PHost
from daemon.p2p.peers import KnownPeer
from daemon.p2p.streams import FrameHandler, RequestHandler

__all__ = [
    "BadAddress",
    "FrameHandler",
    "GossipHandler",
    "KnownPeer",
    "NotRunning",
    "P2PConfig",
    "P2PConfigError",
    "P2PError",
    "P2PHost",
    "RequestFailed",
    "RequestHandler",
    "parse_peer_addr",
]
