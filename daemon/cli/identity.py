"""``novacron identity``: create (on first use) and print this node's identity."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.cli.errors import CliError
from daemon.storage.datadir import default_data_dir, ensure_data_dir
from daemon.storage.keyfile import KeyFileError, load_or_create_identity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("identity", help="print this node's id (creating its key on first use)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="node data directory (default: $NOVACRON_HOME or ~/.local/share/novacron)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or default_data_dir()
    try:
        ensure_data_dir(data_dir)
    except OSError as err:
        raise CliError(f"cannot create data directory {data_dir}: {err.strerror}") from None
    try:
        identity, created = load_or_create_identity(data_dir)
    except KeyFileError as err:
        raise CliError(str(err)) from None
    print(f"node id:    {identity.node_id}")
    print(f"public key: {identity.public_key.hex()}")
    print(f"key file:   {data_dir / 'node.key'}" + ("  (created)" if created else ""))
    return 0
