"""Every entry point of ``protocol.compression`` and ``protocol.tensor`` that reads untrusted bytes.

For fuzzers (``scripts/fuzz_protocol.py``, ``tests/protocol/tensor/test_fuzz.py``): each entry
takes only the bytes, with caps bound small enough that a fuzz run never allocates much. The
contract every entry keeps: any input either decodes or raises a
``protocol.errors.RemoteProtocolError`` subclass; nothing else escapes.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from protocol.compression import decompress
from protocol.tensor.codec import decode_tensor
from protocol.tensor.feedback import ErrorFeedback
from protocol.tensor.wire import read_header

FUZZ_MAX_BYTES = 1 << 20
FUZZ_MAX_ELEMENTS = 1 << 18

DECODERS: dict[str, Callable[[bytes], object]] = {
    "compression.decompress": partial(decompress, max_size=FUZZ_MAX_BYTES),
    "tensor.read_header": partial(read_header, max_elements=FUZZ_MAX_ELEMENTS,
                                  max_bytes=FUZZ_MAX_BYTES),
    "tensor.decode_tensor": partial(decode_tensor, max_elements=FUZZ_MAX_ELEMENTS,
                                    max_bytes=FUZZ_MAX_BYTES),
    "tensor.ErrorFeedback.from_bytes": partial(ErrorFeedback.from_bytes,
                                               max_elements=FUZZ_MAX_ELEMENTS,
                                               max_bytes=FUZZ_MAX_BYTES),
}
