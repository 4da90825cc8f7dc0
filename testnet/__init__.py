"""The seeded in-process simulator and the local testnet launcher.

- ``traces``   -- host availability traces: synthetic from Failure Trace Archive fits, or read
  from the archive's tabular format.
- ``forecast`` -- fit-then-score protocol for availability forecasts (Brier, AUC, reliability).
- ``churn``    -- task placement under churn: random, on-fraction, ours, hindsight oracle.
"""
