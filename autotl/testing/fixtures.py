"""A pytest plugin for autotl plugin authors: ``pytest_plugins = ["autotl.testing.fixtures"]``
in your ``conftest.py``.

Fixtures for the hooks the conformance suites do not cover (samplers, pruners, trial
listeners), and tiny inputs:

- ``autotl_plugin``: the plugin under test; override it to return your module or object, or
  leave it ``None`` to test what is installed (built-ins plus entry points).
- ``autotl_plugins``: a fresh, strict plugin manager holding the built-ins and the plugin under
  test (a broken plugin fails the test instead of being skipped).
- ``register_plugin(obj)``: add one more plugin for this test only; returns the manager.
- ``tiny_study(n_trials=…)``: run the manager's sampler and pruner, and every
  ``autotl_trial_finished`` listener, through a small study shaped like autotl's (a
  ``strategy`` choice, ``<strategy>.lr``, accuracy reported at checkpoints); returns the study.
- ``tiny_image_batch`` / ``tiny_text_batch``: ``(inputs, labels)`` as a user would give them
  (PIL images, strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from autotl.config import SearchConfig
from autotl.errors import PluginError
from autotl.plugins import Plugins, load_plugins
from autotl.testing.inputs import tiny_images, tiny_labels, tiny_texts

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from PIL import Image


@pytest.fixture
def autotl_plugin() -> object | None:
    """The plugin under test. Override in your conftest to return it; ``None`` (the default)
    tests the installed plugins."""
    return None


@pytest.fixture
def autotl_plugins(autotl_plugin: object | None) -> Plugins:
    """A fresh, strict plugin manager: built-ins plus the plugin under test (or, without one,
    plus every installed entry point)."""
    if autotl_plugin is None:
        return load_plugins(strict=True)
    return load_plugins(strict=True, entry_points=False, extra=[autotl_plugin])


@pytest.fixture
def register_plugin(autotl_plugins: Plugins) -> Callable[..., Plugins]:
    """``register_plugin(obj, name=None)`` adds ``obj`` to this test's manager and returns it."""

    def register(plugin: object, name: str | None = None) -> Plugins:
        if not autotl_plugins.add(plugin, name, source="registered by a test"):
            msg = f"could not register {plugin!r} (blocked by AUTOTL_DISABLE_PLUGINS?)"
            raise PluginError(msg)
        return autotl_plugins

    return register


def _accuracy(strategy_index: int, lr: float, checkpoint: int, checkpoints: int) -> float:
    """A made-up learning curve: best near lr 1e-2, rising over checkpoints, a little lower for
    each later strategy, so samplers have something to find and pruners something to cut."""
    peak = 0.9 - 0.05 * strategy_index - 0.08 * abs(math.log10(lr) + 2)
    return max(0.0, peak * (checkpoint + 1) / checkpoints)


@pytest.fixture
def tiny_study(autotl_plugins: Plugins) -> Callable[..., optuna.Study]:
    """``tiny_study(n_trials=12, strategies=("full", "head-only"), checkpoints=3, seed=0,
    **settings)``: the study the manager's sampler and pruner ran (``settings`` go into the
    :class:`~autotl.SearchConfig` their hooks receive); every finished trial is passed to the
    ``autotl_trial_finished`` listeners as a :class:`~autotl.training.TrialResult`."""
    import optuna

    from autotl.training import TrialPlan, TrialResult

    def run(n_trials: int = 12, *, strategies: Sequence[str] = ("full", "head-only"),
            checkpoints: int = 3, seed: int = 0, **settings: Any) -> optuna.Study:
        config = SearchConfig(data="tiny", strategies=list(strategies), seed=seed, **settings)
        hook = autotl_plugins.pm.hook
        study = optuna.create_study(
            direction="maximize", sampler=hook.autotl_create_sampler(config=config),
            pruner=hook.autotl_create_pruner(config=config))

        def objective(trial: optuna.Trial) -> float:
            strategy = trial.suggest_categorical("strategy", list(strategies))
            lr = trial.suggest_float(f"{strategy}.lr", 1e-4, 1e-1, log=True)
            result = TrialResult(plan=TrialPlan(strategy, {}, "linear", {}, lr, 1e-4),
                                 number=trial.number, steps=checkpoints)
            for checkpoint in range(checkpoints):
                accuracy = _accuracy(list(strategies).index(strategy), lr, checkpoint,
                                     checkpoints)
                result.history.append((checkpoint + 1, accuracy))
                result.val_accuracy = accuracy
                trial.report(accuracy, checkpoint)
                if checkpoint < checkpoints - 1 and trial.should_prune():
                    result.state = "pruned"
                    autotl_plugins.call_each("autotl_trial_finished", result=result)
                    raise optuna.TrialPruned
            autotl_plugins.call_each("autotl_trial_finished", result=result)
            return accuracy

        study.optimize(objective, n_trials=n_trials)
        return study

    return run


@pytest.fixture
def tiny_image_batch() -> tuple[list[Image.Image], list[int]]:
    """Four small RGB PIL images and their labels (three classes)."""
    return tiny_images(4), tiny_labels(4)


@pytest.fixture
def tiny_text_batch() -> tuple[list[str], list[int]]:
    """Four short sentences and their labels (three classes)."""
    return tiny_texts(4), tiny_labels(4)
