"""Live settings: every mistake one line, changes kept in the database with their source, the
suspension surviving a restart (a reopened database)."""

from __future__ import annotations

import pytest

from daemon.owner.settings import Settings, SettingsError, SettingsStore, validate
from daemon.storage.db import Database

BASE = Settings(cpu_share=0.5, max_memory_mb=2048, hours="", idle_only=False)


@pytest.mark.parametrize("changes, message", [
    ({"cpu_share": 0}, "cpu_share must be a fraction of the machine in (0, 1], e.g. 0.25, got 0"),
    ({"cpu_share": 1.5}, "cpu_share must be a fraction"),
    ({"cpu_share": True}, "cpu_share must be a fraction"),
    ({"max_memory_mb": 8}, "max_memory_mb must be whole megabytes, at least 16, got 8"),
    ({"max_memory_mb": 64.5}, "max_memory_mb must be whole megabytes"),
    ({"hours": "22-07"}, "hours must look like \"22:00-07:00\""),
    ({"idle_only": "yes"}, "idle_only must be true or false, got 'yes'"),
    ({"network": "x"}, "'network' cannot be changed while the daemon runs (these can: cpu_share"),
])
def test_each_mistake_is_one_line_naming_the_setting(changes, message):
    with pytest.raises(SettingsError) as err:
        validate(changes)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_changes_and_suspension_are_kept_across_a_restart(tmp_path):
    db = Database(tmp_path / "node.db")
    store = SettingsStore(db, BASE)
    new = store.change({"cpu_share": 0.25, "hours": " 22:00-07:00 ", "max_memory_mb": 2048})
    assert new == Settings(0.25, 2048, "22:00-07:00", False)
    assert store.sources() == {"cpu_share": "changed by the owner", "max_memory_mb": "config file",
                               "hours": "changed by the owner", "idle_only": "config file"}
    store.suspend("command line", 1_800_000_000.0)
    db.close()

    db = Database(tmp_path / "node.db")
    again = SettingsStore(db, BASE)
    assert again.current == new
    assert again.suspension is not None and again.suspension.by == "command line"
    assert again.suspension.reason().startswith("suspended by the owner since ")
    assert again.resume() is True and again.resume() is False
    assert again.reset() == BASE and again.overrides == {}
    db.close()
    final = SettingsStore(Database(tmp_path / "node.db"), BASE)
    assert final.current == BASE and final.suspension is None


def test_a_value_equal_to_the_files_gives_the_setting_back_to_the_file(tmp_path):
    store = SettingsStore(Database(tmp_path / "node.db"), BASE)
    store.change({"cpu_share": 0.25})
    store.change({"cpu_share": 0.5})
    assert store.overrides == {} and store.sources()["cpu_share"] == "config file"


def test_a_wrong_change_changes_nothing(tmp_path):
    store = SettingsStore(Database(tmp_path / "node.db"), BASE)
    with pytest.raises(SettingsError):
        store.change({"cpu_share": 0.25, "hours": "late"})
    assert store.current == BASE
