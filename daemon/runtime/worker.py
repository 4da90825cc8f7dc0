"""A worker process: one Sandbox, tasks in over stdin, outcomes out over stdout.

Run as ``python -m daemon.runtime.worker [options]`` by ``pool.WorkerPool``. Before it loads
wasmtime the worker makes itself harmless to the volunteer's machine (defence in depth, beyond
wasmtime's own isolation):

- lower CPU priority (``nice``), and SCHED_IDLE for idle-only volunteers: the kernel then runs
  it only when no other program wants the CPU;
- RLIMIT_DATA caps its writable memory (task memory + the interpreter) so a bug in the runtime
  cannot eat the machine's RAM; RLIMIT_CORE 0, so a crash leaves no core file behind;
- it dies with its parent: a watcher thread exits the process as soon as its parent pid
  changes, so no worker outlives a killed daemon. (Not PR_SET_PDEATHSIG: that fires when the
  *thread* that forked the child exits, and trio forks from worker threads it later retires,
  which killed healthy workers mid-task.)
- the protocol uses private copies of fds 0 and 1; fd 1 then points at stderr, so a stray print
  from any library cannot corrupt the protocol stream.

Every frame goes out whole (``write_frame``). A write to a pipe blocks while the pipe is full,
and a worker stopped there (the CPU throttle's SIGSTOP, ``daemon.owner.throttle``) comes back
from ``write`` with only part of its bytes written when it is continued: a raw file's ``write``
then returns the short count, and a caller that ignores it cuts the frame. The daemon waited
for the rest until the task's deadline (four minutes for one federated-training client) while
the worker waited for its next task.

It exits when its stdin closes. It has no wall-clock deadline of its own beyond the Sandbox's:
the pool kills it if an answer is overdue.
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from pathlib import Path
from typing import BinaryIO

from daemon.runtime import wire

def harden(nice: int, sched_idle: bool, max_data_mb: int) -> None:
    if nice:
        os.nice(nice)
    if sched_idle and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if max_data_mb:
        limit = max_data_mb << 20
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    watch_parent(os.getppid())


PARENT_POLL_S = 0.5


def watch_parent(parent: int) -> None:
    """Exit the process (at once, mid-task or not) when ``parent`` is no longer our parent."""
    if os.getppid() != parent or parent == 1:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)  # a daemon thread polling the OS, not a test waiting
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> dict[str, object] | None:
    header = _read_exact(stream, wire.HEADER.size)
    if header is None:
        return None
    body = _read_exact(stream, wire.frame_length(header))
    if body is None:
        return None
    return wire.decode(body)


def write_frame(out: BinaryIO, message: dict[str, object]) -> None:
    """Write one framed message, all of it: ``write`` on a pipe may write only part (above)."""
    view = memoryview(wire.encode(message))
    while view:
        written = out.write(view)
        if written is None:  # a non-blocking stream that could take nothing: not ours
            raise BlockingIOError("worker output would block")
        view = view[written:]
    out.flush()


def serve(inp: BinaryIO, out: BinaryIO, cache_dir: Path | None, cache_capacity: int,
          python_cache: Path | None = None) -> None:
    from daemon.runtime.python_tasks import PythonTasks
    from daemon.runtime.cache import ModuleUnavailable
    from daemon.runtime.outcome import TaskOutcome
    from daemon.runtime.resumable import Checkpoint, CheckpointPolicy
    from daemon.runtime.sandbox import Sandbox
    from protocol.messages.tasks import TaskStatus

    sandbox = Sandbox(cache_dir, cache_capacity=cache_capacity)
    python = PythonTasks(python_cache)
    write_frame(out, {"ready": os.getpid()})
    while True:
        message = read_message(inp)
        if message is None:
            return
        request = wire.RunRequest.from_wire(message)
        try:
            if python.owns(request.module_hash, request.module):
                outcome = python.run(request)
            elif request.files:  # a WebAssembly task has no file tree to put them in
                outcome = TaskOutcome(TaskStatus.REFUSED, "the task's input names sticky files,"
                                      " which only Python tasks can read")
            else:
                def send_checkpoint(c: Checkpoint) -> bool:
                    write_frame(out, {"checkpoint": wire.checkpoint_to_wire(c)})
                    return True
                policy = (CheckpointPolicy(request.checkpoint_fuel)
                          if request.checkpoint_fuel else None)
                outcome = sandbox.run(request.module_hash, request.module, request.stdin,
                                      request.limits, seed=request.seed, argv=request.argv,
                                      logical_time_ns=request.logical_time_ns,
                                      checkpoints=policy, on_checkpoint=send_checkpoint,
                                      resume=request.resume,
                                      resume_digest=request.resume_digest or None)
            reply: dict[str, object] = {"outcome": outcome.to_wire()}
        except ModuleUnavailable:
            reply = {"missing": True}
        write_frame(out, reply)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m daemon.runtime.worker")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--cache-capacity", type=int, default=32)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--sched-idle", action="store_true")
    parser.add_argument("--max-data-mb", type=int, default=0)
    parser.add_argument("--python-cache", type=Path, default=None)
    args = parser.parse_args(argv)
    harden(args.nice, args.sched_idle, args.max_data_mb)
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    try:
        serve(inp, out, args.cache_dir, args.cache_capacity, args.python_cache)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
