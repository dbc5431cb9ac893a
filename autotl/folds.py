"""Scoring a trial over repeated stratified k-fold splits of every row, for small data.

With a handful of examples per class, one validation split is both tiny and wasteful: 5 rows
cannot separate strategies (the binomial standard error of an accuracy over 5·C rows is
about 0.2/√C), and the final model would train on 4 of the 5. Below ``fold_below``
validation rows per class (smallest class; :class:`autotl.SearchConfig`, default
:data:`FOLD_BELOW`) a trial is therefore scored over folds of the **pool** — the training and
validation rows together, never the test split:

- **k and repeats by size** (:func:`scheme_for`, ``m`` = rows in the smallest class):
  ``m`` 2–4 → k = m, each fold holding out one row of the smallest class (leave-one-out per
  class), 3 repeats; ``m`` 5–19 → k = 5, 2 repeats; ``m`` ≥ 20 → k = 5, 1 repeat. That is
  6–12, 10 or 5 fits per trial: a trial costs that many single-split trials of this size,
  which at such sizes are short (the step budget's minimum).
- **every row is scored exactly once per repeat** (scikit-learn's ``RepeatedStratifiedKFold``,
  seeded by the split seed, so every trial of a study sees the same folds); the per-row
  outcomes are concatenated repeat after repeat in the pool's row order, so two trials are
  compared row by row (:func:`autotl.selection.gap_se`).
- **each fold trains to the end of its step budget** (the budget the rule gives the fold's
  training rows); the trial's value is the share of rows right at the end, over all folds and
  repeats. The pruner sees, at each checkpoint, the mean accuracy across the folds (they
  train in lockstep, each with its own random state, so a fold trains exactly as it would
  alone; the price is that every fold's model and optimizer state are held at once, about
  ten copies of what one trial holds).
- **the frozen part is computed once** for all pool rows (the ``all`` split of the
  activation cache); each fold indexes its rows out of it.

Why the threshold is 10 (an argument from the binomial standard error, not a measurement):
the selection rule separates two configs only when their gap exceeds one paired standard
error, about √(d/n) for n scored rows of which a share d the two configs classify
differently (d is at least the gap; this estimate assumes d = 0.25). In the shipped prior's size maps (fashion-mnist,
fortunes) the best and the worst strategy differ by 0.03–0.13 at 5 and 20 examples per class;
a gap of 0.05 needs n ≳ 100 rows to be seen, and 10 rows per class gives 50–100 rows for 5–10
classes. Below that, folds score every row (five times as many at ``val_fraction`` 0.2) and
average over several splits, and the extra fits are affordable at such sizes. A cheap
stand-in measurement (``benchmarks/fold_break_even.py``: scikit-learn classifiers on digits,
10 draws) agrees: one split's regret is 0.055–0.071 at 1–2 validation rows per class, 0.015–0.020
at 4–6 and 0.004 at 10, where folds with a refit are at 0.000–0.010 from 5 per class on.

With a single row per class nothing can be measured; :mod:`autotl.study` then recommends from
the prior alone.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: Validation rows per class (smallest class) below which trials are scored over folds.
FOLD_BELOW = 10


@dataclass(frozen=True)
class FoldScheme:
    """``k`` folds, ``repeats`` times, drawn with ``seed``; part of the study's identity."""

    k: int
    repeats: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "repeats": self.repeats, "seed": self.seed}

    def describe(self, n_rows: int, smallest: int) -> str:
        loo = " (one row of the smallest class held out per fold)" if self.k == smallest else ""
        return (f"{self.repeats}× repeated stratified {self.k}-fold{loo} over all {n_rows} "
                f"rows: each row scored {self.repeats} time(s), {self.k * self.repeats} fits "
                "per trial")


@dataclass(frozen=True)
class Fold:
    """One fold: positions in the pool (its row order) to train on and to score."""

    repeat: int
    index: int
    train: tuple[int, ...]
    val: tuple[int, ...]


log = logging.getLogger(__name__)


def scheme_for(smallest: int, seed: int) -> FoldScheme:
    """k and repeats for a pool whose smallest class has ``smallest`` rows (module docstring)."""
    if smallest < 2:
        raise ValueError(f"folds need at least 2 rows in every class, but got {smallest=}.")
    if smallest <= 4:
        return FoldScheme(k=smallest, repeats=3, seed=seed)
    return FoldScheme(k=5, repeats=2 if smallest < 20 else 1, seed=seed)


def plan_folds(train: Any, val: Any, n_classes: int, *, fold_below: int,
               seed: int) -> tuple[Any, FoldScheme | None, list[Fold]]:
    """``(pool, scheme, folds)`` when ``val`` holds fewer than ``fold_below`` rows in some
    class (the pool: ``train`` rows, then ``val`` rows), else ``(None, None, [])``: one split."""
    import datasets
    import numpy as np

    from autotl.data.splits import label_array

    if np.bincount(label_array(val), minlength=n_classes).min() >= fold_below:
        return None, None, []
    pool = datasets.concatenate_datasets([train, val])
    labels = label_array(pool)
    scheme = scheme_for(int(np.bincount(labels, minlength=n_classes).min()), seed)
    return pool, scheme, make_folds(labels, scheme)


def make_folds(labels: Any, scheme: FoldScheme) -> list[Fold]:
    """The folds of ``scheme`` over rows with ``labels``: stratified, each repeat a partition."""
    import numpy as np
    from sklearn.model_selection import RepeatedStratifiedKFold

    labels = np.asarray(labels)
    splitter = RepeatedStratifiedKFold(n_splits=scheme.k, n_repeats=scheme.repeats,
                                       random_state=scheme.seed)
    folds = []
    for i, (train, val) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds.append(Fold(repeat=i // scheme.k, index=i % scheme.k,
                          train=tuple(int(r) for r in train), val=tuple(int(r) for r in val)))
    return folds


def run_folds(trainer: Any, folds: list[Fold], plan: Any, *, seed: int,
              should_stop: Callable[[float, int], bool] | None = None,
              between: bool = True) -> Any:
    """Train ``plan`` on every fold, in lockstep checkpoint by checkpoint, and combine them
    into one :class:`~autotl.training.TrialResult` whose outcomes run over the pool's rows,
    repeat after repeat. ``should_stop(mean accuracy across folds, checkpoint)`` is asked at
    each checkpoint but the last; ``True`` ends every fold and the trial as ``pruned``.
    ``between=False``: the folds validate at the last checkpoint only (Trainer.run), and
    train one after the other, one model in memory at a time; with the pruner's checkpoints
    every fold's model lives until the last."""
    import torch

    from autotl.training import OutOfMemory

    try:
        return _run_folds(trainer, folds, plan, seed=seed, should_stop=should_stop,
                          accumulation=1, between=between)
    except torch.OutOfMemoryError:
        pass
    # As Trainer.run: once more from the start at half batch, two accumulation steps.
    log.warning("trial (%s) ran out of device memory in fold mode; retrying once with 2 "
                "accumulation steps", plan.strategy)
    try:
        return _run_folds(trainer, folds, plan, seed=seed, should_stop=should_stop,
                          accumulation=2, between=between)
    except torch.OutOfMemoryError as exc:
        size = min(trainer.config.batch_size, min(len(f.train) for f in folds))
        raise OutOfMemory(
            f"trial ran out of device memory at batch size {size} and again at "
            f"{math.ceil(size / 2)} × 2 accumulation steps, in fold mode "
            f"({str(exc).splitlines()[0] if str(exc) else 'out of memory'}); lower "
            "--batch-size or --image-size, or pick a smaller backbone.") from None


def _run_folds(trainer: Any, folds: list[Fold], plan: Any, *, seed: int,
               should_stop: Callable[[float, int], bool] | None, accumulation: int,
               between: bool = True) -> Any:
    from autotl.training import TrialResult

    wall_start = time.perf_counter()
    views = [trainer.view(f.train, f.val) for f in folds]
    runs = [v.checkpoints(plan, seed=seed, accumulation=accumulation, between=between)
            for v in views]
    states: list[Any] = [None] * len(folds)
    results: list[Any] = [None] * len(folds)
    finished = [False] * len(folds)
    combined = TrialResult(plan=plan, accumulation_steps=accumulation)
    checkpoint = 0
    while True:
        done = False
        for i, run in enumerate(runs):
            # Each fold keeps its own random state (dropout draws), so a fold trains exactly
            # as it would alone, whatever ran in between.
            with _own_random_state(states, i, trainer.device):
                try:
                    results[i] = next(run)
                except StopIteration:
                    done = True
                    continue
                if results[i].trained is not None:
                    # The fold's last checkpoint: run it out now, so its model and optimizer
                    # are freed before the next fold builds its own. Without pruning a fold
                    # trains to its end in one go, so the folds never hold more than one model
                    # at a time (ten MiniLM copies with their optimizer states were 6 GB).
                    # The combined result keeps no fold's tensors.
                    for _ in run:
                        pass
                    finished[i], results[i].trained = True, None
        if done:
            break
        # A fold stopped by a fault (a loss that is not finite) stops the trial, as it would
        # stop a single-split trial.
        fault = next((r for r in results if r.state == "pruned" and r.error), None)
        if fault is not None:
            combined.state, combined.error = "pruned", fault.error
            for run in runs:
                run.close()
            break
        rows = sum(len(f.val) for f in folds)
        right = sum(r.history[-1][1] * len(f.val) for r, f in zip(results, folds, strict=True))
        mean = right / rows if rows else 0.0
        step = results[0].history[-1][0]
        combined.history.append((step, mean))
        combined.val_accuracy = mean
        last = all(finished)
        if not last and should_stop is not None and should_stop(mean, checkpoint):
            combined.state = "pruned"
            for run in runs:
                run.close()
            break
        checkpoint += 1
    first = results[0]
    combined.frozen_depth, combined.cached_depth = first.frozen_depth, first.cached_depth
    combined.trainable_params, combined.total_params = first.trainable_params, first.total_params
    combined.steps = max(r.steps for r in results)
    combined.eval_seconds = sum(r.eval_seconds for r in results)
    # The frozen part was computed once for all rows: charge it once, not once per fold.
    activation = max(r.activation_seconds for r in results)
    combined.activation_seconds = activation
    combined.train_seconds = sum(r.train_seconds - r.activation_seconds
                                 for r in results) + activation
    if all(r.train_flops is not None for r in results):
        # Likewise the frozen forward pass: once over the pool (each row trains in some fold).
        per_row = first.activation_flops / max(len(folds[0].train), 1)
        combined.activation_flops = per_row * len(trainer.labels["all"])
        combined.train_flops = sum(r.train_flops - r.activation_flops
                                   for r in results) + combined.activation_flops
    if all(r.val_accuracy is not None for r in results):  # not when a fault stopped a fold
        combined.fold_accuracies = [r.val_accuracy for r in results]
    if combined.state != "pruned":
        combined.val_correct = pool_outcomes(folds, [r.val_correct for r in results])
        combined.val_accuracy = combined.val_correct.count("1") / len(combined.val_correct)
    combined.wall_seconds = time.perf_counter() - wall_start
    return combined


def pool_outcomes(folds: list[Fold], outcomes: list[str]) -> str:
    """Each fold's per-row outcomes put back in the pool's row order, repeat after repeat."""
    n = sum(len(f.val) for f in folds if f.repeat == 0)
    repeats = max(f.repeat for f in folds) + 1
    rows = [["?"] * n for _ in range(repeats)]
    for fold, correct in zip(folds, outcomes, strict=True):
        for position, c in zip(fold.val, correct, strict=True):
            rows[fold.repeat][position] = c
    joined = "".join("".join(r) for r in rows)
    if "?" in joined:
        raise AssertionError("a row was not scored in every repeat; the folds are not a "
                             "partition")
    return joined


def fold_se(accuracies: list[float]) -> float:
    """Standard error of the mean fold accuracy (the usual cross-validation error bar; it
    ignores that folds share training rows, so it is optimistic)."""
    import statistics

    if len(accuracies) < 2:
        return float("inf")
    return statistics.stdev(accuracies) / len(accuracies) ** 0.5


@contextlib.contextmanager
def _own_random_state(states: list[Any], i: int, device: Any) -> Iterator[None]:
    """Run with fold ``i``'s torch random state (CPU, and the CUDA device's when used), and
    save it back; the caller's state is restored afterwards."""
    import torch

    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if states[i] is not None:
            cpu, cuda = states[i]
            torch.set_rng_state(cpu)
            if devices and cuda is not None:
                torch.cuda.set_rng_state(cuda, device)
        yield
        states[i] = (torch.get_rng_state(),
                     torch.cuda.get_rng_state(device) if devices else None)


__all__ = ["FOLD_BELOW", "Fold", "FoldScheme", "fold_se", "make_folds", "plan_folds",
           "pool_outcomes", "run_folds", "scheme_for"]
