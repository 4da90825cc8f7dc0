"""Write this example's data: scikit-learn's digits split non-IID into shards, a test set, and
an initial model. ``python make_data.py [--shards 10] [--seed 1]`` (needs scikit-learn)."""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--dir", default=str(Path(__file__).parent))
    args = ap.parse_args()
    out = Path(args.dir)
    rng = np.random.default_rng(args.seed)
    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    order = rng.permutation(len(y))
    test, train = order[:len(y) // 5], order[len(y) // 5:]
    np.savez(out / "test.npz", x=x[test], y=y[test])
    train = train[np.argsort(y[train], kind="stable")]  # two digits per shard: non-IID
    pieces = np.array_split(train, 2 * args.shards)
    pick = rng.permutation(2 * args.shards)
    (out / "shards").mkdir(exist_ok=True)
    for s in range(args.shards):
        idx = np.concatenate([pieces[pick[2 * s]], pieces[pick[2 * s + 1]]])
        np.savez(out / "shards" / f"{s:03d}.npz", x=x[idx], y=y[idx])
    h = args.hidden
    np.savez(out / "init.npz",
             w1=rng.normal(0, np.sqrt(2 / 64), (64, h)).astype(np.float32),
             b1=np.zeros(h, np.float32),
             w2=rng.normal(0, np.sqrt(2 / h), (h, 10)).astype(np.float32),
             b2=np.zeros(10, np.float32))


if __name__ == "__main__":
    main()
