"""``make setup`` refuses a disk too full for a new virtual environment before pip starts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _disk_space(tmp_path: Path, need_mb: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "--no-print-directory", "disk-space",
                           f"NEED_MB={need_mb}", f"VENV={tmp_path / 'env' / '.venv'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_a_disk_too_full_for_a_new_venv_is_named_before_anything_installs(
        tmp_path: Path) -> None:
    # More than any disk holds: the check must refuse, say what it needs and what to do.
    done = _disk_space(tmp_path, 10**12)
    assert done.returncode != 0
    assert "needs about 1000000000000 MB" in done.stderr
    assert "MB are free on its disk" in done.stderr and "VENV=" in done.stderr
    assert not (tmp_path / "env" / ".venv").exists()
    assert _disk_space(tmp_path, 1).returncode == 0
