"""The strategy search: an Optuna study over strategies, freeze depths, LoRA settings, heads and
learning rates, built from the registries, resumable from its storage.

Everything that can be wrong with the request (names, data, sizes, a study that belongs to
another request) is checked before the backbone is built or a trial starts.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotl.config import SearchConfig
from autotl.errors import ConfigError, StorageError
from autotl.plugins import Plugins, load_plugins
from autotl.registry import BackboneSpec, HeadSpec, StrategySpec
from autotl.storage import (
    STORAGE_RETRIES,
    STORAGE_RETRY_SECONDS,
    describe_error,
    is_connection_error,
    mask_url,
    open_storage,
    retries_first,
    storage_host,
    trial_seed,
)

log = logging.getLogger(__name__)

DEFAULT_BACKBONES = {
    "image": ("offline:efficientnet-lite0", "timm:resnet50"),
    "text": ("offline:minilm-l6", "hf:sentence-transformers/all-MiniLM-L6-v2"),
}
KNOWN_GOOD_WEIGHT_DECAY = 1e-4
_BACKBONES: dict[tuple[str, bool], Any] = {}  # pretrained weights, loaded once per process


def search(data: str | SearchConfig | None = None, *, plugins: Plugins | None = None,
           progress: bool | None = None, **settings: Any) -> Any:
    """Run a strategy search and return its :class:`~autotl.recommendation.Recommendation`
    (with ``sizes=...``: a :class:`~autotl.size_map.SizeMap`, one study per size).

    ``search("fashion-mnist", n_per_class=100, image_size=96, trials=12)`` takes the same
    settings as ``autotl search`` (see :class:`autotl.SearchConfig`); a ``SearchConfig`` may be
    passed instead.
    """
    if isinstance(data, SearchConfig):
        config = data.replace(**settings) if settings else data
    else:
        config = SearchConfig.from_mapping({"data": data or "", **settings}, source="search()")
    if config.sizes:
        from autotl.size_map import parse_sizes, search_sizes

        return search_sizes(config.replace(sizes=None, project_to=None),
                            parse_sizes(config.sizes), plugins=plugins, progress=progress,
                            seeds=config.seeds, project_to=config.project_to)
    return run_search(config, plugins=plugins, progress=progress)


@dataclass
class Prepared:
    """A validated request: resolved components, loaded data and splits."""

    config: SearchConfig
    data: Any
    train: Any
    val: Any
    backbone_spec: BackboneSpec
    strategies: dict[str, StrategySpec]
    heads: dict[str, HeadSpec]
    split_keys: dict[str, str]
    test: Any = None  # scored once after selection; never an input to a choice
    source_fingerprint: str = ""  # the data before any test rows were held out
    left_out: dict[str, str] = field(default_factory=dict)  # strategy → why it does not apply
    # Named in --strategies (an inapplicable one is an error) rather than taken from every
    # registered strategy (an inapplicable one is left out); see keep_applicable_strategies.
    strategies_named: bool = False
    # Small data (autotl.folds): train and val rows together, and the folds over them.
    pool: Any = None
    fold_scheme: Any = None
    folds: list[Any] = field(default_factory=list)
    prior_only: bool = False  # one row per class: nothing to measure, the prior decides

    @property
    def n_scored(self) -> int:
        """Distinct rows behind a trial's value: the pool's in fold mode, else validation's."""
        return len(self.pool) if self.folds else len(self.val)


def prepare(config: SearchConfig, plugins: Plugins) -> Prepared:
    """Resolve names and load data; raises before any model is built."""
    with _quiet_datasets():
        return _prepare(config, plugins)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """datasets' per-operation progress bars would drown the search's own bar."""
    import datasets

    was_disabled = datasets.is_progress_bar_enabled() is False
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial failure warnings repeat ours (and dump a traceback on Ctrl-C); its
    log level is the caller's again afterwards."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _prepare(config: SearchConfig, plugins: Plugins) -> Prepared:
    import numpy as np

    from autotl.cache import activation_key
    from autotl.data import hold_out_test, keep_sample, load_data, prepare_splits, select_classes
    from autotl.data.splits import label_array
    from autotl.folds import plan_folds

    if not config.data:
        raise ConfigError("no data given: pass a dataset name, folder or file; "
                          "`autotl list datasets` shows the built-in ones.")
    named = bool(config.strategies)
    strategies = {n: plugins.strategies.get(n) for n in (config.strategies
                                                          or plugins.strategies.names())}
    heads = {n: plugins.heads.get(n) for n in (config.heads or plugins.heads.names())}
    if not strategies:
        raise ConfigError("no strategies are registered; is a plugin disabled? See "
                          "`autotl plugins`.")
    if not heads:
        raise ConfigError("no heads are registered; see `autotl plugins`.")
    data = load_data(config.data, plugins, text_column=config.text_column,
                     label_column=config.label_column, image_column=config.image_column,
                     val_data=config.val_data)
    if config.classes:
        data = select_classes(data, config.classes)
    source_fingerprint = data.fingerprint
    if config.test_fraction:
        data = hold_out_test(data, config.test_fraction, config.data_seed)
    backbone_name = config.backbone or _default_backbone(data.modality, plugins)
    spec = plugins.backbones.get(backbone_name)
    if spec.modality != data.modality:
        raise ConfigError(
            f"backbone {spec.name!r} takes {spec.modality} input but {config.data!r} holds "
            f"{data.modality} data; pick a backbone that takes {data.modality} input "
            "(`autotl list backbones` shows each one's modality)."
        )
    config = config.replace(backbone=spec.name, strategies=list(strategies),
                            heads=list(heads), workers=resolve_workers(config))
    if config.sample_only:
        data = keep_sample(data, n_per_class=config.n_per_class, val_fraction=config.val_fraction,
                           seed=config.data_seed)
    counts = np.bincount(label_array(data.train), minlength=len(data.class_names))
    if counts.max() == 1 and data.val is None:  # one row per class: none to score a trial on
        return Prepared(config, data, data.train, data.train.select([]), spec, strategies,
                        heads, {}, test=data.test, source_fingerprint=source_fingerprint,
                        prior_only=True)
    # Under sample_only the data already is the K per class; validation comes out of it.
    n_per_class = None if config.sample_only else config.n_per_class
    train, val = prepare_splits(data, n_per_class=n_per_class,
                                val_fraction=config.val_fraction, seed=config.data_seed)
    if data.val is None:
        pool, scheme, folds = plan_folds(train, val, len(data.class_names),
                                         fold_below=config.fold_below, seed=config.data_seed)
    else:
        pool, scheme, folds = None, None, []
        _say_no_folds(data, config.fold_below)
    # Validation never depends on n_per_class, so every rung of a size ladder shares its
    # cached validation activations. (data.fingerprint covers a held-out test fraction.)
    # A validation set the data brings: its rows are keyed by its own content (never reused
    # across validation sets); training is then every training row, whichever set it is.
    given = data.val is not None
    split_keys = {
        "train": activation_key(data=data.fingerprint, split="train", seed=config.data_seed,
                                n_per_class=config.n_per_class,
                                val_fraction=config.val_fraction,
                                **({"validation": "given"} if given else {})),
        "val": activation_key(data=data.fingerprint, split="val", seed=config.data_seed,
                              val_fraction=config.val_fraction,
                              **({"validation": data.val_fingerprint} if given else {})),
        "test": activation_key(data=data.fingerprint, split="test"),
    }
    if scheme is not None:  # the pool: training rows, then validation rows
        split_keys["all"] = activation_key(
            data=data.fingerprint, split="all", seed=config.data_seed,
            n_per_class=config.n_per_class, val_fraction=config.val_fraction,
            folds=scheme.to_dict())
    return Prepared(config, data, train, val, spec, strategies, heads, split_keys,
                    test=data.test, source_fingerprint=source_fingerprint,
                    strategies_named=named, pool=pool, fold_scheme=scheme, folds=folds)


def _say_no_folds(data: Any, fold_below: int) -> None:
    """A validation set the data brings is used as given, so never pooled into folds; say
    so where its size would have made autotl score over folds."""
    import numpy as np

    from autotl.data.splits import label_array

    smallest = int(np.bincount(label_array(data.val), minlength=len(data.class_names)).min())
    if smallest < fold_below:
        log.info("validation (%s) holds %d rows in its smallest class, fewer than --fold-below "
                 "%d, but it is the validation set the data brings, so it is used as given "
                 "and trials are not scored over folds", data.val_source, smallest, fold_below)


def validation_identity(data: Any) -> dict[str, Any] | None:
    """Where a validation set the data brings came from and what it holds (None: drawn)."""
    if data.val is None:
        return None
    # The file's path is left out: the same rows read from another path (another host's
    # worker) are the same experiment; the fingerprint tells other rows apart.
    source = "--val-data" if data.val_source.startswith("--val-data") else data.val_source
    return {"source": source, "fingerprint": data.val_fingerprint, "rows": len(data.val)}


def resolve_workers(config: SearchConfig) -> int:
    """``--workers`` as given, else one per GPU this process sees (``CUDA_VISIBLE_DEVICES``
    narrows them), else 1. A size map, SQLite storage and a CPU-only device keep 1: the first
    two are not safe for several processes, and CPU cores are better spent as threads of one."""
    if config.workers is not None:
        return config.workers
    if (config.sizes or config.device not in ("auto", "cuda")
            or str(config.storage or "").startswith("sqlite")):
        return 1
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus > 1:
        log.info("%d GPUs visible: %d workers, one per GPU (--workers 1 to use one)", gpus, gpus)
    return max(1, gpus)


def _default_backbone(modality: str, plugins: Plugins) -> str:
    preferred, fallback = DEFAULT_BACKBONES[modality]
    return preferred if preferred in plugins.backbones.names() else fallback


def load_backbone(spec: BackboneSpec, pretrained: bool) -> Any:
    """The pretrained backbone, built once per process; trials copy it."""
    key = (spec.name, pretrained)
    if key not in _BACKBONES:
        start = time.perf_counter()
        from autotl.backbones import build_backbone

        _BACKBONES[key] = build_backbone(spec, pretrained)
        log.info("loaded %s (%s) in %.1f s", spec.name,
                 "pretrained" if pretrained else "random init", time.perf_counter() - start)
    return _BACKBONES[key]


def default_study_name(config: SearchConfig) -> str:
    size = f"{config.n_per_class}pc" if config.n_per_class else "all"
    raw = f"{Path(config.data).name or config.data}-{size}-{config.backbone}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-")


def run_search(config: SearchConfig, *, plugins: Plugins | None = None,
               progress: bool | None = None) -> Any:
    """Validate, build, optimise, and write the outputs; returns the Recommendation."""
    plugins = plugins or load_plugins()
    prep = prepare(config, plugins)
    if prep.prior_only:
        return prior_only_recommendation(prep)
    session = Session(config, plugins=plugins, progress=progress, prep=prep)
    if session.config.workers == 1:
        session.optimize()
    else:  # N local `autotl worker` processes; 0: the study is created for workers elsewhere
        from autotl.worker import run_local_workers

        run_local_workers(session)
        if session.config.workers == 0:
            return None
    recommendation = session.finish()
    if session.interrupted:
        raise KeyboardInterrupt
    return recommendation


class Session:
    """One study, opened: the validated request, its storage, the pretrained backbone and the
    trainer its trials share. ``optimize`` runs trials; ``finish`` writes the outputs.

    The session that creates a study stores its request and queues the prior's and the
    known-good configs; ``attach=True`` (a worker, ``autotl report``) joins an existing study
    instead, queues nothing, and seeds its sampler with ``seed + worker_index``. With
    ``suggestions=[]`` and ``known_good=False`` nothing is queued but what the caller queues
    (``autotl bench``'s fixed grids).
    """

    def __init__(self, config: SearchConfig, *, plugins: Plugins | None = None,
                 progress: bool | None = None,
                 suggestions: list[dict[str, Any]] | None = None, attach: bool = False,
                 worker_index: int = 0, prep: Prepared | None = None,
                 known_good: bool = True) -> None:
        import optuna

        from autotl.training import resolve_device

        self.plugins = plugins or load_plugins()
        self.progress = progress
        self.interrupted = False
        prep = prep or prepare(config, self.plugins)
        if prep.prior_only:
            raise ConfigError(f"{config.data!r} has one row per class: no trial can be scored; "
                              "autotl.search() recommends from the prior alone.")
        config = prep.config
        study_name = config.study or default_study_name(config)
        out = Path(config.out) if config.out else Path("runs") / study_name
        out.mkdir(parents=True, exist_ok=True)
        storage = config.storage or default_storage(out, config.workers)
        config = config.replace(study=study_name, out=out, storage=storage)
        prep.config = config
        device = resolve_device(config.device)

        # Workers draw their own random start-up configs: seed + index.
        sampler = self.plugins.pm.hook.autotl_create_sampler(
            config=config.replace(seed=config.seed + worker_index) if worker_index else config)
        pruner = (self.plugins.pm.hook.autotl_create_pruner(config=config) if config.prune
                  else optuna.pruners.NopPruner())
        opened = open_storage(storage, heartbeat_seconds=config.heartbeat_seconds,
                              grace_seconds=config.grace_seconds)
        with _quiet_optuna():
            if attach:
                study, created = optuna.load_study(study_name=study_name, storage=opened,
                                                   sampler=sampler, pruner=pruner), False
            else:
                try:  # the one process that creates the study records its request
                    study, created = optuna.create_study(
                        storage=opened, study_name=study_name, direction="maximize",
                        sampler=sampler, pruner=pruner), True
                except optuna.exceptions.DuplicatedStudyError:
                    study, created = optuna.load_study(study_name=study_name, storage=opened,
                                                       sampler=sampler, pruner=pruner), False
        retries_first(study)
        # Which strategies apply needs the built backbone (loaded once per process), and the
        # stored request records the strategies left out, so it is decided before the check.
        keep_applicable_strategies(prep, configured_backbone(prep.backbone_spec, config))
        check_or_record_request(study, config, prep, self.plugins, created=created,
                                joining=attach)

        backbone, self.trainer, self.cache = build_trainer(prep, device)
        self.config, self.prep, self.study, self.backbone, self.out = (
            config, prep, study, backbone, out)
        self.refits: dict[int, Any] = {}  # trial number → its config trained on every row
        self.states: dict[int, Any] = {}  # trial number → its trained tensors, once fetched
        if not attach:  # queued once, by the study's creator (or a resume), never by workers
            from autotl.worker import record_run

            if suggestions is None:
                suggestions = self.prior_suggestions()
            for params in suggestions:
                study.enqueue_trial(params, user_attrs={"origin": "prior"},
                                    skip_if_exists=True)
            if known_good:
                enqueue_known_good(study, prep, backbone)
            self.run = record_run(study, config, self.trainer._digest_weights())
        log.info("study %s: %d train / %d val examples of %d classes, %s, %d steps per trial, "
                 "on %s; storage %s", study_name, len(prep.train), len(prep.val),
                 len(prep.data.class_names), backbone.name, self.trainer.steps, device,
                 mask_url(storage))

        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if finished:
            log.info("resuming study %s: %d finished trials kept, numbering continues",
                     study_name, len(finished))

    def prior_suggestions(self) -> list[dict[str, Any]]:
        """The prior's top configs for this problem, as trial params to enqueue first.

        Records of the data being searched are left out (unless ``prior_own_data``): they
        were chosen on these very validation rows, so enqueuing them would replay a past
        selection rather than search."""
        from autotl.prior import load_prior, recommend, trial_params

        config, prep = self.config, self.prep
        if config.prior == "none":
            return []
        records = load_prior(config.prior)
        own = [r for r in records if is_own_record(r, prep)]
        used = records if config.prior_own_data else [r for r in records if r not in own]
        n_classes = len(prep.data.class_names)
        suggestions = recommend(
            prep.data.modality, config.n_per_class or len(prep.train) / n_classes, n_classes,
            backbone=self.backbone.name, backbone_params=self.backbone.n_params,
            logme=self.logme(), prior=used, strategies=list(prep.strategies))
        if "prior_expectations" not in self.study.user_attrs:
            # Each strategy's expected accuracy relative to the best, and how sure: the
            # selection rule weighs it against the measurement (recommendation.py).
            self.study.set_user_attr("prior_expectations", {
                s.strategy: {"relative": s.score, "sd": s.sd, "support": s.support}
                for s in suggestions})
        suggestions = suggestions[:config.prior_top]
        params = [trial_params(s, n_groups=self.backbone.n_groups,
                               lr_range=prep.strategies[s.strategy].lr_range,
                               heads=list(prep.heads)) for s in suggestions]
        if "prior" not in self.study.user_attrs:
            # Per dataset, not per record: a prior built from result rows has a source per
            # task, size and draw (each record keeps its own in the prior file).
            counts = Counter(r["dataset"] for r in used)
            sources = [f"{name} ({n} record{'s' if n != 1 else ''})"
                       for name, n in sorted(counts.items())]
            self.study.set_user_attr("prior", {
                "prior": str(config.prior), "records": len(records), "used": len(used),
                "left_out_own_data": 0 if config.prior_own_data else len(own),
                # only records of the data's modality can say anything (prior.distance)
                "of_modality": sum(r["modality"] == prep.data.modality for r in used),
                "sources": sources, "suggestions": [s.to_dict() for s in suggestions]})
            if params:
                log.info("prior (%s, %d of %d records%s) suggests trying first: %s",
                         config.prior, len(used), len(records),
                         "" if config.prior_own_data or not own
                         else f"; {len(own)} of this dataset left out",
                         ", ".join(f"{s.strategy} ({s.score:.2f})" for s in suggestions))
        return params

    def logme(self) -> float | None:
        return frozen_logme(self.trainer)

    def objective(self) -> Objective:
        return Objective(self.trainer, self.prep, self.plugins, self.out, self.backbone)

    def progress_bar(self) -> _ProgressBar:
        return _progress_bar(self.config, self.progress)

    def optimize(self, *, objective: Any = None, n_trials: int | None = -1,
                 timeout: float | None = -1.0, callbacks: list[Any] | None = None) -> None:
        """Run ``config.trials`` more trials (or until ``config.timeout``), fewer where other
        workers on the study reach its target first; Ctrl-C stops after recording what
        finished. A worker passes its own objective, stopping rule and deadline."""
        from autotl.worker import RUN_ATTR, is_done

        config, prep = self.config, self.prep
        n_trials = config.trials if n_trials == -1 else n_trials
        timeout = config.timeout if timeout == -1.0 else timeout
        if config.trials < len(prep.strategies) and not self.study.get_trials(deepcopy=False):
            log.warning("%d trials cannot measure all %d strategies (%s); every strategy gets "
                        "a known-good trial first, so ask for at least %d.", config.trials,
                        len(prep.strategies), ", ".join(prep.strategies), len(prep.strategies))
        objective = objective or self.objective()
        bar = _progress_bar(config, self.progress)
        callbacks = [bar.callback, *(callbacks or [])]
        if config.budget_seconds:
            callbacks.append(_stop_at_budget(config.budget_seconds))
        run = self.study.user_attrs.get(RUN_ATTR)
        if run:  # workers elsewhere on this study count towards its target too
            callbacks.append(lambda study, trial: study.stop() if is_done(study, run) else None)
        finished_here, failures, start = 0, 0, time.monotonic()

        def count(study: Any, trial: Any) -> None:
            nonlocal finished_here, failures
            finished_here += 1
            failures = 0  # the database answered: retries count again from zero

        callbacks.append(count)
        try:
            while True:
                try:
                    with _quiet_optuna():
                        self.study.optimize(
                            objective, timeout=None if timeout is None
                            else max(1e-3, timeout - (time.monotonic() - start)),
                            n_trials=None if n_trials is None
                            else max(0, n_trials - finished_here),
                            catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
                    return
                except Exception as exc:  # the database went away mid-study
                    if _taken_for_dead(exc):
                        # Silent past the grace period (a stalled host), this process's
                        # trial was failed and queued again by another: its result is
                        # refused, the retry measures the config; carry on.
                        log.warning("a trial of this process was taken for dead (no "
                                    "heartbeat for %d s) and queued again; its result is "
                                    "dropped", self.config.grace_seconds)
                        continue
                    if not is_connection_error(exc):
                        raise
                    failures += 1
                    self._lost_storage(exc, failures)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            bar.close()

    def _lost_storage(self, exc: Exception, failures: int) -> None:
        """Wait and carry on after losing the database, up to STORAGE_RETRIES times in a row;
        then stop cleanly. Completed trials are already stored; the one in flight stays
        RUNNING until the heartbeat fails it and queues it again."""
        where = f"{storage_host(self.config.storage)} ({mask_url(self.config.storage)})"
        while not _is_storage_failure(exc) and (exc.__cause__ or exc.__context__):
            exc = exc.__cause__ or exc.__context__  # the lost connection, not what it broke
        reason = describe_error(exc).replace(str(self.config.storage), mask_url(
            self.config.storage))
        if failures > STORAGE_RETRIES:
            raise StorageError(
                f"lost the study database on {where} {failures} times in a row, last: "
                f"{reason}. Every trial it completed is stored; run the same command again "
                "(or restart the worker) once the database is back.") from None
        wait = STORAGE_RETRY_SECONDS * failures
        log.warning("lost the study database on %s (%s); retrying in %.0f s (%d of %d)",
                    where, reason, wait, failures, STORAGE_RETRIES)
        time.sleep(wait)

    def finish(self, trial: int | None = None) -> Any:
        """Build the recommendation from storage and write every output file; ``trial``, a
        completed trial's number, puts that trial in ``best_model/`` instead of the
        recommended one (the recommendation itself is unchanged)."""
        from autotl.recommendation import build_recommendation, candidate_from_trial
        from autotl.report import write_outputs

        recommendation = build_recommendation(
            self.study, self.prep, self.config, self.backbone, self.trainer,
            cache_stats=self.cache.stats if self.cache else None)
        best = recommendation.recommended
        if trial is not None and best is not None and trial != best.trial:
            chosen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial)
            recommendation.user_choice = candidate_from_trial(chosen)
        named = self.finish_models(recommendation)
        write_outputs(recommendation, self.study, self.out)
        from autotl.saved_model import prune_trial_states

        prune_trial_states(self.study, artifact_dir(self.config), keep=named)
        return recommendation

    def finish_models(self, recommendation: Any) -> set[int]:
        """After selection: score the test split once — never an input to a choice — for the
        trials the recommendation names (with ``score_test='all'`` trials scored themselves
        as they finished), then write ``best_model/`` from the recommended trial. Returns the
        trial numbers whose trained tensors stay in the artifact store."""
        import optuna

        from autotl.saved_model import save_best_model

        named = recommendation.named_trials()
        complete = {t.number: t for t in self.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
        if self.interrupted and self.prep.test is not None:
            # Ctrl-C asks to stop: scoring the test split can wait for the rerun.
            recommendation.notes.append("Interrupted: the test split was not scored; rerun "
                                        "the same command (with --trials 1) to score it.")
        elif self.prep.test is not None:
            scores = stored_test_scores(self.study)
            for number in sorted(set(named) - set(scores)):
                trial = complete[number]
                plan = plan_from_params(trial.params, self.prep.strategies, self.prep.heads)
                accuracy, correct = self.trainer.score(plan, self.trained_state(trial, plan),
                                                       "test")
                # A finished trial is read-only in Optuna; the study holds its test score.
                self.study.set_user_attr(f"test:{number}",
                                         {"accuracy": accuracy, "correct": correct})
                scores[number] = {"accuracy": accuracy, "correct": correct}
            recommendation.attach_test_scores(
                {n: v["accuracy"] for n, v in scores.items()}, n_test=len(self.prep.test))
        best = recommendation.recommended
        if best is not None:
            # Stored on the study, so readers of the storage alone (leaderboards) know it; a
            # user's --trial changes best_model/, not what the rule selected.
            self.study.set_user_attr("selected_trial", best.trial)
            trial = complete[(recommendation.user_choice or best).trial]
            plan = plan_from_params(trial.params, self.prep.strategies, self.prep.heads)
            save_best_model(self.out, trial, plan, self.trained_state(trial, plan), self.prep,
                            self.backbone, recommendation)
            recommendation.best_model = str(self.out / "best_model")
            recommendation.final_model = self.final_model_words(trial)
        return set(named)

    def trained_state(self, trial: Any, plan: Any) -> dict[str, Any]:
        """A completed trial's final trained tensors: from the study's artifact store, or,
        where they were not kept, trained again with the trial's own seed (the same tensors
        on CPU; logged, since on a GPU the last bits can differ). In fold mode, the config
        retrained on every row of the pool (:func:`refit_on_pool`), once per trial."""
        from autotl.saved_model import load_trial_state

        if self.prep.folds:
            if trial.number not in self.refits:
                log.info("trial %d (%s): retraining its config on all %d rows",
                         trial.number, plan.strategy, len(self.prep.pool))
                self.refits[trial.number] = refit_on_pool(
                    self.trainer, plan, seed=trial_seed(trial, self.config.seed))
            return self.refits[trial.number].trained
        if trial.number in self.states:  # the test score and best_model/ need the same one
            return self.states[trial.number]
        state = load_trial_state(trial, artifact_dir(self.config))
        if state is None:
            seed = trial_seed(trial, self.config.seed)
            log.info("trial %d's trained tensors were not kept; training it again (seed %d)",
                     trial.number, seed)
            state = self.trainer.run(plan, seed=seed).trained
            assert state is not None
        self.states[trial.number] = state
        return state

    def final_model_words(self, trial: Any) -> str:
        """What ``best_model/`` was trained on, for the report."""
        if self.prep.folds:
            refit = self.refits[trial.number]
            n = len(self.prep.pool)
            return (f"best_model/ is trial {trial.number}'s config retrained on all {n} rows "
                    f"(training and validation rows together, no test row) for {refit.steps} "
                    f"steps, the budget the step rule gives {n} rows; each fold above trained "
                    "on part of them.")
        return (f"best_model/ is trial {trial.number}'s own model, trained on the "
                f"{len(self.prep.train)} training rows; the {len(self.prep.val)} validation "
                "rows chose it and were not trained on (with this much validation data a "
                "retrain on them would change the measured model for a small gain; fold-scored "
                "studies retrain on every row).")

    def rerun(self, params: dict[str, Any], seed: int) -> tuple[Any, tuple[float, str] | None]:
        """Train the config ``params`` (a trial's Optuna params) again with another seed, to
        the end of its budget; returns the result and, where there is a test split, its test
        accuracy and per-row outcomes."""
        plan = plan_from_params(params, self.prep.strategies, self.prep.heads)
        result = self.trainer.run(plan, seed=seed)
        test = None
        if self.prep.test is not None and result.trained is not None:
            test = self.trainer.score(plan, result.trained, "test")
        return result, test


def prior_only_recommendation(prep: Prepared) -> Any:
    """With one row per class nothing can be measured (no row is left to score a model that
    trained on the others): the recommendation is the prior's, said to be so, and no model is
    trained. Writes ``recommendation.json`` and ``report.md``."""
    import json

    from autotl.prior import load_prior, recommend
    from autotl.recommendation import Candidate, Recommendation

    config = prep.config
    n_classes = len(prep.data.class_names)
    if config.prior == "none":
        raise ConfigError(
            f"{config.data!r} has one row per class, so no trial can be scored, and "
            "--prior none leaves nothing to recommend from. Add examples (at least 2 per "
            "class) or use a prior.")
    records = load_prior(config.prior)
    used = records if config.prior_own_data else [r for r in records
                                                   if not is_own_record(r, prep)]
    suggestions = recommend(prep.data.modality, 1, n_classes, backbone=config.backbone,
                            prior=used, strategies=list(prep.strategies))
    study = config.study or default_study_name(config)
    out = Path(config.out) if config.out else Path("runs") / study
    out.mkdir(parents=True, exist_ok=True)
    best = None
    if suggestions:
        top = suggestions[0]
        # Nothing was measured or trained: no accuracy, seconds or trial to give.
        best = Candidate(strategy=top.strategy, params=dict(top.params),
                         val_accuracy=None, train_seconds=None,  # type: ignore[arg-type]
                         trainable_params=0, trial=-1, origin="prior")
    ranking = ", ".join(f"{s.strategy} {s.score:.2f} ± {s.sd:.2f}" for s in suggestions)
    words = (f"With one example per class nothing can be measured: no row is left to score "
             f"a model trained on the others. The recommendation comes from the prior alone "
             f"({len(used)} records of {len(records)}; expected accuracy relative to the best "
             f"strategy: {ranking or 'no record of this modality'}), and no model was trained. "
             f"Add examples (2 or more per class) to measure.")
    rec = Recommendation(
        dataset={"name": prep.data.name, "modality": prep.data.modality,
                 "n_train": len(prep.train), "n_val": 0, "n_test": 0, "n_classes": n_classes,
                 "n_per_class": 1, "class_names": list(prep.data.class_names)},
        backbone=str(config.backbone), recommended=best, cheapest_within_tolerance=best,
        per_strategy=[{"strategy": s.strategy, "val_accuracy": None, "test_accuracy": None,
                       "trial": None, "prior_relative": s.score, "prior_sd": s.sd,
                       "params": s.params} for s in suggestions],
        n_trials=0, trial_states={}, storage="", study=study, tolerance=config.tolerance,
        n_groups=0, out=str(out), selection=words, chosen_by="the prior alone",
        prior={"prior": str(config.prior), "records": len(records), "used": len(used),
               "suggestions": [s.to_dict() for s in suggestions]},
        validation={"mode": "prior-only", "rows": 0, "words": words})
    (out / "recommendation.json").write_text(json.dumps(rec.to_dict(), indent=2))
    suggestion = (f"use {best.strategy} ({', '.join(f'{k}={v}' for k, v in best.params.items())})"
                  if best else "no strategy: the prior holds no record of this modality")
    (out / "report.md").write_text(
        f"# autotl report: {study}\n\nFor {prep.data.name} at 1 example per class "
        f"({n_classes} classes): {suggestion}.\n\n{words}\n")
    log.info("%s", words)
    return rec


def refit_on_pool(trainer: Any, plan: Any, *, seed: int) -> Any:
    """``plan`` trained on every row of the pool (training and validation rows, never a test
    row) for the step budget the rule gives that many rows, to the end of it: the final model
    of a fold-scored study, where each trial's folds each saw only part of the rows."""
    rows = range(len(trainer.splits["all"]))
    result = trainer.view(rows, []).run(plan, seed=seed)
    assert result.trained is not None
    return result


def configured_backbone(spec: BackboneSpec, config: SearchConfig) -> Any:
    """The process's pretrained backbone with the input size the config asks for."""
    backbone = load_backbone(spec, config.pretrained)
    if config.image_size and backbone.modality == "image":
        backbone = replace(backbone, preprocessing=backbone.preprocessing.resized(
            config.image_size))
    if backbone.modality == "text" and config.max_length != backbone.preprocessing.max_length:
        backbone = replace(backbone, preprocessing=replace(
            backbone.preprocessing, max_length=config.max_length))
    return backbone


def build_trainer(prep: Prepared, device: Any) -> tuple[Any, Any, Any]:
    """The pretrained backbone (with the configured input size), the Trainer every trial of
    the study shares, and its activation cache."""
    from autotl.cache import ActivationCache, cache_root
    from autotl.training import Trainer

    config = prep.config
    backbone = configured_backbone(prep.backbone_spec, config)
    keep_applicable_strategies(prep, backbone)
    config = prep.config
    cache = (ActivationCache(config.cache_dir or cache_root() / "activations",
                             config.cache_max_bytes) if config.cache else None)
    trainer = Trainer(backbone, prep.train, prep.val, test=prep.test,
                      num_classes=len(prep.data.class_names),
                      config=config, strategies=prep.strategies, heads=prep.heads,
                      split_keys=prep.split_keys, cache=cache, device=device, pool=prep.pool)
    return backbone, trainer, cache


def keep_applicable_strategies(prep: Prepared, backbone: Any) -> None:
    """Ask each strategy whether it applies to the built backbone, before anything is enqueued:
    one the user named that does not is an error; one taken from every registered strategy is
    left out (recorded in ``prep.left_out``) with a log line saying why."""
    reasons = {name: spec.inapplicable(backbone) for name, spec in prep.strategies.items()}
    reasons = {name: reason for name, reason in reasons.items() if reason}
    if reasons and prep.strategies_named:
        detail = "; ".join(f"strategy {name!r} does not apply to backbone {backbone.name}: "
                           f"{reason}" for name, reason in reasons.items())
        raise ConfigError(f"{detail}. Leave {'it' if len(reasons) == 1 else 'them'} out of "
                          "--strategies, or pick another backbone (`autotl list backbones`).")
    for name, reason in reasons.items():
        log.info("leaving out strategy %s: it does not apply to %s (%s)", name, backbone.name,
                 reason)
    if reasons and len(reasons) == len(prep.strategies):
        detail = "; ".join(f"{name}: {reason}" for name, reason in reasons.items())
        raise ConfigError(f"no registered strategy applies to {backbone.name} ({detail}). "
                          "Pick another backbone (`autotl list backbones`).")
    prep.left_out = {**prep.left_out, **reasons}
    prep.strategies = {n: s for n, s in prep.strategies.items() if n not in reasons}
    prep.config = prep.config.replace(strategies=list(prep.strategies))


def frozen_logme(trainer: Any) -> float | None:
    """LogME of the frozen backbone's features on the training split (higher: the features
    fit the labels better), from the activation cache's head-only entry, which head-only
    trials reuse; None without the cache."""
    from autotl.prior import logme

    if trainer.cache is None or not trainer._cacheable():
        return None
    split = "all" if "all" in trainer.splits else "train"  # fold mode: every pooled row
    fetched = trainer._fetch(split, trainer.base.n_groups)
    if fetched is None:
        return None
    return logme(fetched[0].numpy(), trainer.labels[split].numpy())


def describe_problem(config: SearchConfig, plugins: Plugins) -> dict[str, Any]:
    """The meta-features ``autotl recommend DATA`` matches against the prior, LogME included
    (which builds the backbone and runs it once over the training split)."""
    from autotl.training import resolve_device

    prep = prepare(config, plugins)
    n_classes = len(prep.data.class_names)
    if prep.prior_only:  # LogME needs two rows of a class; one per class is all there is
        return {"modality": prep.data.modality, "n_classes": n_classes, "n_per_class": 1,
                "backbone": prep.config.backbone, "backbone_params": None, "logme": None,
                "strategies": list(prep.strategies)}
    backbone, trainer, _ = build_trainer(prep, resolve_device(config.device))
    return {"modality": prep.data.modality, "n_classes": n_classes,
            "n_per_class": config.n_per_class or len(prep.train) / n_classes,
            "backbone": backbone.name, "backbone_params": backbone.n_params,
            "logme": frozen_logme(trainer), "strategies": list(prep.strategies)}


REQUEST_VERSION = 1


def build_request(config: SearchConfig, prep: Prepared, plugins: Plugins) -> dict[str, Any]:
    """What a study was asked to do, stored on the study once: ``identity`` (what makes two
    runs the same experiment; a resume must match it) and the other resolved settings."""
    identity = {
        "data": prep.data.name, "data_fingerprint": prep.data.fingerprint,
        "backbone": config.backbone, "n_per_class": config.n_per_class,
        "sample_only": config.sample_only, "val_fraction": config.val_fraction, "test_fraction": config.test_fraction,
        "seed": config.seed, "split_seed": config.data_seed,
        "image_size": config.image_size, "pretrained": config.pretrained,
        "classes": config.classes, "max_length": config.max_length, "augment": config.augment,
        "strategies": list(prep.strategies), "heads": list(prep.heads),
        "budget": [config.batch_size, config.epochs, config.min_steps, config.max_steps,
                   config.eval_points],
        "folds": prep.fold_scheme.to_dict() if prep.fold_scheme else None,
        "validation": validation_identity(prep.data),
    }
    # Host settings (out, device, storage with its password …) are each worker's own.
    from autotl.worker import HOST_SETTINGS

    settings = {k: v for k, v in config.to_dict().items()
                if k not in identity and k not in HOST_SETTINGS}
    return {"version": REQUEST_VERSION, "source": config.data, "identity": identity,
            # the data as loaded, before a test fraction or a sample was cut from it: what
            # result rows name a task's data by (every draw of it alike)
            "source_fingerprint": prep.source_fingerprint,
            "settings": settings,
            "left_out": dict(prep.left_out),
            "plugins": {name: info.version for name, info in sorted(plugins.info.items())}}


def check_or_record_request(study: Any, config: SearchConfig, prep: Prepared,
                            plugins: Plugins, *, created: bool = True,
                            joining: bool = False) -> None:
    """A resumed study must be the same experiment; anything else would mix results (and a
    changed list of strategies or heads would break Optuna's fixed categorical choices), so
    it is refused here, before any trial.

    Only the process that created the study records the request (creation is the storage's
    one atomic step); one that found the study already there waits briefly for it."""
    request = build_request(config, prep, plugins)
    stored = _stored_request(study, wait=0.0 if created else REQUEST_WAIT_SECONDS)
    if stored is None:
        study.set_user_attr("request", request)
        study.set_user_attr("class_names", prep.data.class_names)
        study.set_user_attr("modality", prep.data.modality)
        return
    before, now = stored.get("identity", {}), request["identity"]
    # A setting an older autotl did not record, now at its off value, is the same experiment.
    diff = {k: (before.get(k), v) for k, v in now.items()
            if before.get(k) != v and not (k not in before and v in (None, False))}
    if joining and "data_fingerprint" in diff:
        source = stored.get("source") or before.get("data")
        raise ConfigError(
            f"the data {config.data!r} here is not the data study {study.study_name!r} was "
            f"created with (fingerprint {now['data_fingerprint']}, the study's "
            f"{before.get('data_fingerprint')}, from {source!r}); point --data at a copy of "
            "the same data.")
    if diff:
        detail = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"study {study.study_name!r} in {mask_url(config.storage)} was run with other "
            f"settings ({detail}). Resume it with the same settings, or start a new study with "
            f"another --study name (or another --out)."
        )


REQUEST_WAIT_SECONDS = 30.0


def _stored_request(study: Any, wait: float) -> dict[str, Any] | None:
    """The study's request; a study from before requests gives its identity."""
    deadline = time.monotonic() + wait
    while True:
        attrs = study.user_attrs
        if "request" in attrs:
            return attrs["request"]
        if "identity" in attrs:
            return {"identity": attrs["identity"]}
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def artifact_dir(config: SearchConfig) -> Path:
    """Where trials' trained tensors are kept until selection: ``--artifacts`` or
    ``<out>/artifacts``."""
    return Path(config.artifacts) if config.artifacts else Path(config.out or ".") / "artifacts"


def default_storage(out: Path, workers: int) -> str:
    """Without --storage: a journal file in ``out`` for several local workers (or where one
    exists, so a plain rerun resumes it), else SQLite."""
    from autotl.storage import journal_url

    journal = out / "study.journal"
    if workers != 1 or journal.exists():
        return journal_url(journal)
    return f"sqlite:///{out.resolve() / 'study.db'}"


def stored_test_scores(study: Any) -> dict[int, dict[str, Any]]:
    """Test scores by trial number: a trial's own (``score_test='all'``) or the study's
    (scored after selection)."""
    scores = {}
    for trial in study.get_trials(deepcopy=False):
        if "test_accuracy" in trial.user_attrs:
            scores[trial.number] = {"accuracy": trial.user_attrs["test_accuracy"],
                                    "correct": trial.user_attrs.get("test_correct")}
    for key, value in study.user_attrs.items():
        if key.startswith("test:"):
            scores[int(key.removeprefix("test:"))] = value
    return scores


def is_own_record(record: dict[str, Any], prep: Prepared) -> bool:
    """Whether a prior record was measured on the data being searched."""
    fingerprint = record.get("data_fingerprint")
    if fingerprint:
        return fingerprint in (prep.source_fingerprint, prep.data.fingerprint)
    return str(record.get("dataset")) == prep.data.name


def _stop_at_budget(seconds: float) -> Any:
    """An Optuna callback that stops the study once its trials' training seconds (complete,
    pruned and failed alike: compute spent is spent) reach ``seconds``."""
    def callback(study: Any, trial: Any) -> None:
        spent = sum(t.user_attrs.get("train_seconds", 0.0)
                    for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        if spent >= seconds:
            log.info("training budget of %.0f s spent (%.0f s); no new trials", seconds, spent)
            study.stop()
    return callback


def suggest_plan(trial: Any, strategies: dict[str, StrategySpec], heads: dict[str, HeadSpec],
                 backbone: Any) -> Any:
    """Draw one point of the conditional space: strategy → its lr and own parameters; head →
    its parameters; weight decay."""
    from autotl.training import TrialPlan

    name = trial.suggest_categorical("strategy", list(strategies))
    spec = strategies[name]
    lr = trial.suggest_float(f"{name}.lr", *spec.lr_range, log=True)
    strategy_params = spec.suggest(trial, backbone)
    head = trial.suggest_categorical("head", list(heads))
    head_params = {**heads[head].default_params, **heads[head].suggest(trial)}
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    return TrialPlan(name, strategy_params, head, head_params, lr, weight_decay)


def plan_from_params(params: dict[str, Any], strategies: dict[str, StrategySpec],
                     heads: dict[str, HeadSpec]) -> Any:
    """The TrialPlan behind a trial's Optuna params (``subset.freeze_depth`` → strategy param
    ``freeze_depth``), the inverse of :func:`suggest_plan` for specs that follow the naming
    convention."""
    from autotl.training import TrialPlan

    name = params["strategy"]
    if name not in strategies:
        raise ConfigError(f"strategy {name!r} is not part of this search ({list(strategies)}).")
    head = params.get("head", "linear")
    own = {k.removeprefix(f"{name}."): v for k, v in params.items()
           if k.startswith(f"{name}.") and k != f"{name}.lr"}
    head_params = {**heads[head].default_params,
                   **{k.removeprefix(f"{head}."): v for k, v in params.items()
                      if k.startswith(f"{head}.")}}
    return TrialPlan(name, own, head, head_params, float(params[f"{name}.lr"]),
                     float(params.get("weight_decay", KNOWN_GOOD_WEIGHT_DECAY)))


def enqueue_known_good(study: Any, prep: Prepared, backbone: Any) -> None:
    """Put each strategy's known-good configs first, so every strategy is measured before the
    sampler takes over. Skipped for configs the study already holds (a resumed study)."""
    head = "linear" if "linear" in prep.heads else next(iter(prep.heads))
    head_params = {f"{head}.{k}": v for k, v in prep.heads[head].default_params.items()}
    for name, spec in prep.strategies.items():
        for known in spec.known_good(backbone):
            params = {"strategy": name, "head": head, "weight_decay": KNOWN_GOOD_WEIGHT_DECAY,
                      **head_params}
            params.update({f"{name}.{k}": v for k, v in known.items()})
            study.enqueue_trial(params, user_attrs={"origin": "known-good"},
                                skip_if_exists=True)


#: Where a trial's config came from, as ``trials.csv`` and the report show it.
ORIGINS = ("prior", "known-good", "sampled", "retried", "requeued")


def trial_origin(trial: Any) -> str:
    """``prior``/``known-good`` (enqueued), ``sampled``, ``retried`` (its process died and
    the heartbeat queued it again) or ``requeued`` (interrupted by Ctrl-C); set when queued,
    so a trial without one was drawn by the sampler."""
    return str(trial.user_attrs.get("origin", "sampled"))


def _taken_for_dead(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised while handling) is Optuna refusing to update a
    trial another process already finished: the heartbeat failed it as stale. (Optuna's own
    end-of-trial bookkeeping then raises "Cannot tell a FAIL trial.")"""
    import optuna

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, optuna.exceptions.UpdateFinishedTrialError) or (
                isinstance(current, ValueError) and str(current).startswith("Cannot tell a ")):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_storage_failure(exc: BaseException) -> bool:
    return is_connection_error(exc) and not (exc.__cause__ or exc.__context__) or \
        type(exc).__module__.startswith("sqlalchemy")


class Objective:
    """Optuna objective: one trial of the Trainer, its measurements stored on the trial."""

    def __init__(self, trainer: Any, prep: Prepared, plugins: Plugins, out: Path,
                 backbone: Any) -> None:
        self.trainer = trainer
        self.prep = prep
        self.plugins = plugins
        self.out = out
        self.backbone = backbone

    def __call__(self, trial: Any) -> float:
        import optuna

        from autotl.training import TrialResult, device_label

        trial.set_user_attr("origin", trial_origin(trial))
        plan = None
        try:
            # Inside the try: an error while the trial is set up (a space that does not fit
            # the stored study, a strategy that cannot apply) is recorded like any other.
            plan = suggest_plan(trial, self.prep.strategies, self.prep.heads, self.backbone)
            seed = trial_seed(trial, self.prep.config.seed)
            trial.set_user_attr("seed", seed)  # a retry of this trial trains with it too

            def should_stop(accuracy: float, checkpoint: int) -> bool:
                trial.report(accuracy, checkpoint)
                return trial.should_prune()

            # Without a pruner nothing reads the checkpoints before the last: skip them.
            between = self.prep.config.prune
            if self.prep.folds:
                from autotl.folds import run_folds

                result = run_folds(self.trainer, self.prep.folds, plan, seed=seed,
                                   should_stop=should_stop, between=between)
            else:
                result = self.trainer.run(plan, seed=seed, should_stop=should_stop,
                                          between=between)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", error)
            what = plan.strategy if plan else trial.params.get("strategy", "setting up")
            log.warning("trial %d (%s) failed: %s", trial.number, what, error)
            if plan is not None:
                self._finished(TrialResult(plan=plan, state="failed", number=trial.number,
                                           error=error))
            raise
        except KeyboardInterrupt:
            # Optuna records the trial as failed; queue its config so a rerun measures it.
            trial.set_user_attr("error", "interrupted (Ctrl-C); queued again for the next run")
            trial.study.enqueue_trial(trial.params, user_attrs={
                "origin": "requeued", "requeued_from": trial.number,
                **({"seed": trial.user_attrs["seed"]} if "seed" in trial.user_attrs else {})})
            raise
        result.number = trial.number
        for key in ("train_seconds", "eval_seconds", "wall_seconds", "trainable_params",
                    "total_params", "steps", "frozen_depth", "cached_depth", "history",
                    "val_correct", "accumulation_steps", "train_flops"):
            trial.set_user_attr(key, getattr(result, key))
        trial.set_user_attr("device", device_label(self.trainer.device))
        if result.error:  # stopped by a fault (a loss that is not finite), not by the pruner
            trial.set_user_attr("reason", result.error)
            log.warning("trial %d (%s) stopped: %s", trial.number, plan.strategy, result.error)
        if result.fold_accuracies is not None:
            from autotl.folds import fold_se

            trial.set_user_attr("fold_accuracies", result.fold_accuracies)
            trial.set_user_attr("fold_se", fold_se(result.fold_accuracies))
        self._finished(result)
        if result.state == "pruned":
            raise optuna.TrialPruned(result.error or
                                     f"pruned at checkpoint {len(result.history)}")
        assert result.val_accuracy is not None
        score_test = self.prep.config.score_test == "all" and self.prep.test is not None
        if score_test:
            # In fold mode no single model exists (one per fold): the test score, like
            # best_model/, comes from the config retrained on every row.
            trained = (refit_on_pool(self.trainer, plan, seed=seed).trained if self.prep.folds
                       else result.trained)
            assert trained is not None
            accuracy, correct = self.trainer.score(plan, trained, "test")
            trial.set_user_attr("test_accuracy", accuracy)
            trial.set_user_attr("test_correct", correct)
        if self.prep.folds:
            return result.val_accuracy
        assert result.trained is not None
        if self._may_be_chosen(trial, result):
            from autotl.saved_model import keep_trial_state

            keep_trial_state(trial, result.trained, artifact_dir(self.prep.config))
        return result.val_accuracy

    def _may_be_chosen(self, trial: Any, result: Any) -> bool:
        """Whether the selection rule could still name this trial (it ties its strategy's
        leader within noise and tolerance), so its trained tensors are worth keeping."""
        import optuna

        from autotl.recommendation import scored_from_trial
        from autotl.selection import Scored, choose

        n_val = self.prep.n_scored
        mine = Scored(key=trial.number, label=str(trial.number),
                      accuracy=float(result.val_accuracy), n=n_val,
                      seconds=result.train_seconds, flops=result.train_flops,
                      trainable_params=result.trainable_params,
                      correct=result.val_correct)
        own = [scored_from_trial(t, n_val) for t in trial.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.params.get("strategy") == result.plan.strategy and t.number != trial.number]
        choice = choose([*own, mine], tolerance=self.prep.config.tolerance)
        return choice is not None and any(s.key == trial.number for s in choice.tied)

    def _finished(self, result: Any) -> None:
        self.plugins.call_each("autotl_trial_finished", result=result)


class _ProgressBar:
    """Trials done, best so far and time left; quiet when not attached to a terminal."""

    def __init__(self, total: int, enabled: bool, timeout: float | None) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="trial", desc="search", disable=not enabled,
                        dynamic_ncols=True)
        self.deadline = time.monotonic() + timeout if timeout else None

    def callback(self, study: Any, trial: Any) -> None:
        import optuna

        state = trial.state.name.lower()
        strategy = trial.params.get("strategy", "?")
        value = f"{trial.value:.3f}" if trial.value is not None else state
        try:
            best = study.best_trial
            best_text = f"{best.value:.3f} {best.params.get('strategy')}"
        except ValueError:
            best_text = "-"
        left = ""
        if self.deadline is not None:  # tqdm's ETA knows the trial count, not the timeout
            left = f" | timeout in {max(0, self.deadline - time.monotonic()):.0f}s"
        self.bar.set_postfix_str(f"best {best_text} | last {strategy} {value}{left}")
        self.bar.update(1)
        seconds = trial.user_attrs.get("train_seconds")
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        message = f"trial {trial.number}: {strategy} → {value}{took}"
        if trial.state == optuna.trial.TrialState.FAIL:
            message += f" ({trial.user_attrs.get('error', 'failed')})"
        elif trial.state == optuna.trial.TrialState.PRUNED:
            # A pruned trial's value is its last checkpoint, not a finished run: say so.
            step = trial.last_step
            reason = trial.user_attrs.get("reason")
            message += (f" ({reason})" if reason else
                        " (pruned" + (f" at step {step})" if step is not None else ")"))
        if self.bar.disable:
            log.info(message)
        else:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()


def _progress_bar(config: SearchConfig, progress: bool | None) -> _ProgressBar:
    enabled = sys.stderr.isatty() if progress is None else progress
    return _ProgressBar(config.trials, enabled, config.timeout)
