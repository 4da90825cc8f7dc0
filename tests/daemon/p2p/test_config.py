import pytest

from daemon.p2p import P2PConfig, P2PConfigError

PEER = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"


def test_defaults_are_the_tuned_ones():
    config = P2PConfig()
    assert config.gossip_heartbeat == 1.0 and config.gossip_rate_limit >= 100
    assert config.max_frame == 512 * 1024
    assert config.listen == ("/ip4/127.0.0.1/tcp/0",)


def test_lists_are_accepted_and_frozen_as_tuples():
    config = P2PConfig(
        listen=["/ip4/127.0.0.1/tcp/0"], bootstrap=[f"/ip4/127.0.0.1/tcp/9/p2p/{PEER}"]
    )
    assert config.bootstrap == (f"/ip4/127.0.0.1/tcp/9/p2p/{PEER}",)
    assert hash(config)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bootstrap": ["/ip4/127.0.0.1/tcp/9"]}, "no /p2p/<node id>"),
        ({"bootstrap": "/ip4/127.0.0.1/tcp/9"}, "not one string"),
        ({"announce": ["/ip4/nonsense"]}, "announce address"),
        ({"listen": ["not an address"]}, "is not a multiaddr"),
        ({"listen": []}, "listen is empty"),
        ({"max_frame": 1024 * 1024}, "max_frame must be"),
        ({"send_queue": 0}, "send_queue must be >= 1"),
        ({"reconnect_min": 5.0, "reconnect_max": 1.0}, "reconnect_max must be >= reconnect_min"),
        ({"gossip_degree_low": 8}, "gossip_degree_low <= gossip_degree"),
        ({"libp2p_log_level": "LOUD"}, "libp2p_log_level"),
    ],
)
def test_bad_settings_say_what_is_wrong(settings, message):
    with pytest.raises(P2PConfigError, match=message):
        P2PConfig(**settings)
