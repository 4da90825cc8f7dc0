"""Jobs: what a researcher submits, how a committee tracks it, how workers run it.

- ``spec``  -- the job spec (TOML), checked field by field with one-line errors.
"""

from daemon.jobs.spec import JobSpec, SpecError, load_spec

__all__ = ["JobSpec", "SpecError", "load_spec"]
