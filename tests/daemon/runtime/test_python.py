"""The Python runtime on real CPython-for-WASI: what a task sees, and hostile tasks stopped.

Each test runs real Python code in the real sandbox (the pinned interpreter, compiled once per
machine by the ``python_cache`` fixture).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.runtime.outcome import Limits
from daemon.runtime.pysandbox import PythonSandbox
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime.pytasks import LIMITS, bundle, run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sandbox(python_cache: Path) -> PythonSandbox:
    return PythonSandbox(python_cache)


def test_stdin_argv_stdout_and_the_jobs_own_files(sandbox: PythonSandbox) -> None:
    source = (
        "import sys, os, helper\n"
        "data = sys.stdin.read()\n"
        "print(sys.argv, data.upper(), helper.twice(21), open('data/table.csv').read().strip())\n"
        "print(os.getcwd(), sorted(os.listdir('/')), sorted(os.listdir('.')))\n")
    out = run(sandbox, source, b"hello", argv=(b"task", b"--n", b"3"),
              files={"helper.py": b"def twice(x):\n    return 2 * x\n",
                     "data/table.csv": b"a,b\n1,2\n"})
    assert out.status is TaskStatus.OK, out.detail + out.stderr.decode()
    lines = out.output.decode().splitlines()
    assert lines == ["['task.py', '--n', '3'] HELLO 42 a,b", "1,2",
                     "/job ['job', 'usr'] ['data', 'helper.py', 'task.py']"]


def test_numpy_runs_and_its_randomness_is_the_tasks_seed(sandbox: PythonSandbox) -> None:
    source = ("import numpy as np\n"
              "rng = np.random.default_rng()\n"
              "a = rng.standard_normal((64, 64))\n"
              "print(np.__version__, round(float(np.linalg.norm(a @ a.T)), 6))\n")
    one = run(sandbox, source, seed=b"a")
    again = run(sandbox, source, seed=b"a")
    other = run(sandbox, source, seed=b"b")
    assert one.status is TaskStatus.OK, one.detail + one.stderr.decode()
    assert one.output.startswith(b"2.")
    assert (one.output, one.fuel_used) == (again.output, again.fuel_used)
    assert other.output != one.output  # seeded, not constant


def test_clock_is_virtual_and_sleep_does_not_wait(sandbox: PythonSandbox) -> None:
    source = ("import time\n"
              "t0 = time.time(); m0 = time.monotonic()\n"
              "time.sleep(1e9)\n"
              "print(time.time() - t0 >= 1e9, time.monotonic() - m0 >= 1e9, int(t0))\n")
    out = run(sandbox, source, limits=Limits(fuel=10**10, memory_pages=2048, wall_s=60))
    assert out.status is TaskStatus.OK, out.detail + out.stderr.decode()
    assert out.output == b"True True 0\n"
    assert out.wall_s < 30  # a real sleep would take 31 years; this is a sanity bound only


def test_endless_loop_ends_out_of_fuel(sandbox: PythonSandbox) -> None:
    out = run(sandbox, "while True:\n    pass\n",
              limits=Limits(fuel=2_000_000_000, memory_pages=2048, wall_s=120))
    assert out.status is TaskStatus.OUT_OF_FUEL, out.detail
    assert out.fuel_used == 2_000_000_000


def test_wall_clock_limit_stops_a_long_task(sandbox: PythonSandbox) -> None:
    out = run(sandbox, "while True:\n    pass\n",
              limits=Limits(fuel=10**13, memory_pages=2048, wall_s=1.0))
    assert out.status is TaskStatus.TIMED_OUT, out.detail


def test_huge_allocation_is_a_memory_error_inside_python(sandbox: PythonSandbox) -> None:
    source = ("try:\n    x = bytearray(1 << 30)\nexcept MemoryError:\n    print('caught')\n"
              "import numpy as np\ny = np.ones(1 << 26)\n")
    out = run(sandbox, source, limits=Limits(fuel=10**10, memory_pages=2048, wall_s=60))
    assert out.output == b"caught\n"
    assert out.status in (TaskStatus.EXITED, TaskStatus.OUT_OF_MEMORY), out.detail
    assert "MemoryError" in out.detail or "MemoryError" in out.stderr.decode()


def test_deep_recursion_ends_the_task_not_the_worker(sandbox: PythonSandbox) -> None:
    source = ("import sys\nsys.setrecursionlimit(10**8)\n"
              "def f(n):\n    return f(n + 1) + 1\nf(0)\n")
    out = run(sandbox, source)
    # CPython's frames live in linear memory, so the memory limit or the wasm stack ends it
    assert out.status in (TaskStatus.EXITED, TaskStatus.TRAPPED, TaskStatus.OUT_OF_MEMORY), \
        out.detail
    after = run(sandbox, "print('still here')\n")  # the same worker runs the next task
    assert after.output == b"still here\n"


def test_output_flood_is_cut_at_the_limit(sandbox: PythonSandbox) -> None:
    out = run(sandbox, "while True:\n    print('x' * 1000)\n",
              limits=Limits(fuel=10**11, memory_pages=2048, wall_s=60, max_output=100_000))
    assert out.status is TaskStatus.OUTPUT_TOO_LARGE, out.detail
    assert len(out.output) <= 100_000


def test_no_host_files_no_writes_no_sockets(sandbox: PythonSandbox) -> None:
    source = (
        "import os\n"
        "def attempt(what, fn):\n"
        "    try:\n        fn(); print(what, 'ALLOWED')\n"
        "    except Exception as e:\n        print(what, type(e).__name__)\n"
        "attempt('passwd', lambda: open('/etc/passwd').read())\n"
        "attempt('proc', lambda: os.listdir('/proc'))\n"
        "attempt('write', lambda: open('out.txt', 'w'))\n"
        "attempt('append', lambda: open('task.py', 'a'))\n"
        "attempt('mkdir', lambda: os.mkdir('/job/new'))\n"
        "attempt('remove', lambda: os.remove('/job/task.py'))\n"
        "attempt('escape', lambda: open('/job/../../../etc/hostname').read())\n"
        "def sock():\n    import socket\n    s = socket.socket()\n"
        "    s.connect(('127.0.0.1', 9))\n"
        "attempt('socket', sock)\n"
        "attempt('environ', lambda: os.environ['HOME'])\n")
    out = run(sandbox, source)
    assert out.status is TaskStatus.OK, out.detail + out.stderr.decode()
    lines = dict(line.split(" ", 1) for line in out.output.decode().splitlines())
    assert "ALLOWED" not in lines.values(), lines
    assert lines["passwd"] == "FileNotFoundError"
    assert lines["write"] == "OSError" and lines["mkdir"] == "OSError", lines
    assert lines["environ"] == "KeyError"


def test_a_python_exception_is_reported_with_its_last_line(sandbox: PythonSandbox) -> None:
    out = run(sandbox, "print('partial')\n1 / 0\n")
    assert out.status is TaskStatus.EXITED
    assert out.output == b"partial\n"
    assert "ZeroDivisionError" in out.detail


def test_sticky_files_are_read_only_files_beside_the_bundles(sandbox: PythonSandbox) -> None:
    """Files a worker adds for a task (``protocol.sticky``): readable under the job's
    directory, never writable, and never in place of the bundle's own."""
    source = ("import os\n"
              "print(open('sticky/residual', 'rb').read().hex(), sorted(os.listdir('.')))\n"
              "try:\n    open('sticky/residual', 'wb')\nexcept OSError as e:\n    print(e.errno)\n")
    b = bundle(source)
    out = sandbox.run(b, b"", LIMITS, files=(("sticky/residual", b"\x01\x02"),))
    assert out.status is TaskStatus.OK, out.detail + out.stderr.decode()
    assert out.output.decode().split("\n")[:2] == ["0102 ['sticky', 'task.py']", "69"]
    for name in ("task.py", "task.py/x", "../escape", "/abs"):
        clash = sandbox.run(b, b"", LIMITS, files=((name, b"x"),))
        assert clash.status is TaskStatus.REFUSED and "extra file" in clash.detail, name


def test_a_corrupt_bundle_is_refused(sandbox: PythonSandbox) -> None:
    out = sandbox.run(bundle("print(1)")[:-3], b"", LIMITS)
    assert out.status is TaskStatus.REFUSED


DETERMINISM = """
import sys, time, random, os, hashlib
import numpy as np
x = np.random.default_rng().random(1000)
print(hash('novacron'), random.random(), os.urandom(8).hex(), time.time_ns(), time.perf_counter())
print(sorted({'a', 'b', 'c', 'd'}) == list({'a', 'b', 'c', 'd'}), set('abcdefgh'))
print(float(np.fft.fft(x).real.sum()), float(np.linalg.svd(x.reshape(25, 40))[1][0]))
"""


def _in_process(cache: Path) -> dict[str, object]:
    code = ("import json, sys, hashlib\n"
            "from pathlib import Path\n"
            "from daemon.runtime.pysandbox import PythonSandbox\n"
            "from tests.daemon.runtime.pytasks import run\n"
            "from tests.daemon.runtime.test_python import DETERMINISM\n"
            f"out = run(PythonSandbox(Path({str(cache)!r})), DETERMINISM, b'in', seed=b'job:task:0')\n"
            "print(json.dumps({'status': out.status.name, 'fuel': out.fuel_used,\n"
            "                  'output': out.output.decode(), 'stderr': out.stderr.decode()}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_two_processes_agree_on_every_byte_and_every_unit_of_fuel(python_cache: Path) -> None:
    first, second = _in_process(python_cache), _in_process(python_cache)
    assert first["status"] == "OK", first
    assert first == second
