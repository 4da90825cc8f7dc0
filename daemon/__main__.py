"""``python -m daemon`` is the ``novacron`` command (handy where the console script is not on PATH)."""

import sys

from daemon.cli.main import main

sys.exit(main())
