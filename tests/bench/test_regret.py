"""Regret, its bootstrap interval, the oracle's noise floor and compute fraction, checked
against values worked out by hand for the toy benchmark in conftest.py."""

from __future__ import annotations

import math

import pytest
from conftest import N_TEST, row

from autotl.bench.regret import noise_floor, paired_interval, seed_sd, standings, summarize


def _by_method(table):  # noqa: ANN001, ANN202
    return {s.method: s for s in table}


def test_regret_is_oracle_best_mean_minus_method_mean(toy_rows: list[dict]) -> None:
    table = _by_method(standings(toy_rows))
    # oracle configs: A (30+20)/80 = 0.625, B (10+30)/80 = 0.5, C (40+0)/80 = 0.5
    oracle = table["oracle"]
    assert oracle.test_mean == pytest.approx(25 / 40)
    assert oracle.regret == 0.0 and oracle.strategies == ["full"]
    assert oracle.runs == 6 and "full" in oracle.detail
    assert table["autotl"].test_mean == pytest.approx(20 / 40)
    assert table["autotl"].regret == pytest.approx(25 / 40 - 20 / 40)
    assert table["full"].regret == pytest.approx(25 / 40 - 10 / 40)
    assert table["autotl"].test_sd == pytest.approx(math.sqrt(2 * (0.25 ** 2)))
    assert table["full"].test_sd is None  # one run: no spread to show


def test_noise_floor_picks_by_one_seed_and_scores_on_the_other(toy_rows: list[dict]) -> None:
    oracle = [r for r in toy_rows if r["method"] == "oracle"]
    # seed 0 picks C (40/40), which scores 0/40 on seed 1; seed 1 picks B (30/40), which
    # scores 10/40 on seed 0: the oracle's best mean 25/40 minus their mean 5/40.
    assert noise_floor(oracle) == pytest.approx(25 / 40 - (0 + 10 / 40) / 2)
    assert noise_floor(oracle[::2]) is None  # one seed per config: no floor to measure
    assert all(s.noise_floor == pytest.approx(0.5) for s in standings(toy_rows))


def test_seed_noise_is_the_spread_over_seeds_pooled_over_draws(toy_rows: list[dict]) -> None:
    oracle = [r for r in toy_rows if r["method"] == "oracle"]
    a, b, c = oracle[0:2], oracle[2:4], oracle[4:6]
    # A 30/40 and 20/40, B 10/40 and 30/40, C 40/40 and 0/40: sample variances 1/32, 1/8
    # and 1/2, each on one degree of freedom.
    assert seed_sd([a]) == pytest.approx(math.sqrt(1 / 32))
    assert seed_sd([a, b, c]) == pytest.approx(math.sqrt((1 / 32 + 1 / 8 + 1 / 2) / 3))
    assert seed_sd([a, b[:1]]) is None  # a draw whose best ran one seed: nothing to pool
    assert seed_sd([]) is None


def test_compute_fraction_and_wins(toy_rows: list[dict]) -> None:
    table = _by_method(standings(toy_rows))
    total = 10 + 10 + 2 + 2 + 6 + 6
    assert table["oracle"].compute_seconds == total
    assert table["oracle"].compute_fraction == pytest.approx(1.0)
    assert table["autotl"].compute_fraction == pytest.approx(9 / total)
    assert table["full"].compute_fraction == pytest.approx(10 / total)
    assert table["autotl"].win and not table["full"].win and not table["oracle"].win
    summary = {m.method: m for m in summarize(list(table.values()))}
    assert summary["autotl"].wins == 1 and summary["full"].wins == 0
    assert summary["full"].worst_regret == pytest.approx(15 / 40)


def _binomial_quantile(n: int, p: float, q: float) -> int:
    total = 0.0
    for k in range(n + 1):
        total += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
        if total >= q:
            return k
    return n


def test_paired_bootstrap_interval_matches_the_exact_resampling_distribution(
        toy_rows: list[dict]) -> None:
    oracle_best = [r for r in toy_rows if r["method"] == "oracle" and r["strategy"] == "full"]
    autotl = [r for r in toy_rows if r["method"] == "autotl"]
    # Averaged over seeds, oracle-best minus autotl is 0.5 on 10 of the 40 examples and 0
    # elsewhere, so a resample's mean difference is 0.5·K/40 with K ~ Binomial(40, 1/4).
    low, high = paired_interval(oracle_best, autotl, samples=4000)
    step = 0.5 / N_TEST
    exact_low = step * _binomial_quantile(N_TEST, 0.25, 0.025)
    exact_high = step * _binomial_quantile(N_TEST, 0.25, 0.975)
    assert abs(low - exact_low) <= step + 1e-12
    assert abs(high - exact_high) <= step + 1e-12
    assert low < 0.125 < high
    table = _by_method(standings(toy_rows))
    assert (table["autotl"].regret_low, table["autotl"].regret_high) == pytest.approx(
        paired_interval(oracle_best, autotl))


def test_pairing_narrows_the_interval_when_both_miss_the_same_examples() -> None:
    # Same 20 right in both: every resample gives exactly zero difference.
    same = [row("oracle", "full", {"lr": 0.1}, 0, 20), row("autotl", "full", {"lr": 0.1}, 0, 20)]
    assert paired_interval(same[:1], same[1:]) == (0.0, 0.0)
    # Disjoint halves right: the difference is ±1 per example, a wide interval around 0.
    apart = [row("oracle", "full", {"lr": 0.1}, 0, 20), row("x", "full", {}, 0, 20, offset=20)]
    low, high = paired_interval(apart[:1], apart[1:])
    assert low < -0.15 and high > 0.15


def test_rows_without_per_example_correctness_get_no_interval(toy_rows: list[dict]) -> None:
    stripped = [dict(r, test_correct=None) if r["method"] == "full" else r for r in toy_rows]
    table = _by_method(standings(stripped))
    assert table["full"].regret == pytest.approx(15 / 40)
    assert table["full"].regret_low is None and table["full"].regret_high is None
    assert table["autotl"].regret_low is not None


def test_groups_are_task_size_and_protocol(toy_rows: list[dict]) -> None:
    other = [dict(r, n_per_class=20) for r in toy_rows if r["method"] != "full"]
    table = standings(toy_rows + other)
    assert sorted({(s.n_per_class, s.method) for s in table}) == sorted(
        [(5, "oracle"), (5, "autotl"), (5, "full"), (20, "oracle"), (20, "autotl")])
    without_oracle = standings([r for r in toy_rows if r["method"] != "oracle"])
    assert all(s.regret is None and s.compute_fraction is None for s in without_oracle)


def test_draws_are_separate_comparisons_then_averaged(toy_rows: list[dict]) -> None:
    """Each draw of the training rows is compared against its own oracle; over_draws
    averages the per-draw regrets."""
    from autotl.bench.regret import over_draws

    assert over_draws(standings(toy_rows)) == []  # one draw: nothing to average
    # draw 1: the same rows, but autotl now matches the oracle's best config exactly
    second = [dict(r, split_seed=1, protocol=r["protocol"] + " split_seed=1") for r in toy_rows
              if r["method"] != "autotl"]
    second += [dict(r, split_seed=1, protocol=r["protocol"] + " split_seed=1", method="autotl")
               for r in toy_rows if r["method"] == "oracle" and r["strategy"] == "full"]
    table = standings(toy_rows + second)
    regrets = {(s.split_seed, s.method): s.regret for s in table}
    assert math.isclose(regrets[(0, "autotl")], 0.625 - 0.5)
    assert math.isclose(regrets[(1, "autotl")], 0.0)
    by = {d.method: d for d in over_draws(table)}
    assert by["autotl"].draws == 2 and math.isclose(by["autotl"].mean_regret, 0.0625)
    assert by["autotl"].regrets == pytest.approx([0.125, 0.0])
    assert by["autotl"].within_noise >= 1  # draw 1's interval is [0, 0]


def test_mean_regret_over_draws_has_a_joint_bootstrap_interval(toy_rows: list[dict]) -> None:
    """The mean over draws resamples every draw's test examples together: a draw whose
    regret is 0 on every example halves the other's interval, and two draws with the same
    per-example differences on test sets of one length (the data's own test split) keep
    the width of one, since their errors are the same errors."""
    from autotl.bench.regret import over_draws

    oracle_best = [r for r in toy_rows if r["method"] == "oracle" and r["strategy"] == "full"]
    autotl = [r for r in toy_rows if r["method"] == "autotl"]
    low, high = paired_interval(oracle_best, autotl)
    matched = [dict(r, split_seed=1, protocol="p1 split_seed=1") for r in toy_rows
               if r["method"] != "autotl"]
    matched += [dict(r, split_seed=1, protocol="p1 split_seed=1", method="autotl") for r in oracle_best]
    by = {d.method: d for d in over_draws(standings(toy_rows + matched))}
    assert (by["autotl"].mean_low, by["autotl"].mean_high) == pytest.approx((low / 2, high / 2))
    assert by["oracle"].mean_low == by["oracle"].mean_high == 0.0

    repeated = [dict(r, split_seed=1, protocol="p1 split_seed=1") for r in toy_rows]
    by = {d.method: d for d in over_draws(standings(toy_rows + repeated))}
    assert by["autotl"].mean_regret == pytest.approx(0.125)
    assert (by["autotl"].mean_low, by["autotl"].mean_high) == pytest.approx((low, high))

    assert by["autotl"].seed_low < low and by["autotl"].seed_high > high  # seeds add noise

    stripped = [dict(r, test_correct=None) if r["method"] == "autotl" else r for r in repeated]
    by = {d.method: d for d in over_draws(standings(toy_rows + stripped))}
    assert by["autotl"].mean_low is None  # a draw without per-example outcomes: no interval


def test_the_interval_with_seed_noise_adds_the_best_config_s_seed_spread_for_each_side(
        toy_rows: list[dict]) -> None:
    """Where the method is the oracle's best config itself, every test example's difference
    is 0 and only the seeds are left: each draw's regret moves by a normal draw of sd
    seed_sd × √(1/2 + 1/2) (two runs a side), and the mean of two draws by that over √2.
    The seed noise is the best config's (A: 30/40 and 20/40 right), not the other configs'."""
    from autotl.bench.regret import over_draws

    best = [r for r in toy_rows if r["method"] == "oracle" and r["strategy"] == "full"]
    rows = []
    for draw in (0, 1):
        tag = {"split_seed": draw, "protocol": f"p split_seed={draw}"}
        rows += [dict(r, **tag) for r in toy_rows if r["method"] == "oracle"]
        rows += [dict(r, **tag, method="autotl") for r in best]
    by = {d.method: d for d in over_draws(standings(rows))}
    assert (by["autotl"].mean_low, by["autotl"].mean_high) == (0.0, 0.0)
    assert by["autotl"].seed_sd == pytest.approx(math.sqrt(1 / 32))
    half = 1.96 * math.sqrt(1 / 32) / math.sqrt(2)
    assert by["autotl"].seed_low == pytest.approx(-half, rel=0.1)
    assert by["autotl"].seed_high == pytest.approx(half, rel=0.1)
    assert (by["oracle"].seed_low, by["oracle"].seed_high) == (0.0, 0.0)

    one_seed = [r for r in rows if r["seed"] == 0]  # the oracle ran one seed: no seed noise
    by = {d.method: d for d in over_draws(standings(one_seed))}
    assert by["autotl"].mean_low is not None
    assert by["autotl"].seed_sd is None and by["autotl"].seed_low is None
    assert by["oracle"].seed_low is None


def test_mean_interval_resamples_test_sets_of_different_lengths_apart(
        toy_rows: list[dict]) -> None:
    from autotl.bench.regret import mean_interval

    oracle_best = [r for r in toy_rows if r["method"] == "oracle" and r["strategy"] == "full"]
    autotl = [r for r in toy_rows if r["method"] == "autotl"]
    one = paired_interval(oracle_best, autotl)
    # The same differences twice over, once on a test set twice as long: independent
    # resamples average out, so the mean's interval is narrower than one draw's.
    doubled = [dict(r, test_correct=r["test_correct"] * 2) for r in oracle_best + autotl]
    low, high = mean_interval([(oracle_best, autotl), (doubled[:2], doubled[2:])])
    assert one[0] < low < 0.125 < high < one[1]


def test_draws_of_another_protocol_are_not_averaged_in(toy_rows: list[dict]) -> None:
    """A simulated suite and a real small-data suite share task names; their draws must not
    be pooled: the over-draws mean is per protocol less its split seed."""
    from autotl.bench.regret import over_draws

    real = [dict(r, split_seed=s, protocol=f"real: p split_seed={s}") for s in (0, 1)
            for r in toy_rows]
    simulated = [dict(r, split_seed=0, protocol="p split_seed=0", test_correct=None,
                      test_accuracy=0.625) if r["method"] == "autotl" else
                 dict(r, split_seed=0, protocol="p split_seed=0") for r in toy_rows]
    by = {(d.protocol, d.method): d for d in over_draws(standings(real + simulated))}
    assert by[("real: p", "autotl")].draws == 2
    assert by[("real: p", "autotl")].mean_regret == pytest.approx(0.125)
    assert by[("p", "autotl")].draws == 1
    assert by[("p", "autotl")].mean_regret == pytest.approx(0.0)
