"""Built-in plugin: the default sampler and pruner, ``trylast`` so any plugin overrides them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotl import hookimpl

if TYPE_CHECKING:  # pragma: no cover - keeps optuna off the listing path
    import optuna

    from autotl.config import SearchConfig


@hookimpl(trylast=True)
def autotl_create_sampler(config: SearchConfig) -> optuna.samplers.BaseSampler:
    """Seeded multivariate TPE; ``group`` splits the conditional space by strategy, and the
    constant liar keeps parallel workers from sampling the same point."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # `group` is marked experimental; it is what we want
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=config.seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=len(config.strategies) + 2,
        )


@hookimpl(trylast=True)
def autotl_create_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """Median pruning within each strategy (see :func:`strategy_median_pruner`)."""
    return strategy_median_pruner()


def strategy_median_pruner(n_startup_trials: int = 2,
                           n_warmup_steps: int = 1) -> optuna.pruners.BasePruner:
    """Prune a trial whose validation accuracy at a checkpoint is below the median of the
    completed trials **of its own strategy** at that checkpoint, once that strategy has
    ``n_startup_trials`` of them, and never before checkpoint ``n_warmup_steps``.

    Optuna's pruners compare a trial with every completed trial. In a strategy comparison
    that prunes the strategies that learn slower or plateau lower (head-only, early LoRA) before
    they are tuned at all: measured in the demo, the global median pruned 17 of 22 trials and
    left one completed trial for three of the four strategies.
    """
    import statistics

    import optuna
    from optuna.pruners import BasePruner

    class StrategyMedianPruner(BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            step = trial.last_step
            if step is None or step < n_warmup_steps:
                return False
            strategy = trial.params.get("strategy")
            values = [
                t.intermediate_values[step]
                for t in study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.COMPLETE,))
                if t.params.get("strategy") == strategy and step in t.intermediate_values
            ]
            if len(values) < n_startup_trials:
                return False
            return trial.intermediate_values[step] < statistics.median(values)

    return StrategyMedianPruner()
