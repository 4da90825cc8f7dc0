"""Scheduling decisions: forecast which volunteers stay online, and place tasks on them.

Pure (sans-I/O): every function takes ``now`` (epoch seconds, UTC) from its caller.
"""
