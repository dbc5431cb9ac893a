"""best_model/ is replaced as one unit: weights and manifest of the same save, never a mix, and a
failed write (a full disk) leaves the previous model in place with a clear error."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from autotl.errors import AutoTLError
from autotl.saved_model import MANIFEST, WEIGHTS, save_model


def _read(folder: Path) -> tuple[int, float]:
    """(the manifest's trial, the value of the weights), read through the link."""
    return (json.loads((folder / MANIFEST).read_text())["trial"],
            float(load_file(str(folder / WEIGHTS))["w"][0]))


def test_each_save_switches_weights_and_manifest_together(tmp_path: Path) -> None:
    folder = tmp_path / "best_model"
    save_model(folder, {"w": torch.full((3,), 1.0)}, {"trial": 1})
    first_version = os.readlink(folder)
    save_model(folder, {"w": torch.full((3,), 2.0)}, {"trial": 2})
    assert folder.is_symlink() and _read(folder) == (2, 2.0)
    # The previous version is gone; only the current one and the link remain.
    assert not (tmp_path / first_version).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["best_model",
                                                                os.readlink(folder)])
    assert oct((folder / WEIGHTS).stat().st_mode & 0o777) == "0o644"


def test_a_failed_write_keeps_the_previous_model_and_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    folder = tmp_path / "best_model"
    save_model(folder, {"w": torch.full((3,), 1.0)}, {"trial": 1})
    before = sorted(p.name for p in tmp_path.iterdir())

    def disk_full(tensors, path):  # noqa: ANN001, ANN202
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(AutoTLError, match=r"could not write the model to .*best_model: No "
                                          r"space left on device.*autotl report"):
        save_model(folder, {"w": torch.full((3,), 2.0)}, {"trial": 2})
    assert _read(folder) == (1, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written left


def test_a_plain_folder_from_an_older_version_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "best_model"
    folder.mkdir()
    (folder / MANIFEST).write_text("{}")
    save_model(folder, {"w": torch.full((3,), 5.0)}, {"trial": 7})
    assert folder.is_symlink() and _read(folder) == (7, 5.0)
