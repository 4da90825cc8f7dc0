"""Files an FL round's task carries into the volunteers' sandbox (copied, not imported here).

- ``fl_task``       -- the task's script: load the round's global model, run the user's
                       ``train`` on one shard, encode ``local - global`` with
                       ``protocol.tensor``'s codec, print the result's bytes.
- ``zstandard_raw`` -- shipped as ``zstandard.py``: the sandbox's Python has no zstd, so this
                       stand-in makes ``protocol.compression`` send payloads raw (its own
                       ``RAW`` method), which every decoder reads.

They are ordinary Python run by the sandbox's interpreter; the daemon never imports them.
"""
