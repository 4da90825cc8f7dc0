"""``novacron committees``, ``novacron capabilities`` and ``novacron kv put|get``: see the
committees and the soft state, and use the hard state directly."""

from __future__ import annotations

import argparse

from daemon.cli.common import add_client_args, call, print_json, wrap
from protocol.identity import short_node_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("committees", help="this epoch's committees and their members")
    add_client_args(p)
    p.set_defaults(func=committees_cmd)

    p = sub.add_parser("capabilities", help="the capability records this node has (soft state)")
    add_client_args(p)
    p.set_defaults(func=capabilities_cmd)

    p = sub.add_parser("kv", help="put or get a key in a shard committee's key-value store")
    ksub = p.add_subparsers(dest="kv_command", metavar="ACTION")
    ksub.required = True
    q = ksub.add_parser("put", help="commit KEY=VALUE through the shard's committee")
    q.add_argument("key")
    q.add_argument("value")
    add_client_args(q)
    q.set_defaults(func=kv_put_cmd)
    q = ksub.add_parser("get", help="read KEY through the shard's committee (an ordered read)")
    q.add_argument("key")
    add_client_args(q)
    q.set_defaults(func=kv_get_cmd)


def committees_cmd(args: argparse.Namespace) -> int:
    res = call(args, "committees")
    if args.json:
        print_json(res)
        return 0
    print(f"epoch {res['epoch']}: {len(res['members'])} members, committees of "
          f"{res['committee_size']}")
    for c in res["committees"]:
        print(wrap(f"  {c['shard']:<10} f={c['f']}  " + " ".join(short_node_id(m) for m in c["members"]),
                   indent=18))
    return 0


def capabilities_cmd(args: argparse.Namespace) -> int:
    res = call(args, "capabilities")
    if args.json:
        print_json(res)
        return 0
    print(f"{'node':<14} {'slots':>5} {'memory':>8} {'load':>5}  attestation  domain (all self-reported)")
    for r in res["records"]:
        print(f"{short_node_id(r['node_id']):<14} {r['slots']:>5} {r['memory_mb']:>6}MB {r['load_permille'] / 10:>4.0f}%"
              f"  {r['attestation_kind']:<11}  {_domain(r)}")
    return 0


def kv_put_cmd(args: argparse.Namespace) -> int:
    res = call(args, "kv.put", {"key": args.key, "value": args.value}, timeout=60)
    if args.json:
        print_json(res)
    else:
        print(f"committed on shard {res['shard']} in {res['latency_ms']:.1f} ms")
    return 0


def kv_get_cmd(args: argparse.Namespace) -> int:
    res = call(args, "kv.get", {"key": args.key}, timeout=60)
    if args.json:
        print_json(res)
    else:
        print(res["value"])
    return 0


def _domain(record: dict) -> str:
    """A node's failure domain: by default the node itself, shown as its short id."""
    domain = record["domain"]
    return short_node_id(domain) if domain == record["node_id"] else domain[:24]
