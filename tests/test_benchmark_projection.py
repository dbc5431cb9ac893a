"""benchmarks/projection.py: points from result rows, the measured winner, "bracketed"."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from autotl.bench.results import new_row, write_rows

ROOT = Path(__file__).parents[1]
SMOKE = ROOT / "benchmarks" / "results" / "smoke.jsonl"
SMOKE_TASK = "smoke-digits-mobilenetv2-32px"


@pytest.fixture(scope="module")
def script(benchmark_script) -> ModuleType:  # noqa: ANN001
    return benchmark_script("projection")


def _row(strategy: str, n: int, seed: int, val: float, test: float, *, lr: float = 1e-3,
         task: str = "t") -> dict:
    return new_row(task=task, dataset="d", n_per_class=n, protocol="p", backbone="b",
                   method="oracle", strategy=strategy, params={"lr": lr}, val_accuracy=val,
                   test_accuracy=test, seed=seed, compute_seconds=1.0, n_val=4000,
                   date="2026-11-29")


def _rows() -> list[dict]:
    """full's validation error follows n^-0.5 and head-only's e^-0.85·n^-0.2 (equal at
    e^(0.85/0.3) ≈ 17 per class), scored on 4000 validation rows so the points are precise; measured
    at 20 and 100, full wins on test. A second task's
    measurement disagrees: head-only wins at 100."""
    rows = []
    for n in (5, 10):
        for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
            rows.append(_row("full", n, seed, 1 - n ** -0.5 + jitter, 0.5))
            rows.append(_row("head-only", n, seed, 1 - math.exp(-0.85) * n ** -0.2 + jitter,
                             0.5))
            # A worse config of full is not its point: the best config by validation is.
            rows.append(_row("full", n, seed, 0.1, 0.9, lr=1e-5))
    for n, full, head in ((20, 0.62, 0.58), (100, 0.76, 0.64)):
        for seed in range(2):
            rows += [_row("full", n, seed, None, full), _row("head-only", n, seed, None, head)]
    for row in [r for r in rows if r["n_per_class"] in (5, 10)]:
        rows.append({**row, "task": "t2"})
    for seed in range(2):
        rows += [_row("full", 100, seed, None, 0.60, task="t2"),
                 _row("head-only", 100, seed, None, 0.70, task="t2")]
    return rows


def test_a_projection_that_brackets_the_measured_winner(
        script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "rows.jsonl"
    write_rows(results, _rows())
    assert script.main([str(results), "--task", "t", "--from", "5,10", "--to", "20,100"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["measured_winner"] == {"20": "full", "100": "full"}
    assert summary["draws"] == 1
    assert summary["bracketed_at"] == {"20": True, "100": True} and summary["bracketed"]
    assert summary["projected_win_probability"]["100"]["full"] > 0.9
    assert summary["from"] == [5, 10] and summary["to"] == [20, 100]
    assert any(s.startswith("At about 17 per class") and "full is expected to overtake "
               "head-only" in s for s in summary["per_draw"]["0"]["sentences"])


def test_points_are_each_strategys_best_config_by_validation(script: ModuleType) -> None:
    point = script.points_at(_rows(), 5)["full"]
    assert point.mean == pytest.approx(1 - 5 ** -0.5)
    assert len(point.accuracies) == 3 and point.n_eval == 4000


def test_a_winner_the_projection_rules_out_is_not_bracketed(
        script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "rows.jsonl"
    write_rows(results, _rows())
    assert script.main([str(results), "--task", "t2", "--from", "5,10", "--to", "100"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["measured_winner"] == {"100": "head-only"}
    assert summary["projected_win_probability"]["100"]["head-only"] < 0.2
    assert summary["bracketed_at"] == {"100": False} and summary["bracketed"] is False


def test_one_from_size_is_refused_on_the_smoke_rows(
        script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert script.main([str(SMOKE), "--task", SMOKE_TASK, "--from", "5", "--to", "20"]) == 2
    assert "--from 5 is one size: a learning curve needs two or more" in \
        capsys.readouterr().err


def test_the_smoke_rows_measured_at_5_and_20(
        script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    # The smoke rows hold only 5 and 20 per class, so the to-size lies inside the fit.
    assert script.main([str(SMOKE), "--task", SMOKE_TASK, "--from", "5,20", "--to", "20"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # At 20 the best mean test accuracy is full's (the MLP-head config an autotl search
    # found, 0.838), ahead of LoRA's best config (0.818).
    assert summary["measured_winner"] == {"20": "full"}
    assert set(summary["projected_win_probability"]["20"]) == {"full", "subset", "head-only",
                                                               "lora"}
    assert summary["bracketed"] is True


def test_bad_arguments_are_refused_with_what_to_do(
        script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "rows.jsonl"
    write_rows(results, _rows())
    assert script.main([str(results), "--task", "nope", "--from", "5,10", "--to", "20"]) == 2
    assert "no rows of task 'nope'; the results hold ['t', 't2']" in capsys.readouterr().err
    assert script.main([str(results), "--task", "t", "--from", "5,x", "--to", "20"]) == 2
    assert "--from takes whole numbers" in capsys.readouterr().err
    assert script.main([str(results), "--task", "t", "--from", "5,10", "--to", "50"]) == 2
    assert "no rows at 50 per class to measure the winner with" in capsys.readouterr().err


def test_each_draw_is_compared_on_its_own(
        script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Draw 0 is task t (full wins at 100, as projected); draw 1 has t2's rows (head-only wins
    # at 100, against the projection). Each draw carries its split seed in the protocol.
    rows = [{**r, "protocol": "p split_seed=0", "split_seed": 0}
            for r in _rows() if r["task"] == "t"]
    rows += [{**r, "task": "t", "protocol": "p split_seed=1", "split_seed": 1}
             for r in _rows() if r["task"] == "t2"]
    results = tmp_path / "rows.jsonl"
    write_rows(results, rows)
    assert script.main([str(results), "--task", "t", "--from", "5,10", "--to", "100"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["draws"] == 2
    assert summary["measured_winners"] == {"100": ["full", "head-only"]}
    assert summary["per_draw"]["0"]["bracketed_at"] == {"100": True}
    assert summary["per_draw"]["1"]["bracketed_at"] == {"100": False}
    assert summary["bracketed_share"] == {"100": 0.5} and summary["bracketed"] is True
    assert "t (draw split_seed=1) at 100 per class (measured winner: head-only" in out


def test_rows_of_other_protocols_need_one_named(
        script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _rows() + [{**r, "protocol": "q"} for r in _rows() if r["task"] == "t"]
    results = tmp_path / "rows.jsonl"
    write_rows(results, rows)
    argv = [str(results), "--task", "t", "--from", "5,10", "--to", "100"]
    assert script.main(argv) == 2
    assert "has rows of 2 protocols ['p', 'q']; rows compare only within one: pass " \
        "--protocol" in capsys.readouterr().err
    assert script.main([*argv, "--protocol", "q"]) == 0


def test_only_a_crossing_the_report_prints_brackets_a_winner(script: ModuleType) -> None:
    from autotl.curves import POSSIBLE, Crossing, Projection, Target

    def projection(share: float) -> Projection:
        # LoRA is projected to win at 20 in 4% of draws; its crossing over subset has an
        # interval around 20 but comes in `share` of the draws.
        target = Target(n=20, median={"lora": 0.93, "subset": 0.97},
                        interval={"lora": (0.9, 0.95), "subset": (0.95, 0.98)},
                        win_probability={"lora": 0.04, "subset": 0.96})
        crossing = Crossing(overtaker="lora", leader="subset", share=share, median=18.0,
                            interval=(12.0, 40.0), horizon=1000.0)
        return Projection(fits=[], crossings=[crossing], targets=[target], largest=10,
                          horizon=1000.0, draws=100, seed=0, leader="subset",
                          leader_share=0.7)

    assert not any("lora" in s for s in projection(POSSIBLE / 2).sentences())
    assert script.bracketed(projection(POSSIBLE / 2), 20, "lora") is False
    assert any("lora may overtake subset" in s for s in projection(POSSIBLE).sentences())
    assert script.bracketed(projection(POSSIBLE), 20, "lora") is True
    assert script.bracketed(projection(POSSIBLE / 2), 20, "subset") is True
