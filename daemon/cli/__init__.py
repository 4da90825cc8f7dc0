"""The ``novacron`` command line: one module per command group, wired up in ``main``."""

from daemon.cli.main import main

__all__ = ["main"]
