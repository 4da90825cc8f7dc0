"""The model's evaluation after a round (runs in the submitter's own sandbox, on its machine).

stdin: ``<test path>``. The job's files hold ``novacron_model.npz`` (the round's new global model), the
user's module ``train`` (the FL job's ``script``, which defines ``evaluate(params, path) ->
{"loss": ..., "accuracy": ...}``) and the test set under its own path. stdout: one JSON line
``{"loss", "accuracy"}``. The test set is in no task the network runs: only the submitter's
node runs this script, in the same Python sandbox as every task (no files but the job's, no
network, fuel and memory limits), so the user's code never runs unsandboxed in the daemon.
"""

import json
import sys

import numpy as np

MODEL = "novacron_model.npz"
"""The round's model, as the node writes it into the bundle."""


def main():
    import train as user  # the FL job's script, shipped as train.py

    path = sys.stdin.read().strip()
    with np.load(MODEL) as z:
        params = {name: z[name].astype(np.float32) for name in sorted(z.files)}
    metrics = user.evaluate(params, path)
    out = {"loss": float(metrics["loss"]), "accuracy": float(metrics["accuracy"])}
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
