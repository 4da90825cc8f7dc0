"""The NovaCron node daemon: everything that does I/O, plus the pure decision logic it hosts.

Modules and subpackages:

- ``config``   -- the node's settings (TOML file + flags), validated with one-line errors.
- ``node``     -- the service tree: every service in one nursery.
- ``runner``   -- process entry: logging, signals, clean shutdown.
- ``service``  -- what services have in common.
- ``clock``    -- the one clock services read (``SystemClock``; ``TrioClock`` for virtual time).
- ``tick``     -- ``RestingTick``: a service loop's wait, short while busy, long at rest.
- ``errors``   -- ``DaemonError``, the root of every error the daemon raises on purpose.
- ``storage``  -- the data directory, key file, SQLite database.
- ``control``  -- the JSON-RPC control socket (server and client).
- ``cli``      -- the ``novacron`` command line.
- ``attest``   -- hardware attestation (TPM 2.0, SEV-SNP, TDX): detection, evidence, verification.
- ``p2p``      -- the libp2p host wrapper: Noise, yamux, tuned GossipSub, framed streams.
- ``sched``    -- availability forecasts and task placement with explanations (pure).
- ``runtime``  -- the wasmtime sandbox, its deterministic WASI subset, the worker pool.
- ``jobs``     -- job specs, and this node as submitter, committee member and worker (I/O).
- ``ledger``   -- hard state: the job ledger state machine, placement checks, reputation,
                  result certificates (pure).
- ``genesis``  -- a network's genesis: name, parameters, founding members.
- ``capabilities`` -- this node's capability record, and checking the records peers gossip.
- ``softstate`` -- the capability registry, load entries and link summaries as signed CRDTs,
  synced with peers; prunes leavers.
- ``committees`` -- this node's PBFT replicas and clients, and epochs (joins, evictions);
                  generic over what shards replicate (``committees.hooks.ShardApplication``).
- ``blobs``    -- content-addressed modules, inputs and outputs.
- ``membership`` -- ``novacron leave`` / ``join``: leaving the network on purpose, and back.
"""

__version__ = "0.1.0"
