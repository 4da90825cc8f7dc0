"""The nftables rules of a node's namespace and of a NAT router: pure text for ``nft -f -``.

- ``node_rules``: a node's outgoing TCP connections to the testnet's addresses are
  redirected to the delay relay on 127.0.0.1 in its own namespace (the relay's own
  connections carry a firewall mark and pass). The relay dials from inside the node's
  namespace, so the far end sees the node's real address (or its NAT router's).
- ``router_rules``: a home router. Connections from the LAN leave masqueraded as the router's
  public address; from outside, only replies to them get in (conntrack), so nobody can dial
  the node behind it unless it dialled them first, as with a real NAT. Port mappings are kept
  (``persistent``) where they can be, like the endpoint-independent mapping most home
  routers do, which is what hole punching relies on.
"""

from __future__ import annotations

from testnet.wan.plan import LAN_NET, PUBLIC_NET, RELAY_MARK, RELAY_PORT, NodeNet

TABLE = "novacron_wan"


def node_rules(node: NodeNet) -> str:
    return f"""table ip {TABLE} {{
  chain relay {{
    type nat hook output priority -100; policy accept;
    meta mark {RELAY_MARK:#x} return
    ip daddr {node.ip} return
    ip daddr {{ {PUBLIC_NET}, {LAN_NET} }} meta l4proto tcp redirect to :{RELAY_PORT}
  }}
}}
"""


def router_rules(node: NodeNet) -> str:
    if not node.natted:
        raise ValueError(f"node{node.index} has a public address: no NAT router")
    lan = node.gateway.rsplit(".", 1)[0] + ".0/24"
    return f"""table ip {TABLE} {{
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    oifname "wan0" ip saddr {lan} masquerade persistent
  }}
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
  }}
}}
"""
