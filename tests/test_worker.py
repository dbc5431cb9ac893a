"""Many workers on one study: `autotl worker` attaches to a stored study and runs it to its
target, `--workers N` runs N local processes on an embedded journal file, and a worker killed
mid-trial loses nothing. The process tests start real `autotl worker` processes on the built-in
digits data and timm's random `test_efficientnet` (trials of about a second)."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import tiny_components

import autotl
from autotl.errors import ConfigError
from autotl.plugins import load_plugins
from autotl.storage import open_storage
from autotl.study import Session, search
from autotl.worker import (
    STORAGE_ENV,
    config_from_request,
    finished_count,
    open_study_request,
    run_worker,
    write_report,
)

TINY = dict(backbone="test:cnn", data="test:images", image_size=32, min_steps=4, max_steps=4,
            eval_points=1, batch_size=16, prior="none", strategies=["head-only", "lora"])
# Built-in components only: worker processes load the installed plugins, not test modules.
DIGITS = dict(data="digits", backbone="timm:test_efficientnet", pretrained=False,
              image_size=32, n_per_class=10, strategies=["head-only", "lora"], min_steps=16,
              max_steps=16, eval_points=2, batch_size=16, prior="none")
State = optuna.trial.TrialState


@pytest.fixture
def plugins():  # noqa: ANN201
    return load_plugins(extra=[tiny_components])


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}"


def _create(storage: str, study: str, tmp_path: Path, **settings: Any) -> None:
    """What a creator does: `autotl search … --workers 0`."""
    assert search(storage=storage, study=study, workers=0, out=tmp_path / "creator",
                  cache_dir=tmp_path / "cache", progress=False, **settings) is None


# -- attaching, in this process ----------------------------------------------------------------


def test_a_worker_runs_the_stored_request_to_its_target(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    storage = _sqlite(tmp_path)
    _create(storage, "s", tmp_path, plugins=plugins, trials=3, seed=5, **TINY)
    study = optuna.load_study(study_name="s", storage=storage)
    queued = [t for t in study.trials if t.state == State.WAITING]
    assert {t.user_attrs["origin"] for t in queued} == {"known-good"}
    # The request rebuilds the creator's settings; host settings are the worker's own.
    request = open_study_request(storage, "s")
    assert "storage" not in request["settings"] and "out" not in request["settings"]
    config = config_from_request(request, storage=storage, study="s", device="cpu")
    assert (config.data, config.backbone, config.seed, config.strategies, config.min_steps,
            config.image_size) == ("test:images", "test:cnn", 5, ["head-only", "lora"], 4, 32)
    # Attaching queues nothing more (the creator queued the known-good configs once).
    Session(config, plugins=plugins, progress=False, attach=True)
    assert len([t for t in study.trials if t.state == State.WAITING]) == len(queued)

    ran = run_worker(storage, "s", out=tmp_path / "w0", cache_dir=tmp_path / "cache",
                     plugins=plugins, progress=False)
    trials = study.get_trials(deepcopy=False)
    assert ran == 3 and finished_count(trials) == 3
    assert all(t.state == State.COMPLETE for t in trials)
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials} == {str(os.getpid())}
    assert {t.user_attrs["device"] for t in trials} == {"cpu"}
    assert run_worker(storage, "s", out=tmp_path / "w1", plugins=plugins) == 0  # done


def test_workers_draw_with_their_own_sampler_seed(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    seeds: list[int] = []

    class RecordSeed:
        @autotl.hookimpl(tryfirst=True)
        def autotl_create_sampler(self, config):  # noqa: ANN001, ANN201
            seeds.append(config.seed)
            return optuna.samplers.RandomSampler(seed=config.seed)

    recording = load_plugins(extra=[tiny_components, RecordSeed()])
    storage = _sqlite(tmp_path)
    _create(storage, "s", tmp_path, plugins=recording, trials=2, seed=7, **TINY)
    config = config_from_request(open_study_request(storage, "s"), storage=storage, study="s")
    for index in (0, 1, 2):
        Session(config, plugins=recording, progress=False, attach=True, worker_index=index)
    assert seeds == [7, 7, 8, 9]  # the creator, then workers 0, 1 and 2


def test_a_worker_refuses_other_data(plugins, tmp_path: Path) -> None:  # noqa: ANN001
    def table(name: str, flip: bool) -> Path:
        path = tmp_path / name
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for i in range(30):
                writer.writerow([f"review number {i} {'!' if flip and i == 0 else ''}",
                                 ["good", "bad", "meh"][i % 3]])
        return path

    storage = _sqlite(tmp_path)
    _create(storage, "texts", tmp_path, plugins=plugins, data=str(table("a.csv", False)),
            backbone="test:bert", max_length=16, trials=1, min_steps=2, max_steps=2,
            eval_points=1, prior="none", strategies=["head-only"])
    with pytest.raises(ConfigError, match=r"is not the data study 'texts' was created with "
                                          r"\(fingerprint \w+, the study's \w+.*a\.csv"):
        run_worker(storage, "texts", data=str(table("b.csv", True)), plugins=plugins,
                   out=tmp_path / "w")


def test_joining_a_missing_study_says_how_to_create_it(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    storage = _sqlite(tmp_path)
    _create(storage, "there", tmp_path, plugins=plugins, trials=1, **TINY)
    with pytest.raises(ConfigError, match=r"no study 'missing' in .*\(studies there: there\)"
                                          r".*--workers 0"):
        run_worker(storage, "missing", plugins=plugins)



def test_report_trial_puts_a_ties_best_estimate_in_best_model(
        plugins, tmp_path: Path) -> None:  # noqa: ANN001
    storage, out = _sqlite(tmp_path), tmp_path / "run"
    search(storage=storage, study="s", trials=2, out=out, cache_dir=tmp_path / "cache",
           progress=False, plugins=plugins, **TINY)  # fold-scored: 72 rows, at chance
    study = optuna.load_study(study_name="s", storage=storage)
    real = {t.params["strategy"]: t for t in study.trials}
    n = len(real["lora"].user_attrs["val_correct"])

    def add(strategy: str, wrong: set[int], seconds: float) -> None:
        """A completed trial of ``strategy``'s config, scored wrong on rows ``wrong`` only."""
        correct = "".join("0" if i in wrong else "1" for i in range(n))
        source = real[strategy]
        study.add_trial(optuna.trial.create_trial(
            params=source.params, distributions=source.distributions,
            value=correct.count("1") / n,
            user_attrs={"val_correct": correct, "train_seconds": seconds, "origin": "test",
                        "trainable_params": source.user_attrs["trainable_params"]}))

    add("lora", {0}, seconds=100.0)  # trial 2: the best estimate, slow to train
    add("head-only", {1, 2}, seconds=1.0)  # trial 3: one row lower, inside the noise, cheap
    rec = write_report(storage, "s", out=out, plugins=plugins, device="cpu")
    assert (rec.recommended.trial, rec.best_estimate.trial) == (3, 2)
    assert "The tie goes to the cheapest, trial 3 (head-only)" in rec.selection
    assert (f"`autotl report --storage '{storage}' --study 's' --out '{out}' --trial 2` "
            "rebuilds best_model/ from it") in rec.summary()
    assert json.loads((out / "best_model" / "model.json").read_text())["trial"] == 3

    rec = write_report(storage, "s", out=out, plugins=plugins, device="cpu", trial=2)
    manifest = json.loads((out / "best_model" / "model.json").read_text())
    assert (manifest["trial"], manifest["strategy"], manifest["chosen_by"]) == (2, "lora", "user")
    stored = json.loads((out / "recommendation.json").read_text())
    assert (stored["recommended"]["trial"], stored["user_choice"]["trial"]) == (3, 2)
    assert study.user_attrs["selected_trial"] == 3  # what the rule chose, for leaderboards
    assert "best_model/ holds trial 2 as asked with --trial 2, not the recommended trial 3: " \
        "lora" in rec.summary()
    assert rec.final_model.startswith(f"best_model/ is trial 2's config retrained on all {n} rows")
    assert "rebuilds best_model/" not in rec.summary()


def test_report_trial_refuses_a_trial_without_a_model_before_loading_anything(
        plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    storage = _sqlite(tmp_path)
    _create(storage, "s", tmp_path, plugins=plugins, trials=2, **TINY)  # trials queued, none run

    def no_session(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the backbone and data were loaded before the refusal")

    monkeypatch.setattr("autotl.study.Session", no_session)
    with pytest.raises(ConfigError, match=r"--trial 9: study 's' has no trial 9\. Pick a "
                                          r"completed trial \(number, strategy, score\): none"):
        write_report(storage, "s", trial=9, plugins=plugins)
    with pytest.raises(ConfigError, match=r"--trial 0: trial 0 of study 's' is waiting, so it "
                                          r"has no finished model"):
        write_report(storage, "s", trial=0, plugins=plugins)

# -- real processes --------------------------------------------------------------------------------


def _worker_main(storage: str, study: str, index: int, tmp_path: Path) -> None:
    os.environ[STORAGE_ENV] = storage
    run_worker(storage, study, index=index, out=tmp_path / "out", device="cpu",
               cache_dir=tmp_path / "cache", progress=False)


def _start_worker(storage: str, study: str, index: int, tmp_path: Path) -> Any:
    """A worker process, forked from this one: the same code as `autotl worker` without the
    seconds it takes a fresh interpreter to import torch (the CLI itself runs in
    test_workers_2_on_the_embedded_storage)."""
    import multiprocessing

    process = multiprocessing.get_context("fork").Process(
        target=_worker_main, args=(storage, study, index, tmp_path))
    process.start()
    return process


def _wait(processes: list[Any], timeout: float = 240) -> None:
    for p in processes:
        p.join(timeout)
        if p.exitcode is None:
            p.kill()
        assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"


def _assert_each_config_ran_once(trials: list[Any]) -> None:
    """Queued configs (known-good) ran exactly once, and no two trials share a config
    except a retry and the trial it retries."""
    seen: dict[str, int] = {}
    for t in trials:
        if t.state == State.FAIL and "error" not in t.user_attrs:
            continue  # failed by the heartbeat; its retry holds the config
        key = json.dumps(t.params, sort_keys=True)
        assert key not in seen, f"trials {seen[key]} and {t.number} ran the same config"
        seen[key] = t.number


@pytest.mark.postgres
def test_three_workers_on_one_postgres_study_finish_its_trials(
        postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # One artifact folder for every host: the report finds the workers' trained tensors.
    _create(postgres_url, "three", tmp_path, trials=6, artifacts=tmp_path / "shared", **DIGITS)
    workers = [_start_worker(postgres_url, "three", i, tmp_path) for i in range(3)]
    _wait(workers)
    study = optuna.load_study(study_name="three", storage=open_storage(postgres_url))
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if not t.state.is_finished()]  # none running or queued
    assert 6 <= finished_count(trials) <= 6 + 3  # at most one extra per worker
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)  # none lost
    _assert_each_config_ran_once(trials)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2
    # The outputs, once, from the stored study.
    out = tmp_path / "report"
    with caplog.at_level(logging.INFO, logger="autotl"):
        rec = write_report(postgres_url, "three", out=out, device="cpu")
    assert "training it again" not in caplog.text
    data = json.loads((out / "recommendation.json").read_text())
    assert data["n_trials"] == len(trials) == rec.n_trials
    assert (out / "best_model" / "model.json").is_file()


def test_workers_2_on_the_embedded_storage(tmp_path: Path) -> None:
    out = tmp_path / "run"
    rec = search(trials=4, workers=2, out=out, cache_dir=tmp_path / "cache", progress=False,
                 **DIGITS)
    assert rec is not None and rec.recommended is not None
    assert (out / "study.journal").is_file() and not (out / "study.db").exists()
    study = optuna.load_study(study_name=rec.study, storage=open_storage(rec.storage))
    trials = study.get_trials(deepcopy=False)
    assert 4 <= finished_count(trials) <= 4 + 2
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
    _assert_each_config_ran_once(trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(trials) and {r["worker"] for r in rows} == {
        t.user_attrs["worker"] for t in trials}
    assert (out / "best_model" / "model.json").is_file()


@pytest.mark.postgres
def test_a_worker_killed_mid_trial_five_times_loses_no_completed_trial(
        postgres_url: str, tmp_path: Path) -> None:
    # Trials of a few seconds on an idle 2-core machine, so the poller below sees each one
    # running (a retry of well under a second can finish between two polls): 24 outlast five
    # kills, the second of which waits for the first's retry (grace period + a trial start).
    beat = {"heartbeat_seconds": 1, "grace_seconds": 2}
    # LoRA alone: a head-only trial on cached features ends in a blink.
    _create(postgres_url, "kills", tmp_path, trials=24, **{**DIGITS, "min_steps": 120,
                                                            "max_steps": 120,
                                                            "strategies": ["lora"]}, **beat)
    study = optuna.load_study(study_name="kills", storage=open_storage(postgres_url, **beat))
    workers = {i: _start_worker(postgres_url, "kills", i, tmp_path) for i in (0, 1)}
    kills: list[int] = []
    completed: dict[int, float] = {}
    deadline = time.monotonic() + 240
    while len(kills) < 5:
        assert time.monotonic() < deadline, f"only {len(kills)} kills in time"
        trials = study.get_trials(deepcopy=False)
        completed.update({t.number: t.value for t in trials if t.state == State.COMPLETE})
        alive = {p.pid: i for i, p in workers.items() if p.is_alive()}
        assert alive, (f"the study was done after {len(kills)} kills: its trials ran faster "
                       "than the kills; raise the target or the steps of this test")
        for t in trials:
            pid = int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            running_for = (time.time() - t.datetime_start.timestamp()
                           if t.datetime_start else 0)
            # The second kill takes the retry of the first: a config killed twice.
            wanted = len(kills) != 1 or t.system_attrs.get("failed_trial") == kills[0]
            if t.state == State.RUNNING and pid in alive and running_for > 0.2 and wanted:
                os.kill(pid, signal.SIGKILL)
                workers[alive[pid]].join()
                kills.append(t.number)
                workers[alive[pid]] = _start_worker(postgres_url, "kills", alive[pid],
                                                    tmp_path)
                break
        time.sleep(0.1)
    _wait(list(workers.values()))

    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    assert not [t for t in trials if not t.state.is_finished()]
    for number in kills:  # failed by the heartbeat, not by an error of its own, and re-run
        killed = by_number[number]
        assert killed.state == State.FAIL and "error" not in killed.user_attrs
        retries = [t for t in trials if number in t.system_attrs.get("retry_history", [])]
        assert retries, f"trial {number} was not queued again"
    for t in trials:  # every chain of retries ends in a finished run of its config
        if t.state == State.FAIL and "error" not in t.user_attrs:
            chain_end = max((r for r in trials
                             if t.number in r.system_attrs.get("retry_history", [])),
                            key=lambda r: r.number)
            # the same config (a trial killed while its parameters were being drawn queues
            # those it had; the retry draws the rest)
            assert t.params.items() <= chain_end.params.items()
    last_retries = [t for t in trials if t.system_attrs.get("failed_trial") is not None
                    and t.state != State.FAIL]
    assert last_retries and all(t.state in (State.COMPLETE, State.PRUNED)
                                for t in last_retries)
    assert max(len(t.system_attrs.get("retry_history", [])) for t in trials) >= 2
    for number, value in completed.items():  # every completed trial kept, as it was
        assert by_number[number].state == State.COMPLETE and by_number[number].value == value
    assert finished_count(trials) >= 20


def test_a_worker_reads_the_creators_validation_file_from_the_request() -> None:
    request = {"source": "train.csv", "settings": {"val_data": "val.csv"}, "identity": {
        "data": "train.csv", "validation": {"source": "--val-data", "fingerprint": "f" * 16,
                                            "rows": 4}}}
    config = config_from_request(request, study="s")
    assert (config.data, config.val_data) == ("train.csv", "val.csv")


def test_workers_default_to_one_per_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --workers: one per GPU the process sees; on CPU, with a size map or with SQLite
    storage one (what several processes cannot share); a number given is kept."""
    import torch

    from autotl.config import SearchConfig
    from autotl.study import prepare

    plugins = load_plugins(extra=[tiny_components])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)

    def workers(**settings: Any) -> int:
        return prepare(SearchConfig(**{**TINY, **settings}), plugins).config.workers

    assert workers() == 3
    assert workers(device="cuda") == 3
    assert workers(workers=1) == 1 and workers(workers=0) == 0
    assert workers(device="cpu") == 1
    assert workers(storage="sqlite:///x.db") == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert workers() == 1
