"""The one rule by which autotl chooses among measured configs, wherever it chooses.

A study's recommendation, the model saved in ``best_model/``, each strategy's representative
config, a size map's winner at each size and its notes all come from :func:`choose`:

1. Each candidate's score is its measured accuracy, weighed by its precision; when the prior
   gives an expectation for it (a mean and a spread), the two are combined by their
   precisions (inverse variances), so a score measured on 5 validation rows moves the
   expectation less than one measured on 1,000.
2. The candidate with the highest combined score leads. Every other candidate whose gap to the
   leader is within one standard error of that gap (plus ``tolerance``, the accuracy a
   cheaper config may knowingly give up) is *tied* with it: the measurement cannot separate
   them. The gap's standard error comes from the paired per-example outcomes when both
   candidates were scored on the same rows (they are correlated, so pairing is much more
   precise), else from each accuracy's own standard error.
3. Among the tied, the cheapest wins: fewest training operations (floating-point operations
   counted by torch as the trial trained, the frozen part's cached forward pass over the
   training rows included),
   then fewest trainable parameters, then the best estimate. Operations within
   :data:`FLOPS_RESOLUTION` of the fewest count as the same (text batches differ in padded
   length from trial to trial). Operations are the same on any machine under any load, so
   the same trials make the same choice anywhere. Where a tied candidate has no count (a
   trial stored before autotl counted), training seconds stand in, and seconds within
   :data:`TIME_RESOLUTION` of the fastest count as the same: the machine's load moves one
   config's seconds by that much. This is the one-standard-error rule of Breiman et al.
   (CART, 1984) and Hastie, Tibshirani & Friedman (ESL §7.10): prefer the simplest model
   whose error is within one standard error of the best.

:class:`Choice` says in words what happened: a clear lead, or a tie and how it was broken.
:func:`bootstrap` says how sure a choice is: how often the rule makes it again when the scored
rows are resampled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Standard errors of the gap within which two candidates count as tied.
Z = 1.0
#: Training seconds within this fraction of the fastest tied candidate's count as equally
#: cheap. The same config's seconds moved by 10% between runs on a shared 2-core CPU; two
#: LoRA configs, or subset and LoRA, differed by 1-2% and that used to decide their ties.
TIME_RESOLUTION = 0.10
#: Training operations within this fraction of the fewest tied candidate's count as equally
#: cheap: the same config trained with another seed draws other batches, whose text rows pad
#: to other lengths (a few percent); a different freeze depth or strategy differs by more.
FLOPS_RESOLUTION = 0.05


@dataclass
class Scored:
    """A candidate as the rule sees it.

    ``correct`` holds its per-example outcomes ('1' right, '0' wrong) in a fixed row order,
    concatenated over seeds or folds where there are several; candidates scored on the same
    rows in the same order are compared pairwise. ``n`` is the number of outcomes behind
    ``accuracy``, or the number of distinct rows when ``correct`` holds several blocks of
    ``n`` outcomes over the same rows (repeated folds): then a row's outcomes are averaged
    over the blocks before pairing, since one row scored twice is not two independent rows.
    ``se``, when given, replaces the binomial standard error. ``prior_mean``/``prior_sd``
    are the prior's expectation for the candidate; candidates with the same ``prior_key``
    (the same strategy) share it, so it says nothing about their difference.
    """

    key: Any
    label: str
    accuracy: float
    n: int
    seconds: float = math.inf
    trainable_params: int = 0
    flops: float | None = None
    correct: str | None = None
    se: float | None = None
    prior_mean: float | None = None
    prior_sd: float | None = None
    prior_key: Any = None

    @property
    def measured_se(self) -> float:
        if self.se is not None:
            return self.se
        return binomial_se(self.accuracy, self.n)

    @property
    def estimate(self) -> float:
        """Measured accuracy, combined with the prior's expectation by precision."""
        return _combine(self.accuracy, self.measured_se, self.prior_mean, self.prior_sd)[0]

    @property
    def counted(self) -> bool:
        """Whether the training's operations were counted."""
        return self.flops is not None and self.flops > 0


@dataclass
class Choice:
    """What :func:`choose` decided and why."""

    chosen: Scored
    leader: Scored
    tied: list[Scored]
    gaps: dict[Any, tuple[float, float]] = field(default_factory=dict)  # key → (gap, se)
    tolerance: float = 0.0
    what: str = "config"
    z: float = Z

    @property
    def is_tie(self) -> bool:
        return len(self.tied) > 1

    def describe(self) -> str:
        """The decision in words, for reports."""
        lead = self.leader
        if not self.is_tie:
            others = [(k, g) for k, g in self.gaps.items() if k != lead.key]
            if not others:
                return f"{lead.label} is the only {self.what} measured."
            key, (gap, se) = min(others, key=lambda item: item[1][0])
            return (f"{lead.label} leads every other {self.what} by more than the noise "
                    f"(closest gap {gap:.3f}, one standard error {se:.3f}).")
        names = ", ".join(f"{s.label} {s.estimate:.3f}" for s in self.tied)
        band = ("one standard error" if self.z == 1 else f"{self.z:g} standard errors") + (
            f" plus the tolerance {self.tolerance:.3f}" if self.tolerance else "")
        text = (f"Tie: the measurement cannot separate {len(self.tied)} {self.what}s within "
                f"{band} of the best ({names}).")
        if self.chosen.key == lead.key:
            return text + f" The best-scoring, {lead.label}, is also the cheapest of them."
        c = self.chosen
        cost, resolution, what, show = _measure(self.tied)
        mine, theirs = cost(c), cost(lead)
        compared = math.isfinite(mine) and math.isfinite(theirs)
        if compared and not _same(theirs, mine, resolution):
            words = f"{show(mine)} to train against {show(theirs)}"
        else:
            words = (f"{c.trainable_params:,} trainable parameters against "
                     f"{lead.trainable_params:,}")
            if compared:
                words += (f" ({what} within {resolution:.0%} count as the same: "
                          f"{show(mine)} against {show(theirs)})")
        return text + f" The tie goes to the cheapest, {c.label}: {words}."

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen.key, "leader": self.leader.key,
                "tied": [s.key for s in self.tied], "tie": self.is_tie,
                "tolerance": self.tolerance, "z": self.z, "words": self.describe()}


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy over ``n`` rows, with the Agresti–Coull shrinkage that
    keeps it above zero at 0 % and 100 % (5 rows all right are not certainty)."""
    if n <= 0:
        return math.inf
    p = (accuracy * n + 2) / (n + 4)
    return math.sqrt(p * (1 - p) / (n + 4))


def gap_se(a: Scored, b: Scored) -> float:
    """Standard error of ``a.accuracy − b.accuracy``: paired over common rows when both
    carry outcomes on the same rows, else from the two accuracies' own errors."""
    if a.correct is not None and b.correct is not None and len(a.correct) == len(b.correct) \
            and a.se is None and b.se is None:
        diffs = [int(x) - int(y) for x, y in zip(a.correct, b.correct, strict=True)]
        blocks = len(diffs) // a.n if a.n == b.n and a.n > 0 and len(diffs) % a.n == 0 else 1
        if blocks > 1:  # repeats over the same rows: one averaged difference per row
            diffs = [sum(diffs[i::a.n]) / blocks for i in range(a.n)]
        n = len(diffs)
        if n < 2:
            return math.inf
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
        # Identical outcomes give var 0; one row's difference among n must not be certainty.
        return math.sqrt(max(var, 1.0 / n) / n) if var > 0 or mean != 0 else 0.0
    return math.hypot(a.measured_se, b.measured_se)


def choose(candidates: Sequence[Scored], *, tolerance: float = 0.0,
           what: str = "config", z: float = Z) -> Choice | None:
    """Apply the rule (module docstring) to ``candidates``; None when there are none. ``z``
    widens or narrows the tie band (standard errors of the gap); autotl always uses
    :data:`Z`, other values are for what-if replays of stored searches."""
    if not candidates:
        return None
    leader = max(candidates, key=lambda s: (s.estimate, -_seconds(s), -s.trainable_params))
    tied, gaps = [], {}
    for s in candidates:
        gap, se = _gap(leader, s)
        gaps[s.key] = (gap, se)
        if s.key == leader.key or gap <= z * se + tolerance + 1e-12:
            tied.append(s)
    tied.sort(key=lambda s: -s.estimate)
    cost, resolution, _, _ = _measure(tied)
    least = min(cost(s) for s in tied)
    cheapest = [s for s in tied if _same(cost(s), least, resolution)]
    chosen = min(cheapest, key=lambda s: (s.trainable_params, -s.estimate))
    return Choice(chosen=chosen, leader=leader, tied=tied, gaps=gaps, tolerance=tolerance,
                  what=what, z=z)


def bootstrap(candidates: Sequence[Scored], *, resamples: int = 500, seed: int = 0,
              tolerance: float = 0.0, by: Any = None) -> dict[Any, float] | None:
    """How often the rule chooses each candidate (or each ``by(candidate)``, e.g. its
    strategy) when the rows are resampled with replacement: a seeded bootstrap of the paired
    per-row outcomes (a row's repeats stay together), the prior kept as it is. None when the
    candidates do not carry outcomes over the same rows."""
    import random

    if not candidates or any(c.correct is None for c in candidates):
        return None
    n, length = candidates[0].n, len(candidates[0].correct or "")
    if n < 2 or any(c.n != n or len(c.correct or "") != length for c in candidates) \
            or length % n:
        return None
    blocks = length // n
    by = by or (lambda c: c.key)
    rng = random.Random(seed)
    wins: dict[Any, int] = {by(c): 0 for c in candidates}
    for _ in range(resamples):
        rows = [rng.randrange(n) for _ in range(n)]
        picked = [b * n + r for b in range(blocks) for r in rows]
        drawn = []
        for c in candidates:
            correct = "".join(c.correct[i] for i in picked)  # type: ignore[index]
            drawn.append(Scored(key=c.key, label=c.label, accuracy=correct.count("1") / length,
                                n=n, seconds=c.seconds, flops=c.flops,
                                trainable_params=c.trainable_params,
                                correct=correct, prior_mean=c.prior_mean, prior_sd=c.prior_sd,
                                prior_key=c.prior_key))
        choice = choose(drawn, tolerance=tolerance)
        assert choice is not None
        chosen = next(c for c in candidates if c.key == choice.chosen.key)
        wins[by(chosen)] += 1
    return {k: v / resamples for k, v in wins.items()}


def _measure(tied: Sequence[Scored]) -> tuple[Callable[[Scored], float], float, str,
                                               Callable[[float], str]]:
    """How a tie's cost is measured, with its resolution, its name and how to show a value:
    counted operations only when every tied candidate has a count (a count beside a time
    compares nothing), else training seconds."""
    if all(s.counted for s in tied):
        def operations(s: Scored) -> float:
            return float(s.flops or 0)

        return operations, FLOPS_RESOLUTION, "training operations", _gflop
    return _seconds, TIME_RESOLUTION, "training seconds", lambda v: f"{v:.1f} s"


def _seconds(s: Scored) -> float:
    return s.seconds if math.isfinite(s.seconds) else math.inf


def _same(cost: float, least: float, resolution: float) -> bool:
    """Whether ``cost`` is within ``resolution`` of the ``least`` one."""
    return cost <= least * (1 + resolution) if math.isfinite(least) \
        else not math.isfinite(cost)


def _gflop(flops: float | None) -> str:
    return f"{(flops or 0) / 1e9:,.1f} GFLOP"


def _gap(leader: Scored, other: Scored) -> tuple[float, float]:
    """The leader's lead over ``other`` and its standard error, the prior included."""
    measured_gap = leader.accuracy - other.accuracy
    measured_se = gap_se(leader, other)
    prior_gap = prior_se = None
    same = leader.prior_key is not None and leader.prior_key == other.prior_key
    if not same and None not in (leader.prior_mean, other.prior_mean, leader.prior_sd,
                                 other.prior_sd):
        prior_gap = leader.prior_mean - other.prior_mean  # type: ignore[operator]
        prior_se = math.hypot(leader.prior_sd, other.prior_sd)  # type: ignore[arg-type]
    return _combine(measured_gap, measured_se, prior_gap, prior_se)


def _combine(value: float, se: float, prior: float | None,
             prior_sd: float | None) -> tuple[float, float]:
    """Precision-weighted mean of a measurement and a prior expectation, and its error."""
    if prior is None or prior_sd is None or not prior_sd > 0:
        return value, se
    if se == 0:
        return value, 0.0
    if not math.isfinite(se):
        return prior, prior_sd
    w, w_prior = 1 / se**2, 1 / prior_sd**2
    return (w * value + w_prior * prior) / (w + w_prior), math.sqrt(1 / (w + w_prior))


__all__ = ["Choice", "Scored", "binomial_se", "bootstrap", "choose", "gap_se"]
