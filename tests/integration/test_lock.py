"""One Citadel per data dir: a second ``citadel serve`` on it refuses to start, touching nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from citadel.lock import DataDirInUse, data_dir_lock
from tests.integration.test_adoption import BOUND, Citadel, free_tcp_port

pytestmark = pytest.mark.slow


def test_a_second_citadel_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "citadel.toml"
    config.write_text(f'[citadel]\ndata_dir = "{tmp_path / "data"}"\n')
    first = Citadel(config, free_tcp_port())
    try:
        first.wait_ready()
        citadel = Path(sys.executable).parent / "citadel"
        second = subprocess.run(
            [str(citadel), "serve", "--config", str(config), "--port", "0", "--demo", "1"],
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
        assert second.returncode == 1
        assert f"in use by another Citadel (pid {first.process.pid})" in second.stderr
        assert not (tmp_path / "data" / "demo").exists()  # refused before touching anything
        # The first one is unharmed.
        assert first.process.poll() is None
        first.wait_ready()
    finally:
        first.kill()  # SIGKILL: the kernel releases the lock with the process
    with data_dir_lock(tmp_path / "data"):
        pass


def _lock_in_another_process(data_dir: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from pathlib import Path; from citadel.lock import data_dir_lock\n"
        "with data_dir_lock(Path(sys.argv[1])): pass"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, timeout=BOUND
    )


def test_the_lock_is_per_data_dir(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path / "a"):
        taken = _lock_in_another_process(tmp_path / "a")
        assert taken.returncode != 0
        assert DataDirInUse.__name__ in taken.stderr
        assert _lock_in_another_process(tmp_path / "b").returncode == 0
    assert _lock_in_another_process(tmp_path / "a").returncode == 0
