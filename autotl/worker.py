"""Many processes on one study: ``autotl worker``, ``autotl search --workers N`` and
``autotl report``.

A worker is ``search()`` minus argument parsing, attached to an existing study: the study
carries its own request (data source and fingerprint, backbone, strategies, budget, seed …),
so ``autotl worker --storage URL --study NAME`` needs no other flags. Optuna's storage is the
only coordinator: a worker asks it for the next trial (queued ones first), trains it, and
stops once the study holds the number of finished trials its creator asked for (at most one
extra per worker) or the creator's deadline passes. A worker that dies mid-trial stops
sending heartbeats; after the grace period the next worker to start a trial fails it and
queues its config again (:func:`autotl.storage.requeue_stale_trial`).

Only the creator enqueues the prior's and the known-good configs; each worker's sampler is
seeded with ``seed + index`` so random start-up draws differ. What runs once after the trials
(test scoring, ``best_model/``, the reports) runs in the driver or in ``autotl report``,
never in a worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from autotl.config import SearchConfig
from autotl.errors import ConfigError
from autotl.storage import mask_url

log = logging.getLogger(__name__)

RUN_ATTR = "run"  # study user attr: what the creator asked for (target, deadline, weights)
STORAGE_ENV = "AUTOTL_STORAGE"  # the storage URL, kept off command lines (`ps` shows those)
# Settings that belong to the host a process runs on, not to the study.
HOST_SETTINGS = ("out", "cache_dir", "device", "storage", "study", "workers", "num_workers",
                 "cache_max_bytes")
POLL_SECONDS = 1.0


# -- the study's request, read back ------------------------------------------------------------


def open_study_request(storage: str, study_name: str) -> dict[str, Any]:
    """The request stored in ``study_name``; clear errors for a missing study or request."""
    return study_request(open_study(storage, study_name), storage)


def open_study(storage: str, study_name: str) -> Any:
    """The Optuna study ``study_name``; a clear error when the storage has no such study."""
    import optuna

    from autotl.storage import open_storage
    from autotl.study import _quiet_optuna

    opened = open_storage(storage)
    with _quiet_optuna():
        names = optuna.study.get_all_study_names(opened)
    if study_name not in names:
        shown = ", ".join(sorted(names)[:10]) or "none"
        raise ConfigError(
            f"no study {study_name!r} in {mask_url(storage)} (studies there: {shown}). Create "
            f"it first with `autotl search DATA --storage URL --study {study_name} "
            "--workers 0` (or any `autotl search` with that storage and study name).")
    with _quiet_optuna():
        return optuna.load_study(study_name=study_name, storage=opened)


def study_request(study: Any, storage: str) -> dict[str, Any]:
    """The request stored in ``study``; a clear error when it holds none."""
    study_name = study.study_name
    request = study.user_attrs.get("request")
    if not request:
        raise ConfigError(
            f"study {study_name!r} in {mask_url(storage)} holds no stored request (it was "
            "created by an older autotl or by hand), so a worker cannot know what to train; "
            "start a new study with `autotl search`.")
    return request


def config_from_request(request: dict[str, Any], **host: Any) -> SearchConfig:
    """The SearchConfig a study was created with, plus this host's own settings (``out``,
    ``cache_dir``, ``device``, ``storage``, ``study``; ``data`` where the same data lives at
    another path here)."""
    identity, settings = request["identity"], request.get("settings", {})
    values = dict(settings)
    for key in ("backbone", "n_per_class", "sample_only", "val_fraction", "test_fraction", "seed",
                "image_size", "pretrained", "classes", "max_length", "augment", "strategies",
                "heads"):
        if key in identity:
            values[key] = identity[key]
    if "split_seed" in identity:
        values["split_seed"] = identity["split_seed"]
    budget = identity.get("budget", [])
    for key, value in zip(("batch_size", "epochs", "min_steps", "max_steps", "eval_points"),
                          budget, strict=False):
        values[key] = value
    values["data"] = request.get("source") or identity.get("data")
    values.update({k: v for k, v in host.items() if v is not None})
    values.update(workers=1, sizes=None)
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    dropped = sorted(set(values) - known)
    if dropped:  # settings of a newer autotl; this one cannot honour them
        log.warning("ignoring settings this autotl does not know: %s", ", ".join(dropped))
    return SearchConfig.from_mapping({k: v for k, v in values.items() if k in known},
                                     source="the study's stored request")


# -- how far the study is ----------------------------------------------------------------------


def finished_count(trials: list[Any]) -> int:
    """Trials that will not run again: complete, pruned, or failed without being queued
    again (a trial failed by the heartbeat and retried is counted once, by its retry)."""
    import optuna

    state = optuna.trial.TrialState
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    retried |= {t.user_attrs["requeued_from"] for t in trials if "requeued_from" in t.user_attrs}
    return sum(1 for t in trials if t.state in (state.COMPLETE, state.PRUNED)
               or (t.state == state.FAIL and t.number not in retried))


def is_done(study: Any, run: dict[str, Any]) -> bool:
    """Whether the study holds the trials its creator asked for (and no retry is waiting) or
    its deadline passed."""
    import optuna

    if run.get("deadline") is not None and time.time() >= run["deadline"]:
        return True
    trials = study.get_trials(deepcopy=False)
    waiting_retry = any(t.state == optuna.trial.TrialState.WAITING
                        and "failed_trial" in t.system_attrs for t in trials)
    return finished_count(trials) >= run["target"] and not waiting_retry


def record_run(study: Any, config: SearchConfig, weights_digest: str) -> dict[str, Any]:
    """What the creator asks of the workers: ``config.trials`` more finished trials, by
    ``config.timeout`` from now, from the weights with this digest."""
    run = {
        "target": finished_count(study.get_trials(deepcopy=False)) + config.trials,
        "deadline": time.time() + config.timeout if config.timeout else None,
        "weights_digest": weights_digest,
    }
    study.set_user_attr(RUN_ATTR, run)
    return run


# -- one worker ----------------------------------------------------------------------------------


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(storage: str, study_name: str, *, data: str | None = None,
               out: Path | None = None, cache_dir: Path | None = None,
               device: str | None = None, index: int = 0, plugins: Any = None,
               progress: bool | None = None, artifacts: Path | None = None) -> int:
    """Attach to ``study_name`` and run its trials until it is done; returns the number of
    trials this worker ran."""
    from autotl.study import Session

    request = open_study_request(storage, study_name)
    config = config_from_request(request, data=data, storage=storage, study=study_name,
                                 out=out, cache_dir=cache_dir, device=device,
                                 artifacts=artifacts)
    session = Session(config, plugins=plugins, progress=progress, attach=True,
                      worker_index=index)
    return work(session)


def work(session: Any) -> int:
    """Run the attached session's trials until the study is done."""
    study = session.study
    run = study.user_attrs.get(RUN_ATTR)
    if not run:
        raise ConfigError(f"study {study.study_name!r} has no run record (target trials); "
                          "it was not created by `autotl search`.")
    digest = session.trainer._digest_weights()
    if run.get("weights_digest") and run["weights_digest"] != digest:
        raise ConfigError(
            f"this worker's {session.backbone.name} weights differ from those the study "
            f"{study.study_name!r} was created with (digest {digest}, study "
            f"{run['weights_digest']}); install the same weights (the same plugin and "
            "weights package versions) on every host.")
    inner = session.objective()
    ran = 0

    def objective(trial: Any) -> float:
        nonlocal ran
        ran += 1
        trial.set_user_attr("worker", worker_id())
        return inner(trial)

    def stop_when_done(study: Any, trial: Any) -> None:
        if is_done(study, run):
            study.stop()

    if is_done(study, run):
        log.info("study %s is already done; nothing to run", study.study_name)
        return 0
    timeout = None if run.get("deadline") is None else max(1e-3, run["deadline"] - time.time())
    log.info("worker %s on study %s: running trials until %d are finished", worker_id(),
             study.study_name, run["target"])
    while True:
        session.optimize(objective=objective, n_trials=None, timeout=timeout,
                         callbacks=[stop_when_done])
        # Target reached, but a trial still RUNNING may belong to a dead process: stay until
        # each one finishes or its heartbeat goes stale and it is queued again (then run it),
        # so the last workers never leave a killed trial behind.
        if not _retry_left_behind(study, run, session.config.grace_seconds):
            return ran
        timeout = (None if run.get("deadline") is None
                   else max(1e-3, run["deadline"] - time.time()))


def _retry_left_behind(study: Any, run: dict[str, Any], grace_seconds: float) -> bool:
    """Wait while other trials are RUNNING; True once a dead one has been queued again."""
    import optuna

    state = optuna.trial.TrialState
    while True:
        if run.get("deadline") is not None and time.time() >= run["deadline"]:
            return False
        optuna.storages.fail_stale_trials(study)  # queues stale trials again (heartbeat)
        trials = study.get_trials(deepcopy=False)
        if any(t.state == state.WAITING and "failed_trial" in t.system_attrs for t in trials):
            return True
        if not any(t.state == state.RUNNING for t in trials):
            return False
        time.sleep(min(1.0, max(0.1, grace_seconds / 4)))


# -- several local workers -------------------------------------------------------------------------


def worker_environments(n: int, device: str) -> list[dict[str, str]]:
    """Each local worker's environment: one visible GPU each (round robin over those this
    process sees), or on CPU an equal share of the cores as torch threads (unless
    ``OMP_NUM_THREADS`` is set: then that, for each)."""
    env = dict(os.environ)
    gpus: list[str] = []
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            gpus = ([g.strip() for g in visible.split(",") if g.strip()] if visible
                    else [str(i) for i in range(torch.cuda.device_count())])
    threads = max(1, (os.cpu_count() or 1) // n)
    envs = []
    for i in range(n):
        own = dict(env)
        if gpus:
            own["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        elif "OMP_NUM_THREADS" not in env:
            own["OMP_NUM_THREADS"] = str(threads)
        envs.append(own)
    return envs


def run_local_workers(session: Any) -> None:
    """``--workers N``: start N ``autotl worker`` processes on this machine against the
    session's study, show one progress bar for all of them, and wait. Ctrl-C reaches the
    workers too; each records what it finished and queues the interrupted config again."""
    config, study = session.config, session.study
    n = config.workers
    if n == 0:
        log.info("study %s is ready in %s; start workers with `autotl worker --storage URL "
                 "--study %s` (the URL may also come from $%s)", study.study_name,
                 mask_url(config.storage), study.study_name, STORAGE_ENV)
        return
    logs = Path(config.out) / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for i, env in enumerate(worker_environments(n, config.device)):
        env[STORAGE_ENV] = str(config.storage)
        command = [sys.executable, "-m", "autotl", "worker", "--study", str(config.study),
                   "--index", str(i), "--out", str(config.out), "--device", config.device,
                   "--data", str(config.data)]
        if config.cache_dir:
            command += ["--cache-dir", str(config.cache_dir)]
        with open(logs / f"worker-{i}.log", "w") as log_file:
            processes.append(subprocess.Popen(command, env=env, stdout=log_file,
                                              stderr=subprocess.STDOUT))
    log.info("started %d workers on study %s (logs in %s)", n, study.study_name, logs)
    bar = session.progress_bar()
    seen: set[int] = set()
    try:
        while True:
            running = [p for p in processes if p.poll() is None]
            for trial in study.get_trials(deepcopy=False):
                if trial.state.is_finished() and trial.number not in seen:
                    seen.add(trial.number)
                    bar.callback(study, trial)
            if not running:
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        session.interrupted = True
        for p in processes:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    finally:
        bar.close()
    failed = [(i, p.returncode) for i, p in enumerate(processes) if p.returncode not in (0, None)]
    for i, code in failed:
        tail = (logs / f"worker-{i}.log").read_text(errors="replace").strip().splitlines()[-5:]
        log.warning("worker %d exited with %s; last lines of %s:\n%s", i, code,
                    logs / f"worker-{i}.log", "\n".join(tail))
    if failed and len(failed) == len(processes) and not session.interrupted:
        raise ConfigError(f"all {n} workers failed; see the logs in {logs}.")


# -- outputs from any host ---------------------------------------------------------------------


def write_report(storage: str, study_name: str, *, out: Path | None = None,
                 data: str | None = None, device: str | None = None,
                 cache_dir: Path | None = None, plugins: Any = None,
                 artifacts: Path | None = None, trial: int | None = None) -> Any:
    """``autotl report``: the recommendation and every report file from a stored study (the
    steps that run once after the trials); returns the Recommendation. ``trial``: a
    completed trial to put in ``best_model/`` instead of the recommended one."""
    from autotl.study import Session

    study = open_study(storage, study_name)
    request = study_request(study, storage)
    if trial is not None:
        check_completed_trial(study, trial)
    config = config_from_request(request, data=data, storage=storage, study=study_name,
                                 out=out, device=device, cache_dir=cache_dir,
                                 artifacts=artifacts)
    session = Session(config, plugins=plugins, progress=False, attach=True)
    return session.finish(trial=trial)


def check_completed_trial(study: Any, number: int) -> None:
    """Refuse, before any model loads, a ``--trial`` that names no completed trial."""
    import optuna

    study_name = study.study_name
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    shown = ", ".join(f"{t.number} ({t.params.get('strategy', '?')}, {t.value:.3f})"
                      for t in complete[:20]) or "none"
    found = next((t for t in trials if t.number == number), None)
    if found is None:
        problem = f"study {study_name!r} has no trial {number}"
    elif found.state != optuna.trial.TrialState.COMPLETE:
        problem = (f"trial {number} of study {study_name!r} is {found.state.name.lower()}, "
                   "so it has no finished model")
    else:
        return
    raise ConfigError(
        f"--trial {number}: {problem}. Pick a completed trial (number, strategy, score): "
        f"{shown}; trials.csv in the search's output folder lists every trial.")

