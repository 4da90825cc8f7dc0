#!/usr/bin/env bash
# The README's main command: set up, then show NovaCron working.
# For now it creates a throw-away node identity and prints it; later issues turn this into a
# local testnet that runs a job end to end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$NOVACRON_ROOT"
demo_home="$(mktemp -d -t novacron-demo.XXXXXX)"
trap 'rm -rf "$demo_home"' EXIT
novacron identity --data-dir "$demo_home/node0"
