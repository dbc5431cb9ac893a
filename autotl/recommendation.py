"""What a study recommends for this dataset and size, read back from the study's storage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dataclass
class Recommendation:
    """The answer of one study; ``to_dict()`` is ``recommendation.json``."""

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
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """The recommendation in a few sentences."""
        d = self.dataset
        size = (f"{d['n_per_class']} examples per class" if d.get("n_per_class")
                else f"{d['n_train']} training examples")
        if self.recommended is None:
            return (f"No trial of study {self.study!r} completed, so there is nothing to "
                    f"recommend yet; see {self.out}/trials.csv for the errors.")
        best = self.recommended
        lines = [
            f"For {d['name']} at {size} ({d['n_classes']} classes) with {self.backbone}: "
            f"use {best.describe(self.n_groups)} — validation accuracy {best.val_accuracy:.3f} "
            f"({best.train_seconds:.1f} s to train, {best.trainable_params:,} trainable "
            "parameters).",
        ]
        cheap = self.cheapest_within_tolerance
        if cheap is not None and cheap.trial != best.trial:
            lines.append(
                f"Cheapest within {self.tolerance:.3f} of it: {cheap.describe(self.n_groups)} — "
                f"{cheap.val_accuracy:.3f} in {cheap.train_seconds:.1f} s with "
                f"{cheap.trainable_params:,} trainable parameters."
            )
        ranking = ", ".join(f"{s['strategy']} {s['best_val_accuracy']:.3f}"
                            for s in self.per_strategy if s["best_val_accuracy"] is not None)
        lines.append(f"Best of each strategy: {ranking}. {self.n_trials} trials "
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
    )


def rank_key(accuracy: float, seconds: float, trainable_params: int) -> tuple[float, ...]:
    """Order of merit: accuracy, then fewer seconds, then fewer trainable parameters."""
    return (accuracy, -seconds, -trainable_params)


def pick(candidates: list[Candidate], tolerance: float) -> tuple[Candidate | None,
                                                                 Candidate | None]:
    """The most accurate candidate (ties: cheaper first), and the cheapest in seconds (then
    in trainable parameters) whose accuracy is within ``tolerance`` of it."""
    if not candidates:
        return None, None
    best = max(candidates, key=lambda c: rank_key(c.val_accuracy, c.train_seconds,
                                                  c.trainable_params))
    close = [c for c in candidates if c.val_accuracy >= best.val_accuracy - tolerance - 1e-12]
    cheapest = min(close, key=lambda c: (c.train_seconds, c.trainable_params))
    return best, cheapest


def build_recommendation(study: Any, prep: Any, config: Any, backbone: Any, trainer: Any,
                         cache_stats: Any = None) -> Recommendation:
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False)  # queued trials are not results
              if t.state not in (optuna.trial.TrialState.WAITING,
                                 optuna.trial.TrialState.RUNNING)]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE
                and t.value is not None]
    candidates = [candidate_from_trial(t) for t in complete]
    best, cheapest = pick(candidates, config.tolerance)
    per_strategy = []
    for name in prep.strategies:
        own = [c for c in candidates if c.strategy == name]
        top = max(own, key=lambda c: c.val_accuracy) if own else None
        per_strategy.append({
            "strategy": name,
            "best_val_accuracy": top.val_accuracy if top else None,
            "n_trials": sum(1 for t in trials if t.params.get("strategy") == name),
            "n_complete": len(own),
            "best_params": top.params if top else None,
            "best_train_seconds": top.train_seconds if top else None,
            "best_trainable_params": top.trainable_params if top else None,
        })
    per_strategy.sort(key=lambda s: -(s["best_val_accuracy"] or -1))
    states = {s: 0 for s in STATES}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    cache = None
    if cache_stats is not None:
        cache = cache_stats.as_dict()
    return Recommendation(
        dataset={
            "name": prep.data.name,
            "modality": prep.data.modality,
            "n_train": len(prep.train),
            "n_val": len(prep.val),
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
        best_model=str(config.out / "best_model") if best else None,
    )
