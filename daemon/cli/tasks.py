"""``novacron try`` and ``novacron run``: a researcher's short loop.

``try TARGET < input`` runs one task here, in exactly the sandbox a volunteer uses (the same
engine settings, limits, logical clock, seeded randomness, read-only files), so a task is
debugged before it costs the network anything, and its fuel tells the job's fuel limit.
TARGET is a Python script (``task.py``, with ``--files`` for its modules and data), a
wasm32-wasi module (``task.wasm``), or a job spec (``job.toml``: its module or script, argv and
limits, and input ``--task N``). The task's stdout is printed as is; its stderr and a status
line (status, fuel, memory, time) go to stderr. Exit code 0 when the task ended OK.

``run TARGET --inputs FILE`` (or ``--input TEXT`` repeated) submits through the local daemon
and prints each verified result as it arrives; with a job spec, the spec's own inputs.
Both are built on ``novacron.Client`` and the runtime's own classes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from daemon.cli.common import add_client_args, socket_path
from daemon.cli.errors import CliError

if TYPE_CHECKING:  # the runtime loads wasmtime and trio: only when a command needs it
    from daemon.runtime.outcome import Limits, TaskOutcome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("try", help="run one task here, in the volunteers' sandbox")
    p.add_argument("target", type=Path, help="task.py, module.wasm or job.toml")
    p.add_argument("--files", nargs="*", default=[], help="a script's extra modules/data files")
    p.add_argument("--input", help="the task's input (default: read stdin)")
    p.add_argument("--task", type=int, default=0, help="with a job spec: which input to run")
    p.add_argument("--arg", action="append", default=[], dest="args",
                   help="an argument for the task (repeat for more)")
    p.add_argument("--fuel", type=int, default=None)
    p.add_argument("--memory-mb", type=int, default=None)
    p.add_argument("--wall-s", type=float, default=None)
    p.add_argument("--seed", default="", help="hex seed of the task's randomness")
    p.set_defaults(func=try_cmd)

    p = sub.add_parser("run", help="submit a script or job and print its verified results")
    p.add_argument("target", type=Path, help="task.py or job.toml")
    p.add_argument("--inputs", type=Path, default=None, help="a file of inputs, one per line")
    p.add_argument("--input", action="append", default=[], dest="input_list",
                   help="one input (repeat for more)")
    p.add_argument("--files", nargs="*", default=[], help="a script's extra modules/data files")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("--genesis", type=Path, default=None,
                   help="the network's genesis: also check each result's committee")
    add_client_args(p, json_flag=False)
    p.set_defaults(func=run_cmd)


def _limits(args: argparse.Namespace, fuel: int, memory_pages: int, wall_s: float,
            max_output: int) -> Limits:
    from daemon.runtime.outcome import Limits, LimitsError

    try:
        return Limits(fuel=args.fuel or fuel,
                      memory_pages=args.memory_mb * 16 if args.memory_mb else memory_pages,
                      wall_s=args.wall_s or wall_s, max_output=max_output)
    except LimitsError as err:
        raise CliError(str(err)) from None


def try_cmd(args: argparse.Namespace) -> int:
    from daemon.jobs.spec import PYTHON_FUEL, SpecError, load_spec
    from daemon.runtime.bundle import Bundle, BundleError
    from daemon.runtime.outcome import Limits

    target: Path = args.target
    if not target.is_file():
        raise CliError(f"{target} does not exist (give a .py script, a .wasm module or a .toml job)")
    try:
        seed = bytes.fromhex(args.seed)
    except ValueError:
        raise CliError(f"--seed must be hex digits, got {args.seed!r}") from None
    argv = (target.stem.encode(), *(a.encode() for a in args.args))
    stdin = args.input.encode() if args.input is not None else None
    if target.suffix == ".toml":
        try:
            spec = load_spec(target)
        except SpecError as err:
            raise CliError(str(err)) from None
        if not 0 <= args.task < len(spec.inputs):
            raise CliError(f"--task must be 0..{len(spec.inputs) - 1} (the job has "
                           f"{len(spec.inputs)} inputs)")
        module, python = spec.module, spec.runtime == "python"
        limits = _limits(args, spec.fuel, spec.memory_pages, spec.wall_s, spec.max_output)
        argv = tuple(a.encode() for a in spec.argv) + argv[1:]
        if stdin is None:
            stdin = spec.inputs[args.task]
    elif target.suffix == ".py":
        base = target.resolve().parent
        files = {target.name: target.read_bytes()}
        for name in args.files:
            path = (base / name).resolve()
            if not path.is_file() or not path.is_relative_to(base):
                raise CliError(f"--files: {name} is not a file inside {base}")
            files[path.relative_to(base).as_posix()] = path.read_bytes()
        try:
            module = Bundle(target.name, files).encode()
        except BundleError as err:
            raise CliError(str(err)) from None
        python = True
        limits = _limits(args, PYTHON_FUEL, 256 * 16, 120.0, Limits().max_output)
    else:
        module, python = target.read_bytes(), False
        d = Limits()
        limits = _limits(args, d.fuel, d.memory_pages, d.wall_s, d.max_output)
    if stdin is None:
        stdin = sys.stdin.buffer.read()
    outcome = _run_python(module, stdin, limits, seed, argv) if python else \
        _run_wasm(module, stdin, limits, seed, argv)
    sys.stdout.buffer.write(outcome.output)
    sys.stdout.flush()
    if outcome.stderr:
        sys.stderr.buffer.write(outcome.stderr)
    print(f"{outcome.status.name}: {outcome.detail}; fuel {outcome.fuel_used:,}; "
          f"memory {outcome.memory_pages * 64} KiB; {outcome.wall_s:.3f} s", file=sys.stderr)
    return 0 if outcome.status.name == "OK" else 1


def _run_wasm(module: bytes, stdin: bytes, limits: Limits, seed: bytes,
              argv: tuple[bytes, ...]) -> TaskOutcome:
    from daemon.runtime.cache import module_hash
    from daemon.runtime.sandbox import Sandbox

    return Sandbox().run(module_hash(module), module, stdin, limits, seed=seed, argv=argv)


def _run_python(bundle: bytes, stdin: bytes, limits: Limits, seed: bytes,
                argv: tuple[bytes, ...]) -> TaskOutcome:
    from daemon.runtime import interpreter
    from daemon.runtime.pysandbox import PythonSandbox, PythonUnavailable

    cache = interpreter.default_cache_dir()
    if not interpreter.is_compiled(cache):
        print("novacron: preparing the Python interpreter for this machine (once: a download "
              "of ~100 MB and 2-3 minutes of compiling)...", file=sys.stderr)
        for step in ("fetch", "compile"):
            done = subprocess.run([sys.executable, "-m", "daemon.runtime.interpreter", step],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise CliError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                               else f"interpreter {step} failed")
    try:
        sandbox = PythonSandbox(cache)
    except PythonUnavailable as err:
        raise CliError(str(err)) from None
    return sandbox.run(bundle, stdin, limits, seed=seed, argv=argv)


def run_cmd(args: argparse.Namespace) -> int:
    from novacron import Client, JobFailed, NovaCronError

    target: Path = args.target
    if not target.is_file():
        raise CliError(f"{target} does not exist (give a .py script or a .toml job)")
    inputs: list[str] = list(args.input_list)
    if args.inputs is not None:
        try:
            inputs += args.inputs.read_text().splitlines()
        except OSError as err:
            raise CliError(f"--inputs {args.inputs}: {err.strerror}") from None
    client = Client(socket=socket_path(args), genesis=args.genesis)
    try:
        if target.suffix == ".toml":
            if inputs:
                raise CliError("a job spec brings its own inputs: drop --input/--inputs")
            job = client.submit(target)
        elif target.suffix == ".py":
            if not inputs:
                raise CliError("give the tasks' inputs: --inputs FILE (one per line) or --input TEXT")
            job = client.submit_script(target, inputs, files=args.files, replicas=args.replicas)
        else:
            raise CliError(f"{target}: give a .py script or a .toml job spec")
        print(f"job {job}", file=sys.stderr)
        count = 0
        for r in client.as_completed(job, timeout=args.timeout):
            count += 1
            text = r.output.decode("utf-8", "replace").rstrip("\n")
            print(f"task {r.task}: {text}")
            sys.stdout.flush()
        print(f"{count} results, each verified against its certificate"
              + ("" if args.genesis else " (add --genesis to check the committee too)"),
              file=sys.stderr)
    except JobFailed as err:
        raise CliError(str(err)) from None
    except NovaCronError as err:
        raise CliError(str(err)) from None
    except TimeoutError as err:
        raise CliError(str(err)) from None
    finally:
        client.close()
    return 0
