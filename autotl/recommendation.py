"""What a study recommends for this dataset and size, read back from the study's storage."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from autotl.selection import Z, Choice, Scored, binomial_se, bootstrap, choose
from autotl.storage import MASK, mask_url

STATES = ("complete", "pruned", "fail")


@dataclass
class Candidate:
    """One measured configuration."""

    strategy: str
    params: dict[str, Any]
    val_accuracy: float
    train_seconds: float
    trainable_params: int
    trial: int
    origin: str = "sampled"
    test_accuracy: float | None = None  # scored after selection; never used to choose
    train_flops: float | None = None  # counted training operations: the rule's cost

    def describe(self, n_groups: int | None = None) -> str:
        """``subset (first 4 of 8 layer groups frozen), lr 2.1e-03, linear head``."""
        details = []
        p = self.params
        if "freeze_depth" in p:
            of = f" of {n_groups}" if n_groups else ""
            details.append(f"first {p['freeze_depth']}{of} layer groups frozen")
        if "r" in p:
            details.append(f"r={p['r']}, alpha={p.get('alpha')}")
        own = [f"{k}={_fmt(v)}" for k, v in p.items()
               if k not in {"lr", "head", "weight_decay", "freeze_depth", "r", "alpha"}
               and "." not in k]
        details += own
        inner = f" ({'; '.join(details)})" if details else ""
        return f"{self.strategy}{inner}, lr {p['lr']:.1e}, {p.get('head', 'linear')} head"

    def short(self) -> str:
        """``trial 7 (subset)``, how the selection's words name a candidate."""
        return f"trial {self.trial} ({self.strategy})"


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dataclass
class Recommendation:
    """The answer of one study; ``to_dict()`` is ``recommendation.json``.

    ``recommended`` is what :mod:`autotl.selection`'s rule chooses on validation accuracy:
    the cheapest config within the noise of the best; ``cheapest_within_tolerance`` also gives
    up ``tolerance``. ``best_estimate`` is the highest estimate where a tie went to a cheaper
    config, and ``user_choice`` the trial a user asked ``best_model/`` to hold instead
    (``autotl report --trial``). ``selection`` says in words how the choice was made. Test
    accuracy, where the data has a test split, is scored afterwards and never used to choose.
    """

    dataset: dict[str, Any]
    backbone: str
    recommended: Candidate | None
    cheapest_within_tolerance: Candidate | None
    per_strategy: list[dict[str, Any]]
    n_trials: int
    trial_states: dict[str, int]
    storage: str
    study: str
    tolerance: float
    n_groups: int
    out: str
    cache: dict[str, Any] | None = None
    best_model: str | None = None
    selection: str = ""
    chosen_by: str = "validation accuracy"
    origins: dict[str, int] = field(default_factory=dict)
    prior: dict[str, Any] | None = None
    budget: str = ""  # the step-budget rule and what it gave here, in words
    notes: list[str] = field(default_factory=list)
    # How trials were scored: {"mode": "split"|"folds"|"prior-only", "words": ..., ...}.
    validation: dict[str, Any] = field(default_factory=dict)
    # How often the rule picks each strategy over bootstrap resamples of the scored rows.
    confidence: dict[str, Any] | None = None
    final_model: str = ""  # what best_model/ was trained on, in words
    # The highest estimate, where a tie went to a cheaper config: what a user to whom
    # training cost does not matter may take instead (``autotl report --trial``).
    best_estimate: Candidate | None = None
    # The trial a user asked ``best_model/`` to hold instead of the recommended one.
    user_choice: Candidate | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def named_trials(self) -> list[int]:
        """Trials the recommendation names: recommended, cheapest within tolerance, and each
        strategy's representative (the ones whose models are kept and test-scored)."""
        numbers = [c.trial for c in (self.recommended, self.cheapest_within_tolerance,
                                     self.user_choice) if c]
        numbers += [s["trial"] for s in self.per_strategy if s.get("trial") is not None]
        return list(dict.fromkeys(numbers))

    def attach_test_scores(self, scores: dict[int, float], n_test: int) -> None:
        """Test accuracy beside validation accuracy for every named trial that has one."""
        self.dataset["n_test"] = n_test
        for candidate in (self.recommended, self.cheapest_within_tolerance, self.user_choice):
            if candidate is not None:
                candidate.test_accuracy = scores.get(candidate.trial)
        for entry in self.per_strategy:
            if entry.get("trial") is not None:
                entry["test_accuracy"] = scores.get(entry["trial"])

    def summary(self) -> str:
        """The recommendation in a few sentences."""
        d = self.dataset
        size = (f"{d['n_per_class']} examples per class" if d.get("n_per_class")
                else f"{d['n_train']} training examples")
        if self.validation.get("mode") == "prior-only":
            use = (f"use {self.recommended.strategy}" if self.recommended
                   else "nothing can be recommended")
            return f"For {d['name']} ({d['n_classes']} classes): {use}. {self.selection}"
        if self.recommended is None:
            return (f"No trial of study {self.study!r} completed, so there is nothing to "
                    f"recommend yet; see {self.out}/trials.csv for the errors.")
        best = self.recommended
        scored = ("accuracy over the folds" if self.validation.get("mode") == "folds"
                  else "validation accuracy")
        test = (f", test accuracy {best.test_accuracy:.3f} on {d.get('n_test')} held-out rows"
                if best.test_accuracy is not None else "")
        lines = [
            f"For {d['name']} at {size} ({d['n_classes']} classes) with {self.backbone}: "
            f"use {best.describe(self.n_groups)} — {scored} {best.val_accuracy:.3f} "
            f"(chose it){test}; {best.train_seconds:.1f} s to train, "
            f"{best.trainable_params:,} trainable parameters.",
        ]
        if self.validation.get("mode") == "folds" or self.validation.get("source") not in (
                None, "drawn"):  # the folds, or a validation set the data brings
            lines.append(self.validation["words"])
        if self.selection:
            lines.append(self.selection)
        if self.confidence:
            lines.append(self.confidence["words"])
        estimate = self.best_estimate
        if estimate is not None and self.user_choice is None:
            # A masked password would not connect: then the URL comes from $AUTOTL_STORAGE.
            storage = ("" if MASK in self.storage else f"--storage '{self.storage}' ")
            lines.append(
                f"If training cost does not matter to you, take the best estimate instead, "
                f"trial {estimate.trial}: {estimate.describe(self.n_groups)} ({scored} "
                f"{estimate.val_accuracy:.3f}, {estimate.train_seconds:.1f} s to train). "
                f"`autotl report {storage}--study '{self.study}' --out '{self.out}' --trial "
                f"{estimate.trial}` rebuilds best_model/ from it"
                + (" (with the storage URL in $AUTOTL_STORAGE)." if not storage else "."))
        mine = self.user_choice
        if mine is not None:
            test = (f", test accuracy {mine.test_accuracy:.3f}"
                    if mine.test_accuracy is not None else "")
            lines.append(
                f"best_model/ holds trial {mine.trial} as asked with --trial {mine.trial}, not "
                f"the recommended trial {best.trial}: {mine.describe(self.n_groups)} ({scored} "
                f"{mine.val_accuracy:.3f}{test}).")
        if self.final_model:
            lines.append(self.final_model)
        cheap = self.cheapest_within_tolerance
        if cheap is not None and cheap.trial != best.trial:
            lines.append(
                f"Cheaper still if you give up {self.tolerance:.3f} more accuracy: "
                f"{cheap.describe(self.n_groups)} — validation {cheap.val_accuracy:.3f} in "
                f"{cheap.train_seconds:.1f} s with {cheap.trainable_params:,} trainable "
                "parameters."
            )
        ranking = ", ".join(
            f"{s['strategy']} {s['val_accuracy']:.3f}"
            + (f" (test {s['test_accuracy']:.3f})" if s.get("test_accuracy") is not None else "")
            for s in self.per_strategy if s["val_accuracy"] is not None)
        lines.append(f"Each strategy's pick (validation): {ranking}. {self.n_trials} trials "
                     f"({_states_text(self.trial_states)}); results in {self.out}.")
        return "\n".join(lines)


def _states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in states.items() if n)


def candidate_from_trial(trial: Any) -> Candidate:
    """A Candidate from an Optuna FrozenTrial, with the strategy's own parameter prefix
    dropped (``subset.freeze_depth`` → ``freeze_depth``)."""
    strategy = trial.params["strategy"]
    params: dict[str, Any] = {}
    for key, value in trial.params.items():
        if key == "strategy":
            continue
        params[key.removeprefix(f"{strategy}.")] = value
    return Candidate(
        strategy=strategy,
        params=params,
        val_accuracy=float(trial.value),
        train_seconds=float(trial.user_attrs.get("train_seconds", float("nan"))),
        trainable_params=int(trial.user_attrs.get("trainable_params", 0)),
        trial=trial.number,
        origin=str(trial.user_attrs.get("origin", "sampled")),
        train_flops=trial.user_attrs.get("train_flops"),
    )


def scored_from_trial(trial: Any, n_val: int,
                      prior: dict[str, tuple[float, float]] | None = None) -> Scored:
    """A completed trial as the selection rule sees it; ``n_val`` distinct rows scored (its
    outcomes may hold several repeats of them), ``prior`` strategy → (mean, sd)."""
    seconds = trial.user_attrs.get("train_seconds")
    strategy = trial.params["strategy"]
    mean, sd = (prior or {}).get(strategy, (None, None))
    return Scored(key=trial.number, label=f"trial {trial.number} ({strategy})",
                  accuracy=float(trial.value), n=n_val,
                  seconds=float(seconds) if seconds is not None else math.inf,
                  flops=trial.user_attrs.get("train_flops"),
                  trainable_params=int(trial.user_attrs.get("trainable_params", 0)),
                  correct=trial.user_attrs.get("val_correct"),
                  prior_mean=mean, prior_sd=sd, prior_key=strategy)


def select(trials: list[Any], n_val: int, tolerance: float = 0.0,
           prior: dict[str, tuple[float, float]] | None = None, z: float = Z) -> Choice | None:
    """The selection rule over completed trials (``z``: see :func:`autotl.selection.choose`)."""
    return choose([scored_from_trial(t, n_val, prior) for t in trials], tolerance=tolerance,
                  z=z)


def prior_on_scale(expectations: dict[str, dict[str, float]] | None,
                   trials: list[Any]) -> dict[str, tuple[float, float]]:
    """The prior's expected relative accuracies on the candidates' scale: relative × the best
    measured accuracy, and its sd likewise (the prior knows ratios between strategies, not
    this data's accuracy level)."""
    if not expectations or not trials:
        return {}
    best = max(float(t.value) for t in trials)
    return {name: (e["relative"] * best, e["sd"] * best) for name, e in expectations.items()}


BOOTSTRAP_RESAMPLES = 500
BOOTSTRAP_OUTCOMES = 5_000_000  # per-row outcomes resampled in all: a few seconds of Python


def confidence(picks: list[Scored], tolerance: float, seed: int) -> dict[str, Any] | None:
    """How often the rule, applied to each strategy's pick, chooses each strategy over a
    seeded bootstrap of the scored rows (a row's repeats resampled together): 500 resamples,
    fewer (at least 100) where the validation set is so large that 500 would take long."""
    by_key = {s.key: s.prior_key for s in picks}
    outcomes = max(1, len(picks[0].correct or "") * len(picks)) if picks else 1
    resamples = max(100, min(BOOTSTRAP_RESAMPLES, BOOTSTRAP_OUTCOMES // outcomes))
    shares = bootstrap(picks, resamples=resamples, seed=seed, tolerance=tolerance,
                       by=lambda c: by_key[c.key])
    if shares is None:
        return None
    ranked = dict(sorted(shares.items(), key=lambda item: -item[1]))
    words = ", ".join(f"{k} {v:.0%}" for k, v in ranked.items() if v > 0)
    return {"resamples": resamples, "seed": seed, "shares": ranked,
            "words": f"Over {resamples} bootstrap resamples of the scored rows, the rule picks "
                     f"{words}."}


def build_recommendation(study: Any, prep: Any, config: Any, backbone: Any, trainer: Any,
                         cache_stats: Any = None) -> Recommendation:
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False)  # queued trials are not results
              if t.state not in (optuna.trial.TrialState.WAITING,
                                 optuna.trial.TrialState.RUNNING)]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                and t.value is not None]
    n_val = prep.n_scored
    by_number = {t.number: t for t in complete}
    prior = prior_on_scale(study.user_attrs.get("prior_expectations"), complete)
    choice = select(complete, n_val, prior=prior)
    within = select(complete, n_val, config.tolerance, prior=prior)
    best = candidate_from_trial(by_number[choice.chosen.key]) if choice else None
    cheapest = candidate_from_trial(by_number[within.chosen.key]) if within else None
    estimate = (candidate_from_trial(by_number[choice.leader.key])
                if choice and choice.leader.key != choice.chosen.key else None)
    per_strategy, picks = [], []
    for name in prep.strategies:
        own = [t for t in complete if t.params.get("strategy") == name]
        pick = select(own, n_val)  # one strategy: its prior says nothing between its trials
        if pick is not None:
            picks.append(scored_from_trial(by_number[pick.chosen.key], n_val, prior))
        top = candidate_from_trial(by_number[pick.chosen.key]) if pick else None
        started = [t for t in trials if t.params.get("strategy") == name]
        per_strategy.append({
            "strategy": name,
            "val_accuracy": top.val_accuracy if top else None,
            # Fold mode: the standard error of the mean over folds; else binomial.
            "val_se": (by_number[top.trial].user_attrs.get("fold_se",
                                                          binomial_se(top.val_accuracy, n_val))
                       if top else None),
            "test_accuracy": None,
            "trial": top.trial if top else None,
            "max_val_accuracy": max((t.value for t in own), default=None),
            "n_trials": len(started),
            "n_complete": len(own),
            "n_sampled": sum(1 for t in started if t.user_attrs.get("origin") == "sampled"),
            "params": top.params if top else None,
            "train_seconds": top.train_seconds if top else None,
            "trainable_params": top.trainable_params if top else None,
            "selection": pick.describe() if pick else None,
        })
    per_strategy.sort(key=lambda s: -(s["val_accuracy"] if s["val_accuracy"] is not None
                                      else -1))
    states = {s: 0 for s in STATES}
    origins: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        origin = str(t.user_attrs.get("origin", "sampled"))
        origins[origin] = origins.get(origin, 0) + 1
    cache = None
    if cache_stats is not None:
        cache = cache_stats.as_dict()
    words = choice.describe() if choice else ""
    if choice and prior:
        words += " " + _what_decided(choice, select(complete, n_val), prior)
    return Recommendation(
        dataset={
            "name": prep.data.name,
            "modality": prep.data.modality,
            "n_train": len(prep.train),
            "n_val": len(prep.val),  # in fold mode, pooled with training rows (validation)
            "n_test": len(prep.test) if getattr(prep, "test", None) is not None else 0,
            "n_classes": len(prep.data.class_names),
            "n_per_class": config.n_per_class,
            "class_names": list(prep.data.class_names),
        },
        backbone=backbone.name,
        recommended=best,
        cheapest_within_tolerance=cheapest,
        best_estimate=estimate,
        per_strategy=per_strategy,
        n_trials=len(trials),
        trial_states={k: v for k, v in states.items() if v},
        storage=mask_url(config.storage),
        study=str(config.study),
        tolerance=config.tolerance,
        n_groups=backbone.n_groups,
        out=str(config.out),
        cache=cache,
        best_model=None,
        selection=words,
        chosen_by=("validation accuracy and the prior's expectation" if prior
                   else "validation accuracy"),
        origins=origins,
        prior=study.user_attrs.get("prior"),
        budget=_budget_words(config, trainer),
        validation=validation_scheme(prep),
        confidence=confidence(picks, config.tolerance, config.seed) if len(picks) > 1
        else None,
    )


def validation_scheme(prep: Any) -> dict[str, Any]:
    """How the study scored its trials, for recommendation.json and the report."""
    if getattr(prep, "folds", None):
        scheme = prep.fold_scheme
        from autotl.data.splits import label_array

        smallest = int(min(label_array(prep.pool).tolist().count(c)
                           for c in range(len(prep.data.class_names))))
        return {"mode": "folds", **scheme.to_dict(), "rows": len(prep.pool),
                "fold_below": prep.config.fold_below,
                "words": f"Validation would hold fewer than {prep.config.fold_below} rows per "
                         f"class, so every trial was scored by "
                         f"{scheme.describe(len(prep.pool), smallest)}."}
    data = prep.data
    if getattr(data, "val", None) is not None:
        return {"mode": "split", "rows": len(prep.val), "source": data.val_source,
                "words": f"Trials were scored on the validation set the data brings, used as "
                         f"given: {data.val_source}, {len(prep.val)} rows."}
    config = prep.config
    return {"mode": "split", "rows": len(prep.val), "source": "drawn",
            "words": f"Trials were scored on one validation split of {len(prep.val)} rows, "
                     f"drawn: val_fraction {config.val_fraction:g} of each class's training "
                     f"rows (at most 100 per class), split seed {config.data_seed}."}


def _what_decided(with_prior: Choice, measured: Choice | None,
                  prior: dict[str, tuple[float, float]]) -> str:
    """Whether the prior changed the choice the measurement alone would make, in words."""
    expected = ", ".join(f"{k} {m:.3f} ± {sd:.3f}" for k, (m, sd) in
                         sorted(prior.items(), key=lambda item: -item[1][0]))
    text = (f"Each estimate weighs the measured accuracy against the prior's expectation "
            f"({expected}) by their precisions.")
    if measured is not None and measured.chosen.key != with_prior.chosen.key:
        text += (f" Measured alone, the rule would have chosen {measured.chosen.label}; the "
                 f"prior moved the choice to {with_prior.chosen.label}.")
    elif measured is not None and measured.is_tie and not with_prior.is_tie:
        text += " The measurement alone could not separate them; with the prior it can."
    return text


def _budget_words(config: Any, trainer: Any) -> str:
    from autotl.size_map import budget_rule

    steps = getattr(trainer, "steps", None)
    return budget_rule(config) + (f" Here: {steps} steps per trial." if steps else "")
