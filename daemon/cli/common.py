"""Options and helpers shared by the commands that talk to a running daemon."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from daemon.cli.errors import CliError
from daemon.control.client import ControlClient, ControlError
from daemon.storage.datadir import default_data_dir


def add_client_args(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="data directory of the node to talk to (default: $NOVACRON_HOME or "
                        "~/.local/share/novacron)")
    p.add_argument("--socket", type=Path, default=None,
                   help="control socket path (default: DATA_DIR/control.sock)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print the raw JSON answer")


def socket_path(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return args.socket
    return (args.data_dir or default_data_dir()) / "control.sock"


def call(args: argparse.Namespace, method: str, params: dict[str, Any] | None = None,
         timeout: float = 30.0) -> Any:
    """One request to the daemon; every failure becomes a one-line ``CliError``."""
    try:
        with ControlClient(socket_path(args), timeout=timeout) as client:
            return client.call(method, params)
    except ControlError as err:
        raise CliError(str(err)) from None


WIDTH = 100
"""Status lines fit in this many columns (a terminal split in two, a mail, an issue)."""


def fit(line: str, width: int = WIDTH) -> str:
    """``line`` cut to ``width`` columns, with an ellipsis where it was cut."""
    return line if len(line) <= width else line[: width - 1] + "…"


def wrap(line: str, indent: int, width: int = WIDTH) -> str:
    """``line`` wrapped to ``width`` columns, continuation lines indented by ``indent``."""
    import textwrap

    return "\n".join(textwrap.wrap(line, width, subsequent_indent=" " * indent,
                                    break_on_hyphens=False)) or line.rstrip()


def wrap_lines(text: str, indent: int, width: int = WIDTH) -> str:
    """Every line of ``text`` wrapped as ``wrap`` does."""
    return "\n".join(wrap(line, indent, width) for line in text.splitlines())


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def answer(args: argparse.Namespace, value: Any, human: Callable[[Any], str]) -> int:
    """Print the daemon's answer: the raw JSON under ``--json``, else ``human(value)``'s line(s).

    Every command that acts on the daemon prints through here, so ``--json`` means the same
    everywhere and the human line is the only thing each command decides."""
    if getattr(args, "json", False):
        print_json(value)
    else:
        print(human(value))
    return 0
