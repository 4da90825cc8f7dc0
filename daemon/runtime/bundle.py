"""A Python job's code as one content-addressed blob: the script, extra modules, data files.

Why one blob: the ledger, the blob store and the worker pool already move a job's "module" by
its SHA-256; a Python job's module is this bundle, so every guarantee about module bytes
(hash-checked fetch, size cap, cache by hash) holds for Python code unchanged, and the ledger
needs to know only which runtime runs it.

Format: ``MAGIC`` then a msgpack map ``{"script": name, "files": {name: bytes}}``. Names are
relative POSIX paths ("task.py", "lib/model.py", "data/grid.csv") that the task sees under
``/job``. Decoding is bounded and refuses anything a hostile submitter could use to confuse
the tree: absolute names, "..", empty parts, too many or too long names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import msgpack

from daemon.errors import DaemonError

MAGIC = b"\x00novacron-python\x01"
MAX_BUNDLE = 16 << 20
MAX_FILES = 1000
MAX_NAME = 255
JOB_DIR = "/job"


class BundleError(DaemonError, ValueError):
    """Not a valid bundle; the message says which part and why (one line)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    script: str
    files: Mapping[str, bytes]

    def encode(self) -> bytes:
        check_name(self.script)
        if self.script not in self.files:
            raise BundleError(f"the script {self.script!r} is not among the bundle's files")
        if len(self.files) > MAX_FILES:
            raise BundleError(f"{len(self.files)} files; at most {MAX_FILES}")
        for name in self.files:
            check_name(name)
        body = msgpack.packb({"script": self.script, "files": dict(sorted(self.files.items()))},
                             use_bin_type=True)
        data = MAGIC + body
        if len(data) > MAX_BUNDLE:
            raise BundleError(f"the script and its files are {len(data):,} bytes together; "
                              f"the limit is {MAX_BUNDLE:,}")
        return data


def is_bundle(data: bytes) -> bool:
    return data.startswith(MAGIC)


def decode(data: bytes) -> Bundle:
    if not is_bundle(data):
        raise BundleError("not a NovaCron Python bundle")
    if len(data) > MAX_BUNDLE:
        raise BundleError(f"bundle of {len(data):,} bytes passes the limit of {MAX_BUNDLE:,}")
    try:
        body = msgpack.unpackb(data[len(MAGIC):], raw=False, max_map_len=MAX_FILES + 2,
                               max_array_len=0, max_str_len=4 * MAX_NAME, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as err:
        raise BundleError(f"undecodable bundle: {err}") from None
    if not isinstance(body, dict) or set(body) != {"script", "files"}:
        raise BundleError("bundle must hold exactly 'script' and 'files'")
    script, files = body["script"], body["files"]
    if not isinstance(script, str) or not isinstance(files, dict):
        raise BundleError("bundle 'script' must be a name and 'files' a map")
    for name, content in files.items():
        if not isinstance(content, bytes):
            raise BundleError(f"file {name!r} is not bytes")
        check_name(name)
    if script not in files:
        raise BundleError(f"the script {script!r} is not among the bundle's files")
    return Bundle(script, files)


def check_name(name: object) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise BundleError(f"file name {name!r} must be 1..{MAX_NAME} characters")
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise BundleError(f"file name {name!r} must be a relative path without '.', '..' "
                          "or empty parts")
