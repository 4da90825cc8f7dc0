"""Durable storage under the node's data directory.

- ``keyfile`` -- the node key file (mode 0600), written atomically.
- ``datadir`` -- where a node keeps its files, and the default location.
"""

from daemon.storage.datadir import default_data_dir
from daemon.storage.keyfile import load_or_create_identity, load_identity, save_identity

__all__ = ["default_data_dir", "load_identity", "load_or_create_identity", "save_identity"]
