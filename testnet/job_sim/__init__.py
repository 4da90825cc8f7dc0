"""A seeded simulation of the whole job protocol (place, offer, start, result, accept,
reissue, certificate) over real PBFT replicas of the real ledger, in virtual time.

- ``world``      -- keys, shards, routing; ``Orders`` (the daemon's request queue per shard).
- ``member``     -- a committee member: PBFT replica of ``ShardMachine`` + ``jobs.planner``.
- ``worker``     -- a volunteer (``jobs.tally.OfferTally``), honest or Byzantine.
- ``submitter``  -- submits jobs, builds certificates from votes (``jobs.tally.VoteTally``).
- ``checker``    -- no wrong result accepted, no stuck job, every certificate verifies.
- ``scenarios``  -- ``run_seed``: one seed, one network, one fault plan; replays exactly.
"""
