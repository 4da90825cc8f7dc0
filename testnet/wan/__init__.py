"""A testnet that looks like the internet: nodes in network namespaces, with delay, loss,
bandwidth limits, NAT routers and partitions (``novacron testnet up --wan PROFILE``).

- ``profiles``   -- ``lan`` / ``continent`` / ``planet``, and the delay math of one link (pure);
                    the one definition the launcher and the simulators (``testnet.fl_sim``) read.
- ``links``      -- each node's uplink and downlink: drawn from the profile, or set (pure).
- ``plan``       -- namespace names and the address plan (pure).
- ``nat``        -- nftables rules: the redirect to the relay, and a NAT router (pure text).
- ``partition``  -- ``partition A,B / C,D`` parsing and the core's drop rules (pure).
- ``namespaces`` -- creating and removing namespaces, veths, tbf qdiscs (each node's line) and
                    tables (I/O).
- ``relay``      -- the userspace delay/loss relay every connection goes through (trio).
- ``launcher``   -- bringing a namespace testnet up and down around the daemons.
- ``floor``      -- what a profile's delays alone allow a PBFT commit, to read a measured one
                    against (pure).
"""
