"""End-to-end searches on tiny models and tiny data (CPU, seconds)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import tiny_components

import autotl
from autotl.errors import ConfigError, UnknownComponentError
from autotl.plugins import load_plugins
from autotl.saved_model import load_model
from autotl.study import search

# test:images is small enough (5 validation rows per class) for folds; these tests are about
# the single split (fold_below=0), the fold tests set it back.
FAST = dict(min_steps=6, max_steps=6, eval_points=2, batch_size=16, image_size=32, prior="none",
            fold_below=0)
STRATEGIES = ["full", "subset", "head-only", "lora"]


@pytest.fixture
def plugins():  # noqa: ANN201
    return load_plugins(extra=[tiny_components])


def _search(plugins, out: Path, **settings):  # noqa: ANN001, ANN202
    settings = {"data": "test:images", "backbone": "test:cnn", "strategies": STRATEGIES,
                "trials": 5, "out": out, "cache_dir": out.parent / "cache", **FAST, **settings}
    return search(plugins=plugins, progress=False, **settings)


def _trials(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_search_writes_every_output_with_the_schema(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rec = _search(plugins, out)
    data = json.loads((out / "recommendation.json").read_text())
    assert set(data["dataset"]) >= {"name", "n_train", "n_val", "n_classes"}
    assert data["dataset"]["n_classes"] == 3
    assert data["dataset"]["n_train"] + data["dataset"]["n_val"] == 72
    assert data["backbone"] == "test:cnn"
    for key in ("recommended", "cheapest_within_tolerance"):
        assert set(data[key]) >= {"strategy", "params", "val_accuracy", "train_seconds",
                                  "trainable_params"}
    assert {s["strategy"] for s in data["per_strategy"]} == set(STRATEGIES)
    assert all(set(s) >= {"strategy", "val_accuracy", "max_val_accuracy", "trial",
                          "n_trials", "n_sampled", "params", "selection"}
               for s in data["per_strategy"])
    assert data["n_trials"] == 5
    assert data["storage"] == f"sqlite:///{out.resolve() / 'study.db'}"
    assert data["study"] == rec.study
    study = optuna.load_study(study_name=rec.study, storage=data["storage"])
    _assert_one_standard_error_rule(study, data["recommended"], data["dataset"]["n_val"], 0.0)
    assert study.user_attrs["selected_trial"] == data["recommended"]["trial"]
    _assert_one_standard_error_rule(study, data["cheapest_within_tolerance"],
                                    data["dataset"]["n_val"], rec.tolerance)
    assert data["selection"] and data["selection"] in (out / "report.md").read_text()
    # The step budget is a stated choice: the report says the rule and what it gave.
    assert "clamp(ceil(16 epochs × training examples / batch 16), 6, 6)" in data["budget"]
    assert "Here: 6 steps per trial." in (out / "report.md").read_text()
    # Where validation came from: drawn from the training rows here.
    assert data["validation"]["source"] == "drawn"
    assert ("drawn: val_fraction 0.2 of each class's training rows"
            in (out / "report.md").read_text())
    assert study.user_attrs["request"]["identity"]["validation"] is None
    rows = _trials(out)
    assert [int(r["number"]) for r in rows] == list(range(5))
    # Every strategy's known-good config runs before the sampler takes over.
    assert {r["strategy"] for r in rows[:4]} == set(STRATEGIES)
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert rec.recommended.strategy in (out / "report.md").read_text()


def _assert_one_standard_error_rule(study, chosen, n_val, tolerance) -> None:  # noqa: ANN001
    """Checked independently of autotl.selection: the chosen trial is within one paired
    standard error (+ tolerance) of the best by value, and no cheaper trial is."""
    import numpy as np

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    top = max(done, key=lambda t: t.value)

    def within(t) -> bool:  # noqa: ANN001
        a = np.array([int(c) for c in top.user_attrs["val_correct"]])
        b = np.array([int(c) for c in t.user_attrs["val_correct"]])
        assert len(a) == len(b) == n_val
        d = a - b
        se = 0.0 if not d.any() else np.sqrt(max(d.var(ddof=1), 1 / n_val) / n_val)
        return top.value - t.value <= se + tolerance + 1e-12

    mine = next(t for t in done if t.number == chosen["trial"])
    assert within(mine)
    # Cost is the counted training operations; within 5% of each other they are the same.
    flops = mine.user_attrs["train_flops"]
    cheaper = [t for t in done if t.user_attrs["train_flops"] * 1.05 < flops]
    assert not any(within(t) for t in cheaper)


def test_a_search_leaves_the_users_plot_backend_and_optuna_log_level(  # noqa: ANN001
        plugins, tmp_path: Path, user_globals: dict) -> None:
    import matplotlib

    out = tmp_path / "run"
    _search(plugins, out, trials=2, strategies=["head-only", "full"])
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert matplotlib.get_backend() == user_globals["backend"]
    assert optuna.logging.get_verbosity() == user_globals["optuna_verbosity"]


def test_best_model_reloads_and_predicts(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=4)
    loaded = load_model(out, plugins=plugins)
    assert loaded.manifest["trial"] == rec.recommended.trial
    assert loaded.manifest["strategy"] == rec.recommended.strategy
    assert loaded.manifest["trial"] == rec.recommended.trial
    data = plugins.datasets.get("test:images").load()["train"]
    images = [data[i]["image"] for i in range(0, 72, 6)]
    assert set(loaded.predict(images)) <= {"left", "mid", "right"}
    probs = loaded.predict_proba(images)
    assert probs.shape == (12, 3)


def test_rerun_resumes_without_losing_trials(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    _search(plugins, out, trials=4)
    first = _trials(out)
    rec = _search(plugins, out, trials=2)
    second = _trials(out)
    assert len(second) == 6
    keys = ("number", "state", "strategy", "val_accuracy", "train_seconds", "lr")
    assert [{k: r[k] for k in keys} for r in second[:4]] == [{k: r[k] for k in keys}
                                                             for r in first]
    assert rec.n_trials == 6


def test_ctrl_c_keeps_finished_trials_and_a_rerun_measures_the_interrupted_config(
        plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from autotl.training import Trainer

    run, calls = Trainer.run, []

    def interrupt_the_third(self, plan, **kwargs):  # noqa: ANN001, ANN202
        calls.append((plan, kwargs["seed"]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run(self, plan, **kwargs)

    monkeypatch.setattr(Trainer, "run", interrupt_the_third)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _search(plugins, out, trials=5)
    rows = _trials(out)  # outputs are written on the way out
    assert [r["state"] for r in rows] == ["complete", "complete", "fail"]
    assert "interrupted (Ctrl-C)" in rows[2]["error"]
    interrupted_seed = calls[2][1]
    calls.clear()

    def record(self, plan, **kwargs):  # noqa: ANN001, ANN202
        calls.append((plan, kwargs["seed"]))
        return run(self, plan, **kwargs)

    monkeypatch.setattr(Trainer, "run", record)
    _search(plugins, out, trials=2)  # the requeued config first, then the last known-good
    rows = _trials(out)
    assert len(rows) == 5 and all(r["state"] in ("complete", "pruned") for r in rows[3:])
    study = optuna.load_study(study_name=json.loads(
        (out / "recommendation.json").read_text())["study"], storage=f"sqlite:///{out / 'study.db'}")
    assert study.trials[4].params == study.trials[2].params  # the interrupted config, rerun
    assert study.trials[4].datetime_start < study.trials[3].datetime_start  # and run first
    # ... with the seed it had (a resumed run trains what an uninterrupted one would), where
    # a new trial trains with the study's seed + its number.
    assert interrupted_seed == 2 and calls[0][1] == interrupted_seed
    assert study.trials[4].user_attrs["seed"] == study.trials[2].user_attrs["seed"] == 2
    assert study.trials[3].user_attrs["seed"] == 3


def test_a_trial_left_running_by_a_dead_process_is_failed_and_queued_again(
        plugins, tmp_path: Path,  # noqa: ANN001
        caplog: pytest.LogCaptureFixture) -> None:
    import time

    from autotl.storage import open_storage

    beat = dict(heartbeat_seconds=1, grace_seconds=2)
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=4, **beat)  # every queued known-good config has run
    # A process that started a trial and died: a heartbeat, then silence.
    storage = open_storage(f"sqlite:///{out / 'study.db'}", **beat)
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask() outside optimize()
        orphan = optuna.load_study(study_name=rec.study, storage=storage).ask()
    orphan.set_user_attr("seed", 1234)  # what the dead process's trial recorded as it started
    storage.record_heartbeat(orphan._trial_id)
    time.sleep(3)
    from autotl.training import Trainer

    run, seeds = Trainer.run, []

    def record(self, plan, **kwargs):  # noqa: ANN001, ANN202
        seeds.append(kwargs["seed"])
        return run(self, plan, **kwargs)

    with caplog.at_level("WARNING", logger="autotl"), pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "run", record)
        _search(plugins, out, trials=1, **beat)
    study = optuna.load_study(study_name=rec.study, storage=f"sqlite:///{out / 'study.db'}")
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
    retry = study.trials[-1]
    assert retry.system_attrs.get("failed_trial") == orphan.number
    assert retry.state.is_finished() and retry.state != optuna.trial.TrialState.FAIL
    assert seeds == [1234] and retry.user_attrs["seed"] == 1234  # the killed trial's seed
    assert f"trial {orphan.number} stopped without a result" in caplog.text


def test_a_resumed_search_runs_its_killed_trial_before_the_waiting_queue(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    """A retry is queued behind the known-good configs still waiting; a budget that runs out
    after one trial must spend it on the killed config, not on the next in the queue."""
    import time

    from autotl.storage import open_storage

    beat = dict(heartbeat_seconds=1, grace_seconds=2)
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=1, **beat)  # three known-good configs still waiting
    storage = open_storage(f"sqlite:///{out / 'study.db'}", **beat)
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask() outside optimize()
        orphan = optuna.load_study(study_name=rec.study, storage=storage).ask()
    storage.record_heartbeat(orphan._trial_id)
    waiting = [t.number for t in optuna.load_study(study_name=rec.study, storage=storage)
               .get_trials(states=(optuna.trial.TrialState.WAITING,))]
    assert waiting  # the queue the retry lands behind
    time.sleep(3)
    _search(plugins, out, trials=1, **beat)
    study = optuna.load_study(study_name=rec.study, storage=f"sqlite:///{out / 'study.db'}")
    retry = study.trials[-1]
    assert retry.system_attrs.get("failed_trial") == orphan.number
    assert retry.state.is_finished() and retry.state != optuna.trial.TrialState.FAIL
    # The orphan died before suggesting anything: its queued config is what the retry ran.
    assert retry.params == study.trials[orphan.number].system_attrs["fixed_params"]
    # The one trial this run had was the retry: the known-good queue still waits.
    assert [t.number for t in study.trials
            if t.state == optuna.trial.TrialState.WAITING] == waiting


def test_resume_with_other_settings_is_refused(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    _search(plugins, out, trials=4, study="fixed")
    with pytest.raises(ConfigError, match="other settings.*seed"):
        _search(plugins, out, trials=1, study="fixed", seed=1)


def test_a_study_from_an_older_autotl_resumes_when_new_settings_are_off(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    """Settings an older autotl did not record (``sample_only``, ``validation``) are the
    same experiment at their off value; switched on, they are refused like any change."""
    out = tmp_path / "run"
    _search(plugins, out, trials=1, study="old", n_per_class=4)
    study = optuna.load_study(study_name="old", storage=f"sqlite:///{out / 'study.db'}")
    request = study.user_attrs["request"]
    for key in ("sample_only", "validation"):
        del request["identity"][key]
    study.set_user_attr("request", request)
    _search(plugins, out, trials=1, study="old", n_per_class=4)
    assert len([t for t in study.get_trials() if t.state.is_finished()]) == 2
    with pytest.raises(ConfigError, match="other settings.*sample_only: stored None, now True"):
        _search(plugins, out, trials=1, study="old", n_per_class=4, sample_only=True)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rec = _search(plugins, out, strategies=["test:explode", "head-only"], trials=3)
    rows = _trials(out)
    failed = [r for r in rows if r["state"] == "fail"]
    assert failed and all("this strategy always fails" in r["error"] for r in failed)
    assert any(r["state"] == "complete" for r in rows)
    assert rec.recommended.strategy == "head-only"
    assert "this strategy always fails" in (out / "report.md").read_text()


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:  # noqa: ANN001
        return True


class PrunerPlugin:
    """A plugin object overriding the built-in pruner through autotl_create_pruner."""

    @autotl.hookimpl
    def autotl_create_pruner(self, config):  # noqa: ANN001, ANN201
        return AlwaysPrune()


def test_pruned_trials_are_recorded_as_pruned(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    plugins = load_plugins(extra=[tiny_components, ("pruner", PrunerPlugin())])
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="autotl"):
        _search(plugins, out, trials=2, strategies=["full", "head-only"], eval_points=3)
    rows = _trials(out)
    assert [r["state"] for r in rows] == ["pruned", "pruned"]
    assert all(r["val_accuracy"] != "" for r in rows)
    # The per-trial line must not pass a checkpoint value off as a finished result.
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    assert len(lines) == 2 and all("(pruned at step" in line for line in lines)


def test_trial_finished_hook_sees_every_trial(tmp_path: Path) -> None:
    seen = []

    class Listener:
        @autotl.hookimpl
        def autotl_trial_finished(self, result):  # noqa: ANN001, ANN201
            seen.append((result.number, result.state, result.plan.strategy))

    plugins = load_plugins(extra=[tiny_components, ("listener", Listener())])
    _search(plugins, tmp_path / "run", trials=3, strategies=["test:explode", "head-only"])
    assert {state for _, state, _ in seen} == {"failed", "complete"}
    assert len(seen) == 3


def test_text_search_on_a_tiny_bert(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rec = _search(plugins, out, data="test:texts", backbone="test:bert", trials=4,
                  image_size=None, max_length=16)
    assert rec.dataset["modality"] == "text"
    assert {s["strategy"] for s in rec.per_strategy if s["n_complete"]} == set(STRATEGIES)
    assert load_model(out, plugins=plugins).predict(["computer bug code"])[0] in tiny_components.WORDS


def test_bad_names_fail_before_any_model_is_built(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    built = []
    spec = plugins.backbones.get("test:cnn")
    object.__setattr__(spec, "build", lambda pretrained: built.append(1))
    with pytest.raises(UnknownComponentError, match="Did you mean 'head-only'"):
        _search(plugins, tmp_path / "run", strategies=["head_only"])
    with pytest.raises(UnknownComponentError, match="unknown backbone"):
        _search(plugins, tmp_path / "run", backbone="test:cnnn")
    with pytest.raises(ConfigError, match="takes text input but .* holds image data; pick a backbone that takes image input"):
        _search(plugins, tmp_path / "run", backbone="test:bert")
    assert built == []


def test_a_search_started_from_a_prior_tries_its_suggestions_first(plugins,  # noqa: ANN001
                                                                   tmp_path: Path) -> None:
    record = {"source": "test", "dataset": "toy", "modality": "image", "n_per_class": 19,
              "n_classes": 3, "backbone": "test:cnn", "n_groups": 6, "strategy": "subset",
              "params": {"lr": 0.004, "freeze_depth": 2, "head": "linear",
                         "weight_decay": 0.001},
              "mean_accuracy": 0.9, "best_mean_at_size": 0.9}
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps({"format": 1, "records": [record]}))
    out = tmp_path / "run"
    _search(plugins, out, trials=2, prior=str(prior))
    first = _trials(out)[0]
    assert first["strategy"] == "subset"
    assert float(first["lr"]) == pytest.approx(0.004)
    assert int(first["freeze_depth"]) == 2 and float(first["weight_decay"]) == 0.001
    study = optuna.load_study(study_name=json.loads(
        (out / "recommendation.json").read_text())["study"],
        storage=f"sqlite:///{out.resolve() / 'study.db'}")
    assert study.user_attrs["prior"]["suggestions"][0]["strategy"] == "subset"
    assert first["origin"] == "prior"


def _prior_of(tmp_path: Path, dataset: str) -> Path:
    record = {"source": "test", "dataset": dataset, "modality": "image", "n_per_class": 19,
              "n_classes": 3, "backbone": "test:cnn", "n_groups": 6, "strategy": "subset",
              "params": {"lr": 0.004, "freeze_depth": 2}, "mean_accuracy": 0.9,
              "best_mean_at_size": 0.9}
    prior = tmp_path / f"prior-{dataset.replace(':', '-')}.json"
    prior.write_text(json.dumps({"format": 1, "records": [record]}))
    return prior


def test_a_prior_never_serves_records_of_the_data_being_searched(plugins,  # noqa: ANN001
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=1, prior=str(_prior_of(tmp_path, "test:images")))
    rows = _trials(out)
    assert "prior" not in {r["origin"] for r in rows}  # its only record was left out
    assert rec.prior["used"] == 0 and rec.prior["left_out_own_data"] == 1
    assert "1 records of this dataset left out" in (out / "report.md").read_text()
    # Allowed explicitly, the same record is enqueued first.
    out2 = tmp_path / "run2"
    _search(plugins, out2, trials=1, prior=str(_prior_of(tmp_path, "test:images")),
            prior_own_data=True)
    assert _trials(out2)[0]["origin"] == "prior"


def test_a_prior_of_another_modality_is_said_to_play_no_part(plugins,  # noqa: ANN001
                                                            tmp_path: Path) -> None:
    prior = _prior_of(tmp_path, "some-text")
    data = json.loads(prior.read_text())
    data["records"][0]["modality"] = "text"
    prior.write_text(json.dumps(data))
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=1, prior=str(prior))
    assert "prior" not in {r["origin"] for r in _trials(out)}
    assert rec.prior["used"] == 1 and rec.prior["of_modality"] == 0
    assert ("none is a record of image data, so the prior played no part"
            in (out / "report.md").read_text())


def test_trials_say_where_their_config_came_from(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=6, strategies=["full", "head-only"])
    origins = [r["origin"] for r in _trials(out)]
    assert origins == ["known-good", "known-good", "sampled", "sampled", "sampled", "sampled"]
    assert rec.origins == {"known-good": 2, "sampled": 4}
    sampled = {s["strategy"]: s["n_sampled"] for s in rec.per_strategy}
    assert sum(sampled.values()) == 4
    assert "Where the trials came from: 2 known-good, 4 sampled." in (
        out / "report.md").read_text()


def test_a_rerun_with_other_strategies_or_heads_is_refused_before_any_trial(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    _search(plugins, out, trials=2)
    for change in ({"strategies": ["full", "head-only"]}, {"heads": ["linear"]}):
        with pytest.raises(ConfigError, match=r"another --study name") as info:
            _search(plugins, out, trials=1, **change)
        assert "strategies" in str(info.value) or "heads" in str(info.value)
    assert len(_trials(out)) == 2  # nothing was started


def test_an_error_while_a_trial_is_set_up_lands_in_trials_csv(
        plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import autotl.study

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("the space does not fit")

    monkeypatch.setattr(autotl.study, "suggest_plan", broken)
    out = tmp_path / "run"
    _search(plugins, out, trials=1)
    row = _trials(out)[0]
    assert row["state"] == "fail"
    assert row["error"] == "RuntimeError: the space does not fit"


def test_the_saved_model_is_the_recommended_one_and_predicts_like_its_trial(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rec = _search(plugins, out, trials=6, test_fraction=0.25)
    loaded = load_model(out, plugins=plugins)
    assert loaded.manifest["trial"] == rec.recommended.trial
    assert loaded.manifest["test_accuracy"] == rec.recommended.test_accuracy
    # The reloaded model scores on the test rows exactly what its trial scored.
    from autotl.study import prepare

    prep = prepare(autotl.SearchConfig(data="test:images", test_fraction=0.25), plugins)
    images = [prep.test[i]["image"] for i in range(len(prep.test))]
    labels = prep.test["label"]
    predicted = [loaded.class_names.index(c) for c in loaded.predict(images)]
    accuracy = sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels)
    assert accuracy == pytest.approx(rec.recommended.test_accuracy)


def test_a_model_missing_a_trained_tensor_or_on_other_weights_is_refused(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    from safetensors.torch import load_file, save_file

    from autotl.errors import AutoTLError

    out = tmp_path / "run"
    _search(plugins, out, trials=2, strategies=["full", "head-only"])
    weights = out / "best_model" / "model.safetensors"
    manifest_path = out / "best_model" / "model.json"
    state = load_file(str(weights))
    head = [k for k in state if k.startswith("head.")]
    save_file({k: v for k, v in state.items() if k not in head}, str(weights))
    with pytest.raises(AutoTLError, match="lacks .* tensor"):
        load_model(out, plugins=plugins)
    save_file(state, str(weights))
    manifest = json.loads(manifest_path.read_text())
    manifest["base_weights_digest"] = "0" * 16
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(AutoTLError, match="digest"):
        load_model(out, plugins=plugins)


def test_test_rows_are_held_out_and_never_change_the_choice(plugins,  # noqa: ANN001
                                                            tmp_path: Path) -> None:
    from autotl.study import prepare

    config = autotl.SearchConfig(data="test:images", test_fraction=0.25)
    prep = prepare(config, plugins)
    key = lambda ds: {bytes(ds[i]["image"].tobytes()) for i in range(len(ds))}  # noqa: E731
    assert not key(prep.test) & (key(prep.train) | key(prep.val))
    assert len(prep.test) + len(prep.train) + len(prep.val) == 72
    a = _search(plugins, tmp_path / "a", trials=4, test_fraction=0.25)
    b = _search(plugins, tmp_path / "b", trials=4, test_fraction=0.25, score_test="all")
    assert a.recommended.trial == b.recommended.trial
    rows = _trials(tmp_path / "b")
    assert all(r["test_accuracy"] != "" for r in rows if r["state"] == "complete")
    assert a.recommended.test_accuracy == pytest.approx(b.recommended.test_accuracy)


def test_a_training_budget_in_seconds_stops_new_trials(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    rec = _search(plugins, tmp_path / "run", trials=20, budget_seconds=1e-6)
    assert rec.n_trials == 1


def test_config_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="trials must be at least 1"):
        autotl.SearchConfig(data="x", trials=0)
    with pytest.raises(ConfigError, match="did you mean 'n_per_class'"):
        autotl.SearchConfig.from_mapping({"data": "x", "n_per_clas": 3})
    with pytest.raises(ConfigError, match=r"fold_below must be >= 0 .*fold_below=-1"):
        autotl.SearchConfig(data="x", fold_below=-1)


def test_the_default_pruner_compares_a_trial_with_its_own_strategy_only() -> None:
    from autotl.builtin.optuna_defaults import strategy_median_pruner

    study = optuna.create_study(direction="maximize", pruner=strategy_median_pruner())
    distributions = {"strategy": optuna.distributions.CategoricalDistribution(
        ["full", "head-only"])}
    for strategy, value in [("full", 0.9), ("full", 0.8), ("head-only", 0.5),
                            ("head-only", 0.3)]:
        study.add_trial(optuna.trial.create_trial(
            params={"strategy": strategy}, distributions=distributions, value=value,
            intermediate_values={0: value, 1: value}))

    def pruned(strategy: str, value: float, step: int = 1) -> bool:
        study.enqueue_trial({"strategy": strategy})
        trial = study.ask(distributions)
        assert trial.params["strategy"] == strategy
        trial.report(value, step)
        decision = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return decision

    assert pruned("head-only", 0.45) is False  # above its own strategy's median (0.4)
    assert pruned("head-only", 0.35) is True
    assert pruned("full", 0.80) is True  # below full's median (0.85)
    assert pruned("full", 0.10, step=0) is False  # the first checkpoint is never pruned


# -- applicability: decided once the backbone is built, before anything is enqueued -----------


def test_a_named_strategy_that_does_not_apply_is_an_error_naming_why(tmp_path: Path) -> None:
    import text_only_strategy

    plugins = load_plugins(extra=[tiny_components, text_only_strategy])
    with pytest.raises(ConfigError, match=r"strategy 'test:text-only' does not apply to "
                                          r"backbone test:cnn: it adapts tokenizer embeddings "
                                          r"only\. Leave it out of --strategies"):
        _search(plugins, tmp_path / "run", strategies=["full", "test:text-only"])
    study = optuna.load_study(study_name="test-images-all-test-cnn",
                              storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert study.get_trials() == []  # nothing was enqueued, nothing ran


def test_strategies_from_every_registered_one_leave_out_those_that_do_not_apply(
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import text_only_strategy

    from autotl.config import SearchConfig
    from autotl.study import build_trainer, prepare

    plugins = load_plugins(entry_points=False, extra=[tiny_components, text_only_strategy])
    prep = prepare(SearchConfig(data="test:images", backbone="test:cnn", prior="none",
                                image_size=32, cache=False), plugins)
    assert "test:text-only" in prep.strategies and not prep.strategies_named
    with caplog.at_level(logging.INFO, logger="autotl.study"):
        _, trainer, _ = build_trainer(prep, "cpu")
    assert prep.left_out == {"test:text-only": "it adapts tokenizer embeddings only"}
    assert "test:text-only" not in prep.strategies and "full" in prep.strategies
    assert "test:text-only" not in trainer.strategies
    assert prep.config.strategies == list(prep.strategies)
    assert "leaving out strategy test:text-only: it does not apply to test:cnn (it adapts " \
           "tokenizer embeddings only)" in caplog.text


def test_the_stored_request_records_the_strategies_left_out(tmp_path: Path) -> None:
    import text_only_strategy

    plugins = load_plugins(entry_points=False, extra=[tiny_components, text_only_strategy])
    out = tmp_path / "run"
    rec = _search(plugins, out, strategies=None, heads=["linear"], trials=1)
    study = optuna.load_study(study_name=rec.study, storage=f"sqlite:///{out / 'study.db'}")
    request = study.user_attrs["request"]
    assert request["left_out"] == {"test:text-only": "it adapts tokenizer embeddings only"}
    assert "test:text-only" not in request["identity"]["strategies"]
    assert "full" in request["identity"]["strategies"]


def test_no_applicable_strategy_left_is_an_error() -> None:
    import text_only_strategy

    from autotl.config import SearchConfig
    from autotl.study import Prepared, keep_applicable_strategies
    from autotl.testing import tiny_cnn

    spec = load_plugins(entry_points=False, extra=[text_only_strategy]).strategies.get(
        "test:text-only")
    prep = Prepared(SearchConfig(data="x"), None, None, None, None,
                    strategies={"test:text-only": spec}, heads={}, split_keys={})
    with pytest.raises(ConfigError, match=r"no registered strategy applies to test:cnn "
                                          r"\(test:text-only: it adapts tokenizer"):
        keep_applicable_strategies(prep, tiny_cnn())


def test_a_search_on_three_rows_per_class_scores_trials_over_folds_and_refits_on_all(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    record = {"source": "test", "dataset": "toy", "modality": "image", "n_per_class": 7,
              "n_classes": 3, "backbone": "test:cnn", "n_groups": 6, "strategy": "head-only",
              "params": {"lr": 0.003}, "mean_accuracy": 0.9, "best_mean_at_size": 0.9}
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps({"format": 1, "records": [record]}))
    rec = _search(plugins, out, n_per_class=3, test_fraction=0.25, fold_below=10, trials=2,
                  strategies=["head-only", "full"], min_steps=4, max_steps=4, prior=str(prior),
                  prior_top=0, score_test="all")
    data = json.loads((out / "recommendation.json").read_text())
    # 3 train + 4 validation rows per class, pooled: 21 rows, 2× repeated 5-fold.
    assert data["validation"] == {"mode": "folds", "k": 5, "repeats": 2, "seed": 0, "rows": 21,
                                  "fold_below": 10, "words": data["validation"]["words"]}
    study = optuna.load_study(study_name=rec.study, storage=data["storage"])
    assert study.user_attrs["request"]["identity"]["folds"] == {"k": 5, "repeats": 2, "seed": 0}
    assert set(study.user_attrs["prior_expectations"]) == {"head-only"}
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    for trial in done:
        assert len(trial.user_attrs["val_correct"]) == 42  # every row once per repeat
        assert trial.value == trial.user_attrs["val_correct"].count("1") / 42
        assert len(trial.user_attrs["fold_accuracies"]) == 10
        assert 0 <= trial.user_attrs["test_accuracy"] <= 1  # its refit, scored as it finished
    fold_se = {t.number: t.user_attrs["fold_se"] for t in done}
    assert all(s["val_se"] == fold_se[s["trial"]] for s in data["per_strategy"])
    shares = data["confidence"]["shares"]
    assert set(shares) == {"head-only", "full"} and sum(shares.values()) == pytest.approx(1)
    assert "all 21 rows" in data["final_model"] and "no test row" in data["final_model"]
    report = (out / "report.md").read_text()
    for words in (data["validation"]["words"], data["confidence"]["words"], data["final_model"],
                  "prior's expectation"):
        assert words in report
    # best_model/ is the refit the test split scored: it predicts the test rows just so.
    loaded = load_model(out, plugins=plugins)
    assert loaded.manifest["trial"] == rec.recommended.trial
    from autotl.study import prepare

    prep = prepare(autotl.SearchConfig(data="test:images", test_fraction=0.25), plugins)
    images = [prep.test[i]["image"] for i in range(len(prep.test))]
    predicted = [loaded.class_names.index(c) for c in loaded.predict(images)]
    accuracy = sum(p == y for p, y in zip(predicted, prep.test["label"], strict=True)) / 18
    assert accuracy == pytest.approx(rec.recommended.test_accuracy)


def test_one_row_per_class_gets_the_priors_recommendation_and_says_so(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    data = tmp_path / "three.csv"
    data.write_text("text,label\nthe law of science,law\nfood and love,food\n"
                    "computer program bug,code\n")
    records = [{"source": "test", "dataset": "toy", "modality": "text", "n_per_class": 1,
                "n_classes": 3, "backbone": "test:bert", "strategy": name,
                "params": {"lr": 0.003}, "mean_accuracy": mean, "best_mean_at_size": 0.8}
               for name, mean in (("head-only", 0.8), ("full", 0.5))]
    prior = tmp_path / "prior.json"
    prior.write_text(json.dumps({"format": 1, "records": records}))
    out = tmp_path / "run"
    rec = search(data=str(data), backbone="test:bert", strategies=["full", "head-only"],
                 prior=str(prior), out=out, plugins=plugins, progress=False)
    assert rec.recommended.strategy == "head-only" and rec.n_trials == 0
    assert rec.validation["mode"] == "prior-only" and rec.chosen_by == "the prior alone"
    saved = json.loads((out / "recommendation.json").read_text())
    assert "nothing can be measured" in saved["selection"]
    assert "from the prior alone" in (out / "report.md").read_text()
    assert "use head-only" in rec.summary()
    assert not (out / "best_model").exists() and not (out / "study.db").exists()
    with pytest.raises(ConfigError, match="one row per class.*--prior none"):
        search(data=str(data), backbone="test:bert", prior="none", out=tmp_path / "x",
               plugins=plugins, progress=False)


# -- a validation set the data brings ---------------------------------------------------------


def _text_splits(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """test:texts saved with a `validation` split: the first 4 rows of each class validate,
    the rest train. Returns the folder and the training and validation texts."""
    import datasets

    full = tiny_components._texts()["train"]
    labels = full["label"]
    val_rows = [i for c in range(3) for i in [j for j, y in enumerate(labels) if y == c][:4]]
    train_rows = [i for i in range(len(full)) if i not in set(val_rows)]
    train, val = full.select(train_rows), full.select(val_rows)
    datasets.DatasetDict({"train": train, "validation": val}).save_to_disk(tmp_path / "saved")
    return tmp_path / "saved", train["text"], val["text"]


TEXT = dict(backbone="test:bert", image_size=None, max_length=16, trials=2,
            strategies=["head-only", "full"])


def test_a_saved_validation_split_is_what_the_study_scores_row_for_row(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    from autotl.study import prepare

    saved, train_texts, val_texts = _text_splits(tmp_path)
    prep = prepare(autotl.SearchConfig(data=str(saved), val_fraction=0.5), plugins)
    assert prep.val["text"] == val_texts  # as given, in its order
    assert sorted(prep.train["text"]) == sorted(train_texts)  # every training row, none drawn
    out = tmp_path / "run"
    rec = _search(plugins, out, data=str(saved), fold_below=10, **TEXT)
    data = json.loads((out / "recommendation.json").read_text())
    assert data["dataset"]["n_val"] == 12 and data["dataset"]["n_train"] == 60
    assert data["validation"]["mode"] == "split"  # 4 rows per class < fold_below: no folds
    assert data["validation"]["source"] == "the data's own `validation` split"
    words = "the data's own `validation` split, 12 rows"
    assert words in data["validation"]["words"] and words in (out / "report.md").read_text()
    study = optuna.load_study(study_name=rec.study, storage=data["storage"])
    identity = study.user_attrs["request"]["identity"]
    assert identity["validation"]["source"] == "the data's own `validation` split"
    assert identity["validation"]["rows"] == 12 and identity["folds"] is None
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert len(trial.user_attrs["val_correct"]) == 12  # one outcome per given row


def test_a_small_given_validation_set_is_not_pooled_into_folds_and_says_so(
        plugins, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    from autotl.study import prepare

    saved, _, val_texts = _text_splits(tmp_path)
    with caplog.at_level("INFO", logger="autotl"):
        prep = prepare(autotl.SearchConfig(data=str(saved), fold_below=10, n_per_class=5),
                       plugins)
    assert not prep.folds and prep.pool is None and prep.val["text"] == val_texts
    assert len(prep.train) == 15  # n_per_class still subsamples training
    assert "used as given and trials are not scored over folds" in caplog.text


def _csvs(tmp_path: Path) -> tuple[Path, Path]:
    full = tiny_components._texts()["train"]
    names = list(tiny_components.WORDS)
    lines = [f"{t},{names[y]}" for t, y in zip(full["text"], full["label"], strict=True)]
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("text,label\n" + "\n".join(lines[2:-2]) + "\n")
    val.write_text("text,label\n" + "\n".join(lines[:2] + lines[-2:]) + "\n")
    return train, val


def test_val_data_csv_is_scored_as_given_and_a_changed_one_is_refused_on_rerun(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    train, val = _csvs(tmp_path)
    out = tmp_path / "run"
    rec = _search(plugins, out, data=str(train), val_data=str(val), study="fixed", **TEXT)
    data = json.loads((out / "recommendation.json").read_text())
    assert data["dataset"]["n_val"] == 4 and data["dataset"]["n_train"] == 68
    assert f"--val-data {val}, 4 rows" in data["validation"]["words"]
    assert f"--val-data {val}, 4 rows" in (out / "report.md").read_text()
    study = optuna.load_study(study_name=rec.study, storage=data["storage"])
    assert study.user_attrs["request"]["identity"]["validation"]["source"] == "--val-data"
    assert study.user_attrs["request"]["settings"]["val_data"] == str(val)
    _search(plugins, out, data=str(train), val_data=str(val), study="fixed", **{**TEXT,
                                                                              "trials": 1})
    val.write_text(val.read_text().replace(",law\n", ",food\n", 1))  # one label changed
    with pytest.raises(ConfigError, match="other settings.*validation"):
        _search(plugins, out, data=str(train), val_data=str(val), study="fixed", **TEXT)
    with pytest.raises(ConfigError, match="other settings.*validation"):
        _search(plugins, out, data=str(train), study="fixed", **TEXT)  # drawn instead


def test_cached_activations_are_keyed_by_the_validation_set(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    from autotl.study import prepare

    train, val = _csvs(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("".join(val.read_text().splitlines(keepends=True)[:-1]))  # a row less
    keys = [prepare(autotl.SearchConfig(data=str(train), **extra), plugins).split_keys
            for extra in ({}, {"val_data": str(val)}, {"val_data": str(other)})]
    assert len({k["val"] for k in keys}) == 3
    assert len({k["train"] for k in keys}) == 2  # given either way: every training row
    assert keys[0]["test"] == keys[1]["test"] == keys[2]["test"]


def test_val_data_errors_come_before_any_model_is_built(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    from autotl.study import prepare

    train, val = _csvs(tmp_path)
    val.write_text("text,label\ncode bug,code\nsome words,poetry\n")
    with pytest.raises(autotl.errors.DataError, match="label 'poetry'.*classes: code, food, law"):
        prepare(autotl.SearchConfig(data=str(train), val_data=str(val)), plugins)
    saved, _, _ = _text_splits(tmp_path)
    _, val = _csvs(tmp_path)
    with pytest.raises(ConfigError, match="Drop --val-data"):
        prepare(autotl.SearchConfig(data=str(saved), val_data=str(val)), plugins)
    kept = prepare(autotl.SearchConfig(data=str(train), val_data=str(val),
                                       classes=["law", "code"]), plugins)
    assert kept.val["label"] == [1, 1, 0, 0]  # --classes applies to it: code, law here


def test_one_training_row_per_class_with_a_given_validation_set_is_measured(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    from autotl.study import prepare

    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_text("text,label\ncode bug,code\nfood love,food\nlaw and,law\n")
    val.write_text("text,label\nbug data,code\nlife time,food\nscience of,law\n")
    prep = prepare(autotl.SearchConfig(data=str(train), val_data=str(val)), plugins)
    assert not prep.prior_only  # the given rows score trials: no need to ask the prior alone
    assert (len(prep.train), len(prep.val)) == (3, 3)


def test_sample_only_trains_on_the_k_rows_beside_a_given_validation_set(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    from autotl.study import prepare

    train, val = _csvs(tmp_path)
    config = autotl.SearchConfig(data=str(train), val_data=str(val), n_per_class=5)
    prep = prepare(config.replace(sample_only=True), plugins)
    assert len(prep.train) == 15 and len(prep.val) == 4  # all K train; validation as given
    assert not prep.folds
    assert sorted(prep.train["text"]) == sorted(prepare(config, plugins).train["text"])


@pytest.mark.parametrize("fold_below", [0, 10])  # one split; folds (test:images: 5 val/class)
def test_with_pruning_off_trials_validate_at_the_end_only(plugins, tmp_path: Path,  # noqa: ANN001
                                                          fold_below: int) -> None:
    """Checkpoints before the last exist for the pruner: with it off they are not evaluated
    (nothing is reported), with it on every one is."""
    storages = {}
    for prune in (True, False):
        out = tmp_path / f"prune-{prune}"
        _search(plugins, out, strategies=["head-only"], trials=1, prune=prune,
                fold_below=fold_below)
        study = optuna.load_study(study_name=optuna.get_all_study_names(
            f"sqlite:///{out / 'study.db'}")[0], storage=f"sqlite:///{out / 'study.db'}")
        storages[prune] = study.trials[0]
    on, off = storages[True], storages[False]
    assert len(on.user_attrs["history"]) == 2 and len(on.intermediate_values) == 1
    assert len(off.user_attrs["history"]) == 1 and off.intermediate_values == {}
    assert off.user_attrs["history"] == on.user_attrs["history"][-1:]
    assert off.value == on.value and off.user_attrs["val_correct"] == on.user_attrs["val_correct"]
