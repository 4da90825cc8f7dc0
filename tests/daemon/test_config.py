from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config


def write(tmp_path, text):
    p = tmp_path / "node.toml"
    p.write_text(text)
    return p


def test_full_config_and_relative_paths(tmp_path):
    p = write(tmp_path, '''
network = "novacron-testnet"
data_dir = "n0"
[p2p]
listen = ["/ip4/127.0.0.1/tcp/4100"]
bootstrap = ["/ip4/127.0.0.1/tcp/4101/p2p/12D3KooWabc"]
announce = ["/ip4/127.0.0.1/tcp/4200"]
relay_service = false
[volunteer]
cpu_share = 0.25
hours = "22:00-07:00"
[storage]
sync = "full"
''')
    cfg = load_config(p)
    assert cfg.data_dir == tmp_path / "n0"
    assert cfg.listen == ("/ip4/127.0.0.1/tcp/4100",)
    assert cfg.announce == ("/ip4/127.0.0.1/tcp/4200",) and cfg.relay_service is False
    assert cfg.volunteer.cpu_share == 0.25 and cfg.volunteer.hours == "22:00-07:00"
    assert cfg.storage_sync == "full" and cfg.socket_path == tmp_path / "n0" / "control.sock"


def test_flags_override_file(tmp_path):
    p = write(tmp_path, 'network = "aaa"\n')
    cfg = load_config(p, {"network": "bbb", "p2p.listen": ["/ip4/127.0.0.1/tcp/1"], "log.level": None})
    assert cfg.network == "bbb" and cfg.listen == ("/ip4/127.0.0.1/tcp/1",)


@pytest.mark.parametrize("text,match", [
    ('[p2p]\nlisen = []\n', r"unknown setting 'p2p.lisen' \(did you mean 'p2p.listen'\?\)"),
    ('[p2pp]\nlisten = []\n', r"unknown section 'p2pp' \(did you mean 'p2p'\?\)"),
    ('network = 5\n', "network must be a network name, got 5"),
    ('network = "Bad Name"\n', "lowercase letters"),
    ('[p2p]\nlisten = ["localhost:4001"]\n', "must look like"),
    ('[p2p]\nbootstrap = ["/ip4/1.2.3.4/tcp/1"]\n', "must end in /p2p/"),
    ('[p2p]\nannounce = ["1.2.3.4:4001"]\n', "p2p.announce address .*your public address"),
    ('[p2p]\nrelay_service = "yes"\n', "relay_service must be true or false"),
    ('[volunteer]\ncpu_share = 2\n', r"cpu_share must be in \(0, 1\]"),
    ('[volunteer]\nidle_only = "yes"\n', "idle_only must be true or false"),
    ('[volunteer]\nhours = "9-5"\n', "must look like \"22:00-07:00\""),
    ('[storage]\nsync = "sometimes"\n', "storage.sync must be"),
    ('network = \n', "not valid TOML"),
])
def test_mistakes_name_the_setting(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_named_files_are_read_with_a_cap(tmp_path):
    from daemon.config import load_trusted_cas
    from daemon.genesis import GenesisError, load_genesis

    with pytest.raises(ConfigError, match="^config file /dev/zero is a character device, not a "
                                          "regular file$"):
        load_config(Path("/dev/zero"))
    with pytest.raises(GenesisError, match="^genesis file /dev/zero is a character device"):
        load_genesis(Path("/dev/zero"), "novacron-local")
    with pytest.raises(ConfigError, match=r"^attestation.trusted_ek_cas names /dev/zero, which is "
                                          "a character device, not a regular file$"):
        load_trusted_cas((Path("/dev/zero"),))
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        load_trusted_cas((tmp_path / "ca.pem",))
