"""The strategy-by-size map: one study per dataset size, top configs re-run with new seeds.

``autotl search DATA --sizes 5,20,100,all`` runs a study at each size (examples per class),
sharing storage, validation set and activation cache, then re-trains each strategy's best
config with further seeds so the spread is measured rather than guessed, and writes
``size_map.json``, ``size_map.png`` and a report with the crossover points in words.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autotl.config import SearchConfig
from autotl.errors import ConfigError
from autotl.selection import Choice, Scored, choose

log = logging.getLogger(__name__)

RERUN_STUDY_SUFFIX = "-seeds"
SEED_STRIDE = 10_000  # new seeds far from the search's own (seed + trial number)


def parse_sizes(text: str | list[Any]) -> list[int | None]:
    """``"5,20,100,all"`` → ``[5, 20, 100, None]`` (None: every example), ascending."""
    items = text.split(",") if isinstance(text, str) else list(text)
    sizes: list[int | None] = []
    for item in items:
        raw = str(item).strip().lower()
        if raw in {"all", "none", ""}:
            sizes.append(None)
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"sizes must be whole numbers of examples per class or 'all', "
                              f"but got {item!r}.") from None
        if value < 1:
            raise ConfigError(f"sizes must be at least 1 example per class, but got {value}.")
        sizes.append(value)
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"sizes contain duplicates: {items}.")
    return sorted(sizes, key=lambda s: math.inf if s is None else s)


def size_label(size: int | None) -> str:
    return "all" if size is None else str(size)


@dataclass
class Measured:
    """A strategy's pick at one size, trained again with fresh seeds and scored at the end of
    its step budget. ``search_accuracy`` is the search's own value for it, reported apart: it
    was selected as a maximum over trials and is biased upward."""

    strategy: str
    params: dict[str, Any]
    search_accuracy: float
    accuracies: list[float]  # validation, one per fresh seed
    train_seconds: float
    trainable_params: int
    trial: int
    test_accuracies: list[float] = field(default_factory=list)
    correct: str | None = None  # validation outcomes, concatenated over the seeds
    train_flops: float | None = None  # mean over the seeds; None where one was not counted

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    @property
    def test_mean(self) -> float | None:
        return statistics.fmean(self.test_accuracies) if self.test_accuracies else None

    @property
    def test_std(self) -> float | None:
        if not self.test_accuracies:
            return None
        return statistics.stdev(self.test_accuracies) if len(self.test_accuracies) > 1 else 0.0

    def scored(self, n_val: int) -> Scored:
        return Scored(key=self.strategy, label=self.strategy, accuracy=self.mean,
                      n=n_val * len(self.accuracies), seconds=self.train_seconds,
                      flops=self.train_flops,
                      trainable_params=self.trainable_params, correct=self.correct)

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "mean": self.mean, "std": self.std,
               "seeds": len(self.accuracies), "test_mean": self.test_mean,
               "test_std": self.test_std}
        out.pop("correct")
        return out


@dataclass
class SizeEntry:
    """One rung of the ladder."""

    n_per_class: int | None
    n_train: int
    n_val: int
    study: str
    out: str
    measured: list[Measured]
    n_groups: int
    logme: float | None = None
    n_test: int = 0

    def ranked(self) -> list[Measured]:
        return sorted(self.measured, key=lambda m: (-m.mean, m.train_seconds))

    def choice(self, tolerance: float = 0.0) -> Choice | None:
        """The selection rule over the strategies' fresh-seed scores."""
        return choose([m.scored(self.n_val) for m in self.measured], tolerance=tolerance,
                      what="strategy")

    def best(self) -> Measured | None:
        """The winner at this size by the one selection rule (a tie goes to the cheaper)."""
        choice = self.choice()
        return self._by_name(choice.chosen.key) if choice else None

    def cheapest_within(self, tolerance: float) -> Measured | None:
        choice = self.choice(tolerance)
        return self._by_name(choice.chosen.key) if choice else None

    def _by_name(self, strategy: str) -> Measured:
        return next(m for m in self.measured if m.strategy == strategy)

    def effective_per_class(self, n_classes: int) -> float:
        return float(self.n_per_class) if self.n_per_class else self.n_train / n_classes


@dataclass
class SizeMap:
    """Every rung, plus what was compared and how."""

    dataset: str
    modality: str
    n_classes: int
    backbone: str
    backbone_params: int
    strategies: list[str]
    seeds: int
    tolerance: float
    entries: list[SizeEntry] = field(default_factory=list)
    out: str = ""
    budget: str = ""  # the step-budget rule, in words
    data_fingerprint: str = ""  # of the data before a test fraction was held out
    project_to: list[int] | None = None  # sizes per class to project to (default: curves')

    def projection(self) -> tuple[Any, str | None]:
        """The learning-curve projection from the rungs' fresh-seed validation accuracies,
        or ``(None, why there is none)``. Test accuracy stays out: it is held out."""
        from autotl.curves import CurvePoint, project

        points: dict[str, list[CurvePoint]] = {}
        for entry in self.entries:
            n = entry.effective_per_class(self.n_classes)
            for m in entry.measured:
                points.setdefault(m.strategy, []).append(
                    CurvePoint(n=n, accuracies=tuple(m.accuracies), n_eval=entry.n_val))
        sizes = {p.n for items in points.values() for p in items}
        if len(self.entries) < 2 or len(sizes) < 2:
            return None, (f"{len(sizes)} size measured; a learning curve needs two or more "
                          "(e.g. --sizes 5,10)")
        if not any(len({p.n for p in items}) >= 2 for items in points.values()):
            return None, "no strategy was measured at two or more sizes"
        return project(points, targets=self.project_to), None


    def crossovers(self) -> str:
        """Which strategy wins where, in words."""
        runs: list[tuple[str, list[str]]] = []
        for entry in self.entries:
            best = entry.best()
            if best is None:
                continue
            name = describe_winner(best, entry.n_groups)
            label = f"{size_label(entry.n_per_class)}"
            if runs and runs[-1][0] == name:
                runs[-1][1].append(label)
            else:
                runs.append((name, [label]))
        if not runs:
            return "No size has a completed trial yet."
        if len(runs) == 1:
            sizes = ", ".join(runs[0][1])
            return f"{runs[0][0]} is best at every size measured ({sizes} per class)."
        parts = []
        for i, (name, labels) in enumerate(runs):
            if i == 0:
                parts.append(f"{name} is best up to {labels[-1]} per class")
            else:
                parts.append(f"{name} from {labels[0]}" + (
                    f" to {labels[-1]}" if len(labels) > 1 and i < len(runs) - 1 else ""))
        return "; ".join(parts) + "."

    def noise_notes(self) -> list[str]:
        """Sizes where the measurement could not separate the best strategies, and how the
        tie was broken."""
        notes = []
        for entry in self.entries:
            choice = entry.choice()
            if choice is not None and choice.is_tie:
                notes.append(f"at {size_label(entry.n_per_class)} per class: "
                             f"{choice.describe()}")
        return notes

    def summary(self) -> str:
        """The map as printed by ``autotl search --sizes``."""
        return (size_map_markdown(self) + f"\nsize map written to {self.out}/size_map.json, "
                "size_map.png, size_map.md and report.html")

    def to_dict(self) -> dict[str, Any]:
        sizes = []
        for entry in self.entries:
            best = entry.best()
            cheapest = entry.cheapest_within(self.tolerance)
            sizes.append({
                "n_per_class": entry.n_per_class,
                "label": size_label(entry.n_per_class),
                "n_train": entry.n_train,
                "n_val": entry.n_val,
                "n_test": entry.n_test,
                "study": entry.study,
                "out": entry.out,
                "logme": entry.logme,
                "n_groups": entry.n_groups,
                "best": best.to_dict() if best else None,
                "selection": (entry.choice().describe()  # type: ignore[union-attr]
                              if entry.measured else None),
                "cheapest_within_tolerance": cheapest.to_dict() if cheapest else None,
                "per_strategy": [m.to_dict() for m in entry.ranked()],
            })
        return {
            "dataset": self.dataset, "modality": self.modality, "n_classes": self.n_classes,
            "backbone": self.backbone, "backbone_params": self.backbone_params,
            "strategies": self.strategies, "seeds": self.seeds, "tolerance": self.tolerance,
            "crossovers": self.crossovers(), "noise": self.noise_notes(),
            "budget": self.budget, "data_fingerprint": self.data_fingerprint, "sizes": sizes,
            "projection": _projection_dict(self),
        }


def _projection_dict(size_map: SizeMap) -> dict[str, Any]:
    projection, why = size_map.projection()
    if projection is None:
        return {"available": False, "reason": why, "sentences": [f"No projection: {why}."]}
    return {"available": True, **projection.to_dict()}


PROJECTION_BASIS = (
    "Fitted to each strategy's validation accuracy (fresh seeds) at the sizes measured, as "
    "1 − acc(n) = exp(a + b·ln n) per strategy (a power law in the error), with a seeded "
    "bootstrap over the seeds for the intervals; test accuracy is held out and not used. "
    "Two to a few sizes cannot show where a curve levels off, so a projection far beyond the "
    "largest size is uncertain.")


def projection_table(size_map: SizeMap) -> tuple[list[str], list[list[str]]]:
    """Projected accuracy (median, 80% interval) and win probability per target size."""
    projection, _ = size_map.projection()
    if projection is None:
        return [], []
    header = ["per class", *(f.strategy for f in projection.fits), "projected winner"]
    rows = []
    for target in projection.targets:
        cells = [f"{target.n:g}"]
        for f in projection.fits:
            lo, hi = target.interval[f.strategy]
            cells.append(f"{target.median[f.strategy]:.3f} ({lo:.3f}–{hi:.3f}), wins "
                         f"{target.win_probability[f.strategy]:.0%}")
        cells.append(target.winner())
        rows.append(cells)
    return header, rows


def projection_markdown(size_map: SizeMap) -> list[str]:
    data = _projection_dict(size_map)
    lines = ["", "## What more data would change", ""]
    lines += [f"- {s}" for s in data["sentences"]]
    header, rows = projection_table(size_map)
    if rows:
        lines += ["", PROJECTION_BASIS, "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def describe_winner(measured: Measured, n_groups: int) -> str:
    if "freeze_depth" in measured.params:
        return (f"{measured.strategy} with {measured.params['freeze_depth']} of {n_groups} "
                "groups frozen")
    if "r" in measured.params:
        return f"{measured.strategy} (r={measured.params['r']})"
    return measured.strategy


def budget_rule(config: SearchConfig) -> str:
    """The step budget every trial gets, in words: the winner at a size depends on it."""
    return (f"Every trial trains for clamp(ceil({config.epochs:g} epochs × training examples "
            f"/ batch {config.batch_size}), {config.min_steps}, {config.max_steps}) optimizer "
            "steps, the same rule for every strategy at every size.")


def search_sizes(config: SearchConfig, sizes: list[int | None], *, plugins: Any = None,
                 progress: bool | None = None, seeds: int = 3,
                 project_to: list[Any] | None = None) -> SizeMap:
    """Run the ladder; each rung is an ordinary resumable study in the shared storage.
    ``project_to``: sizes per class the learning-curve projection reports (default 2×, 4×
    and 10× the largest size)."""
    from autotl.plugins import load_plugins
    from autotl.study import Session, default_study_name

    if seeds < 1:
        raise ConfigError(f"seeds must be at least 1, but got seeds={seeds}.")
    plugins = plugins or load_plugins()
    if project_to is not None:
        from autotl.curves import parse_targets

        project_to = parse_targets(project_to)
    base = config.study or default_study_name(config.replace(n_per_class=None)) \
        .replace("-all-", "-sizes-")
    out = Path(config.out) if config.out else Path("runs") / base
    out.mkdir(parents=True, exist_ok=True)
    storage = config.storage or f"sqlite:///{out.resolve() / 'study.db'}"
    size_map: SizeMap | None = None
    for size in sizes:
        label = size_label(size)
        # One shared validation split by design (rungs compare on the same rows), so never
        # folds: a rung's fresh-seed reruns are scored on that split too.
        rung = config.replace(n_per_class=size, study=f"{base}-{label}pc",
                              out=out / f"{label}pc", storage=storage, fold_below=0)
        session = Session(rung, plugins=plugins, progress=progress)
        log.info("size %s per class: study %s", label, rung.study)
        session.optimize()
        session.finish()
        if size_map is None:
            size_map = SizeMap(
                dataset=session.prep.data.name, modality=session.prep.data.modality,
                n_classes=len(session.prep.data.class_names), backbone=session.backbone.name,
                backbone_params=session.backbone.n_params,
                strategies=list(session.prep.strategies), seeds=seeds,
                tolerance=config.tolerance, out=str(out), budget=budget_rule(config),
                data_fingerprint=session.prep.source_fingerprint, project_to=project_to)
        size_map.entries.append(measure_rung(session, seeds))
        write_size_map(size_map, out)
        if session.interrupted:
            raise KeyboardInterrupt
    assert size_map is not None
    return size_map


def measure_rung(session: Any, seeds: int) -> SizeEntry:
    """Each strategy's pick (the selection rule within the strategy), trained again with
    ``seeds`` fresh seeds and scored at the end of the step budget — validation, and the test
    split where there is one. The search's own value for the pick is kept apart. Reruns are
    stored as trials of ``<study>-seeds`` so a resumed ladder does not repeat them."""
    import optuna

    from autotl.recommendation import candidate_from_trial, select
    from autotl.study import _quiet_optuna

    study = session.study
    with _quiet_optuna():
        reruns = optuna.create_study(storage=study._storage, direction="maximize",
                                     study_name=study.study_name + RERUN_STUDY_SUFFIX,
                                     load_if_exists=True)
    done = {(t.user_attrs.get("source_trial"), t.user_attrs.get("seed")): t
            for t in reruns.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE}
    measured = []
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    n_val = len(session.prep.val)
    has_test = session.prep.test is not None
    for strategy in session.prep.strategies:
        own = [t for t in complete if t.params.get("strategy") == strategy]
        pick = select(own, n_val)
        if pick is None:
            continue
        top = next(t for t in own if t.number == pick.chosen.key)
        runs = []
        for i in range(1, seeds + 1):
            seed = session.config.seed + SEED_STRIDE * i + top.number
            found = done.get((top.number, seed))
            if found is None:
                result, test = session.rerun(dict(top.params), seed)
                attrs = {"source_trial": top.number, "seed": seed,
                         "train_seconds": result.train_seconds,
                         "val_correct": result.val_correct}
                if test is not None:
                    attrs.update(test_accuracy=test[0], test_correct=test[1])
                found = optuna.trial.create_trial(
                    params=top.params, distributions=top.distributions,
                    value=result.val_accuracy, user_attrs=attrs)
                reruns.add_trial(found)
                log.info("  %s (trial %d) seed %d: validation %.3f%s", strategy, top.number,
                         seed, result.val_accuracy,
                         f", test {test[0]:.3f}" if test is not None else "")
            runs.append(found)
        correct = [r.user_attrs.get("val_correct") for r in runs]
        candidate = candidate_from_trial(top)
        measured.append(Measured(
            strategy=strategy, params=candidate.params, search_accuracy=float(top.value),
            accuracies=[float(r.value) for r in runs],
            train_seconds=statistics.fmean(r.user_attrs["train_seconds"] for r in runs),
            trainable_params=candidate.trainable_params, trial=top.number,
            test_accuracies=[float(r.user_attrs["test_accuracy"]) for r in runs
                             if has_test and "test_accuracy" in r.user_attrs],
            correct="".join(correct) if all(correct) else None,
            train_flops=_mean_flops(runs)))
    prep = session.prep
    return SizeEntry(n_per_class=session.config.n_per_class, n_train=len(prep.train),
                     n_val=n_val, study=study.study_name, out=str(session.out),
                     measured=measured, n_groups=session.backbone.n_groups,
                     logme=session.logme(), n_test=len(prep.test) if has_test else 0)


def write_size_map(size_map: SizeMap, out: Path) -> None:
    data = size_map.to_dict()
    (out / "size_map.json").write_text(json.dumps(data, indent=2))
    png = size_map_figure(size_map)
    if png:
        (out / "size_map.png").write_bytes(png)
    (out / "size_map.md").write_text(size_map_markdown(size_map))
    (out / "report.html").write_text(size_map_html(size_map, png))


def size_map_figure(size_map: SizeMap) -> bytes | None:
    """Validation accuracy against examples per class, one line per strategy, error bars."""
    import io

    from matplotlib.figure import Figure  # not pyplot: the caller's backend stays as it is

    if not size_map.entries:
        return None
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot()
    for i, strategy in enumerate(size_map.strategies):
        xs, ys, errs = [], [], []
        for entry in size_map.entries:
            for m in entry.measured:
                if m.strategy == strategy:
                    xs.append(entry.effective_per_class(size_map.n_classes))
                    ys.append(_headline(m)[0])
                    errs.append(_headline(m)[1])
        if xs:
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=strategy, color=f"C{i}")
    ax.set_xscale("log")
    shown = "test" if any(e.n_test for e in size_map.entries) else "validation"
    ax.set(xlabel="training examples per class", ylabel=f"{shown} accuracy")
    ax.set_title(f"{size_map.dataset} · {size_map.backbone}\naccuracy by size "
                 f"(mean ± sd over {size_map.seeds} seeds)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _headline(m: Measured) -> tuple[float, float]:
    """What a size map shows for a strategy: test accuracy where there is a test split,
    else validation accuracy of the fresh seeds."""
    if m.test_mean is not None:
        return m.test_mean, m.test_std or 0.0
    return m.mean, m.std


def _cell(m: Measured | None) -> str:
    if m is None:
        return "–"
    val = f"val {m.mean:.3f} ± {m.std:.3f}; search {m.search_accuracy:.3f}"
    if m.test_mean is not None:
        return f"**{m.test_mean:.3f} ± {m.test_std:.3f}** ({val})"
    return f"{m.mean:.3f} ± {m.std:.3f} (search {m.search_accuracy:.3f})"


def _what_is_shown(size_map: SizeMap) -> str:
    has_test = any(e.n_test for e in size_map.entries)
    first = ("Test accuracy (mean ± sd over fresh seeds), in bold; validation beside it chose "
             "the config and is optimistic" if has_test else
             "Validation accuracy (mean ± sd over fresh seeds; the data has no test split, "
             "pass --test-fraction for one); validation chose the config and is optimistic")
    return (f"{first}. Each strategy's pick was trained again with {size_map.seeds} fresh "
            "seeds and scored at the end of its step budget; 'search' is the search's own "
            f"value for it, a maximum over trials and biased upward. {size_map.budget}")


def size_map_markdown(size_map: SizeMap) -> str:
    lines = [f"# Strategy by size: {size_map.dataset} with {size_map.backbone}", "",
             size_map.crossovers(), ""]
    for note in size_map.noise_notes():
        lines.append(f"- Note: {note}")
    header = "| per class | " + " | ".join(size_map.strategies) + " | winner | cheapest within " \
        f"{size_map.tolerance} |"
    lines += ["", _what_is_shown(size_map), "", header,
              "|" + "---|" * (len(size_map.strategies) + 3)]
    for entry in size_map.entries:
        cells = [_cell(next((m for m in entry.measured if m.strategy == s), None))
                 for s in size_map.strategies]
        best, cheap = entry.best(), entry.cheapest_within(size_map.tolerance)
        lines.append(f"| {size_label(entry.n_per_class)} | " + " | ".join(cells) + " | "
                     f"{describe_winner(best, entry.n_groups) if best else '–'} | "
                     f"{cheap.strategy if cheap else '–'} |")
    lines += projection_markdown(size_map)
    return "\n".join(lines) + "\n"


def size_map_html(size_map: SizeMap, png: bytes | None) -> str:
    """A self-contained page: crossovers, the plot, the table, links to each size's report."""
    import base64
    import html

    from autotl.report import _table

    esc = html.escape
    rows = []
    for entry in size_map.entries:
        cells = [size_label(entry.n_per_class)]
        for strategy in size_map.strategies:
            m = next((m for m in entry.measured if m.strategy == strategy), None)
            cells.append(_cell(m).replace("**", ""))
        best = entry.best()
        cells.append(describe_winner(best, entry.n_groups) if best else "–")
        rows.append(cells)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>autotl size map: {esc(size_map.dataset)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid "
        "#ccc;padding:3px 6px}img{max-width:100%}</style></head><body>",
        f"<h1>Strategy by size: {esc(size_map.dataset)} with {esc(size_map.backbone)}</h1>",
        f"<p><strong>{esc(size_map.crossovers())}</strong></p>",
        *(f"<p>Note: {esc(n)}.</p>" for n in size_map.noise_notes()),
    ]
    if png:
        parts.append("<img alt='accuracy by size' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode()}'>")
    parts += [f"<p>{esc(_what_is_shown(size_map))}</p>",
              _table(["per class", *size_map.strategies, "winner"], rows),
              "<h2>What more data would change</h2>",
              *(f"<p>{esc(s)}</p>" for s in _projection_dict(size_map)["sentences"])]
    header, projected = projection_table(size_map)
    if projected:
        parts += [f"<p>{esc(PROJECTION_BASIS)}</p>", _table(header, projected)]
    parts.append("<h2>Each size</h2><ul>")
    for entry in size_map.entries:
        link = f"{Path(entry.out).name}/report.html"
        parts.append(f"<li><a href='{esc(link)}'>{esc(size_label(entry.n_per_class))} per "
                     f"class</a>: study {esc(entry.study)}, {entry.n_train} train / "
                     f"{entry.n_val} validation examples</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def _mean_flops(runs: list[Any]) -> float | None:
    counts = [r.user_attrs.get("train_flops") for r in runs]
    return statistics.fmean(counts) if counts and None not in counts else None
