"""The recommendation's use of the selection rule: the prior's expectations and the words."""

from __future__ import annotations

import optuna
import pytest

from autotl.recommendation import (
    Candidate,
    Recommendation,
    _what_decided,
    confidence,
    prior_on_scale,
    scored_from_trial,
    select,
)
from autotl.storage import mask_url


def _trial(number: int, strategy: str, correct: str, seconds: float,  # noqa: ANN202
           flops: float | None = None):
    attrs = {"val_correct": correct, "train_seconds": seconds, "trainable_params": 1}
    if flops is not None:
        attrs["train_flops"] = flops
    trial = optuna.trial.create_trial(
        params={"strategy": strategy}, value=correct.count("1") / len(correct),
        distributions={"strategy": optuna.distributions.CategoricalDistribution(
            ["full", "head-only"])},
        user_attrs=attrs)
    trial.number = number
    return trial


def test_stored_trials_are_compared_by_their_counted_operations() -> None:
    """A study's trials carry ``train_flops``: a tie goes to the fewer operations even where
    that trial's seconds, measured while the machine was busy, were the longer."""
    full = _trial(0, "full", "1110011100", seconds=30.0, flops=9e12)
    head = _trial(1, "head-only", "1101011010", seconds=45.0, flops=1e12)
    choice = select([full, head], 10)
    assert choice.is_tie and choice.chosen.key == 1
    assert "1,000.0 GFLOP to train against 9,000.0 GFLOP" in choice.describe()


def test_a_measured_tie_goes_to_the_prior_then_to_the_cheaper_config() -> None:
    full = _trial(0, "full", "1110011100", seconds=30.0)
    head = _trial(1, "head-only", "1101011010", seconds=1.0)
    trials = [full, head]
    measured = select(trials, 10)
    assert measured.is_tie and measured.chosen.key == 1  # cost decides without the prior
    # The prior expects full at the best strategy's level and head-only 30 % below, surely.
    expectations = {"full": {"relative": 1.0, "sd": 0.02}, "head-only": {"relative": 0.7,
                                                                          "sd": 0.02}}
    prior = prior_on_scale(expectations, trials)
    assert prior["full"] == pytest.approx((0.6, 0.012)) and prior["head-only"][0] == \
        pytest.approx(0.42)
    with_prior = select(trials, 10, prior=prior)
    assert with_prior.chosen.key == 0
    words = _what_decided(with_prior, measured, prior)
    assert "Measured alone, the rule would have chosen trial 1 (head-only)" in words
    assert "the prior moved the choice to trial 0 (full)" in words
    # A prior that expects them level leaves the tie to cost.
    level = prior_on_scale({"full": {"relative": 1.0, "sd": 0.02},
                            "head-only": {"relative": 1.0, "sd": 0.02}}, trials)
    assert select(trials, 10, prior=level).chosen.key == 1
    # How sure: shares of bootstrap resamples, by strategy, seeded.
    picks = [scored_from_trial(t, 10, prior) for t in trials]
    sure = confidence(picks, tolerance=0.0, seed=0)
    assert sure == confidence(picks, tolerance=0.0, seed=0)
    assert set(sure["shares"]) == {"full", "head-only"}
    assert sum(sure["shares"].values()) == pytest.approx(1.0)
    assert sure["shares"]["full"] > 0.5 and "bootstrap resamples" in sure["words"]


def test_the_best_estimates_command_keeps_a_password_off_the_page() -> None:
    def candidate(trial: int, strategy: str, accuracy: float, seconds: float) -> Candidate:
        return Candidate(strategy=strategy, params={"lr": 1e-3, "head": "linear"},
                         val_accuracy=accuracy, train_seconds=seconds, trainable_params=10,
                         trial=trial)

    def summary(storage: str) -> str:
        cheap = candidate(1, "head-only", 0.60, 1.0)
        return Recommendation(
            dataset={"name": "d", "n_per_class": 5, "n_classes": 3}, backbone="b",
            recommended=cheap, cheapest_within_tolerance=cheap, per_strategy=[], n_trials=2,
            trial_states={"complete": 2}, storage=storage, study="s", tolerance=0.0,
            n_groups=4, out="runs/s", best_estimate=candidate(0, "full", 0.62, 30.0)).summary()

    plain = summary("sqlite:///runs/s/study.db")
    assert ("take the best estimate instead, trial 0: full, lr 1.0e-03, linear head "
            "(validation accuracy 0.620, 30.0 s to train). `autotl report --storage "
            "'sqlite:///runs/s/study.db' --study 's' --out 'runs/s' --trial 0` rebuilds "
            "best_model/ from it.") in plain
    masked = summary(mask_url("postgresql://me:secret@db/autotl"))
    assert "secret" not in masked and "***" not in masked
    assert ("`autotl report --study 's' --out 'runs/s' --trial 0` rebuilds best_model/ from "
            "it (with the storage URL in $AUTOTL_STORAGE).") in masked
