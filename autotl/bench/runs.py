"""``autotl bench``: a suite's tasks, run as ordinary autotl studies, into result rows.

A benchmark grows no training loop of its own. For each task and size:

- ``oracle``: every config of the suite's grid, each enqueued ``seeds`` times, into one
  ordinary study with pruning off and ``score_test='all'``; its rows are every trial;
- each fixed baseline: its one config enqueued ``seeds`` times, the same way;
- ``autotl``: ``search()`` as users run it, with ``budget_seconds`` = ``budget`` × the oracle's
  training seconds, over the grid's strategies, once per search seed; its row is the trial it
  recommends, with the whole search's training seconds as its compute. Its prior never holds
  records of the task's dataset (left out here, and again by the search itself).

Every run's split seed is the task's (default 0) plus the draw, so within a draw all methods
train on the same rows and are scored on the same test split; only training seeds differ. Under
the suite's ``real`` protocol the searches see only the K rows per class (``sample_only``):
``autotl`` as it is, ``autotl-one-split`` with one validation split carved out of the K (the
search before fold scoring); at one row per class autotl recommends from its prior alone and
that pick is trained on the row of each class, one run per search seed. Each run starts
with a cold activation cache of its own, so its compute counts what it computed. Rows of a
finished run are appended to ``<out>/results.jsonl`` at once; a rerun skips finished runs and
resumes an interrupted study from its storage (``<out>/studies.db``) to what its run asked for:
a grid to every queued config, a search with ``search_trials`` to that many trials (not that
many more, as a user's ``--trials`` adds), a budgeted search to its training seconds.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from autotl.bench.results import (
    environment,
    flat_request,
    protocol_of,
    read_rows_file,
    row_key,
    row_split_seed,
    rows_from_study,
    write_rows,
)
from autotl.bench.suite import (
    AUTOTL,
    AUTOTL_ONE_SPLIT,
    ORACLE,
    SEARCHES,
    Suite,
    Task,
    baseline_params,
    grid_params,
)
from autotl.errors import ConfigError

log = logging.getLogger(__name__)

SEARCH_TRIALS_PER_GRID_TRIAL = 4  # a cap only: the training-seconds budget stops a search


def size_label(size: int | None) -> str:
    return "all" if size is None else str(size)


class Bench:
    """One suite's runs into one output folder."""

    def __init__(self, suite: Suite, out: str | Path, *, budget: float | None = None,
                 device: str = "auto", plugins: Any = None,
                 progress: bool | None = False) -> None:
        from autotl.plugins import load_plugins

        from autotl.config import DEVICES

        if device not in DEVICES:
            raise ConfigError(f"--device must be one of {DEVICES}, but got {device!r}.")
        if budget is not None and not 0 < budget <= 1:
            raise ConfigError(f"--budget must be in (0, 1] (a fraction of the oracle's "
                              f"training seconds), but got {budget}.")
        self.suite = suite
        self.budget = suite.budget if budget is None else budget
        self.out = Path(out)
        self.device = device
        self.plugins = plugins or load_plugins()
        self.progress = progress
        self.prior = suite.prior
        self.results = self.out / "results.jsonl"
        self.storage = f"sqlite:///{(self.out / 'studies.db').resolve()}"
        self.rows: list[dict[str, Any]] = (read_rows_file(self.results)
                                           if self.results.is_file() else [])
        self._environment: dict[str, Any] | None = None

    # -- what is done ------------------------------------------------------------------------

    def finished(self, task: Task, size: int | None, method: str,
                 seed: int | None = None, draw: int = 0) -> list[dict[str, Any]]:
        split_seed = self._split_seed(task, draw)
        return [r for r in self.rows if r["task"] == task.name and r["n_per_class"] == size
                and r["method"] == method and (seed is None or r["seed"] == seed)
                and row_split_seed(r) == split_seed]

    def _split_seed(self, task: Task, draw: int) -> int:
        return int(dict(task.settings).get("split_seed", 0)) + draw

    def check(self) -> None:
        """Every name the suite uses, and every run's order, before anything trains."""
        for task in self.suite.tasks:
            self.plugins.backbones.get(task.backbone)
            for name in self.suite.grid.strategies:
                self.plugins.strategies.get(name)
            for baseline in dict(task.baselines).values():
                if baseline.threshold is None:
                    self.plugins.strategies.get(baseline.strategy)
            self.plugins.heads.get(self.suite.grid.head)
            searches = set(SEARCHES) & set(self.suite.methods)
            if searches and ORACLE not in self.suite.methods and not self.suite.search_trials:
                for size in task.sizes:
                    for draw in self.suite.draw_indices:
                        if not self.finished(task, size, ORACLE, draw=draw):
                            raise ConfigError(
                                f"autotl's budget is {self.budget} × the oracle's training "
                                f"seconds, but {self.results} holds no oracle rows for task "
                                f"{task.name!r} at {size_label(size)} per class (draw {draw}); "
                                "add 'oracle' to --methods.")

    # -- running ----------------------------------------------------------------------------

    def run(self) -> list[dict[str, Any]]:
        """Every unfinished run of the suite; returns the rows of the whole folder."""
        self.check()
        self.out.mkdir(parents=True, exist_ok=True)
        order = [m for m in (ORACLE, *SEARCHES) if m in self.suite.methods]
        order += [m for m in self.suite.methods if m not in order]
        for task in self.suite.tasks:
            for size in task.sizes:
                for draw in self.suite.draw_indices:
                    for method in order:
                        if method == ORACLE:
                            self.run_oracle(task, size, draw)
                        elif method in SEARCHES:
                            for seed in range(self.suite.search_seeds):
                                self.run_search(task, size, seed, draw, method=method)
                        else:
                            self.run_baseline(task, size, method, draw)
        return self.rows

    def fixed_done(self, task: Task, size: int | None, method: str, draw: int = 0) -> bool:
        """Whether a fixed run (the oracle, a baseline) has a row for every config at each of
        the task's seeds; raising the seeds makes a finished run unfinished again."""
        rows = self.finished(task, size, method, draw=draw)
        configs = {json.dumps(r["params"], sort_keys=True) for r in rows}
        return bool(rows) and len(rows) >= len(configs) * self.suite.seeds_of(task)

    def run_oracle(self, task: Task, size: int | None, draw: int = 0) -> None:
        if self.fixed_done(task, size, ORACLE, draw=draw):
            return
        backbone = self._backbone(task)
        strategies = {n: self.plugins.strategies.get(n) for n in self.suite.grid.strategies}
        heads = {self.suite.grid.head: self.plugins.heads.get(self.suite.grid.head)}
        configs = grid_params(self.suite.grid, strategies, heads, backbone)
        self._fixed(task, size, ORACLE, configs, list(strategies), draw)

    def run_baseline(self, task: Task, size: int | None, method: str, draw: int = 0) -> None:
        if self.fixed_done(task, size, method, draw=draw):
            return
        baselines = dict(task.baselines)
        heads = {self.suite.grid.head: self.plugins.heads.get(self.suite.grid.head)}
        per_class = float(size) if size is not None else self._all_per_class(task)
        params = baseline_params(baselines[method], baselines, size, per_class,
                                 self.suite.grid, heads)
        self._fixed(task, size, method, [params], [params["strategy"]], draw)

    def run_search(self, task: Task, size: int | None, seed: int, draw: int = 0, *,
                   method: str = AUTOTL) -> None:
        if self.finished(task, size, method, seed, draw=draw):
            return
        real = self.suite.protocol == "real"
        if method == AUTOTL_ONE_SPLIT and real and size == 1:
            log.info("bench %s: %s at 1 per class: one split of one row per class leaves "
                     "nothing to train or validate on, so the search before fold scoring has "
                     "no answer; no row", self.suite.name, method)
            return
        oracle = self.finished(task, size, ORACLE, draw=draw)
        if not oracle and not self.suite.search_trials:
            raise ConfigError(f"no oracle rows for task {task.name!r} at {size_label(size)} "
                              "per class; the search's budget is a fraction of its seconds.")
        name = f"{task.name}-{size_label(size)}pc{self._draw_label(draw)}-{method}-seed{seed}"
        prior = self._prior_without(task, oracle[0] if oracle else None)
        settings = dict(task.settings)
        run: dict[str, Any] = {"seed": seed, "prior": prior, "score_test": "selected"}
        if self.suite.search_trials:
            run["trials"] = self.suite.search_trials
        else:
            oracle_seconds = sum(r["compute_seconds"] for r in oracle)
            run.update(budget_seconds=self.budget * oracle_seconds,
                       trials=SEARCH_TRIALS_PER_GRID_TRIAL * len(oracle))
        if "strategies" not in settings:
            run["strategies"] = list(self.suite.grid.strategies)
        if real:
            run["sample_only"] = True
        if method == AUTOTL_ONE_SPLIT:
            run["fold_below"] = 0
        if real and size == 1:  # the prior alone decides; its pick trains on the one row
            self._prior_pick(task, size, name, seed, draw, run)
            return
        self._study(task, size, name, {"method": method, "rows": "selected", "seed": seed},
                    run, queue=None, draw=draw)

    def _prior_pick(self, task: Task, size: int, name: str, seed: int, draw: int,
                    run: dict[str, Any]) -> None:
        """At one row per class autotl measures nothing and recommends from its prior (the
        prior without the task's data); that pick trains on the row of each class."""
        from autotl.prior import trial_params
        from autotl.study import prepare, prior_only_recommendation

        config = task.config(size, study=name, out=self.out / "runs" / name,
                             split_seed=self._split_seed(task, draw),
                             **{k: v for k, v in run.items() if k != "score_test"})
        prep = prepare(config, self.plugins)
        pick = prior_only_recommendation(prep).recommended
        if pick is None:
            log.info("bench %s: the prior holds no record for task %s; no autotl row at 1 per "
                     "class", self.suite.name, task.name)
            return
        backbone = self._backbone(task)
        params = trial_params(pick, n_groups=backbone.n_groups,
                              lr_range=self.plugins.strategies.get(pick.strategy).lr_range,
                              heads=[self.suite.grid.head])
        self._study(task, size, name, {"method": AUTOTL, "rows": "each", "seed": seed},
                    {"seed": seed, "trials": 1, "prior": "none", "prune": False,
                     "score_test": "all", "strategies": [pick.strategy],
                     "heads": [self.suite.grid.head]}, queue=[params], draw=draw)

    # -- one study ---------------------------------------------------------------------------

    def _draw_label(self, draw: int) -> str:
        return f"-draw{draw}" if self.suite.draws > 1 else ""

    def _fixed(self, task: Task, size: int | None, method: str, configs: list[dict[str, Any]],
               strategies: list[str], draw: int = 0) -> None:
        """``configs`` × ``seeds`` as one study: nothing sampled, nothing pruned, every trial
        scored on the test split. Under either protocol a fixed config trains on the K rows
        per class (validation, from the rest of the data, chooses nothing here)."""
        name = f"{task.name}-{size_label(size)}pc{self._draw_label(draw)}-{method}"
        queue = [c for _ in range(self.suite.seeds_of(task)) for c in configs]
        run = {"seed": 0, "trials": len(queue), "prior": "none", "prune": False,
               "score_test": "all", "strategies": strategies, "heads": [self.suite.grid.head]}
        self._study(task, size, name, {"method": method, "rows": "each"}, run, queue=queue,
                    draw=draw)

    def _study(self, task: Task, size: int | None, name: str, bench: dict[str, Any],
               run: dict[str, Any], queue: list[dict[str, Any]] | None,
               draw: int = 0) -> None:
        import optuna

        from autotl.study import Session
        from autotl.worker import finished_count

        # Cold for every run, a resumed one included: its compute counts its own work.
        cache = self.out / "cache" / name
        shutil.rmtree(cache, ignore_errors=True)
        config = task.config(size, study=name, storage=self.storage, out=self.out / "runs" / name,
                             device=self.device, cache_dir=cache,
                             split_seed=self._split_seed(task, draw), **run)
        trials = []
        if name in optuna.get_all_study_names(self.storage):  # a resumed run
            trials = optuna.load_study(study_name=name, storage=self.storage).get_trials(
                deepcopy=False)
        if queue is not None or config.budget_seconds is None:
            # A fixed count (a grid's queue, a search's search_trials) resumes to what is left
            # of it. A trial that Ctrl-C or a dead process stopped is failed and queued again:
            # the failed one is not done (counting it would end the run a trial short).
            target = len(queue) if queue is not None else config.trials
            remaining = target - finished_count(trials)
            config = config.replace(trials=max(remaining, 1))
        else:  # a resumed search stops where its budget ran out
            spent = sum(t.user_attrs.get("train_seconds", 0.0) for t in trials
                        if t.state.is_finished())
            remaining = config.trials if spent < config.budget_seconds else 0
        start = time.perf_counter()
        log.info("bench %s: %s at %s per class (study %s)", self.suite.name, bench["method"],
                 size_label(size), name)
        # A fixed grid queues nothing of the session's own (no prior, no known-good configs):
        # the study runs exactly the queue.
        session = Session(config, plugins=self.plugins, progress=self.progress,
                          suggestions=[] if queue is not None else None,
                          known_good=queue is None)
        if session.prep.test is None:
            raise ConfigError(f"task {task.name!r} ({task.data}) has no test split, and a "
                              "benchmark scores every method on one; set test_fraction in the "
                              f"task (e.g. test_fraction = 0.2) in {self.suite.path}.")
        study = session.study
        if queue is not None:  # all of it, or (more seeds than before) what it lacks
            origin = f"bench:{bench['method']}"
            queued = sum(t.user_attrs.get("origin") == origin
                         for t in study.get_trials(deepcopy=False))
            for params in queue[queued:]:
                study.enqueue_trial(params, user_attrs={"origin": origin})
        study.set_user_attr("bench", {"suite": self.suite.name, "task": task.name, **bench})
        if remaining > 0:
            session.optimize()
        if session.interrupted:
            raise KeyboardInterrupt
        recommendation = session.finish()
        if recommendation.recommended is not None:
            session.study.set_user_attr("selected_trial", recommendation.recommended.trial)
        have = {row_key(r) for r in self.rows}  # a topped-up study's earlier rows are kept
        rows = [row for row in (self._complete(r, session, task) for r in
                                rows_from_study(session.study, self.storage))
                if row_key(row) not in have]
        shutil.rmtree(cache, ignore_errors=True)
        write_rows(self.results, rows, append=True)
        self.rows += rows
        seconds = sum(r["compute_seconds"] for r in rows) if bench["rows"] == "each" else (
            rows[0]["compute_seconds"] if rows else 0.0)
        log.info("bench %s: %s at %s per class: %d row(s), %.0f training seconds, %.0f s wall",
                 self.suite.name, bench["method"], size_label(size), len(rows), seconds,
                 time.perf_counter() - start)

    def _complete(self, row: dict[str, Any], session: Any, task: Task) -> dict[str, Any]:
        """A study's row with what the session knows: sizes, the backbone, the protocol
        shared by every method of the task, and the machine."""
        prep, backbone = session.prep, session.backbone
        if self._environment is None:
            self._environment = environment(str(session.trainer.device))
        request = flat_request(session.study.user_attrs)
        protocol = protocol_of(request, prep.data.modality)
        if self.suite.protocol == "real":  # one string for every method of the draw
            protocol = f"real: searches see only the K rows; {protocol}"
        row.update({
            "task": task.name,
            "data_fingerprint": prep.source_fingerprint or row.get("data_fingerprint"),
            "protocol": protocol,
            "split_seed": request.get("split_seed", request.get("seed")),
            "n_train": len(prep.train), "n_val": len(prep.val),
            "n_test": len(prep.test) if prep.test is not None else None,
            "n_classes": len(prep.data.class_names), "modality": prep.data.modality,
            "backbone_params": int(backbone.n_params), "n_groups": int(backbone.n_groups),
        })
        for key, value in self._environment.items():
            row.setdefault(key, value)
        return {k: v for k, v in row.items() if v is not None or k in ("n_per_class",)}

    # -- helpers -----------------------------------------------------------------------------

    def _backbone(self, task: Task) -> Any:
        """The task's pretrained backbone (loaded once per process; sessions reuse it)."""
        from autotl.study import load_backbone

        spec = self.plugins.backbones.get(task.backbone)
        return load_backbone(spec, dict(task.settings).get("pretrained", True))

    def _all_per_class(self, task: Task) -> float:
        """Training examples per class at size 'all' (the textbook rule's input there)."""
        from autotl.study import prepare

        rows = self.finished(task, None, ORACLE)
        if rows and rows[0].get("n_train") and rows[0].get("n_classes"):
            return rows[0]["n_train"] / rows[0]["n_classes"]
        prep = prepare(task.config(None, split_seed=dict(task.settings).get("split_seed", 0)),
                       self.plugins)
        return len(prep.train) / len(prep.data.class_names)

    def _prior_without(self, task: Task, row: dict[str, Any] | None) -> str:
        """A prior file holding every record of the suite's prior except the task's dataset's
        (by name and fingerprint): the prior a benchmark's search may use."""
        from autotl.prior import FORMAT, leave_out, load_prior

        if self.prior == "none":
            return "none"
        records = load_prior(self.prior)
        if row is None:  # no oracle row yet: the task's data, loaded for its name and digest
            from autotl.study import prepare

            prep = prepare(task.config(task.sizes[0]), self.plugins)
            row = {"dataset": task.data, "data_fingerprint": prep.source_fingerprint}
        kept = leave_out(records, dataset=row["dataset"], fingerprint=row.get("data_fingerprint"))
        path = self.out / "priors" / f"{task.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "format": FORMAT,
            "description": f"{self.prior} without the {len(records) - len(kept)} record(s) of "
                           f"{row['dataset']} (task {task.name}): a benchmark's search never "
                           "sees results of the data it is measured on",
            "records": kept}, indent=1) + "\n")
        return str(path)


def run_bench(suite: Suite, out: str | Path, **options: Any) -> list[dict[str, Any]]:
    """Run every unfinished run of ``suite`` into ``out``; returns all rows there."""
    return Bench(suite, out, **options).run()
