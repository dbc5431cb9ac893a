"""The result-row schema: round trip, validation errors that name file:line and column,
merging files, and rows read back from a study storage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from conftest import correct, row

from autotl.bench.results import (
    COLUMNS,
    SCHEMA_VERSION,
    environment,
    protocol_of,
    read_results,
    read_rows_file,
    rows_from_storage,
    write_rows,
)
from autotl.errors import ConfigError

README = Path(__file__).parents[2] / "benchmarks" / "results" / "README.md"


def test_rows_round_trip_through_a_file(toy_rows: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_rows(path, toy_rows[:4])
    write_rows(path, toy_rows[4:], append=True)
    back = read_rows_file(path)
    assert back == toy_rows
    assert len(path.read_text().splitlines()) == len(toy_rows)
    assert all(r["schema"] == SCHEMA_VERSION for r in back)


def test_every_column_is_documented_in_the_results_readme() -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    assert documented == {c.name for c in COLUMNS}


@pytest.mark.parametrize(("change", "message"), [
    ({"test_accuracy": 81.0}, "'test_accuracy' must be in [0, 1]"),
    ({"test_accuracy": "0.8"}, "'test_accuracy' must be int or float"),
    ({"seed": None}, "'seed' must be int"),
    ({"schema": 99}, "'schema' is 99"),
    ({"accuracy": 0.5}, "unknown column 'accuracy'"),
    ({"test_acuracy": 0.5}, "did you mean 'test_accuracy'"),
    ({"test_correct": "1012"}, "string of '0' and '1'"),
    ({"test_correct": "1" * 10}, "has 10 characters but n_test is 40"),
    ({"test_correct": correct(5)}, "scores 0.125000 but test_accuracy is 0.250000"),
    ({"date": "yesterday"}, "'date' must be ISO 8601"),
    ({"compute_seconds": -1.0}, "'compute_seconds' must be >= 0"),
])
def test_bad_rows_are_refused_naming_file_line_and_column(toy_rows: list[dict], tmp_path: Path,
                                                          change: dict,
                                                          message: str) -> None:
    bad = dict(toy_rows[-1], **change)
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(toy_rows[0]) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(ConfigError) as info:
        read_rows_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: ")
    assert any(m in text for m in message.split("|")), text


def test_missing_columns_and_broken_json_are_named(toy_rows: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    lacking = {k: v for k, v in toy_rows[0].items() if k not in ("task", "method")}
    path.write_text(json.dumps(lacking) + "\n")
    with pytest.raises(ConfigError, match=r"rows.jsonl:1: missing required column\(s\) "
                                          r"\['task', 'method'\]"):
        read_rows_file(path)
    path.write_text('{"schema": 1,\n')
    with pytest.raises(ConfigError, match=r"rows.jsonl:1: not valid JSON"):
        read_rows_file(path)


def test_other_tools_write_rows_by_hand_with_only_the_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "mytool.jsonl"
    path.write_text("# rows from my tool\n" + json.dumps({
        "schema": 1, "task": "toy", "dataset": "toy-data", "n_per_class": 5,
        "protocol": "p1", "backbone": "test:cnn", "method": "mytool", "strategy": "full",
        "params": {"lr": 0.01}, "test_accuracy": 0.7, "seed": 0, "compute_seconds": 3.5,
        "date": "2026-11-29", "x_mytool_version": "2.1"}) + "\n")
    [hand] = read_results([path])
    assert hand["method"] == "mytool" and hand["x_mytool_version"] == "2.1"


def test_merging_files_replaces_reruns_and_refuses_mixed_data(toy_rows: list[dict],
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "results"
    write_rows(folder / "a.jsonl", toy_rows)
    rerun = dict(toy_rows[-1], test_accuracy=0.5, test_correct=correct(20),
                 date="2026-11-30T09:00:00+00:00")
    write_rows(folder / "sub" / "b.jsonl", [rerun, row("lora", "lora", {"lr": 0.001}, 0, 12)])
    merged = read_results([folder])
    assert len(merged) == len(toy_rows) + 1  # the rerun replaced its row, the lora row is new
    assert [r for r in merged if r["method"] == "full"] == [rerun]
    other_data = row("head-only", "head-only", {"lr": 0.1}, 0, 12, data_fingerprint="zzz")
    write_rows(tmp_path / "c.jsonl", [other_data])
    with pytest.raises(ConfigError, match="task 'toy' has rows with different "
                                          "data_fingerprint: 'abc123'.*'zzz'"):
        read_results([folder, tmp_path / "c.jsonl"])
    with pytest.raises(ConfigError, match="does not exist"):
        read_results([tmp_path / "nope.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="folder without \\*.jsonl"):
        read_results([tmp_path / "empty"])


def _scored_study(storage: str, name: str, score_test: str, seed: int) -> optuna.Study:
    """A study with what an autotl search stores (its request, per-trial measurements, test
    scores), written directly through Optuna. With score_test='all' each trial holds its own
    test score; otherwise the study holds the scores of the trials named after selection."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    study.set_user_attr("request", {
        "version": 1,
        "identity": {"data": "digits", "data_fingerprint": "fp1", "backbone": "test:cnn",
                     "n_per_class": 5, "seed": seed, "val_fraction": 0.2,
                     "test_fraction": 0.25, "split_seed": 0, "image_size": 32,
                     "budget": [16, 8.0, 6, 6, 2]},
        "settings": {"score_test": score_test}})
    study.set_user_attr("class_names", ["a", "b"])
    study.set_user_attr("modality", "image")
    dist = {"strategy": optuna.distributions.CategoricalDistribution(["full", "head-only"]),
            "full.lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
            "head-only.lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
    for number, (strategy, lr, val, marks) in enumerate([
            ("full", 0.01, 0.9, "1110"), ("head-only", 0.1, 0.8, "1100"),
            ("full", 0.001, 0.7, "1000")]):
        score = {"test_accuracy": marks.count("1") / 4, "test_correct": marks}
        study.add_trial(optuna.trial.create_trial(
            params={"strategy": strategy, f"{strategy}.lr": lr},
            distributions={k: v for k, v in dist.items() if k in ("strategy", f"{strategy}.lr")},
            value=val, user_attrs={"train_seconds": 2.0, "trainable_params": 10, "device": "cpu",
                                   **(score if score_test == "all" else {})}))
        if score_test != "all" and number < 2:  # the selected trial and a strategy's best
            study.set_user_attr(f"test:{number}", {"accuracy": score["test_accuracy"],
                                                   "correct": marks})
    return study


def test_rows_from_a_study_storage(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _scored_study(storage, "digits-5pc", "selected", seed=3)
    _scored_study(storage, "digits-5pc-grid", "all", seed=4).set_user_attr("selected_trial", 0)
    # the search's own output names the trial it recommended
    (tmp_path / "recommendation.json").write_text(json.dumps(
        {"study": "digits-5pc", "recommended": {"trial": 0}}))
    rows = rows_from_storage(tmp_path)  # a run folder holding study.db
    assert rows == read_results([tmp_path])
    search = [r for r in rows if r["method"] == "autotl"]
    assert len(search) == 2  # each study's selected trial
    first = search[0]
    assert first["strategy"] == "full" and first["params"] == {"lr": 0.01}
    assert first["test_accuracy"] == 0.75 and first["test_correct"] == "1110"
    assert first["val_accuracy"] == 0.9 and first["compute_seconds"] == 6.0  # all 3 trials
    assert first["seed"] == 3 and first["n_per_class"] == 5 and first["n_classes"] == 2
    assert first["data_fingerprint"] == "fp1" and first["task"] == "digits+test:cnn"
    assert "test=0.25" in first["protocol"] and "split_seed=0" in first["protocol"]
    assert "steps=6-6" in first["protocol"]
    grid = [r for r in rows if r["method"] == "oracle"]
    # with score_test='all' every trial is also an oracle config, each its own run
    assert [(r["params"]["lr"], r["seed"], r["compute_seconds"]) for r in grid] == [
        (0.01, 4, 2.0), (0.1, 5, 2.0), (0.001, 6, 2.0)]
    (tmp_path / "recommendation.json").unlink()
    # without knowing which trial the search chose, a study yields no autotl row
    assert [r["method"] for r in rows_from_storage(tmp_path / "study.db")].count("autotl") == 1


def test_environment_names_versions_and_hardware() -> None:
    env = environment("cpu")
    assert env["device"] == "cpu" and "cores" in env["hardware"]
    assert {"python", "torch", "optuna"} <= set(env["versions"])
    assert env["autotl_version"]


def test_rows_from_a_real_search_merge_with_result_files(tmp_path: Path) -> None:
    """A search's output folder takes part in a leaderboard beside hand-written rows: its
    recommended trial becomes an autotl row carrying the test score the search reported."""
    import tiny_components

    from autotl.plugins import load_plugins
    from autotl.study import search

    out = tmp_path / "run"
    rec = search(data="test:images", backbone="test:cnn", strategies=["head-only", "full"],
                 trials=3, out=out, cache_dir=tmp_path / "cache", test_fraction=0.25,
                 min_steps=4, max_steps=4, eval_points=1, batch_size=16, image_size=32,
                 prior="none", plugins=load_plugins(extra=[tiny_components]), progress=False)
    saved = json.loads((out / "recommendation.json").read_text())
    [found] = [r for r in read_results([out]) if r["method"] == "autotl"]
    assert found["strategy"] == rec.recommended.strategy
    assert found["test_accuracy"] == pytest.approx(saved["recommended"]["test_accuracy"])
    assert len(found["test_correct"]) == saved["dataset"]["n_test"]
    assert found["source"].endswith(f"trial {rec.recommended.trial}")
    task = found["task"]
    other = dict(found, method="mytool", source="my tool", date="2026-11-30")
    write_rows(tmp_path / "mytool.jsonl", [other])
    merged = read_results([out, tmp_path / "mytool.jsonl"])
    assert sorted(r["method"] for r in merged if r["task"] == task) == ["autotl", "mytool"]


def test_the_protocol_says_where_validation_came_from() -> None:
    drawn = {"val_fraction": 0.2, "validation": None, "split_seed": 0}
    own = {**drawn, "validation": {"source": "the data's own `validation` split"}}
    given = {**own, "val_data": "val.csv"}
    assert protocol_of(drawn).startswith("val=0.2 ")
    assert protocol_of(own).startswith("val=own ")
    assert protocol_of(given).startswith("val=val.csv ")
