"""The strategy search: an Optuna study over strategies, freeze depths, LoRA settings, heads and
learning rates, built from the registries, resumable from its storage.

Everything that can be wrong with the request (names, data, sizes, a study that belongs to
another request) is checked before the backbone is built or a trial starts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotl.config import SearchConfig
from autotl.errors import ConfigError
from autotl.plugins import Plugins, load_plugins
from autotl.registry import BackboneSpec, HeadSpec, StrategySpec

log = logging.getLogger(__name__)

DEFAULT_BACKBONES = {
    "image": ("offline:efficientnet-lite0", "timm:resnet50"),
    "text": ("offline:minilm-l6", "hf:sentence-transformers/all-MiniLM-L6-v2"),
}
KNOWN_GOOD_WEIGHT_DECAY = 1e-4
# A trial whose process dies (killed, out of memory, power loss) stays RUNNING in storage;
# Optuna fails it once its heartbeat is older than the grace period and we queue it again.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
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

        return search_sizes(config.replace(sizes=None), parse_sizes(config.sizes),
                            plugins=plugins, progress=progress, seeds=config.seeds)
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
    # Strategies the user named (an inapplicable one is an error) rather than "all registered"
    # (an inapplicable one is left out); and those left out, with why (see build_trainer).
    strategies_named: bool = False
    left_out: dict[str, str] = field(default_factory=dict)


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


def _prepare(config: SearchConfig, plugins: Plugins) -> Prepared:
    from autotl.cache import activation_key
    from autotl.data import load_data, prepare_splits, select_classes

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
                     label_column=config.label_column, image_column=config.image_column)
    if config.classes:
        data = select_classes(data, config.classes)
    backbone_name = config.backbone or _default_backbone(data.modality, plugins)
    spec = plugins.backbones.get(backbone_name)
    if spec.modality != data.modality:
        raise ConfigError(
            f"backbone {spec.name!r} takes {spec.modality} input but {config.data!r} holds "
            f"{data.modality}; pick a {data.modality} backbone (`autotl list backbones`)."
        )
    train, val = prepare_splits(data, n_per_class=config.n_per_class,
                                val_fraction=config.val_fraction, seed=config.seed)
    config = config.replace(backbone=spec.name, strategies=list(strategies),
                            heads=list(heads))
    # Validation never depends on n_per_class, so every rung of a size ladder shares its
    # cached validation activations.
    split_keys = {
        "train": activation_key(data=data.fingerprint, split="train", seed=config.seed,
                                n_per_class=config.n_per_class,
                                val_fraction=config.val_fraction),
        "val": activation_key(data=data.fingerprint, split="val", seed=config.seed,
                              val_fraction=config.val_fraction),
    }
    return Prepared(config, data, train, val, spec, strategies, heads, split_keys,
                    strategies_named=named)


def _default_backbone(modality: str, plugins: Plugins) -> str:
    preferred, fallback = DEFAULT_BACKBONES[modality]
    return preferred if preferred in plugins.backbones.names() else fallback


def load_backbone(spec: BackboneSpec, pretrained: bool) -> Any:
    """The pretrained backbone, built once per process; trials copy it."""
    key = (spec.name, pretrained)
    if key not in _BACKBONES:
        start = time.perf_counter()
        _BACKBONES[key] = spec.build(pretrained)
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
    session = Session(config, plugins=plugins, progress=progress)
    session.optimize()
    recommendation = session.finish()
    if session.interrupted:
        raise KeyboardInterrupt
    return recommendation


class Session:
    """One study, opened: the validated request, its storage, the pretrained backbone and the
    trainer its trials share. ``optimize`` runs trials; ``finish`` writes the outputs."""

    def __init__(self, config: SearchConfig, *, plugins: Plugins | None = None,
                 progress: bool | None = None,
                 suggestions: list[dict[str, Any]] | None = None) -> None:
        import optuna

        from autotl.training import resolve_device

        self.plugins = plugins or load_plugins()
        self.progress = progress
        self.interrupted = False
        prep = prepare(config, self.plugins)
        config = prep.config
        study_name = config.study or default_study_name(config)
        out = Path(config.out) if config.out else Path("runs") / study_name
        out.mkdir(parents=True, exist_ok=True)
        storage = config.storage or f"sqlite:///{out.resolve() / 'study.db'}"
        config = config.replace(study=study_name, out=out, storage=storage)
        prep.config = config
        device = resolve_device(config.device)

        # Optuna's per-trial failure warnings repeat ours (and dump a traceback on Ctrl-C).
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        sampler = self.plugins.pm.hook.autotl_create_sampler(config=config)
        pruner = self.plugins.pm.hook.autotl_create_pruner(config=config)
        study = optuna.create_study(storage=open_storage(storage), study_name=study_name,
                                    direction="maximize", sampler=sampler, pruner=pruner,
                                    load_if_exists=True)
        _check_or_record_identity(study, config, prep)

        backbone, self.trainer, self.cache = build_trainer(prep, device)
        self.config, self.prep, self.study, self.backbone, self.out = (
            config, prep, study, backbone, out)
        if suggestions is None:
            suggestions = self.prior_suggestions()
        for params in suggestions:
            study.enqueue_trial(params, skip_if_exists=True)
        enqueue_known_good(study, prep, backbone)
        log.info("study %s: %d train / %d val examples of %d classes, %s, %d steps per trial, "
                 "on %s; storage %s", study_name, len(prep.train), len(prep.val),
                 len(prep.data.class_names), backbone.name, self.trainer.steps, device, storage)

        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if finished:
            log.info("resuming study %s: %d finished trials kept, numbering continues",
                     study_name, len(finished))

    def prior_suggestions(self) -> list[dict[str, Any]]:
        """The prior's top configs for this problem, as trial params to enqueue first."""
        from autotl.prior import recommend, trial_params

        config, prep = self.config, self.prep
        if config.prior == "none" or config.prior_top == 0:
            return []
        n_classes = len(prep.data.class_names)
        suggestions = recommend(
            prep.data.modality, config.n_per_class or len(prep.train) / n_classes, n_classes,
            backbone=self.backbone.name, backbone_params=self.backbone.n_params,
            logme=self.logme(), prior=config.prior, strategies=list(prep.strategies),
            top=config.prior_top)
        params = [trial_params(s, n_groups=self.backbone.n_groups,
                               lr_range=prep.strategies[s.strategy].lr_range,
                               heads=list(prep.heads)) for s in suggestions]
        if params and "prior_suggestions" not in self.study.user_attrs:
            self.study.set_user_attr("prior_suggestions", [s.to_dict() for s in suggestions])
            log.info("prior (%s) suggests trying first: %s", config.prior,
                     ", ".join(f"{s.strategy} ({s.score:.2f})" for s in suggestions))
        return params

    def logme(self) -> float | None:
        return frozen_logme(self.trainer)

    def optimize(self) -> None:
        """Run ``config.trials`` more trials (or until ``config.timeout``); Ctrl-C stops
        after recording what finished."""
        config, prep = self.config, self.prep
        if config.trials < len(prep.strategies) and not self.study.get_trials(deepcopy=False):
            log.warning("%d trials cannot measure all %d strategies (%s); every strategy gets "
                        "a known-good trial first, so ask for at least %d.", config.trials,
                        len(prep.strategies), ", ".join(prep.strategies), len(prep.strategies))
        objective = Objective(self.trainer, prep, self.plugins, self.out, self.backbone)
        bar = _progress_bar(config, self.progress)
        try:
            self.study.optimize(objective, n_trials=config.trials, timeout=config.timeout,
                                catch=(Exception,), callbacks=[bar.callback],
                                gc_after_trial=True)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            bar.close()

    def finish(self) -> Any:
        """Build the recommendation from storage and write every output file."""
        from autotl.recommendation import build_recommendation
        from autotl.report import write_outputs

        recommendation = build_recommendation(
            self.study, self.prep, self.config, self.backbone, self.trainer,
            cache_stats=self.cache.stats if self.cache else None)
        write_outputs(recommendation, self.study, self.out)
        return recommendation

    def rerun(self, params: dict[str, Any], seed: int) -> Any:
        """Train the config ``params`` (a trial's Optuna params) again with another seed."""
        plan = plan_from_params(params, self.prep.strategies, self.prep.heads)
        return self.trainer.run(plan, seed=seed)


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
    trainer = Trainer(backbone, prep.train, prep.val, num_classes=len(prep.data.class_names),
                      config=config, strategies=prep.strategies, heads=prep.heads,
                      split_keys=prep.split_keys, cache=cache, device=device)
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
    fetched = trainer._fetch("train", trainer.base.n_groups)
    if fetched is None:
        return None
    return logme(fetched[0].numpy(), trainer.labels["train"].numpy())


def describe_problem(config: SearchConfig, plugins: Plugins) -> dict[str, Any]:
    """The meta-features ``autotl recommend DATA`` matches against the prior, LogME included
    (which builds the backbone and runs it once over the training split)."""
    from autotl.training import resolve_device

    prep = prepare(config, plugins)
    backbone, trainer, _ = build_trainer(prep, resolve_device(config.device))
    n_classes = len(prep.data.class_names)
    return {"modality": prep.data.modality, "n_classes": n_classes,
            "n_per_class": config.n_per_class or len(prep.train) / n_classes,
            "backbone": backbone.name, "backbone_params": backbone.n_params,
            "logme": frozen_logme(trainer), "strategies": list(prep.strategies)}


def _check_or_record_identity(study: Any, config: SearchConfig, prep: Prepared) -> None:
    """A resumed study must be the same experiment; anything else would mix results."""
    identity = {
        "data": prep.data.name, "data_fingerprint": prep.data.fingerprint,
        "backbone": config.backbone, "n_per_class": config.n_per_class,
        "val_fraction": config.val_fraction, "seed": config.seed,
        "image_size": config.image_size, "pretrained": config.pretrained,
        "classes": config.classes, "max_length": config.max_length, "augment": config.augment,
        "budget": [config.batch_size, config.epochs, config.min_steps, config.max_steps],
    }
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
        study.set_user_attr("class_names", prep.data.class_names)
        study.set_user_attr("modality", prep.data.modality)
        return
    diff = {k: (stored.get(k), v) for k, v in identity.items() if stored.get(k) != v}
    if diff:
        detail = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"study {study.study_name!r} in {config.storage} was run with other settings "
            f"({detail}). Resume with the same settings, or pass another --study or --out."
        )


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
            study.enqueue_trial(params, skip_if_exists=True)


def open_storage(url: str) -> Any:
    """The study's database with Optuna's heartbeat, so a trial left RUNNING by a dead process
    is failed and queued again instead of haunting the study."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=_requeue_stale_trial)


def _requeue_stale_trial(study: Any, trial: Any) -> None:
    import optuna

    log.warning("trial %d stopped without a result (its process was killed or crashed); "
                "marked failed and queued again", trial.number)
    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)


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

        from autotl.training import TrialResult

        plan = suggest_plan(trial, self.prep.strategies, self.prep.heads, self.backbone)
        seed = self.prep.config.seed + trial.number

        def should_stop(accuracy: float, checkpoint: int) -> bool:
            trial.report(accuracy, checkpoint)
            return trial.should_prune()

        try:
            result = self.trainer.run(plan, seed=seed, should_stop=should_stop)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", error)
            log.warning("trial %d (%s) failed: %s", trial.number, plan.strategy, error)
            self._finished(TrialResult(plan=plan, state="failed", number=trial.number,
                                       error=error))
            raise
        except KeyboardInterrupt:
            # Optuna records the trial as failed; queue its config so a rerun measures it.
            trial.set_user_attr("error", "interrupted (Ctrl-C); queued again for the next run")
            trial.study.enqueue_trial(trial.params)
            raise
        result.number = trial.number
        for key in ("train_seconds", "wall_seconds", "trainable_params", "total_params",
                    "steps", "frozen_depth", "cached_depth", "history"):
            trial.set_user_attr(key, getattr(result, key))
        self._finished(result)
        if result.state == "pruned":
            raise optuna.TrialPruned(f"pruned at checkpoint {len(result.history)}")
        assert result.val_accuracy is not None
        if self._is_best(trial, result):
            from autotl.report import save_best_model

            save_best_model(self.out, trial, result, self.prep, self.backbone)
        return result.val_accuracy

    def _is_best(self, trial: Any, result: Any) -> bool:
        """Whether this trial beats every completed one, in the order the recommendation
        uses, so best_model/ always holds the recommended trial."""
        import optuna

        from autotl.recommendation import rank_key

        mine = rank_key(result.val_accuracy, result.train_seconds, result.trainable_params)
        done = trial.study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
        return all(mine > rank_key(t.value if t.value is not None else -math.inf,
                                   t.user_attrs.get("train_seconds", math.inf),
                                   t.user_attrs.get("trainable_params", 0))
                   for t in done if t.number != trial.number)

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
            message += " (pruned" + (f" at step {step})" if step is not None else ")")
        if self.bar.disable:
            log.info(message)
        else:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()


def _progress_bar(config: SearchConfig, progress: bool | None) -> _ProgressBar:
    enabled = sys.stderr.isatty() if progress is None else progress
    return _ProgressBar(config.trials, enabled, config.timeout)
