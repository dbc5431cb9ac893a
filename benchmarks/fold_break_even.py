"""Where do folds stop paying? A cheap stand-in for the selection protocol, CPU seconds.

Four scikit-learn classifiers on the 8×8 digits stand in for strategies (their ranking changes
with size, as strategies' do). For K examples per class as the user's whole data (the rest is
the test set), over several draws of which K:

- **split**: validation = round(0.2·K) rows per class (at least 1), the rest trains; autotl's
  selection rule (`autotl.selection.choose`, paired one-standard-error ties to the cheaper)
  picks on validation; the picked config's model trained on the training rows is scored.
- **folds**: `autotl.folds` (scheme by size, every row scored once per repeat); the same rule
  on the pooled outcomes; the picked config is refit on all K rows and scored.

Regret = the best config's test accuracy (each refit on all K rows) − the scored model's.
Prints a table and a final JSON line. This measures the protocol, not neural fine-tuning:
the learners are far cheaper and their gaps differ from strategies' gaps.
"""

from __future__ import annotations

import json
import statistics
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier

from autotl.folds import make_folds, scheme_for
from autotl.selection import Scored, choose

# Nominal costs order the tie-break (cheapest first), as training seconds would.
CONFIGS = {
    "nb": (lambda: GaussianNB(), 1.0),
    "knn1": (lambda: KNeighborsClassifier(1), 2.0),
    "lr-strong": (lambda: LogisticRegression(C=0.01, max_iter=2000), 3.0),
    "lr-weak": (lambda: LogisticRegression(C=1.0, max_iter=2000), 4.0),
}


def outcomes(name: str, x_train, y_train, x_eval, y_eval) -> np.ndarray:  # noqa: ANN001
    model = CONFIGS[name][0]().fit(x_train, y_train)
    return model.predict(x_eval) == y_eval


def pick(scores: dict[str, np.ndarray], n_rows: int) -> str:
    scored = [Scored(key=k, label=k, accuracy=float(v.mean()), n=n_rows,
                     seconds=CONFIGS[k][1], correct="".join("1" if c else "0" for c in v))
              for k, v in scores.items()]
    choice = choose(scored)
    assert choice is not None
    return str(choice.chosen.key)


def one_draw(x, y, k_per_class: int, seed: int) -> dict[str, float]:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    user = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k_per_class]
                           for c in np.unique(y)])
    test = np.setdiff1d(np.arange(len(y)), user)
    xu, yu, xt, yt = x[user], y[user], x[test], y[test]
    refit = {n: outcomes(n, xu, yu, xt, yt).mean() for n in CONFIGS}
    best = max(refit.values())
    # One split, as today.
    n_val = max(1, int(np.floor(0.2 * k_per_class + 0.5)))
    val = np.concatenate([rng.permutation(np.flatnonzero(yu == c))[:n_val]
                          for c in np.unique(yu)])
    train = np.setdiff1d(np.arange(len(yu)), val)
    split_scores = {n: outcomes(n, xu[train], yu[train], xu[val], yu[val]) for n in CONFIGS}
    chosen = pick(split_scores, len(val))
    split_test = outcomes(chosen, xu[train], yu[train], xt, yt).mean()
    # Folds over every row, then a refit on all of them.
    folds = make_folds(yu, scheme_for(k_per_class, seed))
    repeats = max(f.repeat for f in folds) + 1
    fold_scores = {}
    for n in CONFIGS:
        rows = np.zeros((repeats, len(yu)), dtype=bool)
        for f in folds:
            tr, va = np.array(f.train), np.array(f.val)
            rows[f.repeat, va] = outcomes(n, xu[tr], yu[tr], xu[va], yu[va])
        fold_scores[n] = rows.reshape(-1)
    chosen_f = pick(fold_scores, len(yu))
    return {"split": best - split_test, "folds": best - refit[chosen_f]}


def main(draws: int = 10) -> None:
    x, y = load_digits(return_X_y=True)
    rows = []
    print("| K per class | val per class (split) | regret split | regret folds |")
    print("|---|---|---|---|")
    for k in (3, 5, 10, 20, 30, 50):
        regrets = [one_draw(x, y, k, seed) for seed in range(draws)]
        split = statistics.mean(r["split"] for r in regrets)
        folds = statistics.mean(r["folds"] for r in regrets)
        n_val = max(1, int(np.floor(0.2 * k + 0.5)))
        print(f"| {k} | {n_val} | {split:.3f} | {folds:.3f} |")
        rows.append({"k": k, "val_per_class": n_val, "regret_split": round(split, 4),
                     "regret_folds": round(folds, 4), "draws": draws})
    print(json.dumps({"benchmark": "fold_break_even", "rows": rows}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
