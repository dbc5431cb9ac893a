"""benchmarks/replay_prior.py: a search's stored outcomes selected again under another prior,
its test accuracy looked up, never retrained."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import optuna
import pytest

from autotl.bench.results import new_row, write_rows

N = 20  # validation rows the fake search scored
N_TEST = 10


@pytest.fixture(scope="module")
def script(benchmark_script) -> ModuleType:  # noqa: ANN001
    return benchmark_script("replay_prior")


def _trial(strategy: str, right: int, seconds: float) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params={"strategy": strategy},
        distributions={"strategy": optuna.distributions.CategoricalDistribution(
            ["head-only", "lora"])},
        value=right / N,
        user_attrs={"val_correct": "1" * right + "0" * (N - right), "train_seconds": seconds,
                    "trainable_params": 10})


def _row(method: str, strategy: str, test_right: int, **extra: object) -> dict:
    return new_row(task="t", dataset="mine", data_fingerprint="f1", n_per_class=10,
                   n_classes=2, modality="image", n_train=20, n_val=N, protocol="p",
                   backbone="b", method=method, strategy=strategy, params={"lr": 1e-3},
                   test_accuracy=test_right / N_TEST,
                   test_correct="1" * test_right + "0" * (N_TEST - test_right), seed=0,
                   compute_seconds=1.0, date="2026-11-29", **extra)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A search that measured LoRA 12/20 and head-only 11/20 (a tie: one standard error
    apart is far more) and so chose the cheaper head-only, which scored 5/10 on test and
    LoRA's pick 9/10; the oracle's best is 9/10."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.add_trial(_trial("head-only", 11, 1.0))
    study.add_trial(_trial("lora", 12, 50.0))
    study.set_user_attr("prior_expectations", {})
    study.set_user_attr("test:0", {"accuracy": 0.5, "correct": "1" * 5 + "0" * 5})
    study.set_user_attr("test:1", {"accuracy": 0.9, "correct": "1" * 9 + "0"})
    rows = [_row("oracle", "lora", 9), _row("oracle", "head-only", 5),
            _row("autotl", "head-only", 5, source=f"{storage} study s trial 0")]
    write_rows(tmp_path / "results.jsonl", rows)
    return tmp_path


def _prior(path: Path, dataset: str) -> str:
    """Records of ``dataset`` at this size and modality: head-only far behind LoRA."""
    def record(strategy: str, accuracy: float) -> dict:
        return {"dataset": dataset, "modality": "image", "n_per_class": 10, "n_classes": 2,
                "backbone": "b", "strategy": strategy, "params": {"lr": 1e-3},
                "mean_accuracy": accuracy, "best_mean_at_size": 0.9}
    records = [record("lora", 0.9), record("head-only", 0.45)] * 3
    path.write_text(json.dumps({"format": 1, "records": records}))
    return str(path)


def test_a_prior_that_knows_head_only_lags_breaks_the_tie(script: ModuleType, bench: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    prior = _prior(bench / "prior.json", "other-data")
    assert script.main([str(bench / "results.jsonl"), "--prior", prior]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (search,) = result["searches"]
    assert search["old"]["strategy"] == "head-only" and search["old"]["tie"]
    assert search["new"]["strategy"] == "lora"
    assert search["old"]["regret"] == pytest.approx(0.9 - 0.5)
    assert search["new"]["regret"] == pytest.approx(0.0)
    assert search["new"]["interval"] == pytest.approx([0.0, 0.0])
    assert result["groups"][0]["changed"] == 1


def test_records_of_the_task_s_own_data_are_left_out(script: ModuleType, bench: Path) -> None:
    rows = script.read_results([bench / "results.jsonl"])
    own = script.prior_records([_prior(bench / "own.json", "mine")])
    (search,) = script.replay(rows, own)
    assert search["records_used"] == 0
    assert search["new"]["strategy"] == "head-only"  # the tie still goes to the cheapest


def test_rows_without_their_oracle_or_study_are_named(script: ModuleType, bench: Path) -> None:
    rows = script.read_results([bench / "results.jsonl"])
    with pytest.raises(script.ConfigError, match="no oracle rows"):
        script.replay([r for r in rows if r["method"] != "oracle"], [])
    moved = [dict(r, source=f"sqlite:///{bench / 'studies.db'} study gone trial 0")
             if r["method"] == "autotl" else r for r in rows]
    with pytest.raises(script.ConfigError, match="gone"):
        script.replay(moved, [])


def test_a_narrower_tie_band_replays_the_leader_and_zero_or_more_is_required(
        script: ModuleType, bench: Path, capsys: pytest.CaptureFixture) -> None:
    """--z 0: no tie, so the search's best estimate (LoRA, 12/20) is chosen over the cheaper
    head-only (11/20); the old choice keeps autotl's band."""
    assert script.main([str(bench / "results.jsonl"), "--prior", "none", "--z", "0"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (search,) = result["searches"]
    assert result["z"] == 0
    assert search["old"]["strategy"] == "head-only" and search["old"]["tie"]
    assert search["new"]["strategy"] == "lora" and not search["new"]["tie"]
    assert script.main([str(bench / "results.jsonl"), "--prior", "none", "--z", "-1"]) == 2
    assert "--z must be 0 or more" in capsys.readouterr().err
