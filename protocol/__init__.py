"""NovaCron wire protocol: pure, no I/O, no clock reads, no global randomness.

Modules (filled in by the foundation issue):

- ``errors``      -- the error tree: ``ProtocolError`` > ``RemoteProtocolError`` (peer sent
                     garbage: drop, penalise, log) / ``LocalProtocolError`` (our own bug).
"""
