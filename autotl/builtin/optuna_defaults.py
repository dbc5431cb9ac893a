"""Built-in plugin: the default sampler and pruner, ``trylast`` so any plugin overrides them."""

from __future__ import annotations

from autotl import hookimpl


@hookimpl(trylast=True)
def autotl_create_sampler(config):  # noqa: ANN001, ANN201
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
def autotl_create_pruner(config):  # noqa: ANN001, ANN201
    """Median pruning on intermediate validation accuracy, never before every strategy's
    known-good trial has run nor at a trial's first checkpoint."""
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=len(config.strategies) + 1,
        n_warmup_steps=1,
    )
