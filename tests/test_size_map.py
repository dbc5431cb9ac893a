"""The strategy-by-size map on tiny data: one study per size, seeds re-run for real."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest
import tiny_components

from autotl.errors import ConfigError
from autotl.plugins import load_plugins
from autotl.size_map import (
    RERUN_STUDY_SUFFIX,
    Measured,
    SizeEntry,
    SizeMap,
    parse_sizes,
    search_sizes,
    size_map_figure,
)
from autotl.study import search

STRATEGIES = ["full", "head-only", "subset"]


def _settings(out: Path) -> dict:
    return dict(data="test:images", backbone="test:cnn", strategies=STRATEGIES, trials=3,
                out=out, cache_dir=out.parent / "cache", min_steps=5, max_steps=5,
                eval_points=1, batch_size=16, image_size=32, prior="none",
                test_fraction=1 / 6)


def test_one_per_class_is_a_size(tmp_path: Path) -> None:
    plugins = load_plugins(extra=[tiny_components])
    out = tmp_path / "map"
    size_map = search(plugins=plugins, progress=False, sizes="1", seeds=1, **_settings(out))
    assert size_map.entries[0].n_train == 3  # one per class; validation drawn apart
    projection = json.loads((out / "size_map.json").read_text())["projection"]
    assert projection["available"] is False
    assert "1 size measured; a learning curve needs two or more" in projection["reason"]
    assert "No projection: 1 size measured" in (out / "size_map.md").read_text()


def test_parse_sizes() -> None:
    assert parse_sizes("20, all,5") == [5, 20, None]
    with pytest.raises(ConfigError, match="whole numbers"):
        parse_sizes("5,lots")
    with pytest.raises(ConfigError, match="at least 1"):
        parse_sizes("0,5")


def test_the_size_map_figure_leaves_the_users_plot_backend(user_globals: dict) -> None:
    import matplotlib

    entry = SizeEntry(n_per_class=4, n_train=8, n_val=4, study="s", out="o", n_groups=2,
                      measured=[Measured(strategy="full", params={}, search_accuracy=0.5,
                                         accuracies=[0.5, 0.75], train_seconds=1.0,
                                         trainable_params=10, trial=0)])
    size_map = SizeMap(dataset="d", modality="image", n_classes=2, backbone="b",
                       backbone_params=10, strategies=["full"], seeds=2, tolerance=0.01,
                       entries=[entry])
    assert size_map_figure(size_map)[:4] == b"\x89PNG"
    assert matplotlib.get_backend() == user_globals["backend"]


def test_size_map_measures_every_strategy_at_every_size(tmp_path: Path) -> None:
    plugins = load_plugins(extra=[tiny_components])
    out = tmp_path / "map"
    size_map = search(plugins=plugins, progress=False, sizes="4,8", seeds=2, project_to="12,40",
                      **_settings(out))
    data = json.loads((out / "size_map.json").read_text())
    assert [s["n_per_class"] for s in data["sizes"]] == [4, 8]
    for rung in data["sizes"]:
        assert rung["n_train"] == rung["n_per_class"] * 3
        assert {m["strategy"] for m in rung["per_strategy"]} == set(STRATEGIES)
        for m in rung["per_strategy"]:
            assert m["seeds"] == 2 and len(m["accuracies"]) == 2
            assert m["std"] == pytest.approx(statistics.stdev(m["accuracies"]))
            assert len(m["test_accuracies"]) == 2 and m["test_mean"] is not None
        assert rung["n_test"] == 12
        # Both seeds are fresh re-runs stored in the storage, not the search's own value:
        # trained with new seeds to the end of the budget, the selected trial apart.
        reruns = optuna.load_study(study_name=rung["study"] + RERUN_STUDY_SUFFIX,
                                   storage=f"sqlite:///{out.resolve() / 'study.db'}")
        stored = sorted((t.user_attrs["source_trial"], t.value) for t in reruns.trials)
        assert sorted((m["trial"], a) for m in rung["per_strategy"]
                      for a in m["accuracies"]) == stored
        search_study = optuna.load_study(study_name=rung["study"],
                                         storage=f"sqlite:///{out.resolve() / 'study.db'}")
        for t in reruns.trials:
            assert t.user_attrs["seed"] != search_study.trials[0].number  # fresh seeds
            assert len(t.user_attrs["val_correct"]) == rung["n_val"]
        # The winner is the one selection rule's choice over the fresh-seed scores.
        assert rung["best"]["strategy"] == size_map.entries[
            [4, 8].index(rung["n_per_class"])].choice().chosen.key
        assert rung["selection"]
        assert rung["logme"] is not None
    assert data["crossovers"] == size_map.crossovers()
    assert "per class" in data["crossovers"]
    assert (out / "size_map.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert (out / "4pc" / "recommendation.json").is_file()
    # The learning-curve projection: every strategy fitted to its fresh-seed validation
    # accuracies at 4 and 8 per class (never the test scores), projected to 12 and 40.
    projection = data["projection"]
    assert projection["available"] is True
    assert {f["strategy"] for f in projection["fits"]} == set(STRATEGIES)
    for fit in projection["fits"]:
        assert fit["sizes"] == [4, 8]
        assert fit["means"] == [pytest.approx(statistics.fmean(m["accuracies"]))
                                for rung in data["sizes"] for m in rung["per_strategy"]
                                if m["strategy"] == fit["strategy"]]
    assert [t["n_per_class"] for t in projection["targets"]] == [12, 40]
    for target in projection["targets"]:
        assert sum(target["win_probability"].values()) == pytest.approx(1.0)
    assert len(projection["crossings"]) == 3  # one per pair of strategies
    assert projection["sentences"] and "test accuracy is held out" in projection["basis"]
    for page in ("size_map.md", "report.html"):
        text = (out / page).read_text()
        assert "What more data would change" in text and projection["sentences"][0][:30] in text


def test_resumed_size_map_does_not_repeat_reruns(tmp_path: Path) -> None:
    plugins = load_plugins(extra=[tiny_components])
    out = tmp_path / "map"
    settings = _settings(out)
    first = search_sizes(search_config(settings), [4], plugins=plugins, progress=False, seeds=2)
    storage = f"sqlite:///{out.resolve() / 'study.db'}"
    name = first.entries[0].study + RERUN_STUDY_SUFFIX
    before = len(optuna.load_study(study_name=name, storage=storage).trials)
    settings["trials"] = 1
    again = search_sizes(search_config(settings), [4], plugins=plugins, progress=False, seeds=2)
    after = len(optuna.load_study(study_name=name, storage=storage).trials)
    first_best = {m.strategy: m for m in first.entries[0].measured}
    for m in again.entries[0].measured:  # an unchanged best reuses its stored re-runs
        if m.trial == first_best[m.strategy].trial:
            assert m.accuracies == first_best[m.strategy].accuracies
    assert after - before <= 2  # only the one new trial could have become a pick (2 seeds)


def search_config(settings: dict):  # noqa: ANN201
    from autotl.config import SearchConfig

    return SearchConfig(**settings)
