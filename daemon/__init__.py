"""The NovaCron node daemon: everything that does I/O, plus the pure decision logic it hosts.

Subpackages:

- ``cli``    -- the ``novacron`` command line.
- ``sched``  -- availability forecasts and task placement with explanations (pure).
"""
