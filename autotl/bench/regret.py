"""Regret against the exhaustive oracle, with its interval and the oracle's own noise floor.

Rows are compared within a **group**: one task, one size (``n_per_class``), one protocol.

- The oracle's best is the highest mean test accuracy over seeds of any one config of its grid
  (ties: the one that trained in fewer seconds).
- A method's **regret** is that best minus the method's mean test accuracy over its rows (its
  seeds). Its interval is a paired percentile bootstrap over test examples: each resample
  draws test examples with replacement and recomputes both means on the same examples, from
  the per-example correctness rows keep (``test_correct``).
- The oracle's **noise floor** is the regret the oracle itself would suffer from seed noise:
  pick the best config by one replicate (seed) alone, score that config on the other
  replicates, and subtract from the oracle's best; averaged over which replicate picks.
  Replicates are a config's runs in order of seed.
- **Compute fraction** is a method's mean compute seconds per run over the oracle's total
  (every config × seed).
- The **seed noise** of one training run is the standard deviation of the oracle's best
  config's test accuracy over its seeds, pooled over the draws. The bootstrap above holds
  every model fixed; at tens of training rows the seed alone moves a model's test accuracy more
  than the test examples do, so the mean over draws also gets an interval with the best
  strategy's seed noise added: in every resample each draw's regret moves by a normal draw of
  variance seed_sd² × (1 / the method's runs + 1 / the oracle best's runs). None where the
  oracle's best ran one seed.
- **Over draws** of the training rows (a suite's ``draws``), each draw is compared against its
  own oracle and the regrets are averaged. The mean's interval resamples every draw's paired
  test examples in one bootstrap, with one set of example indices for every draw when their
  test sets have one length: right when they are the same rows in the same order (a data's
  own test split, whose hard examples are hard in every draw), and no different from drawing
  apart when they are other rows (a ``--test-fraction`` per draw), whose errors are unrelated.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from autotl.bench.results import protocol_family, row_split_seed

ORACLE = "oracle"
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
TIE = 1e-12


@dataclass
class Standing:
    """One method in one group: its accuracy, regret with interval, and compute."""

    task: str
    n_per_class: int | None
    protocol: str
    backbone: str
    method: str
    runs: int
    test_mean: float
    test_sd: float | None
    val_mean: float | None
    compute_seconds: float
    strategies: list[str]
    regret: float | None = None
    regret_low: float | None = None
    regret_high: float | None = None
    noise_floor: float | None = None
    compute_fraction: float | None = None
    win: bool = False
    detail: str = ""  # the oracle's best config, in words
    split_seed: int = 0  # the draw of the rows
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    best_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)  # oracle's best

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("rows")
        out.pop("best_rows")
        return out


def config_key(row: dict[str, Any]) -> str:
    return json.dumps([row["strategy"], row["params"]], sort_keys=True)


def group_key(row: dict[str, Any]) -> tuple[str, int | None, str]:
    return (row["task"], row["n_per_class"], row["protocol"])


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def best_config(oracle_rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]] | None:
    """The oracle config with the highest mean test accuracy (ties: fewer train seconds)."""
    configs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in oracle_rows:
        configs[config_key(row)].append(row)
    if not configs:
        return None

    def merit(item: tuple[str, list[dict[str, Any]]]) -> tuple[float, float]:
        runs = item[1]
        seconds = _mean([r.get("train_seconds") or r["compute_seconds"] for r in runs])
        return (_mean([r["test_accuracy"] for r in runs]), -seconds)

    return max(configs.items(), key=merit)


def noise_floor(oracle_rows: list[dict[str, Any]]) -> float | None:
    """Oracle's best mean − the mean accuracy, on the other replicates, of the config one
    replicate picks; averaged over picking replicates. None with fewer than 2 replicates."""
    configs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in oracle_rows:
        configs[config_key(row)].append(row)
    if not configs:
        return None
    replicates = min(len(runs) for runs in configs.values())
    if replicates < 2:
        return None
    by_replicate = {key: [r["test_accuracy"] for r in sorted(runs, key=lambda r: r["seed"])]
                    for key, runs in configs.items()}
    best = max(_mean(accs) for accs in by_replicate.values())
    scores = []
    for pick in range(replicates):
        chosen = max(by_replicate, key=lambda key: by_replicate[key][pick])
        others = [a for i, a in enumerate(by_replicate[chosen]) if i != pick]
        scores.append(_mean(others))
    return best - _mean(scores)


def seed_sd(runs: list[list[dict[str, Any]]]) -> float | None:
    """Pooled standard deviation of one run's test accuracy over seeds: each list holds one
    config's runs (one draw's oracle best), their variances weighted by degrees of freedom.
    None unless every list holds 2 or more runs."""
    if not runs or any(len(group) < 2 for group in runs):
        return None
    accs = [[r["test_accuracy"] for r in group] for group in runs]
    squares = sum(statistics.variance(a) * (len(a) - 1) for a in accs)
    return (squares / sum(len(a) - 1 for a in accs)) ** 0.5


def correctness(rows: list[dict[str, Any]]) -> Any:
    """Per-example correctness averaged over rows (a numpy vector), or None when a row lacks
    it or the rows disagree on the number of test examples."""
    import numpy as np

    texts = [r.get("test_correct") for r in rows]
    if not texts or any(t is None for t in texts) or len({len(t) for t in texts}) != 1:
        return None
    return np.mean([np.frombuffer(t.encode(), dtype=np.uint8) - ord("0") for t in texts],
                   axis=0)


def paired_interval(oracle_rows: list[dict[str, Any]], method_rows: list[dict[str, Any]],
                    *, samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                    seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of (oracle mean − method mean) accuracy, resampling
    test examples with replacement, the same examples for both sides."""
    return mean_interval([(oracle_rows, method_rows)], samples=samples, confidence=confidence,
                         seed=seed)


def mean_interval(pairs: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]], *,
                  samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                  seed: int = 0, seed_noise: float | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean over ``pairs`` (one per draw: the oracle's
    best rows, the method's rows) of each pair's paired regret. One resample draws example
    indices once and applies them to every draw when all have test sets of one length, else
    draws each draw's own. With ``seed_noise`` (one run's seed sd), each resample also moves
    each draw's regret by a normal draw for the seeds both sides ran (module docstring). None
    when a pair lacks per-example outcomes."""
    import numpy as np

    diffs = []
    for oracle_rows, method_rows in pairs:
        a, b = correctness(oracle_rows), correctness(method_rows)
        if a is None or b is None or len(a) != len(b):
            return None
        diffs.append(a - b)
    if not diffs:
        return None
    rng = np.random.default_rng(seed)
    shared = len({len(d) for d in diffs}) == 1
    means = np.zeros(samples)
    chunk = max(1, 2_000_000 // max(len(d) for d in diffs))  # bounded memory
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        common = rng.integers(0, len(diffs[0]), size=(stop - start, len(diffs[0]))) \
            if shared else None
        for diff in diffs:
            index = common if common is not None else rng.integers(
                0, len(diff), size=(stop - start, len(diff)))
            means[start:stop] += diff[index].mean(axis=1) / len(diffs)
    if seed_noise is not None:
        for oracle_rows, method_rows in pairs:
            spread = seed_noise * (1 / len(oracle_rows) + 1 / len(method_rows)) ** 0.5
            means += rng.normal(0.0, spread, size=samples) / len(diffs)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def standings(rows: list[dict[str, Any]]) -> list[Standing]:
    """Every method's standing in every group, sorted by task, size, protocol and regret."""
    groups: dict[tuple[str, int | None, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[group_key(row)].append(row)
    out: list[Standing] = []
    for (task, size, protocol), members in groups.items():
        by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in members:
            by_method[row["method"]].append(row)
        oracle_rows = by_method.get(ORACLE, [])
        best = best_config(oracle_rows)
        floor = noise_floor(oracle_rows)
        oracle_total = sum(r["compute_seconds"] for r in oracle_rows)
        group: list[Standing] = []
        draw = row_split_seed(members[0])
        for method, runs in by_method.items():
            if method == ORACLE and best is not None:
                _, best_runs = best
                standing = _standing(task, size, protocol, method, best_runs)
                standing.compute_seconds = oracle_total
                standing.regret = 0.0
                standing.best_rows = best_runs
                standing.detail = _describe(best_runs[0])
                standing.runs = len(runs)
            else:
                standing = _standing(task, size, protocol, method, runs)
                if best is not None:
                    best_mean = _mean([r["test_accuracy"] for r in best[1]])
                    standing.regret = best_mean - standing.test_mean
                    standing.best_rows = best[1]
                    interval = paired_interval(best[1], runs)
                    if interval is not None:
                        standing.regret_low, standing.regret_high = interval
            standing.noise_floor = floor
            standing.split_seed = draw
            if oracle_total > 0:
                standing.compute_fraction = standing.compute_seconds / oracle_total
            group.append(standing)
        contenders = [s for s in group if s.method != ORACLE]
        if contenders:
            top = max(s.test_mean for s in contenders)
            for s in contenders:
                s.win = s.test_mean >= top - TIE
        out += group
    out.sort(key=lambda s: (s.task, s.n_per_class is None, s.n_per_class or 0, s.protocol,
                            s.method != ORACLE, s.regret if s.regret is not None else 2.0,
                            s.method))
    return out


def _standing(task: str, size: int | None, protocol: str, method: str,
              runs: list[dict[str, Any]]) -> Standing:
    tests = [r["test_accuracy"] for r in runs]
    vals = [r["val_accuracy"] for r in runs if r.get("val_accuracy") is not None]
    return Standing(
        task=task, n_per_class=size, protocol=protocol, backbone=runs[0]["backbone"],
        method=method, runs=len(runs), test_mean=_mean(tests),
        test_sd=statistics.stdev(tests) if len(tests) > 1 else None,
        val_mean=_mean(vals) if vals else None,
        compute_seconds=_mean([r["compute_seconds"] for r in runs]),
        strategies=sorted({r["strategy"] for r in runs}), rows=runs)


def _describe(row: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in sorted(row["params"].items()))
    return f"{row['strategy']} ({params})"


@dataclass
class MethodSummary:
    """A method across every group it ran in."""

    method: str
    groups: int
    wins: int
    mean_regret: float | None
    median_regret: float | None
    worst_regret: float | None
    mean_compute_fraction: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(table: list[Standing]) -> list[MethodSummary]:
    """Mean, median and worst regret and win count per method (best mean regret first)."""
    by_method: dict[str, list[Standing]] = defaultdict(list)
    for s in table:
        by_method[s.method].append(s)
    out = []
    for method, items in by_method.items():
        regrets = [s.regret for s in items if s.regret is not None]
        fractions = [s.compute_fraction for s in items if s.compute_fraction is not None]
        out.append(MethodSummary(
            method=method, groups=len(items), wins=sum(s.win for s in items),
            mean_regret=_mean(regrets) if regrets else None,
            median_regret=statistics.median(regrets) if regrets else None,
            worst_regret=max(regrets) if regrets else None,
            mean_compute_fraction=_mean(fractions) if fractions else None))
    out.sort(key=lambda m: (m.method != ORACLE,
                            m.mean_regret if m.mean_regret is not None else 2.0, m.method))
    return out


@dataclass
class OverDraws:
    """A method at one task and size across draws of the training rows (each draw its own
    comparison, against its own oracle)."""

    task: str
    n_per_class: int | None
    method: str
    draws: int
    mean_regret: float
    regrets: list[float]
    within_noise: int  # draws whose regret interval reaches 0 (or below)
    mean_test: float
    mean_low: float | None = None  # the mean regret's interval (module docstring)
    mean_high: float | None = None
    seed_sd: float | None = None  # the oracle best's seed noise, pooled over the draws
    seed_low: float | None = None  # the mean regret's interval with that noise added
    seed_high: float | None = None
    protocol: str = ""  # the draws' protocol less its split seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def over_draws(table: list[Standing]) -> list[OverDraws]:
    """Regret per task, size, protocol (less its split seed) and method, averaged over the
    draws that measured it; only where some method was measured on 2 or more draws. Draws of
    another protocol (a simulated and a real small-data suite on one task) stay apart."""
    by: dict[tuple[str, int | None, str, str], list[Standing]] = defaultdict(list)
    for s in table:
        if s.regret is not None:
            by[(s.task, s.n_per_class, protocol_family(s.protocol), s.method)].append(s)
    if not any(len(items) > 1 for items in by.values()):
        return []
    out = []
    for (task, size, family, method), items in by.items():
        items = sorted(items, key=lambda s: s.split_seed)
        regrets = [s.regret for s in items if s.regret is not None]
        pairs = [(s.best_rows, s.rows) for s in items]
        interval = mean_interval(pairs) if method != ORACLE else (0.0, 0.0)
        spread = seed_sd([s.best_rows for s in items])
        if spread is None:  # the oracle's best ran one seed somewhere: no seed noise to add
            seeded = None
        elif method == ORACLE:
            seeded = (0.0, 0.0)
        else:
            seeded = mean_interval(pairs, seed_noise=spread)
        out.append(OverDraws(
            task=task, n_per_class=size, method=method, draws=len(items),
            mean_regret=_mean(regrets), regrets=regrets,
            within_noise=sum(1 for s in items if s.method == ORACLE
                             or (s.regret_low is not None and s.regret_low <= 0)),
            mean_test=_mean([s.test_mean for s in items]),
            mean_low=interval[0] if interval else None,
            mean_high=interval[1] if interval else None,
            seed_sd=spread, seed_low=seeded[0] if seeded else None,
            seed_high=seeded[1] if seeded else None,
            protocol=family))
    out.sort(key=lambda d: (d.task, d.n_per_class is None, d.n_per_class or 0, d.protocol,
                            d.method != ORACLE, d.mean_regret, d.method))
    return out
