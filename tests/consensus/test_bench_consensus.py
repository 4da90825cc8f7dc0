"""The PBFT benchmark still runs, and its ``channel_votes`` figure checks fewer signatures
(it had stopped running once the client refused its retry setting, and nothing noticed)."""

import random

from scripts.bench_consensus import run


def test_the_benchmark_runs_and_votes_on_their_channels_word_skip_only_envelope_checks():
    checked = run(4, 20, clients=8, batch=4, inflight=2, rng=random.Random(1))
    channel = run(4, 20, clients=8, batch=4, inflight=2, rng=random.Random(1), channel=True)
    assert checked["requests"] == channel["requests"] == 20
    assert channel["kinds"] == checked["kinds"]  # the same protocol run, message for message
    envelopes = sum(checked["kinds"][k] for k in ("pbft.prepare", "pbft.commit", "pbft.reply"))
    assert checked["count"].verifies - channel["count"].verifies == envelopes
