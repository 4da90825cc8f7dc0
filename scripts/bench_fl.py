"""Benchmark federated training over volunteers' links; prints one JSON object.

The world (scikit-learn's digits split non-IID over 20 clients, links drawn from the
``planet`` profile, each client's session law) comes from ``--seed``; see
``testnet/fl_sim.py`` for what is real and what is simulated. Sections:

- ``codecs``: the same run (same selection, same local training seeds) with updates sent as
  float32 (the baseline), fixed int8 with error feedback, and the per-link adaptive level
  (reward ``R = -0.5 T/T_budget - 0.5 QE/QE_budget``, error feedback). Per round: accuracy on
  the held-out 20%, update bytes, round seconds (slowest client's download + compute + upload)
  and upload seconds (the slowest upload). Adaptive's bytes include its link probes (16 KiB
  to a client whose link is unknown). Targets: adaptive sends >= 70% fewer bytes than float32,
  final accuracy within 1 point, and a shorter mean round than int8.
- ``churn``: 20% of clients leave during every round (drawn by their true chance of leaving);
  random selection against φ = similarity x predicted time before leaving, over
  ``--churn-seeds`` worlds. Target: φ loses fewer updates. Accuracy is printed too: see
  docs/fl.md for what φ costs on non-IID data.
- ``links``: how well the link estimates predict the next upload (|log(actual/predicted)|,
  median and 90th percentile), over every upload of the adaptive run after the first.
- ``policy``: a DDQN (``testnet/fl_policy.py``) trained on ``--policy-episodes`` other
  worlds, then frozen, against the argmax on this world: mean reward per send (the objective
  both serve), bytes, accuracy, round time; ``kept`` says which the reward favours.
- ``task_ef``: error feedback on the real task's path: FedAvg over the FL example's 10 shards
  (5 per round) where every update is printed by ``daemon/fl/sandbox/fl_task.py`` itself and
  each client's residual travels as a volunteer keeps it (the kept frame, then
  ``sticky/residual`` in its next round; ``testnet/fl_task_ef.py``): float32, the lossy
  ``--task-codec`` without EF, and with EF, over ``--task-rounds`` (0 skips it).
- ``privacy``: the adaptive run with DP (clip 1.0, noise multiplier ``--dp-noise``): accuracy
  and the ε the accountant reports at δ = 1e-5.

Usage: ``nice -n 10 .venv/bin/python scripts/bench_fl.py [--seed 1] [--rounds 40]``
(about a minute of CPU; ``--quick`` runs 12 rounds for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testnet.fl_policy import DDQN  # noqa: E402
from testnet.fl_sim import Config, run  # noqa: E402
from testnet.fl_task_ef import compare as compare_task_ef  # noqa: E402


def summary(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    return {
        "final_accuracy": rows[-1]["accuracy"],
        "last5_accuracy": round(float(np.mean([r["accuracy"] for r in rows[-5:]])), 4),
        "update_bytes": sum(r["up_bytes"] for r in rows),
        "probe_bytes": sum(r["probe_bytes"] for r in rows),
        "mean_round_s": round(float(np.mean([r["round_s"] for r in rows])), 4),
        "mean_upload_s": round(float(np.mean([r["upload_s"] for r in rows])), 4),
        "lost_updates": sum(r["lost"] for r in rows),
        "selected": sum(r["selected"] for r in rows),
        "codecs": _codec_counts(rows),
        "accuracy_per_round": [r["accuracy"] for r in rows],
        "update_bytes_per_round": [r["up_bytes"] for r in rows],
        "round_s_per_round": [r["round_s"] for r in rows],
    }


def _codec_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        for k, v in r["codecs"].items():
            out[k] = out.get(k, 0) + v
    return dict(sorted(out.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="12 rounds, for a smoke test")
    ap.add_argument("--dp-noise", type=float, default=0.5)
    ap.add_argument("--policy-episodes", type=int, default=6,
                    help="runs (other worlds) the DDQN trains on before it is compared")
    ap.add_argument("--task-rounds", type=int, default=20,
                    help="rounds of the real task's EF comparison (0: skip it)")
    ap.add_argument("--task-codec", default="sign1", choices=("int4", "sign1", "int8"))
    ap.add_argument("--churn-seeds", type=int, default=3,
                    help="worlds the churn comparison runs over (from --seed on)")
    args = ap.parse_args()
    rounds = 12 if args.quick else args.rounds
    started = time.perf_counter()
    base = Config(rounds=rounds, seed=args.seed)

    codecs = {mode: summary(run(_with(base, mode=mode))) for mode in ("float32", "int8")}
    adaptive_raw = run(_with(base, mode="adaptive"))
    codecs["adaptive"] = summary(adaptive_raw)
    f32, int8, ada = codecs["float32"], codecs["int8"], codecs["adaptive"]
    saved = 1.0 - (ada["update_bytes"] + ada["probe_bytes"]) / f32["update_bytes"]

    churn: dict[str, Any] = {}
    for sel in ("random", "phi"):
        runs = [summary(run(_with(base, mode="adaptive", selection=sel, churn=0.2, seed=seed)))
                for seed in range(args.seed, args.seed + args.churn_seeds)]
        churn[sel] = {"seeds": args.churn_seeds,
                      "lost_updates": sum(r["lost_updates"] for r in runs),
                      "selected": sum(r["selected"] for r in runs),
                      "lost_per_seed": [r["lost_updates"] for r in runs],
                      "final_accuracy_per_seed": [r["final_accuracy"] for r in runs],
                      "mean_last5_accuracy": round(float(np.mean(
                          [r["last5_accuracy"] for r in runs])), 4)}

    errors = np.array(adaptive_raw["prediction_log_errors"])
    links = {"uploads_predicted": int(errors.size),
             "median_ratio_error": round(float(np.exp(np.median(errors))) - 1, 4),
             "p90_ratio_error": round(float(np.exp(np.quantile(errors, 0.9))) - 1, 4)}

    policy = compare_policies(base, args.policy_episodes)

    dp = run(_with(base, mode="adaptive", dp_noise=args.dp_noise, dp_clip=1.0))
    privacy = {"noise_multiplier": args.dp_noise, "clip": 1.0, "delta": 1e-5,
               "epsilon": dp["epsilon"], "final_accuracy": dp["rows"][-1]["accuracy"],
               "last5_accuracy": summary(dp)["last5_accuracy"]}

    task_ef = (compare_task_ef(rounds=args.task_rounds, codec=args.task_codec, seed=args.seed)
               if args.task_rounds > 0 else None)

    out = {
        "bench": "fl", "seed": args.seed, "rounds": rounds, "clients": base.clients,
        "per_round": base.per_round, "model_bytes_float32": adaptive_raw["model_bytes"],
        "budgets": {"time_s": base.budgets.time_s, "error": base.budgets.error},
        "codecs": codecs,
        "adaptive_vs_float32": {
            "update_bytes_saved": round(saved, 4),
            "final_accuracy_delta_points": round(100 * (ada["final_accuracy"]
                                                        - f32["final_accuracy"]), 2),
            "last5_accuracy_delta_points": round(100 * (ada["last5_accuracy"]
                                                        - f32["last5_accuracy"]), 2)},
        "adaptive_vs_int8": {
            "mean_round_s_ratio": round(ada["mean_round_s"] / int8["mean_round_s"], 4),
            "mean_upload_s_ratio": round(ada["mean_upload_s"] / int8["mean_upload_s"], 4)},
        "churn": churn, "links": links, "policy": policy, "privacy": privacy,
        "task_ef": task_ef,
        "targets": {
            "adaptive_saves_70pct": saved >= 0.70,
            "adaptive_accuracy_within_1pt": abs(ada["final_accuracy"]
                                                - f32["final_accuracy"]) <= 0.01,
            "adaptive_rounds_faster_than_int8": ada["mean_round_s"] < int8["mean_round_s"],
            "phi_loses_fewer_updates": churn["phi"]["lost_updates"]
            < churn["random"]["lost_updates"]},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))


def compare_policies(base: Config, episodes: int) -> dict[str, Any]:
    """DDQN trained on ``episodes`` other worlds, then frozen, against the argmax here."""
    agent = DDQN(seed=base.seed)
    for ep in range(episodes):
        run(_with(base, mode="adaptive", seed=1000 + base.seed * 100 + ep, policy=agent))
    agent.learning = False
    out: dict[str, Any] = {"ddqn_training_episodes": episodes,
                           "ddqn_training_sends": episodes * base.rounds * base.per_round}
    for name, cfg in (("argmax", _with(base, mode="adaptive")),
                      ("ddqn", _with(base, mode="adaptive", policy=agent))):
        res = run(cfg)
        s = summary(res)
        out[name] = {"mean_reward": round(float(np.mean(res["rewards"])), 4),
                     "update_bytes": s["update_bytes"], "final_accuracy": s["final_accuracy"],
                     "mean_round_s": s["mean_round_s"], "codecs": s["codecs"]}
    out["kept"] = ("argmax" if out["argmax"]["mean_reward"] >= out["ddqn"]["mean_reward"]
                   else "ddqn (beats the argmax here: check more seeds before switching)")
    return out


def _with(base: Config, **changes: Any) -> Config:
    from dataclasses import replace
    return replace(base, **changes)


if __name__ == "__main__":
    main()
