from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autotl.errors import ConfigError
from autotl.prior import (
    Suggestion,
    build_prior,
    load_prior,
    logme,
    recommend,
    records_from_size_map,
    trial_params,
)


def _record(strategy: str, n_per_class: int, mean: float, best: float, **extra):  # noqa: ANN003, ANN202
    return {"source": "test", "dataset": "toy", "modality": "image",
            "n_per_class": n_per_class, "n_classes": 10, "backbone": "test:cnn",
            "backbone_params": 100_000, "n_groups": 6, "strategy": strategy,
            "params": {"lr": 0.003, "head": "linear", "weight_decay": 1e-4, **extra},
            "mean_accuracy": mean, "best_mean_at_size": best}


@pytest.fixture
def prior_file(tmp_path: Path) -> Path:
    """Head-only wins with little data, full with lots, subset in between."""
    records = [
        _record("head-only", 5, 0.70, 0.70), _record("full", 5, 0.55, 0.70),
        _record("subset", 5, 0.62, 0.70, freeze_depth=3),
        _record("head-only", 500, 0.86, 0.91), _record("full", 500, 0.91, 0.91),
        _record("subset", 500, 0.90, 0.91, freeze_depth=3),
    ]
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"format": 1, "records": records}))
    return path


def test_recommend_ranks_by_the_nearest_sizes(prior_file: Path) -> None:
    small = recommend("image", 4, 10, prior=prior_file)
    assert [s.strategy for s in small] == ["head-only", "subset", "full"]
    large = recommend("image", 800, 10, prior=prior_file)
    assert large[0].strategy == "full"
    assert large[0].evidence[0]["n_per_class"] == 500
    assert all(0 < s.score <= 1 for s in small + large)


def test_recommend_filters_modality_and_strategies(prior_file: Path) -> None:
    assert recommend("text", 20, 10, prior=prior_file) == []
    only = recommend("image", 5, 10, prior=prior_file, strategies=["full", "subset"], top=1)
    assert [s.strategy for s in only] == ["subset"]


def test_bad_prior_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_prior(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "records": [{"dataset": "x"}]}))
    with pytest.raises(ConfigError, match="record 0 lacks"):
        load_prior(bad)
    with pytest.raises(ConfigError, match="modality"):
        recommend("audio", 5, 10, prior=[])


def test_shipped_prior_loads() -> None:
    records = load_prior("default")
    assert isinstance(records, list)
    assert all(r["modality"] in ("image", "text") for r in records)


def test_shipped_prior_is_what_make_prior_builds_from_the_checked_in_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows added under benchmarks/results without `make prior` (or a prior edited by hand)
    would ship a prior that no checked-in measurement backs."""
    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text()
    block = makefile.split("PRIOR_ROWS :=", 1)[1].split("\n\n", 1)[0]
    rows = [word for word in block.replace("\\", " ").split() if word.endswith(".jsonl")]
    assert rows and all((root / r).is_file() for r in rows), rows
    monkeypatch.chdir(root)  # records name their sources as make passes them: relative paths
    assert build_prior(rows)["records"] == load_prior("default")


def test_trial_params_port_freeze_depth_and_clip_lr() -> None:
    suggestion = Suggestion(strategy="subset", params={
        "lr": 0.5, "freeze_depth": 3, "freeze_fraction": 0.5, "head": "mlp", "mlp.hidden": 256,
        "weight_decay": 1e-4}, score=1.0, support=1.0)
    params = trial_params(suggestion, n_groups=8, lr_range=(1e-5, 1e-2), heads=["linear"])
    assert params == {"strategy": "subset", "head": "linear", "subset.lr": 1e-2,
                      "subset.freeze_depth": 4, "weight_decay": 1e-4}


def test_logme_prefers_features_that_fit_the_labels() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    informative = np.eye(4)[labels] * 3 + rng.normal(size=(200, 4)) * 0.5
    informative = np.hstack([informative, rng.normal(size=(200, 12))])
    noise = rng.normal(size=(200, 16))
    assert logme(informative, labels) > logme(noise, labels) + 0.1


def test_records_from_a_size_map() -> None:
    size_map = {"dataset": "toy", "modality": "image", "n_classes": 3, "backbone": "b",
                "backbone_params": 10, "sizes": [
                    {"n_per_class": None, "n_train": 30, "n_groups": 4, "logme": 0.1,
                     "best": {"mean": 0.9},
                     "per_strategy": [{"strategy": "full", "params": {"lr": 1e-3},
                                       "mean": 0.9, "std": 0.01, "seeds": 3,
                                       "train_seconds": 1.0, "trainable_params": 5}]}]}
    (record,) = records_from_size_map(size_map, source="unit")
    assert record["n_per_class"] == 10 and record["best_mean_at_size"] == 0.9
    assert record["logme"] == 0.1 and record["source"] == "unit"


def test_describe_problem_reads_size_and_logme_from_data(tmp_path: Path) -> None:
    import tiny_components

    from autotl.config import SearchConfig
    from autotl.plugins import load_plugins
    from autotl.study import describe_problem

    plugins = load_plugins(extra=[tiny_components])
    config = SearchConfig(data="test:images", backbone="test:cnn", image_size=32,
                          n_per_class=10, cache_dir=tmp_path / "cache", prior="none")
    problem = describe_problem(config, plugins)
    assert problem["modality"] == "image" and problem["n_classes"] == 3
    assert problem["n_per_class"] == 10 and problem["backbone"] == "test:cnn"
    assert isinstance(problem["logme"], float)


def test_recommend_command(prior_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autotl.cli import main

    assert main(["recommend", "--modality", "image", "--n-per-class", "6", "--n-classes", "10",
                 "--prior", str(prior_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["suggestions"][0]["strategy"] == "head-only"
    assert main(["recommend", "--modality", "image", "--prior", str(prior_file)]) == 2
    assert "--n-per-class, --n-classes" in capsys.readouterr().err


def test_the_prior_says_how_sure_it_is_from_the_spread_and_support_of_its_records(
        tmp_path: Path) -> None:
    import math

    from autotl.prior import TAU

    # Two equally near records for full that disagree (0.6 and 1.0 relative) ...
    records = [_record("full", 5, 0.60, 1.0), _record("full", 5, 1.00, 1.0),
               # ... and two for head-only that agree (0.9).
               _record("head-only", 5, 0.90, 1.0), _record("head-only", 5, 0.90, 1.0)]
    by = {s.strategy: s for s in recommend("image", 5, 10, prior=records)}
    w = 1.0  # the same problem (distance 0): each record weighs exp(0)
    # Worked by hand: spread 0.04, n_eff 2, support 2w.
    assert by["full"].score == pytest.approx(0.8)
    assert by["full"].sd == pytest.approx(math.sqrt(0.04 * 1.5 + TAU**2 / (1 + 2 * w)))
    assert by["head-only"].sd == pytest.approx(TAU / math.sqrt(1 + 2 * w))
    assert by["full"].sd > by["head-only"].sd
    # Far records (other sizes) back the same ratio with less support: less sure.
    far = [_record("head-only", 500, 0.90, 1.0), _record("head-only", 500, 0.90, 1.0)]
    assert recommend("image", 5, 10, prior=far)[0].sd > by["head-only"].sd


def _row(method: str, strategy: str, params: dict, seed: int, val: float, test: float,
         **extra: object) -> dict:
    from autotl.bench.results import new_row

    values = dict(task="digits+cnn", dataset="digits", data_fingerprint="fp-digits",
                  n_per_class=5, n_classes=10, modality="image", protocol="p",
                  backbone="test:cnn", backbone_params=1000, n_groups=6, method=method,
                  strategy=strategy, params=params, val_accuracy=val, test_accuracy=test,
                  seed=seed, compute_seconds=4.0, train_seconds=4.0, date="2026-11-29")
    return new_row(**{**values, **extra})


def test_records_from_rows_take_each_strategys_best_config_by_validation() -> None:
    from autotl.prior import records_from_rows

    rows = [
        # subset at depth 2 has the better validation but the worse test accuracy: the
        # record follows validation (the choice) and reports test (the held-out estimate)
        _row("oracle", "subset", {"lr": 0.01, "freeze_depth": 2}, 0, 0.8, 0.6),
        _row("oracle", "subset", {"lr": 0.01, "freeze_depth": 2}, 1, 0.8, 0.7),
        _row("oracle", "subset", {"lr": 0.01, "freeze_depth": 4}, 0, 0.7, 0.9),
        _row("oracle", "head-only", {"lr": 0.1}, 0, 0.6, 0.5),
        _row("autotl", "full", {"lr": 0.001}, 0, 0.9, 0.95),  # not the oracle: left out
        _row("full", "full", {"lr": 0.001}, 0, 0.9, 0.8, task="other", n_per_class=None,
             n_train=200, dataset="other-data", data_fingerprint="fp-other"),
    ]
    records = {(r["dataset"], r["strategy"]): r for r in records_from_rows(rows, "test")}
    assert set(records) == {("digits", "subset"), ("digits", "head-only"),
                            ("other-data", "full")}
    subset = records[("digits", "subset")]
    assert subset["params"] == {"lr": 0.01, "freeze_depth": 2}
    assert subset["mean_accuracy"] == pytest.approx(0.65) and subset["seeds"] == 2
    assert subset["best_mean_at_size"] == pytest.approx(0.65)
    assert subset["data_fingerprint"] == "fp-digits" and subset["n_groups"] == 6
    assert records[("other-data", "full")]["n_per_class"] == 20  # 200 examples / 10 classes
    # the records are a valid prior, and freeze depth ports by fraction to another backbone
    suggestion = recommend("image", 5, 10, prior=list(records.values()),
                           strategies=["subset"])[0]
    assert trial_params(suggestion, n_groups=12, lr_range=(1e-4, 1e-1),
                        heads=["linear"])["subset.freeze_depth"] == 4


def test_prior_build_command_and_leave_out(tmp_path: Path) -> None:
    from autotl.bench.results import write_rows
    from autotl.cli import main
    from autotl.prior import leave_out

    write_rows(tmp_path / "rows.jsonl", [_row("oracle", "full", {"lr": 0.001}, 0, 0.9, 0.8)])
    size_map = {"dataset": "fashion-mnist", "data_fingerprint": "fp-fm", "modality": "image",
                "n_classes": 10, "backbone": "test:cnn", "backbone_params": 1000, "sizes": [
                    {"n_per_class": 5, "n_train": 50, "n_groups": 6, "logme": 0.1,
                     "best": {"mean": 0.7},
                     "per_strategy": [{"strategy": "head-only", "params": {"lr": 0.1},
                                       "mean": 0.7, "std": 0.01, "seeds": 3,
                                       "train_seconds": 1.0, "trainable_params": 10}]}]}
    (tmp_path / "size_map.json").write_text(json.dumps(size_map))
    out = tmp_path / "prior.json"
    assert main(["prior", "build", str(tmp_path / "size_map.json"), str(tmp_path / "rows.jsonl"),
                 "-o", str(out)]) == 0
    records = load_prior(out)
    assert {(r["dataset"], r["data_fingerprint"]) for r in records} == {
        ("fashion-mnist", "fp-fm"), ("digits", "fp-digits")}
    # leave-dataset-out: by fingerprint, or by name for a class subset of the same data
    assert [r["dataset"] for r in leave_out(records, dataset="x", fingerprint="fp-fm")] == [
        "digits"]
    assert [r["dataset"] for r in leave_out(records, dataset="digits", fingerprint="fp-z")] == [
        "fashion-mnist"]
    # a prior file given as a source keeps its records: a prior is extended, not rebuilt
    write_rows(tmp_path / "more.jsonl", [_row("oracle", "lora", {"lr": 0.01}, 0, 0.6, 0.6,
                                              dataset="wordnet", task="wordnet+cnn",
                                              data_fingerprint="fp-wn")])
    extended = build_prior([out, tmp_path / "more.jsonl"])["records"]
    assert extended[:len(records)] == records
    assert [r["dataset"] for r in extended[len(records):]] == ["wordnet"]
    (tmp_path / "not_a_map.json").write_text("{}")
    with pytest.raises(ConfigError, match="is neither a size map .* nor a prior file"):
        build_prior([tmp_path / "not_a_map.json"])
    write_rows(tmp_path / "hand.jsonl", [_row("oracle", "full", {"lr": 0.1}, 0, 0.5, 0.5,
                                              modality=None)])
    with pytest.raises(ConfigError, match="lack \\['modality'\\], which a prior record needs"):
        build_prior([tmp_path / "hand.jsonl"])
