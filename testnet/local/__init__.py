"""The local testnet: real daemon processes on 127.0.0.1, with fault injection.

- ``layout``    -- the testnet directory and its ``testnet.json`` record.
- ``processes`` -- starting and signalling daemon processes, free loopback ports.
- ``launcher``  -- ``up`` / ``down`` / ``statuses`` / ``kill`` / ``pause`` / ``resume`` / ``restart``.
"""
