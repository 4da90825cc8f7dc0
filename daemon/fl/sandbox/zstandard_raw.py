"""Stand-in for the ``zstandard`` package inside the sandbox: never smaller, so always RAW.

``protocol.compression.compress_parts`` keeps zstd output only when it is smaller than the
input; this compressor returns one byte more than it is given, so payloads go out with the
``RAW`` method byte. Encoding stays deterministic, and the real decoder reads it.
"""


class ZstdError(Exception):
    pass


class ZstdCompressor:
    def __init__(self, level=3, write_content_size=True):
        self.level = level

    def compress(self, data):
        return bytes(memoryview(data).cast("B")) + b"\0"


class ZstdDecompressor:
    def __init__(self, max_window_size=0):
        pass

    def decompress(self, data, max_output_size=0, allow_extra_data=False):
        raise ZstdError("the sandbox's stand-in cannot decompress zstd frames")


def get_frame_parameters(frame):
    raise ZstdError("the sandbox's stand-in cannot read zstd frames")


CONTENTSIZE_UNKNOWN = -1
CONTENTSIZE_ERROR = -2
