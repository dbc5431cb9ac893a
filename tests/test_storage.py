"""Storage URLs: passwords masked everywhere, an unreachable database named clearly, and a real
PostgreSQL study (marked ``postgres``)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import optuna
import pytest
import tiny_components

from autotl.config import SearchConfig
from autotl.errors import ConfigError, StorageError
from autotl.plugins import load_plugins
from autotl.storage import engine_url, mask_url, open_storage, storage_host


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://ann:s3cret@db.example:5432/autotl",
     "postgresql://ann:***@db.example:5432/autotl"),
    ("postgresql+psycopg://ann:p%40ss@db/autotl?sslmode=require",
     "postgresql+psycopg://ann:***@db/autotl?sslmode=require"),
    ("postgresql://ann@/autotl?host=/run/pg&password=s3cret",
     "postgresql://ann@/autotl?host=/run/pg&password=***"),
    ("mysql://root:a:b:c@10.0.0.1/db", "mysql://root:***@10.0.0.1/db"),
    ("postgresql://ann@db/autotl", "postgresql://ann@db/autotl"),
    ("sqlite:////tmp/run/study.db", "sqlite:////tmp/run/study.db"),
    ("/shared/journal.log", "/shared/journal.log"),
    (None, ""),
])
def test_mask_url_hides_every_password_and_keeps_the_rest(url: str | None, masked: str) -> None:
    assert mask_url(url) == masked


def test_storage_host_names_server_socket_or_file() -> None:
    assert storage_host("postgresql://a:b@db.example:5433/x") == "db.example:5433"
    assert storage_host("postgresql://a@/x?host=/run/pg") == "/run/pg"
    assert storage_host("sqlite:////tmp/x/study.db") == "/tmp/x/study.db"


def test_postgresql_url_uses_the_installed_driver() -> None:
    import importlib.util

    url = engine_url("postgresql://a@db/x")
    if importlib.util.find_spec("psycopg2") is None:
        assert url == "postgresql+psycopg://a@db/x"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"
    assert engine_url("postgresql+psycopg2://a@db/x") == "postgresql+psycopg2://a@db/x"


def test_unreachable_database_is_named_with_the_password_masked() -> None:
    # Port 1 on the loopback refuses at once: nothing listens there.
    url = "postgresql://ann:hunter2@127.0.0.1:1/autotl"
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(url)
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "hunter2" not in message and "ann:***@127.0.0.1:1" in message
    assert "server is running" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert time.monotonic() - start < 30


def test_search_with_an_unreachable_database_stops_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotl.study import search
    from autotl.training import Trainer

    monkeypatch.setattr(Trainer, "__init__", lambda *a, **k: pytest.fail("built a trainer"))
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:1") as info:
        search("test:images", plugins=load_plugins(extra=[tiny_components]),
               backbone="test:cnn", out=tmp_path / "run", prior="none", progress=False,
               storage="postgresql://ann:hunter2@127.0.0.1:1/autotl")
    assert "hunter2" not in str(info.value)


def test_heartbeat_settings_are_validated() -> None:
    assert SearchConfig(data="x", heartbeat_seconds=1, grace_seconds=3).grace_seconds == 3
    with pytest.raises(ConfigError, match="grace_seconds must exceed heartbeat_seconds"):
        SearchConfig(data="x", heartbeat_seconds=5, grace_seconds=5)
    with pytest.raises(ConfigError, match="heartbeat_seconds must be a whole number"):
        SearchConfig(data="x", heartbeat_seconds=0)


def test_heartbeat_settings_reach_the_storage(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_seconds=2,
                           grace_seconds=5)
    assert storage.get_heartbeat_interval() == 2
    assert storage.grace_period == 5


@pytest.mark.postgres
def test_search_on_postgresql_never_writes_the_password(
        postgres_cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    from autotl.study import search

    url = postgres_cluster.url(postgres_cluster.create_database(), password="hunter2")
    out = tmp_path / "run"
    with caplog.at_level(logging.DEBUG):
        rec = search("test:images", plugins=load_plugins(extra=[tiny_components]),
                     backbone="test:cnn", strategies=["head-only", "lora"], trials=2, out=out,
                     cache_dir=tmp_path / "cache", storage=url, prior="none", progress=False,
                     min_steps=4, max_steps=4, eval_points=1, batch_size=16, image_size=32)
    data = json.loads((out / "recommendation.json").read_text())
    assert data["storage"] == mask_url(url) and "***" in data["storage"]
    for name in ("recommendation.json", "trials.csv", "report.md", "report.html"):
        assert "hunter2" not in (out / name).read_text(), name
    assert "hunter2" not in caplog.text and mask_url(url) in caplog.text
    # The trials are in PostgreSQL, not in a local file.
    assert not (out / "study.db").exists()
    study = optuna.load_study(study_name=rec.study, storage=open_storage(url))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_journal_storage_fails_and_requeues_a_silent_trial(tmp_path: Path) -> None:
    from autotl.storage import journal_url

    url = journal_url(tmp_path / "study.journal")
    assert storage_host(url) == str(tmp_path / "study.journal")
    storage = open_storage(url, heartbeat_seconds=1, grace_seconds=2)
    study = optuna.create_study(storage=storage, study_name="s")
    with pytest.warns(UserWarning, match="Heartbeat"):
        orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(orphan._trial_id)  # then its process dies
    alive = open_storage(url, heartbeat_seconds=1, grace_seconds=2)  # another process
    time.sleep(2.5)
    ran = []
    optuna.load_study(study_name="s", storage=alive).optimize(
        lambda t: ran.append(t.suggest_float("x", 0, 1)) or 0.0, n_trials=1)
    trials = optuna.load_study(study_name="s", storage=alive).trials
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert trials[-1].system_attrs["failed_trial"] == orphan.number
    assert ran == [orphan.params["x"]]  # the requeued config ran, not a new one


def _outage(monkeypatch: pytest.MonkeyPatch, after_key: str, raises: int) -> dict[str, int]:
    """The database goes away once a trial stores ``after_key`` a second time: the next
    ``raises`` writes of trial attributes or states fail as a lost connection would."""
    import sqlalchemy.exc

    state = {"seen": 0, "down": 0}

    def flaky(real):  # noqa: ANN001, ANN202
        def call(self, trial_id, *args, **kwargs):  # noqa: ANN001, ANN202
            if (args[:1] or [kwargs.get("key")])[0] == after_key:
                state["seen"] += 1
                if state["seen"] == 2:
                    state["down"] = raises
            if state["down"] > 0:
                state["down"] -= 1
                raise sqlalchemy.exc.OperationalError(
                    "UPDATE trials", {}, Exception("server closed the connection unexpectedly"))
            return real(self, trial_id, *args, **kwargs)
        return call

    storage = optuna.storages.RDBStorage
    monkeypatch.setattr(storage, "set_trial_user_attr", flaky(storage.set_trial_user_attr))
    monkeypatch.setattr(storage, "set_trial_state_values",
                        flaky(storage.set_trial_state_values))
    return state


def test_a_database_lost_mid_study_is_retried_and_the_study_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import autotl.study
    from autotl.study import search

    monkeypatch.setattr(autotl.study, "STORAGE_RETRY_SECONDS", 0.01)
    # the write of the trial's results fails, then the write of its end (Optuna's tell)
    state = _outage(monkeypatch, "history", raises=2)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        rec = search("test:images", plugins=load_plugins(extra=[tiny_components]),
                     backbone="test:cnn", strategies=["head-only"], trials=3, out=out,
                     cache_dir=tmp_path / "cache", prior="none", progress=False,
                     min_steps=4, max_steps=4, eval_points=1, batch_size=16, image_size=32)
    assert state["seen"] >= 2 and state["down"] == 0
    assert "lost the study database on" in caplog.text and "retrying" in caplog.text
    study = optuna.load_study(study_name=rec.study, storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state for t in study.trials]
    # The trial in flight when the database went away is left RUNNING (the heartbeat fails
    # and re-queues it later); the study still finished the three trials asked for.
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.RUNNING) == 1


def test_a_database_gone_for_good_stops_cleanly_keeping_completed_trials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autotl.study
    from autotl.study import search

    monkeypatch.setattr(autotl.study, "STORAGE_RETRY_SECONDS", 0.01)
    _outage(monkeypatch, "history", raises=10_000)
    out = tmp_path / "run"
    with pytest.raises(StorageError, match=r"lost the study database on .*study\.db .* 4 times "
                                           r"in a row.*Every trial it completed is stored"):
        search("test:images", plugins=load_plugins(extra=[tiny_components]),
               backbone="test:cnn", strategies=["head-only"], trials=5, out=out,
               cache_dir=tmp_path / "cache", prior="none", progress=False, study="gone",
               min_steps=4, max_steps=4, eval_points=1, batch_size=16, image_size=32)
    monkeypatch.undo()
    study = optuna.load_study(study_name="gone", storage=f"sqlite:///{out / 'study.db'}")
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert study.trials[0].user_attrs["history"]


def test_a_trial_taken_for_dead_by_another_process_does_not_stop_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A stalled process whose trial another process failed as stale (no heartbeat within
    the grace period) finds its trial finished when it reports: it drops that result and goes
    on with the next trial."""
    from autotl.study import search

    real = optuna.storages.RDBStorage.set_trial_user_attr
    calls = {"n": 0}

    def fail_it_meanwhile(self, trial_id, key, value):  # noqa: ANN001, ANN202
        if key == "history":
            calls["n"] += 1
            if calls["n"] == 1:  # another process fails this trial as stale, just now
                self.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        return real(self, trial_id, key, value)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", fail_it_meanwhile)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        rec = search("test:images", plugins=load_plugins(extra=[tiny_components]),
                     backbone="test:cnn", strategies=["head-only"], trials=2, out=out,
                     cache_dir=tmp_path / "cache", prior="none", progress=False,
                     min_steps=4, max_steps=4, eval_points=1, batch_size=16, image_size=32)
    assert "taken for dead" in caplog.text
    study = optuna.load_study(study_name=rec.study, storage=f"sqlite:///{out / 'study.db'}")
    # The trial taken for dead stays failed (no retry was queued here: the heartbeat's callback
    # would queue one); this process went on to the next trial.
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL,
                                               optuna.trial.TrialState.COMPLETE]
