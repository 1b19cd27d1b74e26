"""The demo's server entries: created once, kept private, found again by a restarted Citadel."""

from __future__ import annotations

import stat
from pathlib import Path

from citadel.demo import DEMO_DIR, demo_servers


def test_entries_are_kept_private_and_stable(tmp_path: Path) -> None:
    first = demo_servers(tmp_path, 2)
    index = tmp_path / DEMO_DIR / "servers.json"
    assert [s.id for s in first] == ["demo-1", "demo-2"]
    assert stat.S_IMODE(index.stat().st_mode) == 0o600  # it holds RCon passwords
    written = index.stat().st_mtime_ns
    again = demo_servers(tmp_path, 2)
    assert again == first  # same passwords and ports: a restarted Citadel adopts them
    assert index.stat().st_mtime_ns == written  # nothing changed, nothing rewritten
    more = demo_servers(tmp_path, 3)
    assert more[:2] == first
    assert more[2].id == "demo-3"
    assert len({s.rcon.port for s in more if s.rcon}) == 3
    for server in more:
        assert (Path(server.install_dir) / "profiles").is_dir()
        assert (Path(server.install_dir) / "serverDZ.cfg").is_file()
