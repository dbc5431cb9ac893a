"""The one selection rule, on candidates whose numbers are worked out by hand here."""

from __future__ import annotations

import math

import pytest

from autotl.selection import (
    FLOPS_RESOLUTION,
    TIME_RESOLUTION,
    Scored,
    binomial_se,
    choose,
    gap_se,
)


def _s(key: str, correct: str, seconds: float, params: int = 0, **kw) -> Scored:  # noqa: ANN003
    n = len(correct)
    return Scored(key=key, label=key, accuracy=correct.count("1") / n, n=n, seconds=seconds,
                  trainable_params=params, correct=correct, **kw)


def test_a_lead_of_one_row_in_five_is_noise_and_the_cheaper_config_wins() -> None:
    full = _s("full", "11110", seconds=10.0)
    head = _s("head", "11100", seconds=0.5)
    # Paired differences: [0, 0, 0, 1, 0] → mean 0.2, sample variance 0.2, se = sqrt(0.2/5).
    assert gap_se(full, head) == pytest.approx(math.sqrt(0.2 / 5))
    choice = choose([full, head])
    assert choice.leader.key == "full" and choice.is_tie
    assert choice.chosen.key == "head"
    words = choice.describe()
    assert "Tie" in words and "cheapest, head" in words and "0.5 s" in words


def test_a_lead_beyond_the_noise_is_kept() -> None:
    n = 400
    best = _s("full", "1" * 360 + "0" * 40, seconds=10.0)  # 0.90
    worse = _s("head", "1" * 300 + "0" * 100, seconds=0.5)  # 0.75, wrong on a superset of rows
    # Differences: 60 ones and 340 zeros → se = sqrt(var/n) with var = 60·340/(400·399).
    expected = math.sqrt((60 * 340 / (400 * 399)) / n)
    assert gap_se(best, worse) == pytest.approx(expected)
    choice = choose([best, worse])
    assert not choice.is_tie and choice.chosen.key == "full"
    assert "leads every other config by more than the noise" in choice.describe()


def test_tolerance_adds_to_the_noise() -> None:
    best = _s("full", "1" * 90 + "0" * 10, seconds=10.0)  # 0.90
    cheap = _s("head", "1" * 87 + "0" * 13, seconds=1.0)  # 0.87 on the same rows but 3
    assert choose([best, cheap]).chosen.key == "full"  # gap 0.03 > se ≈ 0.0171
    assert choose([best, cheap], tolerance=0.02).chosen.key == "head"  # 0.03 ≤ 0.0171 + 0.02


def test_identical_outcomes_tie_and_go_to_fewer_seconds_then_fewer_parameters() -> None:
    a = _s("a", "1101", seconds=2.0, params=10)
    b = _s("b", "1101", seconds=2.0, params=5)
    c = _s("c", "1101", seconds=3.0, params=1)
    assert gap_se(a, b) == 0.0
    assert choose([a, b, c]).chosen.key == "b"


def test_seconds_within_the_timing_resolution_are_the_same_cost() -> None:
    """Two LoRA configs train in the same time up to the machine's load: a 1% difference in
    seconds must not decide their tie, the best estimate does; a real difference still does."""
    best = _s("lr-a", "11110", seconds=74.1, params=100)
    close = _s("lr-b", "11100", seconds=73.4, params=100)
    assert choose([best, close]).is_tie
    assert choose([best, close]).chosen.key == "lr-a"
    faster = _s("lr-b", "11100", seconds=74.1 / (1 + TIME_RESOLUTION) - 0.1, params=100)
    assert choose([best, faster]).chosen.key == "lr-b"


def test_at_the_same_time_fewer_trainable_parameters_are_cheaper_and_the_report_says_why() -> None:
    subset = _s("subset", "11110", seconds=575.4, params=10_000_000)
    lora = _s("lora", "11100", seconds=565.5, params=100_000)
    choice = choose([subset, lora])
    assert choice.chosen.key == "lora"
    words = choice.describe()
    assert "100,000 trainable parameters against 10,000,000" in words
    assert "within 10% count as the same" in words
    assert choose([_s("subset", "11110", seconds=575.4, params=100_000), lora]
                  ).chosen.key == "subset"


def test_counted_operations_break_a_tie_whatever_the_seconds_say() -> None:
    """The fortunes case: subset's trial ran while the CPU was quiet, LoRA's while it was
    shared, or the other way round; the operations decide the same way both times."""
    subset = _s("subset", "11110", seconds=800.0, params=10_000_000, flops=200e9)
    lora = _s("lora", "11100", seconds=400.0, params=100_000, flops=600e9)
    choice = choose([subset, lora])
    assert choice.is_tie and choice.chosen.key == "subset"
    assert "also the cheapest" in choice.describe()
    quiet = _s("subset", "11110", seconds=300.0, params=10_000_000, flops=200e9)
    assert choose([quiet, lora]).chosen.key == "subset"
    # LoRA leading instead: the cheaper subset still takes the tie, and the words say why.
    choice = choose([_s("subset", "11100", 800.0, 10_000_000, flops=200e9),
                     _s("lora", "11110", 400.0, 100_000, flops=600e9)])
    assert choice.chosen.key == "subset"
    assert "200.0 GFLOP to train against 600.0 GFLOP" in choice.describe()


def test_operations_within_the_resolution_are_the_same_cost_then_parameters_decide() -> None:
    best = _s("subset", "11110", seconds=1.0, params=10_000_000, flops=100e9)
    close = _s("lora", "11100", seconds=9.0, params=100_000,
               flops=100e9 / (1 + FLOPS_RESOLUTION) + 1)
    choice = choose([best, close])
    assert choice.chosen.key == "lora"
    assert "within 5% count as the same" in choice.describe()
    fewer = _s("lora", "11100", seconds=9.0, params=100_000,
               flops=100e9 / (1 + FLOPS_RESOLUTION) - 1e6)
    assert choose([best, fewer]).chosen.key == "lora"
    assert "GFLOP to train against" in choose([best, fewer]).describe()
    same_params = _s("lora", "11100", 9.0, 10_000_000, flops=100e9)
    assert choose([best, same_params]).chosen.key == "subset"  # then the best estimate


def test_a_tie_with_an_uncounted_candidate_falls_back_to_seconds() -> None:
    """A trial stored before operations were counted compares by seconds, as all do then."""
    counted = _s("subset", "11110", seconds=800.0, params=10, flops=200e9)
    old = _s("lora", "11100", seconds=400.0, params=10)
    assert choose([counted, old]).chosen.key == "lora"
    assert "400.0 s to train against 800.0 s" in choose([counted, old]).describe()


def test_unpaired_candidates_use_each_accuracys_own_error() -> None:
    a = Scored(key="a", label="a", accuracy=0.8, n=100, seconds=5.0)
    b = Scored(key="b", label="b", accuracy=0.7, n=50, seconds=1.0)
    assert gap_se(a, b) == pytest.approx(math.hypot(binomial_se(0.8, 100),
                                                    binomial_se(0.7, 50)))
    # Agresti–Coull: (0.8·100 + 2) / 104 = 0.788…, se = sqrt(p(1−p)/104).
    p = 82 / 104
    assert binomial_se(0.8, 100) == pytest.approx(math.sqrt(p * (1 - p) / 104))
    assert binomial_se(1.0, 5) > 0  # five right of five is not certainty


def test_the_prior_is_weighed_by_its_precision() -> None:
    # Measured on 5 rows, head-only leads; the prior (from many records) expects full ahead.
    full = _s("full", "11000", seconds=10.0, prior_mean=0.90, prior_sd=0.02)
    head = _s("head", "11110", seconds=1.0, prior_mean=0.70, prior_sd=0.02)
    se_full = binomial_se(0.4, 5)
    w, w_prior = 1 / se_full**2, 1 / 0.02**2
    assert full.estimate == pytest.approx((w * 0.4 + w_prior * 0.9) / (w + w_prior))
    assert choose([full, head]).chosen.key == "full"  # the precise prior outweighs 5 rows
    # Without the prior, the measurement alone ties them, and the tie goes to the cheaper.
    plain = [_s("full", "11000", seconds=10.0), _s("head", "11110", seconds=1.0)]
    assert choose(plain).chosen.key == "head"


def test_no_candidates_no_choice() -> None:
    assert choose([]) is None


def test_repeats_of_the_same_rows_are_averaged_per_row_before_pairing() -> None:
    # 8 rows scored twice (two repeats of the folds): each candidate's outcomes, repeat 1
    # then repeat 2, in the same row order.
    a = Scored(key="a", label="a", accuracy=12 / 16, n=8, seconds=2.0,
               correct="11111100" + "11111100")
    b = Scored(key="b", label="b", accuracy=6 / 16, n=8, seconds=1.0,
               correct="11010000" + "11100000")
    # Per-row mean differences [0, 0, .5, .5, 1, 1, 0, 0]: mean .375, sample variance 1.375/7.
    assert gap_se(a, b) == pytest.approx(math.sqrt((1.375 / 7) / 8))
    # As 16 independent rows (6 ones, 10 zeros) the error would look smaller: sqrt(.25/16).
    assert gap_se(a, b) > math.sqrt(0.25 / 16)


def test_one_strategys_prior_says_nothing_between_its_own_trials() -> None:
    fast = _s("t1", "11000", seconds=1.0, prior_mean=0.8, prior_sd=0.01, prior_key="lora")
    slow = _s("t2", "11111", seconds=9.0, prior_mean=0.8, prior_sd=0.01, prior_key="lora")
    # Measured: 0.4 against 1.0 on 5 rows, a gap of 3 rows beyond one standard error.
    assert choose([fast, slow]).chosen.key == "t2"
    # Without the key, the shared prior would pull the gap to 0 and hand it to the cheaper.
    fast.prior_key = slow.prior_key = None
    assert choose([fast, slow]).chosen.key == "t1"


def test_a_tie_inside_the_noise_goes_to_the_prior_then_to_the_cheaper() -> None:
    # Same measured accuracy on 5 rows (differing on two): the measurement cannot separate.
    full = _s("full", "11100", seconds=10.0, prior_key="full")
    head = _s("head", "11010", seconds=1.0, prior_key="head")
    assert choose([full, head]).chosen.key == "head"  # a tie, to the cheaper
    # A confident prior that expects full well ahead decides it.
    full.prior_mean, full.prior_sd = 0.90, 0.02
    head.prior_mean, head.prior_sd = 0.50, 0.02
    decided = choose([full, head])
    assert not decided.is_tie and decided.chosen.key == "full"
    # A prior that expects them level leaves the tie, and cost decides.
    head.prior_mean = 0.90
    level = choose([full, head])
    assert level.is_tie and level.chosen.key == "head"


def test_the_bootstrap_is_seeded_and_says_how_often_each_wins() -> None:
    from autotl.selection import bootstrap

    clear = _s("a", "1" * 40, seconds=5.0)
    worse = _s("b", "1" * 10 + "0" * 30, seconds=1.0)
    assert bootstrap([clear, worse], resamples=50, seed=1) == {"a": 1.0, "b": 0.0}
    close = _s("c", "1101" * 5, seconds=5.0)
    cheap = _s("d", "1011" * 5, seconds=1.0)
    shares = bootstrap([close, cheap], resamples=200, seed=7)
    assert shares == bootstrap([close, cheap], resamples=200, seed=7)
    assert sum(shares.values()) == pytest.approx(1.0) and 0 < shares["c"] < shares["d"]
    unpaired = Scored(key="u", label="u", accuracy=0.5, n=10, seconds=1.0)
    assert bootstrap([clear, unpaired]) is None
