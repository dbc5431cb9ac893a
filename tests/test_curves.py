"""Learning-curve fits and their bootstrap: exact power laws in the error, hand-computed
crossings, widths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autotl.curves import CurvePoint, Projection, fit_line, parse_targets, project
from autotl.errors import ConfigError


def _line(a: float, b: float, sizes: list[float], se: float) -> list[CurvePoint]:
    """Points on the error power law 1 − acc = exp(a + b ln n)."""
    return [CurvePoint.from_mean(n, 1 - math.exp(a + b * math.log(n)), se) for n in sizes]


# full: error n^-0.5 (accuracy 0.55 at 5, 0.68 at 10); subset: error e^-1 n^-0.2 (0.73, 0.77)
FULL, SUBSET = (0.0, -0.5), (-1.0, -0.2)


def test_the_fit_recovers_a_and_b_from_exact_points() -> None:
    sizes = [5, 10, 20, 50]
    means = [1 - math.exp(-0.2 - 0.4 * math.log(n)) for n in sizes]
    a, b = fit_line(sizes, means, [0.01, 0.02, 0.03, 0.05])
    assert (a, b) == (pytest.approx(-0.2), pytest.approx(-0.4))
    projection = project({"full": _line(-0.2, -0.4, sizes, 0.01)}, draws=200)
    fit = projection.fits[0]
    assert (fit.a, fit.b) == (pytest.approx(-0.2), pytest.approx(-0.4))
    assert fit.a_interval[0] < -0.2 < fit.a_interval[1]
    assert fit.at(200) == pytest.approx(1 - math.exp(-0.2 - 0.4 * math.log(200)))


def test_the_fit_weighs_points_by_their_standard_error() -> None:
    # The third point is off the line; with a huge se it barely moves the fit.
    sizes, means = [5, 10, 20], [0.3, 0.4, 0.9]
    loose = fit_line(sizes, means, [0.01, 0.01, 10.0])
    tight = fit_line(sizes, means, [0.01, 0.01, 0.01])
    assert loose[1] == pytest.approx(math.log(0.6 / 0.7) / math.log(2), rel=1e-3)
    assert tight[1] < loose[1] - 0.1  # the error falls faster through the third point


def test_the_crossing_of_two_curves_matches_the_hand_computed_size() -> None:
    # Equal errors where 0 − 0.5 ln n = −1 − 0.2 ln n, i.e. ln n = 1 / 0.3.
    points = {"full": _line(*FULL, [5, 10], 1e-4), "subset": _line(*SUBSET, [5, 10], 1e-4)}
    projection = project(points, draws=500)
    crossing = next(c for c in projection.crossings if c.overtaker == "full")
    by_hand = math.exp(1 / 0.3)  # 28.0 per class
    assert crossing.leader == "subset" and projection.leader == "subset"
    assert crossing.median == pytest.approx(by_hand, rel=0.02)
    assert crossing.interval[0] <= by_hand <= crossing.interval[1]
    assert crossing.share > 0.99
    sentence = projection.sentences()[0]
    assert sentence.startswith("At about 28 per class (80% interval")
    assert "full is expected to overtake subset" in sentence
    # Beyond the crossing, full is projected to win; before it, subset.
    early, late = project(points, targets=[12, 100], draws=500).targets
    assert early.winner() == "subset" and late.winner() == "full"
    assert late.win_probability["full"] > 0.99


def test_the_interval_widens_when_the_standard_error_grows() -> None:
    def widths(se: float) -> tuple[float, float]:
        projection = project({"full": _line(*FULL, [5, 10], se),
                              "subset": _line(*SUBSET, [5, 10], se)}, draws=2000, seed=1)
        crossing = next(c for c in projection.crossings if c.overtaker == "full")
        lo, hi = projection.targets[-1].interval["full"]
        return crossing.interval[1] - crossing.interval[0], hi - lo

    narrow, wide = widths(0.005), widths(0.04)
    assert wide[0] > 2 * narrow[0] and wide[1] > 2 * narrow[1]


def test_per_seed_accuracies_spread_the_draws_and_the_seed_fixes_them() -> None:
    points = {"full": [(5, [0.40, 0.50, 0.45]), (10, [0.55, 0.65, 0.60])],
              "head-only": [(5, [0.50, 0.52, 0.51]), (10, [0.54, 0.56, 0.55])]}
    first, again = project(points, seed=3), project(points, seed=3)
    assert first.to_dict() == again.to_dict()
    assert project(points, seed=4).to_dict() != first.to_dict()
    # The same points scored on few validation rows are noisier.
    noisy = project({s: [CurvePoint(n, tuple(acc), n_eval=20) for n, acc in items]
                     for s, items in points.items()}, seed=3)

    def width(projection: Projection) -> float:
        lo, hi = projection.targets[0].interval["full"]
        return hi - lo

    assert width(noisy) > width(first)


def test_a_strategy_that_dominates_everywhere_is_not_overtaken() -> None:
    points = {"lora": _line(-1.0, -0.3, [5, 10, 20], 0.01),
              "head-only": _line(-0.5, -0.1, [5, 10, 20], 0.01)}
    projection = project(points)
    crossing = projection.crossings[0]
    assert (crossing.overtaker, crossing.leader) == ("head-only", "lora")
    assert crossing.share == 0.0 and crossing.median is None
    assert all(t.win_probability["lora"] == 1.0 for t in projection.targets)
    assert any("No strategy is expected to overtake lora within 2,000 per class" in s
               for s in projection.sentences())
    assert not any("expected to overtake lora" in s and s.startswith("At about")
                   for s in projection.sentences())


def test_overlapping_curves_are_said_to_be_undecided() -> None:
    points = {"full": _line(-0.7, -0.2, [5, 10], 0.05),
              "subset": _line(-0.7, -0.2, [5, 10], 0.05)}
    sentences = project(points).sentences()
    assert any("the curves overlap" in s and "cannot say" in s for s in sentences)


def test_a_strategy_at_one_size_is_left_out_with_the_reason() -> None:
    points = {"full": _line(*FULL, [5, 10], 0.01), "lora": [CurvePoint.from_mean(5, .5, .01)]}
    projection = project(points)
    assert [f.strategy for f in projection.fits] == ["full"]
    assert "measured at one size only (5 per class)" in projection.left_out["lora"]
    assert any(s.startswith("lora has no curve") for s in projection.sentences())
    with pytest.raises(ConfigError, match="no strategy was measured at two or more sizes"):
        project({"lora": [(5, [0.5, 0.6])]})


def test_bad_points_are_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="one accuracy .* and no n_eval"):
        project({"full": [(5, [0.5]), (10, [0.6])]})
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\], but got \[50.0, 60.0\]"):
        project({"full": [(5, [50, 60]), (10, [0.6, 0.7])]})
    with pytest.raises(ConfigError, match="sizes must be positive"):
        project({"full": [(0, [0.5, 0.6]), (10, [0.6, 0.7])]})
    with pytest.raises(ConfigError, match="horizon must exceed"):
        project({"full": [(5, [0.5, 0.6]), (10, [0.6, 0.7])]}, horizon=8)


def test_projected_accuracy_approaches_one_but_never_passes_it() -> None:
    # A line in accuracy through these points would pass 1 at about 40 per class.
    points = [CurvePoint.from_mean(5, 0.80, 0.001), CurvePoint.from_mean(10, 0.90, 0.001)]
    projection = project({"full": points}, targets=[40, 1000])
    by_hand = [1 - 0.2 * (n / 5) ** math.log2(0.5) for n in (40, 1000)]  # error halves per ×2
    assert [t.median["full"] for t in projection.targets] == pytest.approx(by_hand, rel=1e-3)
    assert all(t.median["full"] < 1.0 for t in projection.targets)
    assert np.isclose(projection.fits[0].at(1000), by_hand[1])


def test_parse_targets() -> None:
    assert parse_targets("100, 20") == [20, 100]
    with pytest.raises(ConfigError, match="whole numbers .* but got 'lots'"):
        parse_targets("20,lots")
    with pytest.raises(ConfigError, match="at least 1 example per class, but got 0"):
        parse_targets("0")
