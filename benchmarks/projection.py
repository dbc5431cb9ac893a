"""Does a learning-curve projection from small sizes bracket the winner measured at larger ones?

    python benchmarks/projection.py RESULTS.jsonl [MORE ...] --task NAME --from 5,10 --to 20,100

Reads result rows (`autotl bench` output, benchmarks/results/README.md; files, folders or study
storages as `autotl leaderboard` takes them) of one task and one protocol.

- **Points** (what a user's own search would see): at each from-size, each strategy's best
  config by mean validation accuracy; its per-seed validation accuracies are the point (rows of
  one config with one seed are one run, however many methods report it), scored on `n_val`
  rows where the rows say so. Test accuracy never enters the fit.
- **Projection**: `autotl.curves.project` (acc = a + b·ln n per strategy, seeded bootstrap) to
  the to-sizes.
- **Measured winner** at a to-size: the strategy with the best mean TEST accuracy among the rows
  at that size (each strategy by its best config's mean over seeds; a tie goes to the strategy
  named first alphabetically).
- **Bracketed** at a to-size: the measured winner's projected win probability there is at least
  0.2, OR the projection has the measured winner overtaking another strategy with an 80%
  crossing interval that contains the to-size. `bracketed` in the JSON line is true when every
  to-size is bracketed; `bracketed_at` gives each.

Prints a table per to-size and a final JSON line. Needs two or more from-sizes: one size fixes
no curve.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from autotl.bench.results import read_results
from autotl.curves import CurvePoint, Projection, project
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


def task_rows(rows: list[dict[str, Any]], task: str, protocol: str | None) -> list[dict]:
    mine = [r for r in rows if r["task"] == task]
    if not mine:
        tasks = sorted({r["task"] for r in rows})
        raise ConfigError(f"no rows of task {task!r}; the results hold {tasks}.")
    protocols = sorted({r["protocol"] for r in mine})
    if protocol is not None:
        mine = [r for r in mine if r["protocol"] == protocol]
        if not mine:
            raise ConfigError(f"task {task!r} has no rows with protocol {protocol!r}; it has "
                              f"{protocols}.")
    elif len(protocols) > 1:
        raise ConfigError(f"task {task!r} has rows of {len(protocols)} protocols {protocols}; "
                          "rows compare only within one: pass --protocol.")
    return mine


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
    return any(c.overtaker == winner and c.interval is not None
               and c.interval[0] <= size <= c.interval[1] for c in projection.crossings)


def compare(rows: list[dict[str, Any]], task: str, sizes_from: list[int], sizes_to: list[int],
            *, protocol: str | None = None, draws: int = 2000,
            seed: int = 0) -> tuple[Projection, dict[str, Any], list[str]]:
    if len(sizes_from) < 2:
        raise ConfigError(
            f"--from {','.join(map(str, sizes_from))} is one size: a learning curve needs two "
            "or more (a line through one point has any slope); pass e.g. --from 5,10.")
    mine = task_rows(rows, task, protocol)
    points: dict[str, list[CurvePoint]] = defaultdict(list)
    for size in sizes_from:
        for strategy, point in points_at(mine, size).items():
            points[strategy].append(point)
    projection = project(points, targets=sizes_to, draws=draws, seed=seed)
    lines, projected, winners, at = [], {}, {}, {}
    for size in sizes_to:
        scores = measured_scores(mine, size)
        winner = max(sorted(scores), key=lambda s: scores[s])
        target = next(t for t in projection.targets if t.n == size)
        projected[str(size)] = {s: round(p, 4) for s, p in target.win_probability.items()}
        winners[str(size)] = winner
        at[str(size)] = bracketed(projection, size, winner)
        lines += [(f"\n{task} at {size} per class (measured winner: {winner}; "
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
    summary = {"task": task, "from": sizes_from, "to": sizes_to,
               "projected_win_probability": projected, "measured_winner": winners,
               "bracketed_at": at, "bracketed": all(at.values()),
               "sentences": projection.sentences()}
    return projection, summary, lines


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
        _, summary, lines = compare(rows, args.task, sizes_from, sizes_to,
                                    protocol=args.protocol, draws=args.draws, seed=args.seed)
    except AutoTLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    print()
    for sentence in summary["sentences"]:
        print(f"- {sentence}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
