"""Content-addressed blobs: modules, task inputs and outputs, by SHA-256.

- ``store``   -- the on-disk store: atomic writes, verified reads, bounded size.
- ``service`` -- serving byte ranges to peers and fetching whole blobs, verified on arrival.
"""

from daemon.blobs.service import BlobService, BlobUnavailable
from daemon.blobs.store import BlobStore, BlobTooLarge, blob_hash

__all__ = ["BlobService", "BlobStore", "BlobTooLarge", "BlobUnavailable", "blob_hash"]
