"""One point of a parameter sweep: the pendulum's response to one (drive, damping) pair.

stdin: "<drive> <damping>"; stdout: one JSON line with the parameters and the results.
The grid of parameters is the job's inputs (see job.toml); ``model.py`` is shipped with the job
and ``params.json`` is a read-only data file the task opens by name.
"""

import json
import sys

import numpy as np

from model import simulate

settings = json.load(open("params.json"))
drive, damping = (float(x) for x in sys.stdin.read().split())
path = simulate(drive, damping, steps=settings["steps"])
tail = path[len(path) // 2:, 0]  # the second half: past the transient
spectrum = np.abs(np.fft.rfft(tail - tail.mean()))
print(json.dumps({"drive": drive, "damping": damping,
                  "amplitude": round(float(np.ptp(tail)) / 2, 9),
                  "dominant_bin": int(spectrum.argmax()),
                  "energy": round(float(np.mean(0.5 * path[:, 1] ** 2)), 9)}))
