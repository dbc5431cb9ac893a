"""The pytest fixtures for plugin authors (``autotl.testing.fixtures``), used as an author
would: a sampler, a pruner and a trial listener run through ``tiny_study``."""

from __future__ import annotations

import optuna
import pytest
from PIL import Image

import autotl
from autotl.errors import PluginError
from autotl.plugins import Plugins


class RandomSearch:
    """A plugin object whose sampler replaces the built-in TPE."""

    @autotl.hookimpl
    def autotl_create_sampler(self, config: autotl.SearchConfig) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=config.seed)


class Recorder:
    """A trial listener that keeps what it is told."""

    def __init__(self) -> None:
        self.results: list = []

    @autotl.hookimpl
    def autotl_trial_finished(self, result) -> None:  # noqa: ANN001
        self.results.append(result)


class FailingListener:
    @autotl.hookimpl
    def autotl_trial_finished(self, result) -> None:  # noqa: ANN001
        raise RuntimeError("tracker is down")


def test_the_default_manager_holds_builtins_and_installed_plugins(
        autotl_plugins: Plugins) -> None:
    assert autotl_plugins.strict
    assert {"full", "lora", "extra:bitfit"} <= set(autotl_plugins.strategies.names())


def test_register_plugin_adds_a_sampler_for_this_test_only(register_plugin, tiny_study,  # noqa: ANN001
                                                          autotl_plugins: Plugins) -> None:
    assert "full" in autotl_plugins.strategies.names()  # registries filled before registering
    register_plugin(RandomSearch())
    study = tiny_study(n_trials=4)
    assert isinstance(study.sampler, optuna.samplers.RandomSampler)
    assert len(study.trials) == 4


def test_a_fresh_test_gets_the_builtin_sampler_again(tiny_study) -> None:  # noqa: ANN001
    assert isinstance(tiny_study(n_trials=1).sampler, optuna.samplers.TPESampler)


def test_the_builtin_pruner_and_a_listener_see_every_trial(register_plugin, tiny_study) -> None:  # noqa: ANN001
    recorder = Recorder()
    register_plugin(recorder)
    study = tiny_study(n_trials=16, checkpoints=4)
    states = [t.state.name.lower() for t in study.trials]
    assert [r.state for r in recorder.results] == states
    assert [r.number for r in recorder.results] == [t.number for t in study.trials]
    assert "pruned" in states and "complete" in states
    for trial in study.trials:  # pruned only below the median of its own strategy
        if trial.state != optuna.trial.TrialState.PRUNED:
            continue
        step = trial.last_step
        own = [t.intermediate_values[step] for t in study.trials
               if t.number < trial.number and t.state == optuna.trial.TrialState.COMPLETE
               and t.params["strategy"] == trial.params["strategy"]]
        assert len(own) >= 2 and trial.intermediate_values[step] < sorted(own)[len(own) // 2]


def test_a_listener_that_raises_fails_the_test_in_strict_mode(register_plugin,  # noqa: ANN001
                                                             tiny_study) -> None:  # noqa: ANN001
    register_plugin(FailingListener(), "failing-listener")
    with pytest.raises(PluginError, match="failing-listener.*tracker is down"):
        tiny_study(n_trials=1)


def test_tiny_batches(tiny_image_batch, tiny_text_batch) -> None:  # noqa: ANN001
    images, labels = tiny_image_batch
    assert all(isinstance(i, Image.Image) and i.mode == "RGB" for i in images)
    texts, text_labels = tiny_text_batch
    assert all(isinstance(t, str) and t for t in texts)
    assert labels == text_labels == [0, 1, 2, 0]


class TestAPluginUnderTest:
    """An author overrides ``autotl_plugin``: the manager then holds it and the built-ins, and
    no other installed plugin."""

    @pytest.fixture
    def autotl_plugin(self) -> object:
        return RandomSearch()

    def test_manager_holds_the_plugin_and_builtins_only(self, autotl_plugins: Plugins,  # noqa: ANN001
                                                        tiny_study) -> None:
        assert "extra:bitfit" not in autotl_plugins.strategies.names()
        assert "full" in autotl_plugins.strategies.names()
        assert isinstance(tiny_study(n_trials=1).sampler, optuna.samplers.RandomSampler)
