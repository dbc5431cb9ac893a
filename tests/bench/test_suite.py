"""Suite files: validation with clear errors, the oracle's grid and the baselines' configs."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from autotl.bench.suite import (
    baseline_params,
    freeze_depths,
    grid_params,
    learning_rates,
    load_suite,
)
from autotl.errors import ConfigError
from autotl.plugins import load_plugins

SUITES = Path(__file__).parents[2] / "benchmarks" / "suites"
GOOD = """
name = "mini"
seeds = 2
search_seeds = 2
budget = 0.25

[settings]
min_steps = 6
max_steps = 6

[grid]
strategies = ["full", "subset", "head-only", "lora"]
freeze_fractions = [0.25, 0.5, 0.75]
learning_rates = 4
lora = {r = 8, alpha = 16}

[baselines.full]
lr = 1e-3
[baselines.head-only]
lr = 3e-3
[baselines.lora]
lr = 3e-3
r = 8
alpha = 16
[baselines.textbook]
threshold = 20

[[tasks]]
name = "digits-cnn"
data = "digits"
backbone = "timm:test_efficientnet"
sizes = [20, 5, "all"]
image_size = 32
min_steps = 8
max_steps = 8
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_suite_file_reads_with_defaults_and_task_settings(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    assert suite.name == "mini" and suite.budget == 0.25
    assert suite.methods == ("oracle", "autotl", "full", "head-only", "lora", "textbook")
    [task] = suite.tasks
    assert task.sizes == (5, 20, None)  # ascending, 'all' last
    config = task.config(5, seed=1)
    assert (config.n_per_class, config.min_steps, config.image_size, config.seed) == (5, 8, 32, 1)
    assert task.data == "digits" and task.backbone == "timm:test_efficientnet"
    only = suite.select(tasks=["digits-cnn"], methods=["autotl", "oracle"])
    assert only.methods == ("oracle", "autotl")
    with pytest.raises(ConfigError, match="unknown method 'autotll' \\(did you mean 'autotl'"):
        suite.select(methods=["autotll"])
    with pytest.raises(ConfigError, match="unknown task 'digits'"):
        suite.select(tasks=["digits"])
    assert suite.select(sizes=["all", "5"]).tasks[0].sizes == (5, None)
    with pytest.raises(ConfigError, match="unknown size '10'"):
        suite.select(sizes=["10"])


def test_draws_can_be_chosen_by_number_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD.replace('budget = 0.25', 'budget = 0.25\ndraws = 3')))
    assert suite.draw_indices == (0, 1, 2)  # every draw unless some are chosen
    assert suite.select(draws=["2", "0"]).draw_indices == (0, 2)
    with pytest.raises(ConfigError, match="draws = 3, numbered from 0\\) an unknown draw '3'"):
        suite.select(draws=["3"])


@pytest.mark.parametrize(("edit", "message"), [
    (("budget = 0.25", "budget = 2"), "'budget' must be in (0, 1]"),
    (("seeds = 2", "seeds = 0"), "must be at least 1"),
    (("name = \"mini\"", "name = \"mini\"\nmetods = []"), "unknown key 'metods' (did you mean "
                                                         "'methods'?)"),
    (("learning_rates = 4", "learning_rates = 4\nlr = 1"), "[grid]: unknown key 'lr'"),
    (("freeze_fractions = [0.25, 0.5, 0.75]", "freeze_fractions = [0.5, 1.5]"),
     "strictly between 0 and 1"),
    (("[baselines.full]\nlr = 1e-3", "[baselines.full]\nrate = 1e-3"),
     "[baselines.full]: a fixed baseline needs 'lr'"),
    (("threshold = 20", "threshold = 20\nbelow = \"headonly\""),
     "the rule uses baseline 'headonly'"),
    (("sizes = [20, 5, \"all\"]", "sizes = [20, 0]"), "sizes must be whole examples per class "
                                                      ">= 1"),
    (("name = ", "protocol = \"few\"\nname = "), "'protocol' must be 'simulated'"),
    (("name = ", "draws = 0\nname = "), "'draws' and 'search_trials' must be at least 1"),
    (("sizes = [20, 5, \"all\"]", "sizes = [5, 5]"), "repeats a size"),
    (("image_size = 32", "image_size = 32\nseed = 3"), "['seed'] are set by autotl bench"),
    (("image_size = 32", "image_size = 32\nseeds = 0"), "('digits-cnn'): 'seeds' must be at "
                                                        "least 1, but got 0"),
    (("image_size = 32", "image_size = 32\nseeds = \"two\""), "'seeds' must be a whole number"),
    (("image_size = 32", "image_sise = 32"), "unknown setting(s) in suite task 'digits-cnn': "
                                             "'image_sise' (did you mean 'image_size'?)"),
    (("min_steps = 8", "min_steps = 0"), "need 1 <= min_steps"),
    (("name = \"digits-cnn\"\n", ""), "missing ['name']"),
    (("[[tasks]]", "[[taskz]]"), "unknown key 'taskz'"),
])
def test_bad_suites_are_refused_naming_file_and_key(tmp_path: Path, edit: tuple[str, str],
                                                    message: str) -> None:
    old, new = edit
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert str(path) in str(info.value) and message in str(info.value), str(info.value)


def test_missing_and_broken_suite_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(_write(tmp_path, "name = "))
    with pytest.raises(ConfigError, match="no \\[\\[tasks\\]\\]"):
        load_suite(_write(tmp_path, "name = 'x'"))


def test_task_overrides_a_fixed_baseline(tmp_path: Path) -> None:
    text = GOOD + "baselines = {full = {lr = 1e-4}}\n"
    [task] = load_suite(_write(tmp_path, text)).tasks
    assert dict(task.baselines)["full"].lr == 1e-4
    assert dict(task.baselines)["lora"].params == (("alpha", 16), ("r", 8))
    with pytest.raises(ConfigError, match="unknown fixed baseline 'ful'"):
        load_suite(_write(tmp_path, GOOD + "baselines = {ful = {lr = 1e-4}}\n"))


def test_learning_rates_sit_at_log_bin_centres_inside_the_range() -> None:
    rates = learning_rates((1e-5, 1e-2), 4)  # 3 decades in 4 bins of 0.75 decades
    expected = [10 ** (-5 + 0.75 * (i + 0.5)) for i in range(4)]
    assert rates == pytest.approx(expected)
    assert all(1e-5 < r < 1e-2 for r in rates)
    ratios = {round(math.log10(b / a), 9) for a, b in zip(rates, rates[1:], strict=False)}
    assert ratios == {0.75}
    assert learning_rates((1e-4, 1e-2), 1) == pytest.approx([1e-3])


def test_freeze_depths_round_half_up_and_clamp() -> None:
    assert freeze_depths((0.25, 0.5, 0.75), 6) == [2, 3, 5]  # 1.5→2, 3, 4.5→5
    assert freeze_depths((0.25, 0.5, 0.75), 8) == [2, 4, 6]
    assert freeze_depths((0.25, 0.5, 0.75), 2) == [1]  # clamped to [1, G−1], no repeats


def test_the_grid_has_every_config_once() -> None:
    plugins = load_plugins()
    backbone = SimpleNamespace(n_groups=8, name="x", modality="image")
    suite_grid = load_suite(SUITES / "smoke.toml").grid
    strategies = {n: plugins.strategies.get(n) for n in suite_grid.strategies}
    configs = grid_params(suite_grid, strategies, {"linear": plugins.heads.get("linear")},
                          backbone)
    by = {}
    for c in configs:
        by.setdefault(c["strategy"], []).append(c)
    rates = suite_grid.learning_rates
    assert len(by["full"]) == rates and len(by["head-only"]) == rates
    assert len(by["subset"]) == 3 * rates
    assert sorted({c["subset.freeze_depth"] for c in by["subset"]}) == [2, 4, 6]
    assert all(c["lora.r"] == 8 and c["lora.alpha"] == 16 for c in by["lora"])
    assert all(c["head"] == "linear" and c["weight_decay"] == suite_grid.weight_decay
               for c in configs)
    full_range = plugins.strategies.get("full").lr_range
    assert [c["full.lr"] for c in by["full"]] == pytest.approx(learning_rates(full_range, rates))
    assert len({tuple(sorted(c.items())) for c in configs}) == len(configs)


def test_baselines_and_the_textbook_rule(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    heads = {"linear": load_plugins().heads.get("linear")}
    b = suite.baselines
    lora = baseline_params(b["lora"], b, 5, 5.0, suite.grid, heads)
    assert lora["strategy"] == "lora" and lora["lora.lr"] == 3e-3 and lora["lora.r"] == 8
    small = baseline_params(b["textbook"], b, 5, 5.0, suite.grid, heads)
    large = baseline_params(b["textbook"], b, 20, 20.0, suite.grid, heads)
    every = baseline_params(b["textbook"], b, None, 150.0, suite.grid, heads)
    assert (small["strategy"], small["head-only.lr"]) == ("head-only", 3e-3)
    assert (large["strategy"], large["full.lr"]) == ("full", 1e-3)  # at the threshold: full
    assert every["strategy"] == "full"


def test_the_shipped_suites_load_and_match_the_protocol() -> None:
    smoke, standard = load_suite(SUITES / "smoke.toml"), load_suite(SUITES / "standard.toml")
    for suite in (smoke, standard):
        assert set(suite.methods) == {"oracle", "autotl", "full", "head-only", "lora",
                                      "textbook"}
        assert suite.seeds >= 2 and suite.search_seeds >= 2 and suite.budget == 0.25
        for task in suite.tasks:  # digits and fortunes bring no test split: hold one out
            assert task.data == "fashion-mnist" or dict(task.settings).get("test_fraction")
    assert {(t.data, t.backbone) for t in standard.tasks} == {
        ("fashion-mnist", "offline:efficientnet-lite0"), ("digits", "offline:mobilenetv2-100"),
        ("fortunes", "offline:minilm-l6")}
    assert all(len(t.sizes) >= 3 and t.sizes[0] == 5 for t in standard.tasks)
    grid = standard.grid
    assert (grid.freeze_fractions, grid.learning_rates, dict(grid.lora)["r"],
            dict(grid.lora)["alpha"], grid.head) == ((0.25, 0.5, 0.75), 4, 8, 16, "linear")


@pytest.mark.parametrize("path", sorted(SUITES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_suite_names_registered_data_backbones_and_strategies(path: Path) -> None:
    plugins = load_plugins()
    suite = load_suite(path)
    for task in suite.tasks:  # each raises, naming the unknown name, if it is not registered
        plugins.datasets.get(task.data)
        plugins.backbones.get(task.backbone)
    for name in suite.grid.strategies:
        plugins.strategies.get(name)
