"""What a study recommends for this dataset and size, read back from the study's storage."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from autotl.selection import Choice, Scored, choose
from autotl.storage import mask_url

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
    up ``tolerance``. ``selection`` says in words how the choice was made. Test accuracy,
    where the data has a test split, is scored afterwards and never used to choose.
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
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def named_trials(self) -> list[int]:
        """Trials the recommendation names: recommended, cheapest within tolerance, and each
        strategy's representative (the ones whose models are kept and test-scored)."""
        numbers = [c.trial for c in (self.recommended, self.cheapest_within_tolerance) if c]
        numbers += [s["trial"] for s in self.per_strategy if s.get("trial") is not None]
        return list(dict.fromkeys(numbers))

    def attach_test_scores(self, scores: dict[int, float], n_test: int) -> None:
        """Test accuracy beside validation accuracy for every named trial that has one."""
        self.dataset["n_test"] = n_test
        for candidate in (self.recommended, self.cheapest_within_tolerance):
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
        if self.recommended is None:
            return (f"No trial of study {self.study!r} completed, so there is nothing to "
                    f"recommend yet; see {self.out}/trials.csv for the errors.")
        best = self.recommended
        test = (f", test accuracy {best.test_accuracy:.3f} on {d.get('n_test')} held-out rows"
                if best.test_accuracy is not None else "")
        lines = [
            f"For {d['name']} at {size} ({d['n_classes']} classes) with {self.backbone}: "
            f"use {best.describe(self.n_groups)} — validation accuracy {best.val_accuracy:.3f} "
            f"(chose it){test}; {best.train_seconds:.1f} s to train, "
            f"{best.trainable_params:,} trainable parameters.",
        ]
        if self.selection:
            lines.append(self.selection)
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
    )


def scored_from_trial(trial: Any, n_val: int) -> Scored:
    """A completed trial as the selection rule sees it."""
    seconds = trial.user_attrs.get("train_seconds")
    return Scored(key=trial.number, label=f"trial {trial.number} ({trial.params['strategy']})",
                  accuracy=float(trial.value), n=n_val,
                  seconds=float(seconds) if seconds is not None else math.inf,
                  trainable_params=int(trial.user_attrs.get("trainable_params", 0)),
                  correct=trial.user_attrs.get("val_correct"))


def select(trials: list[Any], n_val: int, tolerance: float = 0.0) -> Choice | None:
    """The selection rule over completed trials."""
    return choose([scored_from_trial(t, n_val) for t in trials], tolerance=tolerance)


def build_recommendation(study: Any, prep: Any, config: Any, backbone: Any, trainer: Any,
                         cache_stats: Any = None) -> Recommendation:
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False)  # queued trials are not results
              if t.state not in (optuna.trial.TrialState.WAITING,
                                 optuna.trial.TrialState.RUNNING)]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                and t.value is not None]
    n_val = len(prep.val)
    by_number = {t.number: t for t in complete}
    choice = select(complete, n_val)
    within = select(complete, n_val, config.tolerance)
    best = candidate_from_trial(by_number[choice.chosen.key]) if choice else None
    cheapest = candidate_from_trial(by_number[within.chosen.key]) if within else None
    per_strategy = []
    for name in prep.strategies:
        own = [t for t in complete if t.params.get("strategy") == name]
        pick = select(own, n_val)
        top = candidate_from_trial(by_number[pick.chosen.key]) if pick else None
        started = [t for t in trials if t.params.get("strategy") == name]
        per_strategy.append({
            "strategy": name,
            "val_accuracy": top.val_accuracy if top else None,
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
    return Recommendation(
        dataset={
            "name": prep.data.name,
            "modality": prep.data.modality,
            "n_train": len(prep.train),
            "n_val": n_val,
            "n_test": len(prep.test) if getattr(prep, "test", None) is not None else 0,
            "n_classes": len(prep.data.class_names),
            "n_per_class": config.n_per_class,
            "class_names": list(prep.data.class_names),
        },
        backbone=backbone.name,
        recommended=best,
        cheapest_within_tolerance=cheapest,
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
        selection=choice.describe() if choice else "",
        origins=origins,
        prior=study.user_attrs.get("prior"),
    )
