"""When is a local testnet ready, and how a node's status is summarised in one line."""

from __future__ import annotations

from typing import Any

from testnet.local.layout import TestnetState


def network_ready(state: TestnetState, statuses: dict[str, Any]) -> str | None:
    """None when every node answers and reports healthy; otherwise what we still wait for."""
    for name, st in statuses.items():
        if "error" in st or st.get("process") != "running":
            return f"{name} to answer"
        if st.get("health") != "ok":
            return f"{name}: {st.get('health')}"
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
