"""When is a local testnet ready, and how a node's status is summarised in one line."""

from __future__ import annotations

from typing import Any

from testnet.local.layout import TestnetState


def network_ready(state: TestnetState, statuses: dict[str, Any]) -> str | None:
    """None when every node answers and reports healthy; otherwise what we still wait for."""
    return _ready(state, statuses, degraded_ok=False)


def network_formed(state: TestnetState, statuses: dict[str, Any]) -> str | None:
    """For ``--wan`` testnets: None when every node answers, its p2p layer is ok and it holds
    every node's record, and no committee is stalled. A committee that is only degraded (a
    member not reached yet, over 300 ms links and NAT) does not hold ``up`` back; the table
    ``up`` prints then shows each node's real health."""
    return _ready(state, statuses, degraded_ok=True)


def _ready(state: TestnetState, statuses: dict[str, Any], degraded_ok: bool) -> str | None:
    for name, st in statuses.items():
        if "error" in st or st.get("process") != "running":
            return f"{name} to answer"
        health = st.get("health")
        p2p_health = st.get("services", {}).get("p2p", {}).get("health")
        if degraded_ok and p2p_health != "ok":
            return f"{name}: p2p {p2p_health}"
        if health != "ok" and not (degraded_ok and "stalled" not in str(health)):
            return f"{name}: {health}"
        services = st.get("services", {})
        connected = services.get("p2p", {}).get("connected", 0)
        if len(state.nodes) > 1 and connected < 1:
            return f"{name} to connect to a peer"
        # Nodes know only their seed at first: ready once each holds every node's record.
        records = services.get("softstate", {}).get("records", 0)
        if records < len(state.nodes):
            return f"{name} to learn of every node ({records} of {len(state.nodes)} records)"
    return None


def summarize(st: dict[str, Any]) -> str:
    if st.get("process") != "running":
        return f"{'-':>5}  {st.get('process', 'unknown')}"
    if "error" in st:
        return f"{'-':>5}  not answering: {st['error']}"
    services = st.get("services", {})
    peers = services.get("p2p", {}).get("connected", "-")
    # The health, then what the operator watches a testnet for: committees and tasks
    # (``novacron status`` on the node has every service's summary).
    parts = [st.get("health", "?")]
    for name in ("consensus", "jobs"):
        if services.get(name, {}).get("summary"):
            parts.append(services[name]["summary"])
    return f"{peers!s:>5}  " + "; ".join(parts)
