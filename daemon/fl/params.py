"""Model parameters as a named set of float arrays, and the checks every FL module shares.

A model is ``Params = dict[str, np.ndarray]``: names are the tensor names that travel on the
wire (sorted, so every replica walks them in the same order), values are float32 arrays. An
update is the same structure holding ``local - global``. Keeping one plain type (not a class)
lets the user's training task, the aggregator and the codec pass models around unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from daemon.errors import DaemonError

Params = dict[str, np.ndarray]

MAX_TENSORS = 1024
"""Tensors one model may hold."""


class FLError(DaemonError, ValueError):
    """A model, update or option that the FL code cannot take; the message says which and why."""


def check_params(params: Mapping[str, np.ndarray], *, like: Mapping[str, np.ndarray] | None = None,
                 what: str = "model") -> Params:
    """``params`` as float32 arrays, checked: names, finite values, shapes matching ``like``."""
    if not params:
        raise FLError(f"{what} has no tensors")
    if len(params) > MAX_TENSORS:
        raise FLError(f"{what} has {len(params)} tensors; at most {MAX_TENSORS}")
    out: Params = {}
    for name in sorted(params):
        if not isinstance(name, str) or not name:
            raise FLError(f"{what} tensor names must be non-empty strings, got {name!r}")
        array = np.asarray(params[name])
        if array.dtype.kind not in "fiu":
            raise FLError(f"{what} tensor {name!r} is {array.dtype}; use float arrays")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise FLError(f"{what} tensor {name!r} has NaN or infinite values")
        out[name] = array
    if like is not None:
        if sorted(like) != sorted(out):
            raise FLError(f"{what} has tensors {sorted(out)}, expected {sorted(like)}")
        for name, array in out.items():
            if array.shape != np.shape(like[name]):
                raise FLError(f"{what} tensor {name!r} has shape {array.shape},"
                              f" expected {np.shape(like[name])}")
    return out


def add(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], scale: float = 1.0) -> Params:
    """``a + scale * b`` per tensor."""
    return {name: (a[name] + np.float32(scale) * b[name]).astype(np.float32) for name in sorted(a)}


def sub(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> Params:
    """``a - b`` per tensor."""
    return {name: (a[name] - b[name]).astype(np.float32) for name in sorted(a)}


def flatten(params: Mapping[str, np.ndarray]) -> np.ndarray:
    """All tensors in name order as one float64 vector (for norms and similarities)."""
    return np.concatenate([np.asarray(params[n], dtype=np.float64).reshape(-1)
                           for n in sorted(params)])


def norm(params: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of the whole model."""
    v = flatten(params)
    return math.sqrt(float(np.einsum("i,i->", v, v)))


def cosine(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> float:
    """Cosine similarity of two updates (0 when either is zero)."""
    va, vb = flatten(a), flatten(b)
    na = math.sqrt(float(np.einsum("i,i->", va, va)))
    nb = math.sqrt(float(np.einsum("i,i->", vb, vb)))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.einsum("i,i->", va, vb)) / (na * nb)


def element_count(params: Mapping[str, np.ndarray]) -> int:
    return sum(int(np.asarray(a).size) for a in params.values())


def stack(updates: Sequence[Mapping[str, np.ndarray]], name: str) -> np.ndarray:
    """One tensor of every update, stacked on a new first axis."""
    return np.stack([np.asarray(u[name], dtype=np.float32) for u in updates])
