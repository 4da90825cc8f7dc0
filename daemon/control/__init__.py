"""The local control socket: how the CLI (and scripts) talk to a running daemon.

- ``jsonrpc`` -- JSON-RPC 2.0 line framing, error codes (pure).
- ``params``  -- checking request params with one clear message per mistake.
- ``server``  -- the trio server on a 0600 Unix socket; stale-socket handling.
- ``client``  -- the blocking client the CLI uses; one-line errors for every failure.

Every method, its params and its errors are documented in ``docs/control-socket.md``.

This ``__init__`` re-exports nothing: the CLI imports ``client`` (blocking, no trio) and the
daemon ``server``; importing the package must not load trio for a command that never needs it.
"""
