"""NovaCron from Python: drive jobs on your own node from scripts and notebooks.

Modules:

- ``client`` -- ``Client`` (blocking) and ``AsyncClient`` (trio or any ``anyio``-free async
                code via threads): submit, map, status, cancel, result; ``Result``.

Example::

    from novacron import Client

    with Client() as nc:                       # the node at $NOVACRON_HOME or ~/.local/share/novacron
        for r in nc.map("task.py", ["1", "2", "3"], replicas=2):
            print(r.task, r.output.decode())   # verified results, in completion order
"""

from novacron.client import AsyncClient, Client, JobFailed, NovaCronError, Result

__all__ = ["AsyncClient", "Client", "JobFailed", "NovaCronError", "Result"]
