"""PBFT replicas in the seeded simulator (``testnet.sim``).

- ``adapter``    -- ``Cluster`` (one committee: keys, replicas, clients, routing),
                    ``ReplicaNode`` / ``ClientNode`` processes, the simulated disk.
- ``byzantine``  -- faulty replicas: silent, equivocating primary, double voter, replayer,
                    out-of-window sender, bad-signature flooder (Twins: two nodes, one key).
- ``checker``    -- the safety invariants checked after every step, and blame from evidence.
- ``scenarios``  -- seeded fault plans (``run_seed``) and the f+1 Twins attack.
- ``handover``   -- an epoch handover between two committees under load.
- ``bus``        -- a synchronous lossless bus for small message-by-message tests.
"""
