"""``autotl bench`` end to end on a tiny suite: one task, one size, a tiny backbone (~1 min)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pytest

from autotl.bench.results import read_results, read_rows_file
from autotl.bench.suite import load_suite
from autotl.cli import main
from autotl.errors import ConfigError

SUITE = """
name = "tiny"
seeds = 2
search_seeds = 2
budget = 0.5
prior = "{prior}"

[settings]
min_steps = 6
max_steps = 6
eval_points = 2
batch_size = 16

[grid]
strategies = ["full", "subset", "head-only", "lora"]
freeze_fractions = [0.5]
learning_rates = 1

[baselines.full]
lr = 1e-3
[baselines.head-only]
lr = 3e-3
[baselines.textbook]
threshold = 20

[[tasks]]
name = "digits-tiny"
data = "digits"
backbone = "timm:test_efficientnet"
pretrained = false
sizes = [5]
image_size = 32
{test}
"""


def _prior(path: Path) -> Path:
    """A prior whose best record is of digits itself, beside one of another dataset."""
    def record(dataset: str, strategy: str) -> dict:
        return {"source": "test", "dataset": dataset, "modality": "image", "n_per_class": 5,
                "n_classes": 10, "backbone": "timm:test_efficientnet", "strategy": strategy,
                "params": {"lr": 0.01}, "mean_accuracy": 0.9, "best_mean_at_size": 0.9}

    path.write_text(json.dumps({"format": 1, "records": [record("digits", "full"),
                                                         record("fashion-mnist", "lora")]}))
    return path


def _suite(tmp_path: Path, test: str = "test_fraction = 0.2") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(SUITE.format(prior=_prior(tmp_path / "prior.json"),
                                                 test=test)))
    return path


def _one_seed_suite(tmp_path: Path, top: str, strategies: str) -> Path:
    """The tiny suite at one seed and one search seed, with ``top`` added to its top-level
    keys and its grid's strategies replaced by ``strategies``."""
    text = (SUITE.format(prior=_prior(tmp_path / "prior.json"), test="test_fraction = 0.2")
            .replace("seeds = 2\nsearch_seeds = 2", "seeds = 1\nsearch_seeds = 1\n" + top)
            .replace('["full", "subset", "head-only", "lora"]', strategies))
    path = tmp_path / "one-seed.toml"
    path.write_text(textwrap.dedent(text))
    return path


def _ctrl_c_at_training(call: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (KeyboardInterrupt) at the ``call``-th training run, until monkeypatch.undo()."""
    from autotl.training import Trainer

    run, calls = Trainer.run, []

    def interrupted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "run", interrupted)


def _studies(out: Path) -> dict[str, int]:
    url = f"sqlite:///{out / 'studies.db'}"
    return {s.study_name: s.n_trials
            for s in optuna.get_all_study_summaries(url, include_best_trial=False)}


def test_bench_runs_every_method_into_rows_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    assert main(["bench", str(_suite(tmp_path)), "--out", str(out)]) == 0
    rows = read_rows_file(out / "results.jsonl")
    by = {}
    for row in rows:
        by.setdefault(row["method"], []).append(row)
    assert sorted(by) == ["autotl", "full", "head-only", "oracle", "textbook"]
    # the oracle: 4 configs (full, subset at 3 of 6 groups, head-only, lora) × 2 seeds
    oracle = by["oracle"]
    assert len(oracle) == 8
    configs = {json.dumps([r["strategy"], r["params"]], sort_keys=True) for r in oracle}
    assert len(configs) == 4
    assert {r["params"].get("freeze_depth") for r in oracle if r["strategy"] == "subset"} == {3}
    assert len({r["seed"] for r in oracle}) == 8  # every run trained with its own seed
    # every method on the same rows: one protocol, one fingerprint, one test split
    assert len({r["protocol"] for r in rows}) == 1
    assert len({r["data_fingerprint"] for r in rows}) == 1
    assert len({(r["n_train"], r["n_val"], r["n_test"]) for r in rows}) == 1
    first = rows[0]
    assert first["n_train"] == 50 and first["n_test"] == len(first["test_correct"])
    assert first["n_train"] + first["n_val"] + first["n_test"] <= 1797
    # autotl: one row per search seed, its compute the whole search, within budget + a trial
    oracle_seconds = sum(r["compute_seconds"] for r in oracle)
    assert sorted(r["seed"] for r in by["autotl"]) == [0, 1]
    longest = max(r["compute_seconds"] for r in oracle)
    for row in by["autotl"]:
        assert 0 < row["compute_seconds"] <= 0.5 * oracle_seconds + 2 * longest
    assert {r["strategy"] for r in by["textbook"]} == {"head-only"}  # 5 per class < 20
    assert {r["params"]["lr"] for r in by["full"]} == {1e-3}
    # the prior the search used never held the task's own dataset
    used = json.loads((out / "priors" / "digits-tiny.json").read_text())["records"]
    assert [r["dataset"] for r in used] == ["fashion-mnist"]
    url = f"sqlite:///{out / 'studies.db'}"
    search = optuna.load_study(study_name="digits-tiny-5pc-autotl-seed0", storage=url)
    assert not any("digits" in s for s in search.user_attrs["prior"]["sources"])
    # the study storage yields the same measurements as the rows file
    def key(r: dict) -> tuple:  # noqa: E306
        return (r["method"], r["strategy"], json.dumps(r["params"], sort_keys=True), r["seed"],
                r["test_accuracy"], r["compute_seconds"])
    assert sorted(map(key, read_results([out / "studies.db"]))) == sorted(map(key, rows))
    assert (out / "leaderboard" / "leaderboard.html").is_file()

    # a rerun trains nothing; a run whose rows are gone is finished from its study
    trials = _studies(out)
    kept = [r for r in rows if not (r["method"] == "autotl" and r["seed"] == 1)]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["bench", str(_suite(tmp_path)), "--out", str(out)]) == 0
    assert _studies(out) == trials
    again = read_rows_file(out / "results.jsonl")
    assert len(again) == len(rows)
    assert sorted(map(key, again)) == sorted(map(key, rows))


def test_bench_refuses_what_it_cannot_measure(tmp_path: Path) -> None:
    suite = load_suite(_suite(tmp_path, test=""))
    from autotl.bench.runs import Bench

    with pytest.raises(ConfigError, match="has no test split.*set test_fraction"):
        Bench(suite.select(methods=["full"]), tmp_path / "a").run()
    only_search = load_suite(_suite(tmp_path)).select(methods=["autotl"])
    with pytest.raises(ConfigError, match="no oracle rows for task 'digits-tiny'.*add 'oracle'"):
        Bench(only_search, tmp_path / "b").run()
    with pytest.raises(ConfigError, match="--budget must be in \\(0, 1\\]"):
        Bench(only_search, tmp_path / "c", budget=3.0)
    with pytest.raises(ConfigError, match="--device must be one of .* but got 'gpu'"):
        Bench(only_search, tmp_path / "c", device="gpu")
    assert not (tmp_path / "b").exists()  # refused before any folder or study was made


def test_the_real_protocol_pairs_searches_that_see_only_k_rows_with_fixed_configs_on_them(
        tmp_path: Path) -> None:
    """protocol = "real": autotl and autotl-one-split see only the K rows per class; the
    oracle trains on exactly those rows; every draw is its own comparison; at 1 per class the
    prior's pick is trained on the one row of each class."""
    path = _one_seed_suite(tmp_path, "protocol = \"real\"\ndraws = 2\nsearch_trials = 2\n"
                           "methods = [\"oracle\", \"autotl\", \"autotl-one-split\"]",
                           '["full", "lora"]')
    path.write_text(path.read_text().replace("sizes = [5]", "sizes = [1, 4]"))
    out = tmp_path / "bench"
    assert main(["bench", str(path), "--out", str(out)]) == 0
    rows = read_rows_file(out / "results.jsonl")
    groups: dict[tuple, dict[str, list]] = {}
    for row in rows:
        groups.setdefault((row["n_per_class"], row["split_seed"]), {}) \
            .setdefault(row["method"], []).append(row)
    assert sorted(groups) == [(1, 0), (1, 1), (4, 0), (4, 1)]
    for (size, _), methods in groups.items():
        members = [r for rs in methods.values() for r in rs]
        assert len({r["protocol"] for r in members}) == 1  # one comparison per draw
        assert members[0]["protocol"].startswith("real: searches see only the K rows;")
        assert len(methods["oracle"]) == 2
        for row in methods["oracle"]:
            assert row["n_train"] == 10 * size  # trained on exactly the K rows per class
        assert len({r["test_correct"].__len__() for r in members}) == 1
        if size == 4:
            search = methods["autotl"][0]
            # validation and folds came out of the same 40 rows, nothing else
            assert search["n_train"] + search["n_val"] == 40
            assert sorted(methods) == ["autotl", "autotl-one-split", "oracle"]
        else:  # one row per class: no search possible, the prior's pick trained on them
            assert sorted(methods) == ["autotl", "oracle"]
            assert methods["autotl"][0]["strategy"] == "lora"  # the prior holds lora only
            assert methods["autotl"][0]["n_train"] == 10
    url = f"sqlite:///{out / 'studies.db'}"
    folded = optuna.load_study(study_name="digits-tiny-4pc-draw1-autotl-seed0", storage=url)
    one = optuna.load_study(study_name="digits-tiny-4pc-draw1-autotl-one-split-seed0",
                            storage=url)
    assert folded.user_attrs["request"]["identity"]["sample_only"] is True
    assert folded.user_attrs["request"]["identity"]["folds"] is not None
    assert one.user_attrs["request"]["identity"]["folds"] is None
    # the draws are different rows of one dataset
    assert len({r["data_fingerprint"] for r in rows}) == 1
    oracle_0 = {r["test_correct"] for r in groups[(4, 0)]["oracle"]}
    oracle_1 = {r["test_correct"] for r in groups[(4, 1)]["oracle"]}
    assert oracle_0 != oracle_1


def test_draws_runs_only_the_draws_named(tmp_path: Path) -> None:
    """`--draws 1` trains draw 1's rows (split seed 1) and nothing of draw 0."""
    path = _one_seed_suite(tmp_path, "protocol = \"real\"\ndraws = 2\nmethods = [\"oracle\"]",
                           '["head-only"]')
    out = tmp_path / "bench"
    assert main(["bench", str(path), "--draws", "1", "--out", str(out)]) == 0
    rows = read_rows_file(out / "results.jsonl")
    assert rows and {r["split_seed"] for r in rows} == {1}


def test_a_grid_stopped_by_ctrl_c_resumes_to_every_config(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C fails the running trial and queues its config again; the rerun must run that
    config too, not count the failed trial as done and end the grid a config short."""
    _ctrl_c_at_training(4, monkeypatch)
    out, suite = tmp_path / "bench", str(_suite(tmp_path))
    assert main(["bench", suite, "--methods", "oracle", "--out", str(out)]) != 0
    monkeypatch.undo()
    assert main(["bench", suite, "--methods", "oracle", "--out", str(out)]) == 0
    oracle = [r for r in read_rows_file(out / "results.jsonl") if r["method"] == "oracle"]
    configs = [json.dumps([r["strategy"], r["params"]], sort_keys=True) for r in oracle]
    assert len(oracle) == 8 and all(configs.count(c) == 2 for c in configs)


def test_raising_a_tasks_seeds_tops_up_finished_fixed_runs(tmp_path: Path) -> None:
    """A task's `seeds` above the suite's, set after its oracle and baseline ran: a rerun
    trains only the missing repetitions (trial n with seed n, as a run with two seeds from the
    start would), adds their rows and keeps the earlier ones as they were."""
    path = _one_seed_suite(tmp_path, "methods = [\"oracle\", \"head-only\"]",
                           '["full", "head-only"]')
    text = path.read_text()
    out = tmp_path / "bench"
    assert main(["bench", str(path), "--out", str(out)]) == 0
    before = read_rows_file(out / "results.jsonl")
    assert sorted((r["method"], r["seed"]) for r in before) == [
        ("head-only", 0), ("oracle", 0), ("oracle", 1)]
    assert load_suite(path).seeds_of(load_suite(path).tasks[0]) == 1

    path.write_text(text.replace('name = "digits-tiny"', 'name = "digits-tiny"\nseeds = 2'))
    assert load_suite(path).seeds_of(load_suite(path).tasks[0]) == 2
    assert main(["bench", str(path), "--out", str(out)]) == 0
    after = read_rows_file(out / "results.jsonl")
    assert after[:len(before)] == before  # earlier rows untouched, none doubled
    assert sorted((r["method"], r["seed"]) for r in after) == [
        ("head-only", 0), ("head-only", 1), ("oracle", 0), ("oracle", 1), ("oracle", 2),
        ("oracle", 3)]
    oracle = [r for r in after if r["method"] == "oracle"]
    # the second repetition is the same two configs, in the same order
    assert [r["params"] for r in oracle[2:]] == [r["params"] for r in oracle[:2]]
    assert _studies(out) == {"digits-tiny-5pc-oracle": 4, "digits-tiny-5pc-head-only": 2}
    # finished now: a third run trains nothing
    assert main(["bench", str(path), "--out", str(out)]) == 0
    assert read_rows_file(out / "results.jsonl") == after


def test_a_search_with_a_trial_count_stopped_by_ctrl_c_resumes_to_that_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`search_trials = 3`, Ctrl-C in the second trial: the rerun runs the requeued trial and
    the third, not three more (the search would end with more trials than its protocol)."""
    path = _one_seed_suite(tmp_path, 'search_trials = 3\nmethods = ["autotl"]',
                           '["full", "head-only"]')
    out = tmp_path / "bench"
    _ctrl_c_at_training(2, monkeypatch)
    assert main(["bench", str(path), "--out", str(out)]) != 0
    monkeypatch.undo()
    assert main(["bench", str(path), "--out", str(out)]) == 0
    study = optuna.load_study(study_name="digits-tiny-5pc-autotl-seed0",
                              storage=f"sqlite:///{out / 'studies.db'}")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.FAIL) == 1  # the interrupted one, retried
    assert [r["method"] for r in read_rows_file(out / "results.jsonl")] == ["autotl"]
