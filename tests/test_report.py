"""Report files are written whole or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from autotl.errors import AutoTLError
from autotl.report import _write


def test_a_full_disk_keeps_the_previous_file_and_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trials.csv"
    _write(path, "old\n")
    original = Path.write_text

    def disk_full(self, text, *args, **kwargs):  # noqa: ANN001, ANN202
        original(self, text[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(AutoTLError, match=r"could not write .*trials\.csv: No space left on "
                                          r"device\. The study's trials are safe"):
        _write(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv"]


def test_trials_on_mixed_devices_say_their_seconds_compare_only_within_one_kind() -> None:
    from types import SimpleNamespace

    from autotl.report import _why

    rec = SimpleNamespace(notes=[], recommended=None)
    rows = [{"device": "cuda (NVIDIA H200)"}, {"device": "cuda (NVIDIA A100)"},
            {"device": "cuda (NVIDIA H200)"}]
    assert any("2 kinds of device (cuda (NVIDIA A100), cuda (NVIDIA H200))" in r
               and "compare only within one kind" in r and "counted operations" in r
               for r in _why(rec, rows))
    assert not any("kinds of device" in r for r in _why(rec, rows[:1] + rows[2:]))


def test_a_cheaper_config_within_tolerance_is_priced_in_operations_where_counted() -> None:
    """Its seconds may be the longer on a busy machine; the operations the rule compared are
    what the words give."""
    from types import SimpleNamespace

    from autotl.recommendation import Candidate
    from autotl.report import _why

    def candidate(trial: int, seconds: float, flops: float | None) -> Candidate:
        return Candidate(strategy="full" if trial == 0 else "head-only",
                         params={"lr": 1e-3, "head": "linear"}, val_accuracy=0.8,
                         train_seconds=seconds, trainable_params=10 * (3 - trial),
                         trial=trial, train_flops=flops)

    def why(best: Candidate, cheap: Candidate) -> list[str]:
        rec = SimpleNamespace(notes=[], recommended=best, selection="", per_strategy=[],
                              cheapest_within_tolerance=cheap, tolerance=0.01,
                              validation={"mode": "split"}, dataset={"n_val": 100},
                              origins={}, prior=None, cache=None)
        return _why(rec)

    words = " ".join(why(candidate(0, 10.0, 8e9), candidate(1, 20.0, 2e9)))
    assert "trains with 4.0× fewer operations" in words
    words = " ".join(why(candidate(0, 10.0, None), candidate(1, 5.0, 2e9)))
    assert "trains 2.0× faster" in words
