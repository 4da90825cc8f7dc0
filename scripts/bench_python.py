"""Benchmark the Python runtime; prints one JSON object.

- ``compile``: compiling the pinned interpreter from scratch into a fresh directory (wall and
  CPU seconds, peak memory of the compiling process, artifact size): what a volunteer pays once.
  ``--skip-compile`` leaves it out (it takes minutes).
- ``start``: from the machine's cache: loading the compiled interpreter (``PythonSandbox()``,
  which checks the artifact's seal), a hello-world task, and ``import numpy``, next to the same
  on this machine's native Python.
- ``workloads``: numpy and pure-Python work in the sandbox, with fuel (as volunteers run it)
  and without (an engine compiled without fuel metering), next to the same code run natively
  in this process's Python; ``ratio_*`` = sandbox / native. A workload's sandbox time is the
  fastest run of (setup + work) minus the fastest run of (setup alone), so interpreter start
  and imports are not counted; native time is measured around the work alone. Fastest of
  ``--repeat`` runs, since other work on a shared machine only ever adds time.

Usage: ``.venv/bin/python scripts/bench_python.py [--skip-compile] [--repeat 3]``. The first
run compiles the no-fuel engine's interpreter into the machine's cache (minutes, once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.runtime import interpreter  # noqa: E402
from daemon.runtime.bundle import Bundle  # noqa: E402
from daemon.runtime.outcome import Limits  # noqa: E402
from daemon.runtime.pysandbox import PythonSandbox  # noqa: E402

LIMITS = Limits(fuel=5 * 10**12, memory_pages=8192, wall_s=600, max_output=1 << 16)
SETUP = "import numpy as np\nrng = np.random.default_rng(1)\n"
WORKLOADS = {
    "matmul_384x10": ("a = rng.random((384, 384))\n", "for _ in range(10):\n    b = a @ a\n"),
    "fft_256k_x40": ("x = rng.random(1 << 18)\n", "for _ in range(40):\n    y = np.fft.rfft(x)\n"),
    "sort_1m_x5": ("x = rng.random(1 << 20)\n", "for _ in range(5):\n    y = np.sort(x)\n"),
    "python_loop_2m": ("", "s = 0\nfor i in range(2_000_000):\n    s += i * i\n"),
    "pendulum_example": ("import sys\nsys.path.insert(0, %r)\nfrom model import simulate\n"
                         % str(ROOT / "examples" / "python" / "sweep"),
                         "simulate(1.2, 0.25, steps=20000)\n"),
}


def sandbox_run(sandbox: PythonSandbox, source: str, files: dict[str, bytes] | None = None
                ) -> tuple[float, int]:
    bundle = Bundle("task.py", {"task.py": source.encode(), **(files or {})}).encode()
    began = time.perf_counter()
    out = sandbox.run(bundle, b"", LIMITS, seed=b"bench")
    wall = time.perf_counter() - began
    if out.status.name != "OK":
        raise RuntimeError(f"{out.status.name}: {out.detail}")
    return wall, out.fuel_used


def median_run(sandbox: PythonSandbox, source: str, repeat: int,
               files: dict[str, bytes] | None = None) -> tuple[float, int]:
    """The fastest of ``repeat`` runs (the least disturbed by other work on the machine)."""
    runs = [sandbox_run(sandbox, source, files) for _ in range(repeat)]
    return min(r[0] for r in runs), runs[0][1]


def native(setup: str, work: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        scope: dict[str, object] = {}
        exec(SETUP + setup, scope)  # noqa: S102 - our own benchmark code
        began = time.perf_counter()
        exec(work, scope)  # noqa: S102
        times.append(time.perf_counter() - began)
    return min(times)


def native_start(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return min(times)


def sweep_files(setup: str) -> tuple[str, dict[str, bytes] | None]:
    """The example's model ships as a job file in the sandbox, imported from /job."""
    if "from model import" not in setup:
        return setup, None
    model = (ROOT / "examples" / "python" / "sweep" / "model.py").read_bytes()
    return "from model import simulate\n", {"model.py": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    ns = parser.parse_args()
    cache = interpreter.default_cache_dir()
    report: dict[str, object] = {"interpreter": interpreter.PINNED.name,
                                 "wasm_sha256": interpreter.PINNED.wasm_sha256}
    interpreter.fetch(cache)
    if not ns.skip_compile:
        with tempfile.TemporaryDirectory() as fresh:
            done = subprocess.run([sys.executable, "-m", "daemon.runtime.interpreter", "compile",
                                   "--cache-dir", fresh], cwd=ROOT, env={"NOVACRON_PYTHON_DIR": str(
                                       interpreter.files_dir(cache)), "PATH": "/usr/bin:/bin",
                                       "PYTHONPATH": str(ROOT)},
                                  capture_output=True, text=True, check=True)
            result = json.loads(done.stdout)
            result["artifact_mb"] = round(Path(result.pop("artifact")).stat().st_size / 2**20)
            report["compile"] = result
    for fuel in (True, False):
        if not interpreter.is_compiled(cache, settings={**interpreter.engine_settings(),
                                                        "consume_fuel": fuel}):
            args = [] if fuel else ["--no-fuel"]
            subprocess.run([sys.executable, "-m", "daemon.runtime.interpreter", "compile", *args],
                           cwd=ROOT, check=True, capture_output=True)
    began = time.perf_counter()
    metered = PythonSandbox(cache)
    load_s = time.perf_counter() - began
    free = PythonSandbox(cache, fuel=False)
    hello, hello_fuel = median_run(metered, "print('hello')\n", ns.repeat)
    numpy_s, numpy_fuel = median_run(metered, "import numpy\n", ns.repeat)
    report["start"] = {
        "load_cached_interpreter_s": round(load_s, 3),
        "hello_s": round(hello, 3), "hello_fuel": hello_fuel,
        "import_numpy_s": round(numpy_s, 3), "import_numpy_fuel": numpy_fuel,
        "native_hello_s": round(native_start("print('hello')", ns.repeat), 3),
        "native_import_numpy_s": round(native_start("import numpy", ns.repeat), 3),
    }
    rows = []
    for name, (setup, work) in WORKLOADS.items():
        sand_setup, files = sweep_files(setup)
        row: dict[str, object] = {"name": name, "native_s": round(native(setup, work, ns.repeat), 4)}
        for label, sandbox in (("fuel", metered), ("no_fuel", free)):
            base, base_fuel = median_run(sandbox, SETUP + sand_setup, ns.repeat, files)
            full, full_fuel = median_run(sandbox, SETUP + sand_setup + work, ns.repeat, files)
            row[f"sandbox_{label}_s"] = round(max(full - base, 0.0), 4)
            if label == "fuel":
                row["fuel"] = full_fuel - base_fuel
        native_s = max(float(row["native_s"]), 1e-6)  # type: ignore[arg-type]
        row["ratio_fuel"] = round(float(row["sandbox_fuel_s"]) / native_s, 2)  # type: ignore[arg-type]
        row["ratio_no_fuel"] = round(float(row["sandbox_no_fuel_s"]) / native_s, 2)  # type: ignore[arg-type]
        rows.append(row)
    report["workloads"] = rows
    import numpy

    report["native"] = {"python": sys.version.split()[0], "numpy": numpy.__version__}
    report["sandbox_numpy"] = "2.5.2 (in the interpreter build)"
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
