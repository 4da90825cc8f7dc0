"""User-facing errors: one line that says what is wrong and how to fix it, never a traceback."""

from daemon.errors import DaemonError


class CliError(DaemonError):
    """A mistake the user can fix. ``str(err)`` is the whole message; exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code
