#!/usr/bin/env bash
# Run the whole NovaCron test suite from a fresh machine: set up, then pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/protocol -x`. The slowest tests
# are listed at the end: the suite must stay well inside CI's hour on 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$NOVACRON_ROOT"
exec "$VENV/bin/python" -m pytest --durations=25 "$@"
