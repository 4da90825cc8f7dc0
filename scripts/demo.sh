#!/usr/bin/env bash
# The README's main command: set up, start a local testnet, run a job end to end, stop.
#
# Five daemons on 127.0.0.1 form committees; one node submits the Monte Carlo pi example
# (100 tasks); volunteers run it sandboxed, each task on two of them; the shard committee
# accepts results by quorum and certifies them; we fetch the results, verify every certificate
# offline from the genesis, and print the estimate. Pass -n N for another testnet size.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$NOVACRON_ROOT"

n=5
[ "${1:-}" = "-n" ] && n="$2"
work="$(mktemp -d -t novacron-demo.XXXXXX)"
tn="$work/testnet"
cleanup() { novacron testnet down --dir "$tn" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting a local testnet of $n daemons"
novacron testnet up -n "$n" --dir "$tn"

say "the committees this epoch (PBFT, f faults tolerated)"
novacron committees --data-dir "$tn/node0"

say "a request committed through the shard committee"
novacron kv put greeting "hello from node1" --data-dir "$tn/node1"
printf 'read back on node3: '
novacron kv get greeting --data-dir "$tn/node3"

say "submitting examples/pi/job.toml (100 tasks, replication 2) from node0"
job=$(novacron submit examples/pi/job.toml --data-dir "$tn/node0")
novacron watch "$job" --data-dir "$tn/node0"

say "results and their certificates"
novacron result "$job" -o "$work/result" --data-dir "$tn/node0"
novacron verify "$work/result" --genesis "$tn/genesis.toml" | tail -n 1
python3 examples/pi/combine.py "$work/result/output"

say "why task 0 went where it went"
novacron explain "${job:0:12}" 0 --data-dir "$tn/node0"

say "stopping the testnet"
