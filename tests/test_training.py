"""One trial: what its value is, what it times, what it keeps."""

from __future__ import annotations

import time

import pytest
import tiny_components
import torch

from autotl.config import SearchConfig
from autotl.plugins import load_plugins
from autotl.study import build_trainer, prepare
from autotl.training import Trainer, TrialPlan

SETTINGS = dict(data="test:images", backbone="test:cnn", strategies=["full", "head-only"],
                heads=["linear"], min_steps=8, max_steps=8, eval_points=4, batch_size=16,
                image_size=32, prior="none", cache=False, test_fraction=0.25)


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    prep = prepare(SearchConfig(**SETTINGS), load_plugins(extra=[tiny_components]))
    return build_trainer(prep, torch.device("cpu"))[1]


PLAN = TrialPlan("full", {}, "linear", {}, lr=3e-3, weight_decay=1e-4)


def test_the_value_is_the_accuracy_at_the_end_of_the_budget_not_the_best_checkpoint(
        trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation accuracy that falls after the second checkpoint: a maximum would say 0.75.
    script = iter([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    monkeypatch.setattr(Trainer, "outcomes",
                        lambda self, *a, **k: torch.tensor(next(script), dtype=torch.bool))
    result = trainer.run(PLAN, seed=0)
    assert [acc for _, acc in result.history] == [0.5, 0.75, 0.25, 0.25]
    assert result.val_accuracy == 0.25
    assert result.val_correct == "1000"


def test_training_seconds_leave_out_the_validation_passes(
        trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = Trainer.outcomes

    def slow(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        time.sleep(0.25)
        return outcomes(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "outcomes", slow)
    result = trainer.run(PLAN, seed=0)
    assert result.eval_seconds >= 4 * 0.25
    assert result.train_seconds < result.wall_seconds - 4 * 0.25


def test_the_final_tensors_score_the_test_split_as_the_trained_model_does(
        trainer: Trainer) -> None:
    result = trainer.run(PLAN, seed=1)
    accuracy, correct = trainer.score(PLAN, result.trained, "test")
    assert len(correct) == len(trainer.splits["test"]) == 18
    assert accuracy == correct.count("1") / 18
    # Re-scoring validation from the kept tensors reproduces the trial's own outcomes.
    assert trainer.score(PLAN, result.trained, "val")[1] == result.val_correct
    with pytest.raises(ValueError, match="do not belong"):
        trainer.score(TrialPlan("head-only", {}, "linear", {}, 1e-2, 1e-4),
                      {**result.trained, "backbone.nonexistent": torch.zeros(1)}, "test")
