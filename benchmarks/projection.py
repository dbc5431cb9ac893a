"""Does a learning-curve projection from small sizes bracket the winner measured at larger ones?

    python benchmarks/projection.py RESULTS.jsonl [MORE ...] --task NAME --from 5,10 --to 20,100

Reads result rows (`autotl bench` output, benchmarks/results/README.md; files, folders or study
storages as `autotl leaderboard` takes them) of one task and one protocol, draw by draw.

- **Points** (what a user's own search would see): at each from-size, each strategy's best
  config by mean validation accuracy; its per-seed validation accuracies are the point (rows of
  one config with one seed are one run, however many methods report it), scored on `n_val`
  rows where the rows say so. Test accuracy never enters the fit.
- **Projection**: `autotl.curves.project` (1 − acc = exp(a + b·ln n) per strategy, seeded
  bootstrap) to
  the to-sizes.
- **Measured winner** at a to-size: the strategy with the best mean TEST accuracy among the rows
  at that size (each strategy by its best config's mean over seeds; a tie goes to the strategy
  named first alphabetically).
- **Bracketed** at a to-size: the measured winner's projected win probability there is at least
  0.2, OR the projection has the measured winner overtaking another strategy with an 80%
  crossing interval that contains the to-size, in at least 20% of its bootstrap draws (the
  crossings its sentences name; rarer ones are never shown to a user).
- **Draws**: rows of several draws of the data (split seeds, `autotl bench` suites with
  `draws`) are compared draw by draw, as a user holds one draw: each draw's from-size rows make
  its projection, its to-size rows its measured winner. A to-size counts as bracketed
  (`bracketed_at`) when it is bracketed in at least half of the draws (`bracketed_share`);
  `bracketed` is true when every to-size is. `measured_winner` is the most frequent winner over
  the draws (`measured_winners` lists each), `projected_win_probability` the mean over draws,
  `per_draw` the details.

Prints a table per to-size and a final JSON line. Needs two or more from-sizes: one size fixes
no curve.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from autotl.bench.results import read_results, row_split_seed
from autotl.curves import POSSIBLE, CurvePoint, Projection, project
from autotl.errors import AutoTLError, ConfigError

WIN_SHARE = 0.2  # a projected win probability at least this counts as bracketing the winner


def parse_size_list(text: str, flag: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"{flag} takes whole numbers of examples per class, e.g. {flag} 5,10, "
                          f"but got {text!r}.") from None
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"{flag} takes sizes of at least 1 per class, but got {text!r}.")
    return sizes


def task_draws(rows: list[dict[str, Any]], task: str,
               protocol: str | None) -> dict[int, list[dict[str, Any]]]:
    """The task's rows by draw (split seed). Draws of one protocol differ only in their
    split seed; rows of other protocols do not compare, so several need --protocol."""
    mine = [r for r in rows if r["task"] == task]
    if not mine:
        tasks = sorted({r["task"] for r in rows})
        raise ConfigError(f"no rows of task {task!r}; the results hold {tasks}.")
    bases = sorted({_without_split_seed(r["protocol"]) for r in mine})
    if protocol is not None:
        mine = [r for r in mine if protocol in (r["protocol"], _without_split_seed(r["protocol"]))]
        if not mine:
            raise ConfigError(f"task {task!r} has no rows with protocol {protocol!r}; it has "
                              f"{bases}.")
    elif len(bases) > 1:
        raise ConfigError(f"task {task!r} has rows of {len(bases)} protocols {bases}; rows "
                          "compare only within one: pass --protocol.")
    draws: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in mine:
        draws[row_split_seed(r)].append(r)
    return dict(sorted(draws.items()))


def _without_split_seed(protocol: str) -> str:
    return re.sub(r"\s*split_seed=\d+", "", protocol)


def _configs(rows: list[dict[str, Any]], score: str) -> dict[str, dict[str, dict[int, dict]]]:
    """strategy → config (params as JSON) → seed → row, for rows that have ``score``."""
    out: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r.get(score) is not None:
            out[r["strategy"]][json.dumps(r["params"], sort_keys=True)][r["seed"]] = r
    return out


def points_at(rows: list[dict[str, Any]], size: int) -> dict[str, CurvePoint]:
    """Each strategy's best config by mean validation accuracy at ``size``, as a curve point."""
    at = [r for r in rows if r["n_per_class"] == size]
    configs = _configs(at, "val_accuracy")
    if not configs:
        raise ConfigError(f"no rows with a val_accuracy at {size} per class; the rows have "
                          f"sizes {sorted({r['n_per_class'] for r in rows}, key=str)}.")
    points = {}
    for strategy, by_config in configs.items():
        runs = max(by_config.values(), key=lambda seeds: statistics.fmean(
            r["val_accuracy"] for r in seeds.values()))
        n_val = {r.get("n_val") for r in runs.values()}
        points[strategy] = CurvePoint(
            n=float(size), accuracies=tuple(r["val_accuracy"] for r in runs.values()),
            n_eval=n_val.pop() if len(n_val) == 1 and None not in n_val else None)
    return points


def measured_scores(rows: list[dict[str, Any]], size: int) -> dict[str, float]:
    """Each strategy's best config's mean test accuracy at ``size``."""
    configs = _configs([r for r in rows if r["n_per_class"] == size], "test_accuracy")
    if not configs:
        raise ConfigError(f"no rows at {size} per class to measure the winner with; the rows "
                          f"have sizes {sorted({r['n_per_class'] for r in rows}, key=str)}.")
    return {s: max(statistics.fmean(r["test_accuracy"] for r in seeds.values())
                   for seeds in by_config.values())
            for s, by_config in configs.items()}


def bracketed(projection: Projection, size: int, winner: str) -> bool:
    target = next(t for t in projection.targets if t.n == size)
    if target.win_probability.get(winner, 0.0) >= WIN_SHARE:
        return True
    # Only a crossing the report prints counts: one in under POSSIBLE of the draws gets no
    # sentence, so a user was never told of it.
    return any(c.overtaker == winner and c.share >= POSSIBLE and c.interval is not None
               and c.interval[0] <= size <= c.interval[1] for c in projection.crossings)


def compare_draw(rows: list[dict[str, Any]], label: str, sizes_from: list[int],
                 sizes_to: list[int], *, draws: int,
                 seed: int) -> tuple[dict[str, Any], list[str]]:
    """One draw: project from its from-size rows, measure its winners at the to-sizes."""
    points: dict[str, list[CurvePoint]] = defaultdict(list)
    for size in sizes_from:
        for strategy, point in points_at(rows, size).items():
            points[strategy].append(point)
    projection = project(points, targets=sizes_to, draws=draws, seed=seed)
    lines, projected, winners, at = [], {}, {}, {}
    for size in sizes_to:
        scores = measured_scores(rows, size)
        winner = max(sorted(scores), key=lambda s: scores[s])
        target = next(t for t in projection.targets if t.n == size)
        projected[str(size)] = {s: round(p, 4) for s, p in target.win_probability.items()}
        winners[str(size)] = winner
        at[str(size)] = bracketed(projection, size, winner)
        lines += [(f"\n{label} at {size} per class (measured winner: {winner}; "
                   f"bracketed: {at[str(size)]})"),
                  f"{'strategy':<16} {'projected (80%)':<24} {'P(win)':>7} {'measured test':>14}"]
        for strategy in sorted(set(scores) | set(target.median)):
            if strategy in target.median:
                lo, hi = target.interval[strategy]
                cell = f"{target.median[strategy]:.3f} ({lo:.3f}–{hi:.3f})"
                share = f"{target.win_probability[strategy]:.2f}"
            else:
                cell, share = "no curve", "-"
            test = f"{scores[strategy]:.3f}" if strategy in scores else "-"
            lines.append(f"{strategy:<16} {cell:<24} {share:>7} {test:>14}")
    lines += [f"- {s}" for s in projection.sentences()]
    return {"projected_win_probability": projected, "measured_winner": winners,
            "bracketed_at": at, "sentences": projection.sentences()}, lines


def compare(rows: list[dict[str, Any]], task: str, sizes_from: list[int], sizes_to: list[int],
            *, protocol: str | None = None, draws: int = 2000,
            seed: int = 0) -> tuple[dict[str, Any], list[str]]:
    """Every draw of the task compared on its own (a user has one draw of rows); the summary
    counts a to-size as bracketed when it is in at least half of the draws."""
    if len(sizes_from) < 2:
        raise ConfigError(
            f"--from {','.join(map(str, sizes_from))} is one size: a learning curve needs two "
            "or more (a line through one point has any slope); pass e.g. --from 5,10.")
    by_draw = task_draws(rows, task, protocol)
    results, lines = {}, []
    for split_seed, mine in by_draw.items():
        label = f"{task} (draw split_seed={split_seed})" if len(by_draw) > 1 else task
        results[split_seed], more = compare_draw(mine, label, sizes_from, sizes_to,
                                                 draws=draws, seed=seed)
        lines += more
    share = {str(n): statistics.fmean(r["bracketed_at"][str(n)] for r in results.values())
             for n in sizes_to}
    at = {n: s >= 0.5 for n, s in share.items()}
    # Each draw's winner, in split-seed order; the summary's is the most frequent (a tie
    # goes to the one first in name order).
    winners = {n: [r["measured_winner"][n] for r in results.values()] for n in share}
    winners_sorted = {n: sorted(w) for n, w in winners.items()}
    summary = {"task": task, "from": sizes_from, "to": sizes_to,
               "draws": len(results),
               "projected_win_probability": {
                   n: {s: round(statistics.fmean(r["projected_win_probability"][n].get(s, 0.0)
                                                 for r in results.values()), 4)
                       for s in sorted({s for r in results.values()
                                        for s in r["projected_win_probability"][n]})}
                   for n in share},
               "measured_winner": {n: Counter(winners_sorted[n]).most_common(1)[0][0]
                                   for n in share},
               "measured_winners": winners,
               "bracketed_share": share, "bracketed_at": at, "bracketed": all(at.values()),
               "per_draw": {str(k): v for k, v in results.items()}}
    return summary, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="result files, folders or study storages")
    parser.add_argument("--task", required=True, help="the task whose rows to use")
    parser.add_argument("--from", dest="sizes_from", required=True,
                        help="sizes per class to fit the curves on, e.g. 5,10")
    parser.add_argument("--to", dest="sizes_to", required=True,
                        help="sizes per class whose measured winner to compare, e.g. 20,100")
    parser.add_argument("--protocol", help="the rows' protocol, when the task has several")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    try:
        sizes_from = parse_size_list(args.sizes_from, "--from")
        sizes_to = parse_size_list(args.sizes_to, "--to")
        rows = read_results([Path(p) for p in args.results])
        summary, lines = compare(rows, args.task, sizes_from, sizes_to,
                                 protocol=args.protocol, draws=args.draws, seed=args.seed)
    except AutoTLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
