"""One client's local training in an FL round (runs in the volunteers' sandbox).

stdin: ``<shard path> <round> <codec> <local epochs> <seed> [<FedProx mu>]``. ``<codec>`` is
a fixed level (float32, float16, int8, int4) or ``adaptive/<B/s>/<rtt ms>/<T budget s>/<QE
budget>``: the link the submitter planned this client on (``daemon.fl.linkplan``); the task then
takes the level with the largest reward R = -0.5 T/T_budget - 0.5 QE/QE_budget measured on its
own update (``protocol.tensor.choice``), a function of the input alone, so every replica takes
the same level. The round's global model is
``global.npz`` in the job's files; the user's module ``train`` (the FL job's ``script``)
defines ``train(params, shard_path, epochs, rng) -> (params, samples, loss)``; with FedProx
it is called with ``mu=`` too and adds ``mu * (w - params)`` to its gradients.

stdout: one JSON line ``{"shard", "round", "samples", "loss", "codec"}`` (adaptive: also
``"levels"``, each candidate's ``[level, bytes, relative error, reward]``), then the update
``local - global`` as a msgpack map ``{name: tensor}`` in ``protocol.tensor``'s wire form.
Everything is a function of the inputs (the generator is seeded from job seed, round and
shard), so every replica prints the same bytes and the certificate covers exactly them.

Error feedback (a token ``ef=new`` or ``ef=<sha256 hex>`` on stdin; the input is then a sticky
envelope, ``protocol.sticky``): the task sends ``Q(v)`` for ``v = (local - global) + e``,
where ``e`` is this client's residual from its previous round (``sticky/residual``, checked
against the digest; ``ef=new``: zero), and keeps ``e' = v - dequant(Q(v))`` on its volunteer:
it prints ``e'`` first, in a kept frame the worker strips and stores (float32, the tensors in
name order), and the JSON line carries ``"ef": {"sha256", "size", "applied", "norm"}`` so the
certificate covers which residual exists. ``e'`` is a function of the inputs too: every honest
replica keeps the same bytes.
"""

import hashlib
import json
import struct
import sys
import zlib

import numpy as np

from protocol.tensor.choice import choose_codec
from protocol.tensor.codec import CodecSpec, decode_tensor, encode_tensor
from protocol.tensor.wire import Codec

CODECS = {"float32": Codec.LOSSLESS, "float16": Codec.FLOAT16, "int8": Codec.INT8,
          "int4": Codec.INT4, "sign1": Codec.SIGN1}
ADAPTIVE = ("float16", "int8", "int4", "sign1")
"""The levels the adaptive choice takes from (``daemon.fl.uplink.ADAPTIVE_LEVELS``)."""
KEEP_MAGIC = b"\x00novacron-keep\x01"
"""``protocol.sticky.KEEP_MAGIC``: the worker keeps what follows and does not send it."""
RESIDUAL = "sticky/residual"


def load_residual(params, digest):
    """The residual this client kept last round, per tensor (zero for ``ef=new``)."""
    if digest == "new":
        return {name: np.zeros_like(params[name]) for name in params}
    with open(RESIDUAL, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise SystemExit(f"{RESIDUAL} is not the residual {digest[:16]} the task names")
    sizes = [params[name].size for name in sorted(params)]
    if len(data) != 4 * sum(sizes):
        raise SystemExit(f"{RESIDUAL} is {len(data)} bytes, the model needs {4 * sum(sizes)}")
    flat = np.frombuffer(data, dtype="<f4")
    out, at = {}, 0
    for name, n in zip(sorted(params), sizes):
        out[name] = flat[at:at + n].reshape(params[name].shape).astype(np.float32)
        at += n
    return out


def choose(update, field):
    """The level for ``update`` over the link in ``field``, and the table it was chosen from."""
    _, bw, rtt_ms, t_budget, e_budget = field.split("/")
    vector = np.concatenate([update[name].reshape(-1) for name in sorted(update)])
    choice = choose_codec(vector.astype(np.float32), bandwidth=float(bw),
                          latency=float(rtt_ms) / 1000, time_budget=float(t_budget),
                          error_budget=float(e_budget),
                          candidates=tuple(CodecSpec(CODECS[n]) for n in ADAPTIVE))
    names = {CODECS[n]: n for n in ADAPTIVE}
    table = [[names[row.spec.codec], row.encoded_bytes, round(row.rel_error, 5),
              round(row.reward, 4)] for row in choice.estimates if row.usable]
    return names[choice.spec.codec], table


def pack_map(entries):
    """msgpack of a {str: bytes} map with sorted keys, shortest forms (as msgpack.packb)."""
    out = bytearray()
    n = len(entries)
    out += bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
    for key in sorted(entries):
        k = key.encode()
        if len(k) < 32:
            out += bytes([0xA0 | len(k)])
        elif len(k) < 256:
            out += b"\xd9" + bytes([len(k)])
        else:
            out += b"\xda" + struct.pack(">H", len(k))
        out += k
        v = entries[key]
        if len(v) < 256:
            out += b"\xc4" + bytes([len(v)])
        elif len(v) < 65536:
            out += b"\xc5" + struct.pack(">H", len(v))
        else:
            out += b"\xc6" + struct.pack(">I", len(v))
        out += v
    return bytes(out)


def main():
    import train as user  # the FL job's script, shipped as train.py

    tokens = sys.stdin.read().split()
    options = dict(t.split("=", 1) for t in tokens if "=" in t)
    fields = [t for t in tokens if "=" not in t]
    shard, rnd, codec, epochs, seed = fields[:5]
    mu = float(fields[5]) if len(fields) > 5 else 0.0
    with np.load("global.npz") as z:
        params = {name: z[name].astype(np.float32) for name in sorted(z.files)}
    rng = np.random.default_rng([int(seed), int(rnd), zlib.crc32(shard.encode())])
    if mu > 0:
        local, samples, loss = user.train(dict(params), shard, int(epochs), rng, mu=mu)
    else:
        local, samples, loss = user.train(dict(params), shard, int(epochs), rng)
    update = {name: np.asarray(local[name], np.float32) - params[name] for name in params}
    head = {"shard": shard, "round": int(rnd), "samples": int(samples),
            "loss": round(float(loss), 6), "codec": codec}
    ef = options.get("ef")
    if ef is not None:
        residual = load_residual(params, ef)
        update = {name: update[name] + residual[name] for name in params}
    if codec.startswith("adaptive/"):
        codec, head["levels"] = choose(update, codec)
        head["codec"] = codec
    spec = CodecSpec(CODECS[codec])
    entries = {name: encode_tensor(update[name], spec) for name in params}
    kept = b""
    if ef is not None:
        left = {name: update[name] - decode_tensor(entries[name], max_elements=update[name].size,
                                                   max_bytes=update[name].nbytes)
                for name in params}
        kept = b"".join(np.ascontiguousarray(left[name], dtype="<f4").tobytes()
                        for name in sorted(params))
        sent = float(np.sqrt(sum(float(np.sum(update[n].astype(np.float64) ** 2)) for n in params)))
        norm = float(np.sqrt(sum(float(np.sum(left[n].astype(np.float64) ** 2)) for n in params)))
        head["ef"] = {"sha256": hashlib.sha256(kept).hexdigest(), "size": len(kept),
                      "applied": None if ef == "new" else ef,
                      "norm": round(norm / sent, 6) if sent > 0 else 0.0}
        kept = KEEP_MAGIC + struct.pack(">I", len(kept)) + kept
    sys.stdout.buffer.write(kept + json.dumps(head, sort_keys=True).encode() + b"\n"
                            + pack_map(entries))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
