"""The root of every error the daemon raises on purpose: ``DaemonError``.

Each concern keeps its own subclasses (``ConfigError``, ``P2PError``, ``SpecError``, ...), so a
caller catches what it can handle by name; code at a task or process boundary that must not let
any of our errors escape catches ``DaemonError`` and leaves real bugs (``TypeError``, ...) to
crash loudly. The wire protocol's errors are ``protocol.errors.ProtocolError``: the peer's
garbage is a different thing from our own refusal.
"""


class DaemonError(Exception):
    """Something the daemon refuses or cannot do; the message says what, in one line."""
