"""What the machine's owner sees and controls while the daemon runs.

Modules:

- ``settings`` -- the live settings (CPU share, memory, hours, idle-only) and the suspension,
                  validated, kept in the node's database, each with its source.
- ``tasklog``  -- one line in ``node.log`` and one SQLite row per task run; hourly totals.
- ``throttle`` -- CPU share that holds: the workers' cgroup quota kept to the share, or
                  workers paused and resumed on a duty cycle where no cgroup can be made.
- ``cgroup``   -- the workers' own CPU cgroup (v2 delegated, or v1), its quota and memory.
- ``service``  -- ``OwnerService``: suspend / resume / settings / tasks on the control socket,
                  and the ``work`` line of ``status`` (why the node takes no tasks, in words).
"""

from daemon.owner.service import OwnerService
from daemon.owner.settings import Settings, SettingsError

__all__ = ["OwnerService", "Settings", "SettingsError"]
