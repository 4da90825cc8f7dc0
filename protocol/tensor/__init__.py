"""The tensor codec: numpy arrays on the wire, exact or quantized, with the level chosen per link.

Modules:

- ``wire``      -- the binary form (fixed header, shape, payload, CRC-32), ``Codec`` ids, dtype
                   codes, ``TensorHeader``, ``read_header`` (all checks that need no payload).
- ``codec``     -- the facade: ``CodecSpec``, ``encode_tensor``, ``decode_tensor``; the table of
                   codecs, their defaults and what each one guarantees.
- ``lossless``  -- byte-shuffle; LOSSLESS (shuffle + zstd) and FLOAT16.
- ``quant``     -- blockwise INT8 / INT4 (absmax) and SIGN1, with one-byte log-coded block scales.
- ``sparse``    -- TOPK: the largest magnitudes exactly, as index gaps plus values.
- ``feedback``  -- ``ErrorFeedback``: per-tensor residuals for repeated lossy sends.
- ``choice``    -- ``choose_codec``: the codec maximising the transfer-time / error reward for a
                   predicted link, with the per-codec table that explains it.
- ``decoders``  -- ``DECODERS``: every entry point that reads untrusted bytes (compression and
                   tensor), caps bound, for fuzzers.

Every decoder raises only ``protocol.errors.RemoteProtocolError`` subclasses on bad bytes.
"""

from protocol.tensor.choice import CodecChoice, CodecEstimate, choose_codec
from protocol.tensor.codec import (DEFAULT_BLOCK, DEFAULT_DENSITY, CodecSpec, decode_tensor,
                                   decode_tensor_with_header, encode_tensor)
from protocol.tensor.decoders import DECODERS
from protocol.tensor.feedback import ErrorFeedback
from protocol.tensor.wire import (DEFAULT_MAX_BYTES, DEFAULT_MAX_ELEMENTS, Codec, TensorHeader,
                                  read_header)

__all__ = [
    "Codec", "CodecChoice", "CodecEstimate", "CodecSpec", "DEFAULT_BLOCK", "DEFAULT_DENSITY",
    "DEFAULT_MAX_BYTES", "DEFAULT_MAX_ELEMENTS", "DECODERS", "ErrorFeedback", "TensorHeader",
    "choose_codec", "decode_tensor", "decode_tensor_with_header", "encode_tensor", "read_header",
]
