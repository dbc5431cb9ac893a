"""The recommendation's use of the selection rule: the prior's expectations and the words."""

from __future__ import annotations

import optuna
import pytest

from autotl.recommendation import (
    _what_decided,
    confidence,
    prior_on_scale,
    scored_from_trial,
    select,
)


def _trial(number: int, strategy: str, correct: str, seconds: float):  # noqa: ANN202
    trial = optuna.trial.create_trial(
        params={"strategy": strategy}, value=correct.count("1") / len(correct),
        distributions={"strategy": optuna.distributions.CategoricalDistribution(
            ["full", "head-only"])},
        user_attrs={"val_correct": correct, "train_seconds": seconds, "trainable_params": 1})
    trial.number = number
    return trial


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
