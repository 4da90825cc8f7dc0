"""One error root for the daemon: every exception class under ``daemon/`` is a ``DaemonError``,
or, for what a peer sent that is garbage, a ``protocol.errors.RemoteProtocolError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import daemon
from daemon.errors import DaemonError
from protocol.errors import RemoteProtocolError


def test_every_daemon_exception_is_a_daemon_error() -> None:
    strays = []
    for info in pkgutil.walk_packages(daemon.__path__, "daemon."):
        if info.name.endswith("__main__") or info.name.startswith("daemon.fl.sandbox"):
            continue  # a process entry, or code shipped into the task sandbox (no daemon there)
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and issubclass(cls, BaseException) \
                    and cls.__module__ == module.__name__ and not issubclass(cls, (DaemonError, RemoteProtocolError)):
                strays.append(f"{info.name}.{name}")
    assert not strays, f"exception classes outside DaemonError: {strays}"


def test_os_level_errors_stay_what_they_were() -> None:
    from daemon.p2p.libp2p_fixes import PortInUse
    from daemon.runtime.volunteer import PrefsError

    assert issubclass(PortInUse, OSError) and issubclass(PrefsError, ValueError)
