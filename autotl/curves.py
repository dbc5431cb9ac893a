"""Learning curves: what more data would change, projected from scores at a few sizes.

Each strategy's error rate is fitted as a power law in ``n`` (examples per class),
``1 − acc(n) = exp(a + b·ln n)`` — a straight line in log error against log size — by least
squares weighted by each point's standard error (carried to the log scale). Learning curves of
this kind are close to power laws in the error over wide ranges (Hestness et al., "Deep Learning
Scaling is Predictable, Empirically", 2017), and the form cannot run past accuracy 1, where a
line in accuracy would (and would then tie every fast learner at 1). It has two parameters
because a size map has two to five sizes: a power law to an asymptote (three or more
parameters) is not identifiable from so few points, and with exactly two sizes only the line
through them is. Without an asymptote a strategy with the steeper slope always overtakes in the
end; that is why crossings are only looked for within a horizon, and why the far end of any
projection is uncertain.

Uncertainty comes from a seeded parametric bootstrap: in every draw each point is re-drawn (its
per-seed accuracies resampled with replacement, plus the binomial noise of a finite validation
set when its size is known; or from N(mean, se) when only those are given) and every curve is
refitted. Crossing sizes, projected accuracies and win probabilities are read off the draws.

The inputs are validation (or fold) accuracies: the scores the search itself sees. Test
accuracy is held out and never enters a projection. Pure numpy, deterministic given a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotl.errors import ConfigError

DRAWS = 2000
INTERVAL = 0.8  # the central share of draws an interval holds
TARGET_FACTORS = (2, 4, 10)  # default targets, times the largest measured size
HORIZON_FACTOR = 100  # crossings are looked for up to this many times the largest size …
HORIZON_CAP = 100_000  # … but never beyond this many per class
MIN_SE = 0.005  # a floor, so an exactly repeated score does not get infinite weight
MIN_ERROR = 1e-3  # the smallest error a point may claim: a perfect score has no finite log
LIKELY = 0.5  # share of draws from which an overtaking is called expected
POSSIBLE = 0.2  # … and from which it is worth a sentence at all
SEPARATED = 0.8  # share of draws the leader must lead in for the ranking to count as known


@dataclass(frozen=True)
class CurvePoint:
    """One strategy's scores at one size: per-seed accuracies (``n_eval``: examples each was
    scored on, for the binomial noise of the validation set), or a mean with its standard
    error (:meth:`from_mean`)."""

    n: float
    accuracies: tuple[float, ...] = ()
    n_eval: int | None = None
    given_mean: float | None = None
    given_se: float | None = None

    @classmethod
    def from_mean(cls, n: float, mean: float, se: float) -> CurvePoint:
        return cls(n=n, given_mean=mean, given_se=se)

    @property
    def mean(self) -> float:
        return self.given_mean if self.given_mean is not None else float(
            np.mean(self.accuracies))

    @property
    def se(self) -> float:
        if self.given_se is not None:
            return max(self.given_se, MIN_SE)
        k = len(self.accuracies)
        var = float(np.var(self.accuracies, ddof=1)) / k if k > 1 else 0.0
        if self.n_eval:
            p = min(max(self.mean, 0.5 / self.n_eval), 1 - 0.5 / self.n_eval)
            var += p * (1 - p) / self.n_eval  # the same rows score every seed: not averaged
        return max(math.sqrt(var), MIN_SE)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` bootstrap values of this point's mean."""
        if self.given_mean is not None:
            return rng.normal(self.given_mean, self.se, size)
        acc = np.asarray(self.accuracies, dtype=float)
        values = acc[rng.integers(0, len(acc), (size, len(acc)))].mean(axis=1)
        if self.n_eval:
            p = np.clip(values, 0.5 / self.n_eval, 1 - 0.5 / self.n_eval)
            values = values + rng.normal(0.0, 1.0, size) * np.sqrt(p * (1 - p) / self.n_eval)
        return values


Points = Mapping[str, Iterable["CurvePoint | tuple[float, Sequence[float]]"]]


@dataclass
class Fit:
    """One strategy's curve: the fit to the means, and its bootstrap intervals."""

    strategy: str
    a: float
    b: float
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    sizes: list[float]
    means: list[float]
    ses: list[float]

    def at(self, n: float) -> float:
        return float(_accuracy(self.a + self.b * math.log(n)))

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "form": FORM,
                "a": self.a, "b": self.b, "a_interval": list(self.a_interval),
                "b_interval": list(self.b_interval), "sizes": self.sizes,
                "means": self.means, "ses": self.ses}


@dataclass
class Crossing:
    """Whether ``overtaker`` (behind at the largest measured size) passes ``leader`` within
    the horizon, over the draws; the size is the median over the draws in which it does."""

    overtaker: str
    leader: str
    share: float
    median: float | None
    interval: tuple[float, float] | None
    horizon: float

    def to_dict(self) -> dict[str, Any]:
        return {"overtaker": self.overtaker, "leader": self.leader, "share": self.share,
                "median": self.median,
                "interval": list(self.interval) if self.interval else None,
                "horizon": self.horizon}


@dataclass
class Target:
    """Projected accuracies at one size, and each strategy's chance of being the best."""

    n: float
    median: dict[str, float]
    interval: dict[str, tuple[float, float]]
    win_probability: dict[str, float]

    def winner(self) -> str:
        return max(self.win_probability, key=lambda s: self.win_probability[s])

    def to_dict(self) -> dict[str, Any]:
        return {"n_per_class": self.n, "median": self.median,
                "interval": {k: list(v) for k, v in self.interval.items()},
                "win_probability": self.win_probability, "projected_winner": self.winner()}


@dataclass
class Projection:
    fits: list[Fit]
    crossings: list[Crossing]
    targets: list[Target]
    largest: float
    horizon: float
    draws: int
    seed: int
    leader: str
    leader_share: float  # of draws in which the leader leads at the largest measured size
    left_out: dict[str, str] = field(default_factory=dict)

    def sentences(self) -> list[str]:
        """What more data would change, in words."""
        out: list[str] = []
        largest, horizon = _size(self.largest), _size(self.horizon)
        if self.leader_share < SEPARATED:
            out.append(
                f"At the largest size measured ({largest} per class) the curves overlap: "
                f"{self.leader} leads in only {self.leader_share:.0%} of bootstrap draws, so "
                "the data cannot say which strategy is ahead, let alone where that changes.")
        likely = sorted((c for c in self.crossings if c.share >= POSSIBLE),
                        key=lambda c: (-c.share, c.median or math.inf))
        for c in likely:
            assert c.median is not None and c.interval is not None
            missing = 1 - c.share
            how = "is expected to" if c.share >= LIKELY else "may"
            out.append(
                f"At about {_size(c.median)} per class (80% interval "
                f"{_size(c.interval[0])}–{_size(c.interval[1])}), {c.overtaker} {how} "
                f"overtake {c.leader}; in {missing:.0%} of bootstrap draws it does not within "
                f"{horizon} per class.")
        chasers = {c.overtaker for c in likely if c.leader == self.leader}
        if not chasers and self.leader_share >= SEPARATED:
            out.append(
                f"No strategy is expected to overtake {self.leader} within {horizon} per class"
                f" (each does so in under {POSSIBLE:.0%} of bootstrap draws).")
        if self.targets:
            far = self.targets[-1]
            sure = far.win_probability[far.winner()]
            if sure < LIKELY:
                out.append(
                    f"At {_size(far.n)} per class no strategy wins in most draws (the most "
                    f"likely, {far.winner()}, in {sure:.0%}): the projection cannot say.")
        for strategy, why in self.left_out.items():
            out.append(f"{strategy} has no curve: {why}.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": "validation accuracy of each strategy's pick at each size (fresh seeds); "
                     "test accuracy is held out and not used",
            "form": FORM,
            "draws": self.draws, "seed": self.seed, "interval": INTERVAL,
            "largest_measured": self.largest, "horizon": self.horizon,
            "leader": self.leader, "leader_share": self.leader_share,
            "fits": [f.to_dict() for f in self.fits],
            "crossings": [c.to_dict() for c in self.crossings],
            "targets": [t.to_dict() for t in self.targets],
            "left_out": self.left_out, "sentences": self.sentences(),
        }


def _size(n: float) -> str:
    """Two significant figures: a projection is no more precise than that."""
    if n >= 10:
        digits = math.floor(math.log10(n)) - 1
        return f"{round(n, -digits):,.0f}"
    return f"{n:.2g}"


def as_points(points: Points) -> dict[str, list[CurvePoint]]:
    """Plain input (strategy → [(n, per-seed accuracies), …]) as curve points."""
    out: dict[str, list[CurvePoint]] = {}
    for strategy, items in points.items():
        out[strategy] = []
        for item in items:
            if isinstance(item, CurvePoint):
                point = item
            else:
                n, accuracies = item
                point = CurvePoint(n=float(n), accuracies=tuple(float(a) for a in accuracies))
            _check_point(strategy, point)
            out[strategy].append(point)
    return out


def _check_point(strategy: str, point: CurvePoint) -> None:
    where = f"strategy {strategy!r} at n={point.n}"
    if not point.n > 0:
        raise ConfigError(f"{where}: sizes must be positive examples per class.")
    if point.given_mean is None:
        if not point.accuracies:
            raise ConfigError(f"{where} has no accuracies; give per-seed accuracies or use "
                              "CurvePoint.from_mean(n, mean, se).")
        if len(point.accuracies) < 2 and not point.n_eval:
            raise ConfigError(
                f"{where} has one accuracy ({point.accuracies[0]}) and no n_eval, so its "
                "uncertainty is unknown; give accuracies from 2+ seeds, the number of "
                "validation examples it was scored on (n_eval), or a mean with its se.")
    values = point.accuracies if point.given_mean is None else (point.given_mean,)
    bad = [v for v in values if not 0.0 <= v <= 1.0]
    if bad:
        raise ConfigError(f"{where}: accuracies must be in [0, 1], but got {bad}.")
    if point.given_se is not None and point.given_se < 0:
        raise ConfigError(f"{where}: se must be >= 0, but got {point.given_se}.")


FORM = "1 - acc(n) = exp(a + b*ln(n)), weighted least squares in log error"


def _error(acc: Any) -> np.ndarray:
    """1 − accuracy, floored at MIN_ERROR (and at most 1)."""
    return np.clip(1.0 - np.asarray(acc, float), MIN_ERROR, 1.0)


def _log_error(acc: Any) -> np.ndarray:
    return np.log(_error(acc))


def _log_error_se(acc: Any, se: Any) -> np.ndarray:
    """A standard error of accuracy carried to ln(error) (first order: se / error)."""
    return np.asarray(se, float) / _error(acc)


def _accuracy(log_error: Any) -> np.ndarray:
    return np.clip(1.0 - np.exp(np.minimum(log_error, 0.0)), 0.0, 1.0)


def fit_line(sizes: Sequence[float], means: Sequence[float],
             ses: Sequence[float]) -> tuple[float, float]:
    """Weighted least squares of ln(1 − mean accuracy) on ln(size): ``(a, b)``."""
    coef = _solver(sizes, means, ses) @ _log_error(means)
    return float(coef[0]), float(coef[1])


def _solver(sizes: Sequence[float], means: Any, ses: Any) -> np.ndarray:
    """The 2×P matrix that maps log errors at ``sizes`` to (a, b). The weights come from the
    measured points' standard errors and stay fixed, so every bootstrap draw is one matrix
    product."""
    x = np.log(np.asarray(sizes, float))
    w = 1.0 / np.square(_log_error_se(means, ses))
    design = np.column_stack([np.ones_like(x), x])
    return np.linalg.solve(design.T @ (design * w[:, None]), (design * w[:, None]).T)


def project(points: Points, *, targets: Sequence[float] | None = None,
            horizon: float | None = None, draws: int = DRAWS, seed: int = 0) -> Projection:
    """Fit every strategy's curve and project it (see the module docstring).

    ``points``: strategy → iterable of :class:`CurvePoint` or ``(n, per-seed accuracies)``;
    a strategy needs two distinct sizes, else it is left out with the reason. ``targets``:
    sizes per class to project to (default 2×, 4×, 10× the largest measured); ``horizon``:
    how far to look for crossings (default 100× the largest, at most 100,000)."""
    if draws < 10:
        raise ConfigError(f"draws must be at least 10, but got draws={draws}.")
    checked = as_points(points)
    usable: dict[str, list[CurvePoint]] = {}
    left_out: dict[str, str] = {}
    for strategy, items in checked.items():
        if len({p.n for p in items}) < 2:
            sizes = ", ".join(_size(p.n) for p in items) or "none"
            left_out[strategy] = f"measured at one size only ({sizes} per class); a curve " \
                "needs two"
            continue
        usable[strategy] = sorted(items, key=lambda p: p.n)
    if not usable:
        why = "; ".join(f"{k}: {v}" for k, v in left_out.items()) or "no points given"
        raise ConfigError(f"no strategy was measured at two or more sizes, so no learning "
                          f"curve can be fitted ({why}); measure at least two sizes, e.g. "
                          "--sizes 5,10.")
    largest = max(p.n for items in usable.values() for p in items)
    if horizon is None:
        horizon = max(min(HORIZON_FACTOR * largest, HORIZON_CAP), 2 * largest)
    horizon = float(horizon)
    if horizon <= largest:
        raise ConfigError(f"the horizon must exceed the largest measured size ({largest:g} per "
                          f"class), but got horizon={horizon:g}.")
    target_sizes = sorted({float(t) for t in targets}) if targets is not None else \
        [f * largest for f in TARGET_FACTORS]
    if any(t <= 0 for t in target_sizes):
        raise ConfigError(f"target sizes must be positive, but got {list(targets or [])}.")

    rng = np.random.default_rng(seed)
    names = list(usable)
    fits, a_draws, b_draws = [], [], []
    for strategy in names:
        items = usable[strategy]
        ses = np.array([p.se for p in items])
        means = np.array([p.mean for p in items])
        solver = _solver([p.n for p in items], means, ses)
        a, b = solver @ _log_error(means)
        sampled = np.stack([p.draw(rng, draws) for p in items])  # P × draws
        coef = solver @ _log_error(sampled)
        a_draws.append(coef[0])
        b_draws.append(coef[1])
        fits.append(Fit(strategy=strategy, a=float(a), b=float(b),
                        a_interval=_interval(coef[0]), b_interval=_interval(coef[1]),
                        sizes=[p.n for p in items], means=means.tolist(), ses=ses.tolist()))
    A, B = np.stack(a_draws), np.stack(b_draws)  # strategies × draws

    def accuracy(n: float) -> np.ndarray:
        return _accuracy(A + B * math.log(n))

    now = accuracy(largest)
    point_now = {f.strategy: f.at(largest) for f in fits}
    leader = max(names, key=lambda s: point_now[s])
    leader_share = float(_win_shares(now)[names.index(leader)])

    # Every pair once, the one behind at the largest size (by the fit) as the overtaker.
    crossings = []
    for first in range(len(names)):
        for second in range(first + 1, len(names)):
            behind, ahead = (second, first) if point_now[names[first]] > \
                point_now[names[second]] else (first, second)
            crossings.append(_crossing(names, A, B, behind, ahead, largest, horizon))
    targets_out = []
    for n in target_sizes:
        acc = accuracy(n)
        share = _win_shares(acc)
        targets_out.append(Target(
            n=n, median={s: float(np.median(acc[k])) for k, s in enumerate(names)},
            interval={s: _interval(acc[k]) for k, s in enumerate(names)},
            win_probability={s: float(share[k]) for k, s in enumerate(names)}))
    return Projection(fits=fits, crossings=crossings, targets=targets_out, largest=largest,
                      horizon=horizon, draws=draws, seed=seed, leader=leader,
                      leader_share=leader_share, left_out=left_out)


def _crossing(names: list[str], A: np.ndarray, B: np.ndarray, i: int, j: int, largest: float,
              horizon: float) -> Crossing:
    """Draws in which ``i``, behind ``j`` at the largest size (a higher log error), passes it
    before the horizon, above accuracy 0 (two curves floored at 0 tie rather than cross)."""
    da, db = A[i] - A[j], B[i] - B[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_n = np.where(db < 0, -da / db, np.inf)
    behind_now = da + db * math.log(largest) > 0
    log_n = np.minimum(log_n, 700.0)  # exp() stays finite; far past any horizon anyway
    n = np.exp(log_n)
    level = A[i] + B[i] * log_n
    inside = level < 0.0
    crossed = behind_now & (db < 0) & (n <= horizon) & inside
    share = float(crossed.mean())
    if crossed.any():
        sizes = n[crossed]
        return Crossing(overtaker=names[i], leader=names[j], share=share,
                        median=float(np.median(sizes)), interval=_interval(sizes),
                        horizon=horizon)
    return Crossing(overtaker=names[i], leader=names[j], share=share, median=None,
                    interval=None, horizon=horizon)


def _interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])
    return float(lo), float(hi)


def _win_shares(acc: np.ndarray) -> np.ndarray:
    """Per strategy, the share of draws it is best in; a tie shares the draw."""
    best = acc.max(axis=0)
    winners = np.isclose(acc, best[None, :], rtol=0.0, atol=1e-12)
    return (winners / winners.sum(axis=0)).mean(axis=1)


def parse_targets(text: str | Iterable[Any]) -> list[int]:
    """``"20,100"`` → ``[20, 100]``: sizes per class to project to, positive whole numbers."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        raw = str(item).strip()
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"project_to must be whole numbers of examples per class, e.g. "
                              f"--project-to 20,100, but got {item!r}.") from None
        if value < 1:
            raise ConfigError(f"project_to sizes must be at least 1 example per class, but got "
                              f"{value}.")
        out.append(value)
    if not out:
        raise ConfigError("project_to is empty; give sizes per class, e.g. --project-to 20,100.")
    return sorted(set(out))
