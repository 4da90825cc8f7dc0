"""Entry point of the ``novacron`` console script.

Each command group lives in its own module under ``daemon.cli`` and exposes
``register(subparsers)``, which adds its sub-commands and sets ``func`` on them. ``main`` turns
every ``CliError`` (and any error a command marks as the user's) into one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from daemon.cli.errors import CliError

# Command-group modules, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "daemon.cli.identity", "daemon.cli.node", "daemon.cli.consensus", "daemon.cli.testnet",
    "daemon.cli.attest", "daemon.cli.jobs", "daemon.cli.tasks", "daemon.cli.owner",
    "daemon.cli.service", "daemon.cli.fl",
)


def build_parser() -> argparse.ArgumentParser:
    from daemon import __version__

    parser = argparse.ArgumentParser(
        prog="novacron",
        description="NovaCron: a peer-to-peer volunteer supercomputer.",
    )
    parser.add_argument("--version", action="version", version=f"novacron {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _closed_pipe()
    except CliError as err:
        print(f"novacron: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # our bug: one line for the user, the traceback on request
        if os.environ.get("NOVACRON_DEBUG"):
            raise
        print(f"novacron: internal error: {type(err).__name__}: {err} (run again with "
              "NOVACRON_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 70
    return int(result or 0)


def _closed_pipe() -> int:
    """The reader of our output went away (``novacron explain ... | head``): stop quietly, as
    ``cat`` does, instead of a traceback at exit when Python flushes stdout again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the signal


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
